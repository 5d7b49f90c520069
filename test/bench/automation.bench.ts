/**
 * Automation latency through the embedded Node-RED: a state change → `hub-state-changed` →
 * `hub-call-action` → the action's effect (another entity changes), BENCH_EVENTS (1,000) times,
 * one after another: p50/p99 of the whole round trip.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { definePlugin, type EntityHandle } from '../../core/plugin.js';
import { percentile, startBenchHub } from './hub.js';

const EVENTS = Number(process.env.BENCH_EVENTS ?? 1000);

let output: EntityHandle | undefined;
const mirror = definePlugin({
  id: 'bench',
  version: '1.0.0',
  hub: '*',
  async setup(ctx) {
    // A bench-only plugin may make its own home (the bench hub's comes after the plugins start).
    const home = await ctx.db.insertInto('homes').values({ name: 'Automation bench' }).returning('id').executeTakeFirstOrThrow();
    output = await ctx.entities.register({ entity_id: 'sensor.bench_out', home_id: home.id, initial: { state: '' } });
    ctx.actions.register({
      domain: 'bench',
      name: 'mirror',
      role: 'owner',
      schema: z.object({ value: z.string() }),
      handler: ({ data }) => void output!.set(data.value),
    });
  },
});

const dataDir = await mkdtemp(path.join(tmpdir(), 'hub-bench-nodered-'));
const { hub, url, token, homeId } = await startBenchHub({ env: { HUB_NODERED: 'true', HUB_DATA_DIR: dataDir }, plugins: [{ definition: mirror }] });

const flow = [
  { id: 'b_tab', type: 'tab', label: 'bench' },
  { id: 'b_server', type: 'hub-server', mode: 'local', name: 'this hub' },
  { id: 'b_in', type: 'hub-state-changed', z: 'b_tab', server: 'b_server', entityType: 'exact', entity: 'sensor.bench_in', ignoreUnavailable: true, attributeChanges: false, forSeconds: 0, x: 100, y: 40, wires: [['b_shape']] },
  { id: 'b_shape', type: 'change', z: 'b_tab', rules: [{ t: 'set', p: 'payload', pt: 'msg', to: '{"data":{"value":payload}}', tot: 'jsonata' }], x: 300, y: 40, wires: [['b_call']] },
  { id: 'b_call', type: 'hub-call-action', z: 'b_tab', server: 'b_server', domain: 'bench', action: 'mirror', target: '', data: '', x: 500, y: 40, wires: [[]] },
];
const deployed = await fetch(`${url}/red/flows`, {
  method: 'POST',
  headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'node-red-deployment-type': 'full' },
  body: JSON.stringify(flow),
});
if (deployed.status !== 204) throw new Error(`deploy failed: ${deployed.status} ${await deployed.text()}`);
await new Promise((resolve) => setTimeout(resolve, 500)); // the flow starts just after the deploy answers

let arrived: ((at: number) => void) | undefined;
hub.bus.on('state_changed', (event) => {
  if ((event.data as { entity_id: string }).entity_id === 'sensor.bench_out') arrived?.(performance.now());
});
const lags: number[] = [];
const started = performance.now();
for (let i = 1; i <= EVENTS; i++) {
  const effect = new Promise<number>((resolve) => (arrived = resolve));
  const sent = performance.now();
  hub.states.set('sensor.bench_in', String(i), {}, { homeId, owner: 'api' });
  lags.push((await effect) - sent);
}
const elapsed = (performance.now() - started) / 1000;
lags.sort((a, b) => a - b);
console.log(`${EVENTS} state changes through hub-state-changed → hub-call-action, one at a time (database: ${hub.database.kind})`);
console.log(`round trip: p50 ${percentile(lags, 50).toFixed(2)} ms, p99 ${percentile(lags, 99).toFixed(2)} ms, max ${lags.at(-1)!.toFixed(2)} ms; ${Math.round(EVENTS / elapsed)} automations/s`);
await hub.stop();
await rm(dataDir, { recursive: true, force: true });
