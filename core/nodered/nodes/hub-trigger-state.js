// @ts-check
'use strict';
/**
 * `hub-trigger-state`: a state trigger (as `hub-state-changed`) with conditions on the new
 * state; every condition must hold. Output 1: conditions met; output 2: not met.
 */
const { useServer, watchStates, stateMessage, conditionHolds, conditionValue } = require('./lib/common.js');

/** @param {any} RED */
module.exports = function (RED) {
  /** @this {any} @param {any} config */
  function HubTriggerStateNode(config) {
    RED.nodes.createNode(this, config);
    const node = this;
    const hub = useServer(RED, node, config);
    const client = hub.client;
    if (!client) return;
    /** @type {import('./lib/common.js').Condition[]} */
    const conditions = Array.isArray(config.conditions) ? config.conditions : [];
    hub.whenReady(() => {
      try {
        hub.onClose(
          watchStates(client, config, (change) => {
            const results = conditions.map((condition) => ({
              ...condition,
              actual: conditionValue(change.new_state, condition),
              met: conditionHolds(change.new_state, condition),
            }));
            const met = results.every((r) => r.met);
            const msg = { ...stateMessage(change), conditions: results };
            node.send(met ? [msg, null] : [null, msg]);
            hub.showed(`${msg.payload} (${met ? 'met' : 'not met'})`, met ? 'green' : 'grey');
          }),
        );
      } catch (error) {
        node.error(`invalid entity filter: ${/** @type {Error} */ (error).message}`);
        hub.failed('invalid entity filter');
      }
    });
  }

  RED.nodes.registerType('hub-trigger-state', HubTriggerStateNode);
};
