/**
 * Telemetry ingest through the embedded broker: N devices (each its own MQTT connection, in a
 * worker thread) publish every 1/RATE s for SECONDS. Reports messages/s taken in, lag from
 * publish to the state being visible (p50/p99), the hub's CPU and RSS over the run.
 * BENCH_DEVICES (1000), BENCH_RATE (1 msg/s per device), BENCH_SECONDS (60).
 */
import { Worker } from 'node:worker_threads';
import { percentile, startBenchHub } from './hub.js';

const DEVICES = Number(process.env.BENCH_DEVICES ?? 1000);
const RATE = Number(process.env.BENCH_RATE ?? 1);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 60);

const { hub, token, homeId } = await startBenchHub();
const devices = [];
for (let i = 0; i < DEVICES; i++) {
  const res = await hub.app.request(`/api/homes/${homeId}/devices`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ name: `Device ${i}`, kind: 'sensor' }),
  });
  const body = (await res.json()) as { mqtt: { username: string; password: string; telemetry_topic: string } };
  devices.push({ username: body.mqtt.username, password: body.mqtt.password, topic: body.mqtt.telemetry_topic });
}

const lags: number[] = [];
hub.bus.on('state_changed', (event) => {
  const state = (event.data as { entity_id: string; new_state: { state: string } | null }).new_state;
  if (state && (event.data as { entity_id: string }).entity_id.endsWith('_sent')) lags.push(Date.now() - Number(state.state));
});

const worker = new Worker(new URL('./ingest-publisher.mjs', import.meta.url), {
  workerData: { url: hub.mqtt.broker.url, devices, rate: RATE, seconds: SECONDS },
});
await new Promise((resolve) => worker.once('message', resolve)); // connected

const rss: number[] = [];
const cpuStart = process.cpuUsage();
const receivedStart = hub.telemetry.counters.received;
const started = performance.now();
const sampler = setInterval(() => rss.push(process.memoryUsage().rss / 2 ** 20), 1000);
const { sent } = await new Promise<{ sent: number }>((resolve) => worker.on('message', resolve));
await new Promise((resolve) => setTimeout(resolve, 1000)); // let the last messages land
clearInterval(sampler);
await hub.telemetry.flush();
const elapsed = (performance.now() - started) / 1000;
const cpu = process.cpuUsage(cpuStart);
const received = hub.telemetry.counters.received - receivedStart;
lags.sort((a, b) => a - b);

console.log(`${DEVICES} devices × ${RATE} msg/s for ${SECONDS} s on the embedded broker (database: ${hub.database.kind})`);
console.log(`published ${sent}, taken in ${received} (${Math.round(received / elapsed)} msg/s), dropped ${JSON.stringify(hub.telemetry.counters.dropped)}`);
console.log(`lag publish → state: p50 ${percentile(lags, 50)} ms, p99 ${percentile(lags, 99)} ms, max ${lags.at(-1)} ms`);
console.log(`hub CPU ${(((cpu.user + cpu.system) / 1e6 / elapsed) * 100).toFixed(0)}% of one core; RSS MiB first/last/max ${rss[0]?.toFixed(0)}/${rss.at(-1)?.toFixed(0)}/${Math.max(...rss).toFixed(0)}`);
await hub.stop();
