/**
 * One hub driving BENCH_MOWERS (200) simulated Mammotion mowers through the simulator's cloud
 * faces, all mowing, each streaming a report every second, for BENCH_SECONDS (60): reports/s
 * applied, lag from the simulator publishing a report to the mower entity changing (p50/p99),
 * the hub's CPU and RSS. The simulator runs in the same process, so CPU includes it.
 */
import { fileURLToPath } from 'node:url';
import { slugify } from '../../core/devices/index.js';
import mammotion from '../../plugins/mammotion/index.js';
import { defaultMower, MammotionSimulator } from '../../plugins/mammotion/simulator/index.js';
import { percentile, startBenchHub } from './hub.js';

const MOWERS = Number(process.env.BENCH_MOWERS ?? 200);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 60);

const simulator = new MammotionSimulator({
  // Every mower on current firmware, so the hub streams reports from all of them while they mow.
  mowers: Array.from({ length: MOWERS }, (_, i) => ({ ...defaultMower(i + 1), firmware: '1.30.25.8' })),
});
const { httpUrl, account } = await simulator.start();

// When each mower last published a frame (the simulator's clock, same process).
const publishedAt = new Map<string, number>();
const publish = simulator.cloud.publishFrame.bind(simulator.cloud);
simulator.cloud.publishFrame = (productKey, deviceName, frame) => {
  publishedAt.set(`lawn_mower.${slugify(deviceName)}`, performance.now());
  return publish(productKey, deviceName, frame);
};

const { hub, token, homeId } = await startBenchHub({
  env: {
    PLUGIN_MAMMOTION_CLIENT_ID: account.clientId,
    PLUGIN_MAMMOTION_CLIENT_SECRET: account.clientSecret,
    PLUGIN_MAMMOTION_ID_BASE_URL: httpUrl,
    PLUGIN_MAMMOTION_DOMESTIC_BASE_URL: httpUrl,
  },
  plugins: [{ definition: mammotion, dir: fileURLToPath(new URL('../../plugins/mammotion', import.meta.url)) }],
});
const request = (path: string, body: unknown) =>
  hub.app.request(path, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify(body) });

const linkStarted = performance.now();
const linked = await request('/api/plugins/mammotion/accounts', { home_id: homeId, email: account.email, password: account.password });
if (linked.status !== 201) throw new Error(`link failed: ${linked.status} ${await linked.text()}`);
const { mowers } = (await linked.json()) as { mowers: { entity_id: string }[] };
console.log(`linked ${mowers.length} mowers in ${Math.round(performance.now() - linkStarted)} ms`);

const startStarted = performance.now();
for (const { entity_id } of mowers) {
  const res = await request('/api/services/lawn_mower/start_mowing', { entity_id });
  if (res.status !== 200) throw new Error(`start of ${entity_id} failed: ${res.status} ${await res.text()}`);
}
console.log(`started ${mowers.length} mowers in ${Math.round(performance.now() - startStarted)} ms`);

const lags: number[] = [];
let updates = 0;
hub.bus.on('state_changed', (event) => {
  const { entity_id } = event.data as { entity_id: string };
  const sent = publishedAt.get(entity_id);
  if (sent === undefined) return;
  updates++;
  lags.push(performance.now() - sent);
});

const rss: number[] = [];
const cpuStart = process.cpuUsage();
const started = performance.now();
const sampler = setInterval(() => rss.push(process.memoryUsage().rss / 2 ** 20), 1000);
await new Promise((resolve) => setTimeout(resolve, SECONDS * 1000));
clearInterval(sampler);
const elapsed = (performance.now() - started) / 1000;
const cpu = process.cpuUsage(cpuStart);
lags.sort((a, b) => a - b);
const mowing = mowers.filter(({ entity_id }) => hub.states.get(entity_id)?.state === 'mowing').length;

console.log(`${MOWERS} mowers streaming for ${SECONDS} s (database: ${hub.database.kind}); ${mowing} still mowing at the end`);
console.log(`mower entity updates: ${updates} (${Math.round(updates / elapsed)}/s)`);
console.log(`lag report published → entity changed: p50 ${percentile(lags, 50).toFixed(1)} ms, p99 ${percentile(lags, 99).toFixed(1)} ms, max ${lags.at(-1)?.toFixed(1)} ms`);
console.log(`CPU (hub + simulator) ${(((cpu.user + cpu.system) / 1e6 / elapsed) * 100).toFixed(0)}% of one core; RSS MiB first/last/max ${rss[0]?.toFixed(0)}/${rss.at(-1)?.toFixed(0)}/${Math.max(...rss).toFixed(0)}`);
await hub.stop();
await simulator.stop();
