// @ts-check
'use strict';
/**
 * `mower-command`: sends a Mammotion mower one command through the hub's actions
 * (`lawn_mower.*` / `mammotion.*`), on the connection of a `hub-server` config node. The mower
 * and command come from the node, else from msg.payload {entity_id, command, ...parameters}.
 * The action's errors (mower offline, wrong state, rate limited) go to Catch nodes.
 */

/** Commands, the hub action each one calls, and the parameter it takes (if any). */
const COMMANDS = {
  start_mowing: { domain: 'lawn_mower', action: 'start_mowing' },
  pause: { domain: 'lawn_mower', action: 'pause' },
  dock: { domain: 'lawn_mower', action: 'dock' },
  resume: { domain: 'mammotion', action: 'resume' },
  cancel: { domain: 'mammotion', action: 'cancel' },
  leave_dock: { domain: 'mammotion', action: 'leave_dock' },
  refresh: { domain: 'mammotion', action: 'refresh' },
  set_blade_height: { domain: 'mammotion', action: 'set_blade_height', parameter: 'height_mm', type: 'number' },
  set_speed: { domain: 'mammotion', action: 'set_speed', parameter: 'speed', type: 'number' },
  set_cutter_mode: { domain: 'mammotion', action: 'set_cutter_mode', parameter: 'mode', type: 'string' },
  start_zones: { domain: 'mammotion', action: 'start_zones', parameter: 'zones', type: 'list' },
};

/** @param {any} RED */
module.exports = function (RED) {
  /** @this {any} @param {{ server?: string, entity?: string, command?: string, parameter?: string }} config */
  function MowerCommandNode(config) {
    RED.nodes.createNode(this, config);
    const node = this;
    const server = config.server ? RED.nodes.getNode(config.server) : undefined;
    if (!server?.client) {
      node.status({ fill: 'red', shape: 'ring', text: 'no hub-server' });
      return;
    }
    const client = server.client;
    client.ready.then(() => node.status({ fill: 'green', shape: 'dot', text: 'ready' }));

    node.on('input', async (/** @type {any} */ msg, /** @type {(m: any) => void} */ send, /** @type {(e?: Error) => void} */ done) => {
      try {
        await client.ready; // the ready barrier: nothing goes out before the hub's states are there
        const input = msg.payload !== null && typeof msg.payload === 'object' ? msg.payload : {};
        const entityId = String(config.entity || input.entity_id || '').trim();
        const name = String(config.command || input.command || '').trim();
        const command = COMMANDS[/** @type {keyof typeof COMMANDS} */ (name)];
        if (!entityId.startsWith('lawn_mower.')) throw new Error('set the mower (a lawn_mower entity) on the node or in msg.payload.entity_id');
        if (!command) throw new Error(`unknown command "${name}"; one of ${Object.keys(COMMANDS).join(', ')}`);
        /** @type {Record<string, unknown>} */
        const data = {};
        if ('parameter' in command && command.parameter) {
          const raw = input[command.parameter] ?? config.parameter;
          if (raw === undefined || raw === '') throw new Error(`${name} needs ${command.parameter}`);
          data[command.parameter] = command.type === 'number' ? Number(raw) : command.type === 'list' ? (Array.isArray(raw) ? raw.map(String) : String(raw).split(',').map((s) => s.trim()).filter(Boolean)) : String(raw);
        }
        const result = await client.callAction(command.domain, command.action, data, { entity_id: entityId });
        node.status({ fill: 'green', shape: 'dot', text: `${name} → ${entityId}` });
        send({ ...msg, payload: result.response, command: { entity_id: entityId, command: name, data } });
        done();
      } catch (error) {
        node.status({ fill: 'red', shape: 'dot', text: /** @type {Error} */ (error).message.slice(0, 40) });
        done(/** @type {Error} */ (error));
      }
    });
  }

  RED.nodes.registerType('mower-command', MowerCommandNode);
};
