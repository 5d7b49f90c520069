// @ts-check
'use strict';
/**
 * `hub-events-all`: a message for each event on the hub's bus, of one type or all.
 * msg = {topic: event_type, event_type, payload: the event {event_type, data, time_fired, context, home_id}}.
 */
const { useServer } = require('./lib/common.js');

/** @param {any} RED */
module.exports = function (RED) {
  /** @this {any} @param {any} config */
  function HubEventsAllNode(config) {
    RED.nodes.createNode(this, config);
    const node = this;
    const hub = useServer(RED, node, config);
    const client = hub.client;
    if (!client) return;
    const eventType = String(config.eventType || '').trim() || '*';
    hub.whenReady(() => {
      hub.onClose(
        client.onEvent(eventType, (event) => {
          node.send({ topic: event.event_type, event_type: event.event_type, payload: event });
          hub.showed(event.event_type);
        }),
      );
    });
  }

  RED.nodes.registerType('hub-events-all', HubEventsAllNode);
};
