// @ts-check
'use strict';
/**
 * `cluster-plan`: asks the cluster plugin, on the connection of a `hub-server` config node
 * ("this hub" or a remote hub), through its actions:
 *
 * - mode `plan`: the cluster a host home could serve (`cluster.plan`): msg.payload becomes
 *   {plan_id, host_id, host_status, members, rejected (with reasons), route, warnings}. The host home is
 *   msg.payload.hostHomeId (or host_home_id, home_id), else the node's.
 * - mode `next-yard`: the yard a cluster's mower mows now or next (`cluster.next_yard`):
 *   msg.payload becomes {cluster_id, position, candidate_id, home_id, consent, zones, run_id},
 *   or null when the cluster has no yards. The cluster is msg.payload.clusterId (or cluster_id,
 *   or a bare id as msg.payload), else the node's.
 *
 * Failures (no such home or cluster, the cluster plugin not running) go to Catch nodes with
 * the message, and show on the node.
 */

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
// The pattern of ClusterIdParam in ../tables.ts (the hub's bigint cluster ids); Node-RED loads
// this file as plain CommonJS, so it cannot import the TypeScript one.
const CLUSTER_ID = /^[0-9]{1,18}$/;

/** @param {unknown} value */
const isObject = (value) => value !== null && typeof value === 'object' && !Array.isArray(value);

/** The first of `keys` that `input` has, as trimmed text. @param {Record<string, unknown>} input @param {string[]} keys */
function pick(input, keys) {
  for (const key of keys) {
    const value = input[key];
    if (value !== undefined && value !== null && String(value).trim() !== '') return String(value).trim();
  }
  return '';
}

/** @param {any} RED */
module.exports = function (RED) {
  /** @this {any} @param {{ server?: string, mode?: string, hostHomeId?: string, clusterId?: string }} config */
  function ClusterPlanNode(config) {
    RED.nodes.createNode(this, config);
    const node = this;
    const mode = config.mode === 'next-yard' ? 'next-yard' : 'plan';
    const server = config.server ? RED.nodes.getNode(config.server) : undefined;
    if (!server?.client) {
      node.status({ fill: 'red', shape: 'ring', text: 'no hub-server' });
      return;
    }
    const client = server.client;
    let closed = false;
    node.status({ fill: 'yellow', shape: 'ring', text: 'connecting' });
    client.ready.then(() => {
      if (!closed) node.status({ fill: 'green', shape: 'dot', text: mode === 'plan' ? 'ready to plan' : 'ready' });
    });
    node.on('close', () => {
      closed = true;
    });

    node.on('input', async (/** @type {any} */ msg, /** @type {(m: any) => void} */ send, /** @type {(e?: Error) => void} */ done) => {
      try {
        await client.ready; // nothing goes out before the hub is there
        const input = isObject(msg.payload) ? msg.payload : {};
        if (mode === 'plan') {
          const hostHomeId = pick(input, ['hostHomeId', 'host_home_id', 'home_id']) || String(config.hostHomeId || '').trim();
          if (!UUID.test(hostHomeId)) throw new Error('set the host home (its id) on the node or in msg.payload.hostHomeId');
          const { response } = await client.callAction('cluster', 'plan', { home_id: hostHomeId });
          const plan = /** @type {{ members?: unknown[], warnings?: unknown[] } | null} */ (response);
          msg.payload = plan;
          msg.hostHomeId = hostHomeId;
          node.status({ fill: 'green', shape: 'dot', text: `${plan?.members?.length ?? 0} members${plan?.warnings?.length ? `, ${plan.warnings.length} warnings` : ''}` });
        } else {
          const bare = typeof msg.payload === 'string' || typeof msg.payload === 'number' ? String(msg.payload).trim() : '';
          const clusterId = pick(input, ['clusterId', 'cluster_id']) || (CLUSTER_ID.test(bare) ? bare : '') || String(config.clusterId || '').trim();
          if (!CLUSTER_ID.test(clusterId)) throw new Error('set the cluster (its id) on the node or in msg.payload.clusterId');
          const { response } = await client.callAction('cluster', 'next_yard', { cluster_id: clusterId });
          const yard = /** @type {{ candidate_id?: string, position?: number } | null} */ (response);
          msg.payload = yard;
          msg.clusterId = clusterId;
          node.status(yard ? { fill: 'green', shape: 'dot', text: `next: #${yard.position} ${yard.candidate_id}` } : { fill: 'grey', shape: 'ring', text: 'no yards' });
        }
        send(msg);
        done();
      } catch (error) {
        const failure = error instanceof Error ? error : new Error(String(error));
        const code = /** @type {{ code?: string }} */ (failure).code;
        node.status({ fill: 'red', shape: 'dot', text: (code || failure.message).slice(0, 40) });
        // done(error) reports it with the message, so Catch nodes get msg.error.
        done(code && !failure.message.includes(code) ? Object.assign(new Error(`${failure.message} (${code})`), { code }) : failure);
      }
    });
  }

  RED.nodes.registerType('cluster-plan', ClusterPlanNode);
};
