/** `state_changed` fan-out to 1,000 WebSocket subscribers over real sockets: messages/s and latency. */
import WebSocket from 'ws';
import { percentile, startBenchHub } from './hub.js';

const CLIENTS = Number(process.env.BENCH_WS_CLIENTS ?? 1000);
const CHANGES = 200;

const { hub, url, token, homeId } = await startBenchHub();
hub.states.set('sensor.fanout', '0', {}, { homeId, owner: 'api' });

const latencies: number[] = [];
let received = 0;
let allReceived: () => void = () => {};
const done = new Promise<void>((resolve) => (allReceived = resolve));

async function connect(): Promise<WebSocket> {
  const ws = new WebSocket(`${url.replace('http', 'ws')}/api/websocket`);
  await new Promise<void>((resolve, reject) => {
    ws.on('message', (raw) => {
      const message = JSON.parse(raw.toString());
      if (message.type === 'auth_required') ws.send(JSON.stringify({ type: 'auth', access_token: token }));
      else if (message.type === 'auth_ok') ws.send(JSON.stringify({ id: 1, type: 'subscribe_events', event_type: 'state_changed' }));
      else if (message.type === 'result') resolve();
      else if (message.type === 'event') {
        latencies.push(performance.now() - Number(message.event.data.new_state.attributes.sent));
        if (++received === CLIENTS * CHANGES) allReceived();
      }
    });
    ws.once('error', reject);
  });
  return ws;
}

const clients: WebSocket[] = [];
for (let i = 0; i < CLIENTS; i += 50) clients.push(...(await Promise.all(Array.from({ length: Math.min(50, CLIENTS - i) }, connect))));

const started = performance.now();
for (let i = 1; i <= CHANGES; i++) {
  hub.states.set('sensor.fanout', String(i), { sent: performance.now() }, { homeId, owner: 'api' });
  await new Promise((resolve) => setImmediate(resolve));
}
await done;
const seconds = (performance.now() - started) / 1000;
latencies.sort((a, b) => a - b);
console.log(`${CLIENTS} subscribers × ${CHANGES} state changes = ${received} messages in ${seconds.toFixed(2)} s`);
console.log(`throughput: ${Math.round(received / seconds)} messages/s`);
console.log(`latency set() → client: p50 ${percentile(latencies, 50).toFixed(1)} ms, p99 ${percentile(latencies, 99).toFixed(1)} ms, max ${latencies.at(-1)!.toFixed(1)} ms`);
for (const ws of clients) ws.terminate();
await hub.stop();
