// @ts-check
'use strict';
/**
 * `hub-get-entities`: on input, the states of the entities that match a domain, an entity id
 * prefix or regular expression, and a state; as one array (msg.payload) or one message per
 * entity. An object msg.payload may override {domain, entity, entityType, state}.
 */
const { useServer, entityMatcher, isObject } = require('./lib/common.js');

/** @param {any} RED */
module.exports = function (RED) {
  /** @this {any} @param {any} config */
  function HubGetEntitiesNode(config) {
    RED.nodes.createNode(this, config);
    const node = this;
    const hub = useServer(RED, node, config);
    hub.onInput((msg, send, client) => {
      const query = isObject(msg.payload) ? msg.payload : {};
      const domain = String(query.domain ?? config.domain ?? '').trim();
      const entityType = String(query.entityType ?? config.entityType ?? 'prefix');
      const entity = String(query.entity ?? config.entity ?? '');
      const state = query.state ?? config.state ?? '';
      const matches = entity ? entityMatcher(entityType, entity) : () => true;
      const found = client
        .states()
        .filter((s) => (!domain || s.entity_id.startsWith(`${domain}.`)) && matches(s.entity_id) && (state === '' || s.state === String(state)))
        .sort((a, b) => a.entity_id.localeCompare(b.entity_id));
      hub.showed(`${found.length} found`);
      if (config.outputType === 'split') {
        found.forEach((s, index) => {
          send({ ...RED.util.cloneMessage(msg), topic: s.entity_id, payload: s, parts: { id: msg._msgid, index, count: found.length, type: 'array' } });
        });
        return;
      }
      msg.payload = found;
      send(msg);
    });
  }

  RED.nodes.registerType('hub-get-entities', HubGetEntitiesNode);
};
