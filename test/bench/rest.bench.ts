/** `GET /api/states/{entity_id}` over real HTTP with bearer auth: requests/s and latency. */
import { Agent, request } from 'node:http';
import { percentile, startBenchHub } from './hub.js';

const CONCURRENCY = 32;
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);

const { hub, url, token, homeId } = await startBenchHub();
hub.states.set('sensor.rest', '42', { unit: 'mm' }, { homeId, owner: 'api' });
const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });
const target = new URL('/api/states/sensor.rest', url);

function get(): Promise<number> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = request(target, { agent, headers: { authorization: `Bearer ${token}` } }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve(performance.now() - started) : reject(new Error(`status ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end();
  });
}

const latencies: number[] = [];
const deadline = performance.now() + SECONDS * 1000;
const began = performance.now();
await Promise.all(
  Array.from({ length: CONCURRENCY }, async () => {
    while (performance.now() < deadline) latencies.push(await get());
  }),
);
const elapsed = (performance.now() - began) / 1000;
latencies.sort((a, b) => a - b);
console.log(`database: ${hub.database.kind}; ${CONCURRENCY} concurrent keep-alive clients for ${SECONDS} s`);
console.log(`${Math.round(latencies.length / elapsed)} requests/s; latency p50 ${percentile(latencies, 50).toFixed(2)} ms, p99 ${percentile(latencies, 99).toFixed(2)} ms`);
agent.destroy();
await hub.stop();
