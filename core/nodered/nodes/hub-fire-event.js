// @ts-check
'use strict';
/**
 * `hub-fire-event`: fires an event on the hub's bus, then passes the message on. The event type
 * comes from the node, else msg.event_type, else msg.payload.event_type; the data is the node's
 * JSON, else msg.payload.data (with msg.payload.event_type), else an object msg.payload, else
 * {payload, topic}. Reserved event types (the kernel's, such as state_changed, and those a plugin
 * reserved) are refused by the hub itself, with the reason, as for any caller.
 */
const { useServer, parseObject, isObject } = require('./lib/common.js');

/** Letters, digits and `_ . : -`, as the hub's REST and WebSocket APIs require. */
const EVENT_TYPE = /^[a-z0-9_.:-]{1,64}$/i;

/** @param {any} RED */
module.exports = function (RED) {
  /** @this {any} @param {any} config */
  function HubFireEventNode(config) {
    RED.nodes.createNode(this, config);
    const node = this;
    const hub = useServer(RED, node, config);
    /** @type {Record<string, unknown> | undefined} */
    let configData;
    try {
      configData = String(config.data ?? '').trim() ? parseObject(config.data, 'data') : undefined;
    } catch (error) {
      node.error(`invalid data on the node: ${/** @type {Error} */ (error).message}`);
      hub.failed('invalid data');
    }
    hub.onInput(async (msg, send, client) => {
      const payload = msg.payload;
      const eventType = String(config.eventType || msg.event_type || (isObject(payload) ? payload.event_type ?? '' : '')).trim();
      if (!EVENT_TYPE.test(eventType)) throw new Error(`invalid event type "${eventType}": letters, digits and _ . : - (at most 64)`);
      /** @type {Record<string, unknown>} */
      let data;
      if (configData) data = configData;
      else if (isObject(payload) && payload.event_type !== undefined) data = isObject(payload.data) ? payload.data : {};
      else if (isObject(payload)) data = payload;
      else data = msg.topic === undefined ? { payload } : { payload, topic: msg.topic };
      await client.fireEvent(eventType, data, config.homeId || msg.home_id || undefined);
      send(msg);
      hub.showed(eventType);
    });
  }

  RED.nodes.registerType('hub-fire-event', HubFireEventNode);
};
