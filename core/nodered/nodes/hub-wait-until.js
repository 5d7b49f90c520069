// @ts-check
'use strict';
/**
 * `hub-wait-until`: holds each message until an entity's state (or an attribute) meets a
 * condition, or a timeout passes. Output 1: met (msg.data = the state); output 2: timed out
 * (msg.data = the state then). The entity comes from the node, else msg.entity_id; the timeout
 * from the node, else msg.timeout (seconds; 0 waits for ever).
 */
const { useServer, conditionHolds } = require('./lib/common.js');

/** @param {any} RED */
module.exports = function (RED) {
  /** @this {any} @param {any} config */
  function HubWaitUntilNode(config) {
    RED.nodes.createNode(this, config);
    const node = this;
    const hub = useServer(RED, node, config);
    /** Waiting messages: each one's finish (used on close). @type {Set<() => void>} */
    const waiting = new Set();
    hub.onClose(() => {
      for (const finish of [...waiting]) finish();
    });
    const condition = { property: config.property, attribute: config.attribute, op: config.op, value: config.value, valueType: config.valueType };
    const showWaiting = () => hub.showed(`${waiting.size} waiting`, 'blue');

    hub.onInput((msg, send, client) => {
      const entityId = String(config.entity || msg.entity_id || '').trim();
      if (!entityId) throw new Error('no entity id: set one on the node, or send msg.entity_id');
      const timeoutSeconds = Number(config.timeout !== '' && config.timeout !== undefined ? config.timeout : msg.timeout ?? 0);
      if (config.checkCurrent !== false && conditionHolds(client.state(entityId), condition)) {
        msg.data = client.state(entityId);
        send([msg, null]);
        hub.showed('met');
        return;
      }
      return new Promise((resolve) => {
        /** @type {NodeJS.Timeout | undefined} */
        let timer;
        const finish = () => {
          clearTimeout(timer);
          stop();
          waiting.delete(finish);
          resolve();
        };
        const stop = client.onStateChanged((change) => {
          if (change.entity_id !== entityId || !conditionHolds(change.new_state, condition)) return;
          finish();
          msg.data = change.new_state;
          send([msg, null]);
          hub.showed('met');
        });
        if (Number.isFinite(timeoutSeconds) && timeoutSeconds > 0) {
          timer = setTimeout(() => {
            finish();
            msg.data = client.state(entityId) ?? null;
            send([null, msg]);
            hub.showed('timed out', 'grey');
          }, timeoutSeconds * 1000);
        }
        waiting.add(finish);
        showWaiting();
      });
    });
  }

  RED.nodes.registerType('hub-wait-until', HubWaitUntilNode);
};
