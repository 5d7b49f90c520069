/** State writes per second through the state machine, history on, over 10,000 entities. */
import { startBenchHub } from './hub.js';

const ENTITIES = 10_000;
const ROUNDS = 5;

const { hub, homeId } = await startBenchHub();
const options = { homeId, owner: 'api' };

// Create the entities first; the benchmark measures updates.
for (let i = 0; i < ENTITIES; i++) hub.states.set(`sensor.bench_${i}`, '0', { unit: 'mm' }, options);
await hub.states.flush();

// PGlite runs on this thread, so the writer and set() compete for it: time them apart.
const started = performance.now();
for (let round = 1; round <= ROUNDS; round++) {
  for (let i = 0; i < ENTITIES; i++) hub.states.set(`sensor.bench_${i}`, String(round), { unit: 'mm', round }, options);
}
const inMemoryMs = performance.now() - started;
await hub.states.flush();
const totalMs = performance.now() - started;

const writes = ENTITIES * ROUNDS;
const history = await hub.database.db.selectFrom('state_history').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
console.log(`database: ${hub.database.kind}; ${ENTITIES} entities × ${ROUNDS} rounds = ${writes} state writes`);
console.log(`set() + state_changed fired (in memory): ${Math.round(writes / (inMemoryMs / 1000))} writes/s`);
console.log(`persisting them (current + history):    ${Math.round(writes / ((totalMs - inMemoryMs) / 1000))} writes/s`);
console.log(`end to end:                              ${Math.round(writes / (totalMs / 1000))} writes/s  (${Math.round(totalMs)} ms)`);
console.log(`history rows: ${Number(history.n)} (expected ${writes + ENTITIES})`);
console.log(`heap used: ${Math.round(process.memoryUsage().heapUsed / 2 ** 20)} MiB, rss ${Math.round(process.memoryUsage().rss / 2 ** 20)} MiB`);
await hub.stop();
