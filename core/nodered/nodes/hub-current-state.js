// @ts-check
'use strict';
/**
 * `hub-current-state`: on input, the entity's current state. The entity comes from the node's
 * config, else `msg.entity_id`, else a string `msg.payload`. Output 1: msg.payload = state,
 * msg.data = the state object; output 2: the entity does not exist.
 */
const { useServer } = require('./lib/common.js');

/** @param {any} RED */
module.exports = function (RED) {
  /** @this {any} @param {any} config */
  function HubCurrentStateNode(config) {
    RED.nodes.createNode(this, config);
    const node = this;
    const hub = useServer(RED, node, config);
    hub.onInput((msg, send, client) => {
      const entityId = String(config.entity || msg.entity_id || (typeof msg.payload === 'string' ? msg.payload : '')).trim();
      if (!entityId) throw new Error('no entity id: set one on the node, or send msg.entity_id or a string msg.payload');
      const state = client.state(entityId);
      msg.topic = entityId;
      if (!state) {
        msg.entity_id = entityId;
        send([null, msg]);
        hub.showed(`${entityId} not found`, 'grey');
        return;
      }
      msg.payload = state.state;
      msg.data = state;
      send([msg, null]);
      hub.showed(state.state);
    });
  }

  RED.nodes.registerType('hub-current-state', HubCurrentStateNode);
};
