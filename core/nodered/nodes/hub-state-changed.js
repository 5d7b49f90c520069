// @ts-check
'use strict';
/**
 * `hub-state-changed`: a message for each state change of the matching entities.
 * msg = {topic: entity_id, payload: new state, data: {entity_id, old_state, new_state}}.
 */
const { useServer, watchStates, stateMessage } = require('./lib/common.js');

/** @param {any} RED */
module.exports = function (RED) {
  /** @this {any} @param {any} config */
  function HubStateChangedNode(config) {
    RED.nodes.createNode(this, config);
    const node = this;
    const hub = useServer(RED, node, config);
    const client = hub.client;
    if (!client) return;
    hub.whenReady(() => {
      try {
        hub.onClose(
          watchStates(client, config, (change) => {
            const msg = stateMessage(change);
            node.send(msg);
            hub.showed(String(msg.payload));
          }),
        );
      } catch (error) {
        node.error(`invalid entity filter: ${/** @type {Error} */ (error).message}`);
        hub.failed('invalid entity filter');
      }
    });
  }

  RED.nodes.registerType('hub-state-changed', HubStateChangedNode);
};
