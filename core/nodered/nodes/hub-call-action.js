// @ts-check
'use strict';
/**
 * `hub-call-action`: calls `domain.action` with data and a target. Domain and action come from
 * the node, else from msg.payload {domain, action}; data is the node's JSON merged with
 * msg.payload.data; target is msg.payload.target, else the node's entity ids. The data is
 * checked against the action's JSON Schema first: invalid data is reported (node.error, Catch
 * nodes see it) and the action is not called. The action's response is msg.payload.
 *
 * Also serves the action list to the editor: `GET <admin root>/hub/actions[?server=<id>]`.
 */
const { useServer, checkSchema, parseObject, list, isObject } = require('./lib/common.js');
const { LocalClient } = require('./lib/client.js');

/** @param {any} RED */
module.exports = function (RED) {
  /** @this {any} @param {any} config */
  function HubCallActionNode(config) {
    RED.nodes.createNode(this, config);
    const node = this;
    const hub = useServer(RED, node, config);
    /** @type {Record<string, unknown>} */
    let configData = {};
    try {
      configData = parseObject(config.data, 'data');
    } catch (error) {
      node.error(`invalid data on the node: ${/** @type {Error} */ (error).message}`);
      hub.failed('invalid data');
    }
    hub.onInput(async (msg, send, client) => {
      const input = isObject(msg.payload) ? msg.payload : {};
      const domain = String(config.domain || input.domain || '').trim();
      const action = String(config.action || input.action || input.service || '').trim();
      if (!domain || !action) throw new Error('no action: set domain and action on the node, or send msg.payload {domain, action}');
      if (input.data !== undefined && !isObject(input.data)) throw new Error('msg.payload.data must be an object');
      const data = { ...configData, ...(input.data ?? {}) };
      const entityIds = list(config.target);
      const target = isObject(input.target) ? input.target : entityIds.length > 0 ? { entity_id: entityIds } : undefined;

      const available = client.actions();
      const known = available.find((a) => a.domain === domain && a.name === action);
      if (!known && available.length > 0) throw new Error(`no action ${domain}.${action} on the hub`);
      const problem = known ? checkSchema(known.fields, data) : undefined;
      if (problem) {
        hub.failed(`invalid data for ${domain}.${action}`);
        throw new Error(`invalid data for ${domain}.${action}: ${problem}`);
      }
      const result = await client.callAction(domain, action, data, target);
      msg.payload = result.response;
      msg.action = { domain, action, data, target };
      send(msg);
      hub.showed(`${domain}.${action}`);
    });
  }

  RED.nodes.registerType('hub-call-action', HubCallActionNode);

  // The editor's action picker: this hub's actions, or those of a deployed remote hub-server.
  RED.httpAdmin.get('/hub/actions', RED.auth.needsPermission('flows.read'), (/** @type {any} */ req, /** @type {any} */ res) => {
    const server = req.query?.server ? RED.nodes.getNode(String(req.query.server)) : undefined;
    if (!server && req.query?.remote) return void res.json([]); // a remote hub-server not deployed yet
    const client = server?.client ?? new LocalClient(RED.settings.hub);
    try {
      res.json(client.actions());
    } catch (error) {
      res.status(500).json({ error: /** @type {Error} */ (error).message });
    }
  });
};
