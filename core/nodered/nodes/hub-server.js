// @ts-check
'use strict';
/**
 * `hub-server`: the connection every hub node uses. "This hub" (default) runs on the bridge the
 * hub hands Node-RED (`RED.settings.hub`); "remote hub" connects to another hub's WebSocket API
 * with an API token.
 */
const { LocalClient, RemoteClient } = require('./lib/client.js');

/** @param {any} RED */
module.exports = function (RED) {
  /** @this {any} @param {{ name?: string, mode?: string, url?: string, heartbeat?: number | string }} config */
  function HubServerNode(config) {
    RED.nodes.createNode(this, config);
    const node = this;
    node.name = config.name;
    node.remote = config.mode === 'remote';
    const label = `[hub-server${config.name ? ` ${config.name}` : ''}]`;
    if (node.remote) {
      const heartbeat = Number(config.heartbeat);
      node.client = new RemoteClient({
        url: config.url || '',
        token: node.credentials?.token || '',
        heartbeatMs: Number.isFinite(heartbeat) && heartbeat >= 1 ? heartbeat * 1000 : undefined,
        log: {
          info: (msg) => RED.log.info(`${label} ${msg}`),
          warn: (msg) => RED.log.warn(`${label} ${msg}`),
          error: (msg) => RED.log.error(`${label} ${msg}`),
        },
      });
    } else {
      if (!RED.settings.hub) RED.log.warn(`${label} "this hub" needs Node-RED running inside Mowthos Hub`);
      node.client = new LocalClient(RED.settings.hub);
    }
    node.on('close', (/** @type {boolean} */ _removed, /** @type {() => void} */ done) => {
      node.client.close().then(done, done);
    });
  }

  RED.nodes.registerType('hub-server', HubServerNode, {
    credentials: { token: { type: 'password' } },
  });

  // The editor's entity picker: this hub's entities, or those of a deployed remote hub-server.
  RED.httpAdmin.get('/hub/entities', RED.auth.needsPermission('flows.read'), (/** @type {any} */ req, /** @type {any} */ res) => {
    const server = req.query?.server ? RED.nodes.getNode(String(req.query.server)) : undefined;
    if (!server && req.query?.remote) return void res.json([]); // a remote hub-server not deployed yet
    const client = server?.client ?? new LocalClient(RED.settings.hub);
    const states = client instanceof LocalClient && client.bridge ? client.bridge.states() : client.states();
    res.json(states.map((/** @type {{ entity_id: string, state: string }} */ s) => ({ entity_id: s.entity_id, state: s.state })).sort((/** @type {{ entity_id: string }} */ a, /** @type {{ entity_id: string }} */ b) => a.entity_id.localeCompare(b.entity_id)));
  });
};
