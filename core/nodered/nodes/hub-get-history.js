// @ts-check
'use strict';
/**
 * `hub-get-history`: on input, the entities' states over a period (Home Assistant's history
 * shape, one array per entity) in msg.payload. The period is the last N hours, or from a start
 * to an end; an object msg.payload may override {entity_ids, hours, start, end}.
 */
const { useServer, list, isObject } = require('./lib/common.js');

/** @param {any} RED */
module.exports = function (RED) {
  /** @this {any} @param {any} config */
  function HubGetHistoryNode(config) {
    RED.nodes.createNode(this, config);
    const node = this;
    const hub = useServer(RED, node, config);
    hub.onInput(async (msg, send, client) => {
      const query = isObject(msg.payload) ? msg.payload : {};
      const entityIds = list(query.entity_ids ?? msg.entity_ids ?? config.entities);
      const now = new Date();
      let start;
      let end;
      if (query.start !== undefined || (query.hours === undefined && config.rangeType === 'absolute')) {
        start = new Date(query.start ?? config.start);
        end = query.end ?? config.end ? new Date(query.end ?? config.end) : now;
      } else {
        const hours = Number(query.hours ?? config.hours ?? 24);
        if (!Number.isFinite(hours) || hours <= 0) throw new Error('hours must be a positive number');
        start = new Date(now.getTime() - hours * 3_600_000);
        end = now;
      }
      if (Number.isNaN(start.getTime()) || Number.isNaN(end.getTime())) throw new Error('start and end must be dates (ISO 8601)');
      if (start > end) throw new Error('start must be before end');
      msg.payload = await client.history(entityIds, start, end);
      msg.start = start.toISOString();
      msg.end = end.toISOString();
      send(msg);
      hub.showed(`${msg.payload.length} entities`);
    });
  }

  RED.nodes.registerType('hub-get-history', HubGetHistoryNode);
};
