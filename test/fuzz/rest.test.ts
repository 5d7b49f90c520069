/**
 * REST fuzz (issue 12): every route of `/api/openapi.json` and every plugin route, as an
 * anonymous caller, as a viewer of the victim's home A and as the owner of another home B,
 * with generated and mutated bodies, queries and path ids. Every answer must be a coded 4xx
 * (or a 2xx the caller may get), never a 5xx, carry the security headers, and nothing of home A
 * may change. `FUZZ_REQUESTS` (default 2500) bounds the count, `FUZZ_SEED` replays a run.
 */
import { connect } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HubRouter } from '../../core/api/rest/index.js';
import type { HubEvent } from '../../core/bus/index.js';
import type { PluginSource } from '../../core/plugins/index.js';
import cluster from '../../plugins/cluster/index.js';
import mammotion from '../../plugins/mammotion/index.js';
import { createTestHub, type TestHub } from '../harness/index.js';
import { until } from '../harness/wait.js';
import { body, MUTATIONS, pathParam, query, Rng, type Components, type Schema, type Targets } from './generate.js';

const SEED = Number(process.env.FUZZ_SEED ?? 20240612);
const BUDGET = Number(process.env.FUZZ_REQUESTS ?? 2500);
const SOCKET_SAMPLE = 60;
const PLUGINS_DIR = fileURLToPath(new URL('../../plugins', import.meta.url));

interface Operation {
  method: string;
  /** OpenAPI style, `{param}`. */
  path: string;
  params: string[];
  query: { name: string; schema?: Schema }[];
  body?: Schema;
  /** The cluster plugin's original Mowthos API keeps FastAPI's 422 `{"detail": [...]}` (plugins/cluster/compat.ts). */
  fastApiErrors?: boolean;
}

interface Identity {
  name: 'anonymous' | 'viewer' | 'attacker';
  token?: string;
  userId?: string;
}

interface Finding {
  identity: string;
  method: string;
  url: string;
  mutation: string;
  status: number;
  problem: string;
  answer: string;
}

type Snapshot = Map<string, Map<string, Record<string, unknown>>>;

let t: TestHub;
const pluginRouters: HubRouter[] = [];
let targets: Targets;
let identities: Identity[];
let victim: { homeId: string; ownerId: string; viewerId: string };

/** Wraps a plugin so the test sees its router (plugin routes are not in the OpenAPI document yet). */
function capturingRoutes(source: PluginSource): PluginSource {
  const { definition } = source;
  return {
    ...source,
    definition: {
      ...definition,
      setup: (ctx) => {
        pluginRouters.push(ctx.routes);
        return definition.setup(ctx);
      },
    },
  };
}

async function api(pathname: string, token: string, json?: unknown, method?: string) {
  const res = await t.request(pathname, { token, json, method });
  if (res.status >= 300) throw new Error(`${method ?? (json ? 'POST' : 'GET')} ${pathname}: ${res.status} ${await res.text()}`);
  return (await res.json()) as Record<string, unknown>;
}

beforeAll(async () => {
  t = await createTestHub(
    { PLUGIN_MAMMOTION_SIMULATOR: 'true', PLUGIN_MAMMOTION_SIMULATOR_SPEEDUP: '30', HUB_METRICS_TOKEN: 'fuzz-scrape-token-0123456789' },
    {
      plugins: [
        capturingRoutes({ definition: mammotion, dir: path.join(PLUGINS_DIR, 'mammotion') }),
        capturingRoutes({ definition: cluster, dir: path.join(PLUGINS_DIR, 'cluster') }),
      ],
    },
  );
  const owner = await t.createUser('owner-a@example.com');
  const viewer = await t.createUser('viewer-a@example.com');
  const attacker = await t.createUser('attacker@example.com');
  // Home A first: the Mammotion simulator links its mowers to the first home.
  const homeA = await t.createHome(owner.token, { name: 'Home A', address: '1 Garden Way', latitude: 52.52, longitude: 13.405 });
  await t.createHome(attacker.token, { name: 'Home B', latitude: 52.53, longitude: 13.41 });
  await t.addMember(owner.token, homeA, viewer, 'viewer');

  const device = await api(`/api/homes/${homeA}/devices`, owner.token, { name: 'Weather', kind: 'weather_station' });
  await api('/api/states/sensor.home_a_secret', await t.adminToken(), { state: '42', attributes: { note: 'A only' }, home_id: homeA });
  await api('/api/alerts/rules', owner.token, { home_id: homeA, device_id: device.id, metric: 'battery', direction: 'below', warning: 20 });
  await api('/api/maintenance', owner.token, { device_id: device.id, title: 'Sharpen blades', type: 'preventive', due_at: new Date(Date.now() + 86_400_000).toISOString() });
  await api('/api/tokens', owner.token, { name: 'tool', home_id: homeA, role: 'viewer' });
  // Both simulated mowers linked and reporting, so the link's own writes are over before the first snapshot.
  await until(
    () => [...t.hub.states.entries()].filter((e) => e.homeId === homeA && e.owner === 'plugin:mammotion').map((e) => `${e.state.entity_id}=${e.state.state}`),
    (states) => states.filter((s) => s.startsWith('lawn_mower.')).length === 2 && !states.some((s) => /=(unknown|unavailable)$/.test(s)),
    30_000,
  );

  victim = { homeId: homeA, ownerId: owner.id, viewerId: viewer.id };
  identities = [
    { name: 'anonymous' },
    { name: 'viewer', token: viewer.token, userId: viewer.id },
    { name: 'attacker', token: attacker.token, userId: attacker.id },
  ];
  const victimIds = new Set<string>([homeA, owner.id]);
  for (const [table, rows] of await snapshot()) {
    for (const row of rows.values()) if (row.home_id === homeA && typeof row.id === 'string') victimIds.add(row.id);
    if (table === 'jobs') for (const row of rows.values()) if (typeof row.id === 'string') victimIds.add(row.id);
  }
  targets = {
    victimHomeId: homeA,
    victimIds: [...victimIds, 'mammotion', 'cluster', 'housekeeping'],
    victimEntityIds: [...t.hub.states.entries()].filter((e) => e.homeId === homeA).map((e) => e.state.entity_id),
  };
}, 120_000);

afterAll(() => t?.stop());

/** The routes to fuzz: the OpenAPI document's, and each plugin router's. */
async function operations(): Promise<{ ops: Operation[]; components: Components }> {
  const doc = (await (await t.request('/api/openapi.json')).json()) as OpenApiDoc;
  const components: Components = { schemas: { ...doc.components?.schemas } };
  const ops = fromDocument(doc);
  const documented = new Set(ops.map((op) => `${op.method} ${op.path}`));
  for (const router of pluginRouters) {
    const pluginDoc = router.getOpenAPI31Document({ openapi: '3.1.0', info: { title: 'plugin', version: '0' } }) as unknown as OpenApiDoc;
    Object.assign(components.schemas!, pluginDoc.components?.schemas);
    for (const op of fromDocument(pluginDoc)) if (!documented.has(`${op.method} ${op.path}`)) ops.push(op), documented.add(`${op.method} ${op.path}`);
    // Routes a plugin added without a schema are still routes.
    for (const route of router.routes) {
      if (route.method === 'ALL' || route.path.endsWith('*')) continue;
      const openApiPath = route.path.replace(/:(\w+)(\{[^}]*\})?/g, '{$1}');
      if (documented.has(`${route.method} ${openApiPath}`)) continue;
      documented.add(`${route.method} ${openApiPath}`);
      ops.push({
        method: route.method,
        path: openApiPath,
        params: [...openApiPath.matchAll(/\{(\w+)\}/g)].map((m) => m[1]!),
        query: [],
        fastApiErrors: openApiPath.startsWith('/api/plugins/cluster/clusters/'),
      });
    }
  }
  // Ending one's own session is allowed and would blind the rest of the run: keep it for last.
  ops.sort((a, b) => Number(a.path === '/api/auth/logout') - Number(b.path === '/api/auth/logout'));
  return { ops, components };
}

interface OpenApiDoc {
  paths: Record<string, Record<string, { parameters?: { name: string; in: string; schema?: Schema }[]; requestBody?: { content?: Record<string, { schema?: Schema }> } }>>;
  components?: { schemas?: Record<string, Schema> };
}

function fromDocument(doc: OpenApiDoc): Operation[] {
  const ops: Operation[] = [];
  for (const [route, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      ops.push({
        method: method.toUpperCase(),
        path: route,
        params: [...route.matchAll(/\{(\w+)\}/g)].map((m) => m[1]!),
        query: (op.parameters ?? []).filter((p) => p.in === 'query').map(({ name, schema }) => ({ name, schema })),
        body: op.requestBody?.content?.['application/json']?.schema,
      });
    }
  }
  return ops;
}

/** Columns that move without anyone asking: sliding sessions, token use, the scheduler, pollers. */
const VOLATILE = /^(last_used_at|expires_at|updated_at|last_seen_at|next_run|run_count|lease_\w+|last_\w+|running\w*|polled_at|state|attributes|context_\w+|firmware)$/;
/** Tables whose rows the state writer, the pollers and the scheduler keep writing. */
const APPEND_ONLY = new Set(['state_history', 'readings', 'readings_minute', 'readings_hour', 'mammotion_sessions', 'migrations', 'kysely_migration', 'hub_migrations']);

/** All rows of all tables, keyed by primary key, without volatile columns. */
async function snapshot(): Promise<Snapshot> {
  await t.hub.states.flush();
  const { db } = t.hub.database;
  const tables = await sql<{ table_name: string }>`select table_name from information_schema.tables where table_schema = current_schema() and table_type = 'BASE TABLE' order by 1`.execute(db);
  const keys = await sql<{ table_name: string; column_name: string }>`
    select k.table_name, k.column_name from information_schema.table_constraints c
    join information_schema.key_column_usage k on k.constraint_name = c.constraint_name and k.table_schema = c.table_schema
    where c.constraint_type = 'PRIMARY KEY' and c.table_schema = current_schema() order by k.ordinal_position`.execute(db);
  const out: Snapshot = new Map();
  for (const { table_name: table } of tables.rows) {
    if (APPEND_ONLY.has(table)) continue;
    const key = keys.rows.filter((k) => k.table_name === table).map((k) => k.column_name);
    const rows = await sql<Record<string, unknown>>`select * from ${sql.table(table)}`.execute(db);
    const byKey = new Map<string, Record<string, unknown>>();
    for (const row of rows.rows) {
      const stable = Object.fromEntries(Object.entries(row).filter(([column]) => key.includes(column) || !VOLATILE.test(column)));
      byKey.set(key.length ? key.map((k) => String(row[k])).join('|') : JSON.stringify(stable), JSON.parse(JSON.stringify(stable)) as Record<string, unknown>);
    }
    out.set(table, byKey);
  }
  return out;
}

/** What differs between two snapshots that the fuzzing identities were not allowed to cause. */
function forbiddenChanges(before: Snapshot, after: Snapshot): string[] {
  const problems: string[] = [];
  const victimIds = new Set([victim.homeId, victim.ownerId, ...targets.victimIds.filter((id) => id.includes('-'))]);
  const homesBefore = before.get('homes')!;
  const fuzzUsers = new Set(identities.map((i) => i.userId).filter(Boolean));
  for (const [table, rowsAfter] of after) {
    const rowsBefore = before.get(table) ?? new Map();
    for (const [key, row] of rowsBefore) {
      if (table === 'sessions' && fuzzUsers.has(String(row.user_id))) continue; // logging oneself out is allowed
      const now = rowsAfter.get(key);
      if (!now) problems.push(`${table}: row ${key} was deleted`);
      else if (JSON.stringify(now) !== JSON.stringify(row)) problems.push(`${table}: row ${key} changed: ${JSON.stringify(row)} → ${JSON.stringify(now)}`);
    }
    for (const [key, row] of rowsAfter) {
      if (rowsBefore.has(key)) continue;
      const text = JSON.stringify(row);
      // An identity may create things of its own: a home (it owns), its tokens, things in its new homes or home B.
      const ownToken = table === 'api_tokens' && row.user_id === identities[1]!.userId && row.home_id === victim.homeId && row.role === 'viewer';
      if (table === 'users') problems.push(`users: a user was created: ${text}`);
      else if (table === 'home_members' && homesBefore.has(String(row.home_id))) problems.push(`home_members: someone joined an existing home: ${text}`);
      else if (!ownToken && [...victimIds].some((id) => text.includes(id))) problems.push(`${table}: a new row points into home A: ${text}`);
    }
  }
  return problems;
}

/** Home A's entities as a client sees them (values, home, device, owner), and that no entity moved in or out. */
function victimStates(): string {
  const entries = [...t.hub.states.entries()]
    .filter((e) => e.homeId === victim.homeId || targets.victimEntityIds.includes(e.state.entity_id))
    .map((e) => ({
      id: e.state.entity_id,
      home: e.homeId,
      device: e.deviceId,
      owner: e.owner,
      // The simulated mowers report battery and position as they sit in the dock; their state string must not move.
      state: e.state.state,
      attributes: e.owner === 'plugin:mammotion' ? undefined : e.state.attributes,
    }))
    .sort((a, b) => a.id.localeCompare(b.id));
  return JSON.stringify(entries, null, 1);
}

function expectSecurityHeaders(res: Response): string | undefined {
  if (res.headers.get('x-content-type-options') !== 'nosniff') return 'no X-Content-Type-Options: nosniff';
  if (!res.headers.get('content-security-policy')?.includes("frame-ancestors 'none'")) return "no CSP frame-ancestors 'none'";
  if (!res.headers.get('referrer-policy')) return 'no Referrer-Policy';
  return undefined;
}

/**
 * Routes only home A's owner or a hub administrator may use: a 2xx to a fuzzing identity is a
 * finding even where the tables would not show it (a job run, a plugin toggle, a read).
 */
const NEVER_2XX = new Set(['POST /api/jobs/{id}/run', 'POST /api/plugins/{id}/enable', 'POST /api/plugins/{id}/disable', 'GET /api/users', 'POST /api/users', 'PATCH /api/users/{id}', 'GET /metrics']);

const PUBLIC = new Set(['GET /api/health', 'GET /api/openapi.json', 'GET /api/docs', 'POST /api/auth/login', 'POST /api/auth/register']);

/** Judges one answer; returns what is wrong with it, if anything. */
async function judge(res: Response, identity: Identity, op: Operation): Promise<{ problem?: string; text: string }> {
  const text = await res.text();
  const missingHeader = expectSecurityHeaders(res);
  if (res.status >= 500) return { problem: `${res.status} server error`, text };
  if (missingHeader) return { problem: missingHeader, text };
  if (res.status >= 400) {
    try {
      const answer = JSON.parse(text) as { error?: { code?: unknown; message?: unknown }; detail?: unknown };
      if (op.fastApiErrors && res.status === 422 && Array.isArray(answer.detail)) return { text };
      const error = answer.error;
      if (typeof error?.code !== 'string' || !error.code.startsWith('HUB_ERR_') || typeof error.message !== 'string') return { problem: 'error without the coded shape', text };
    } catch {
      return { problem: 'error answer is not JSON', text };
    }
  } else if (identity.name === 'anonymous' && !PUBLIC.has(`${op.method} ${op.path}`)) {
    return { problem: `anonymous caller got ${res.status}`, text };
  } else if (NEVER_2XX.has(`${op.method} ${op.path}`)) {
    return { problem: `${identity.name} got ${res.status} on an owner's or administrator's route`, text };
  }
  return { text };
}

function fill(op: Operation, rng: Rng): string {
  return op.path.replace(/\{(\w+)\}/g, (_, name: string) => pathParam(rng, targets, name));
}

describe('REST fuzz', () => {
  it(`every route, as anonymous, a viewer of home A and the owner of home B: coded 4xx, no 5xx, nothing of home A changed (seed ${SEED})`, async () => {
    const { ops, components } = await operations();
    const rng = new Rng(SEED);
    const perCase = Math.max(2, Math.floor(BUDGET / (ops.length * identities.length)));
    const events: HubEvent[] = [];
    const fuzzUsers = new Set(identities.map((i) => i.userId).filter(Boolean));
    const stopWatching = t.hub.bus.on('*', (event) => {
      if (event.home_id === victim.homeId && fuzzUsers.has(event.context.user_id ?? '')) events.push(event);
    });
    const before = await snapshot();
    const statesBefore = victimStates();
    const counts = { sent: 0, '2xx': 0, '3xx': 0, '4xx': 0, '5xx': 0 };
    const findings: Finding[] = [];
    const slow = new Map<string, number>();
    const started = Date.now();

    for (const identity of identities) {
      for (const op of ops) {
        // Each sign-in hashes a password (~0.5 s, on purpose): a few cover the route.
        const cases = op.path === '/api/auth/login' ? Math.min(perCase, 2) : perCase;
        for (let i = 0; i < cases; i++) {
          const mutation = i === 0 ? 'none' : rng.pick(MUTATIONS);
          const url = fill(op, rng) + query(op.query, rng, targets, components, mutation !== 'none');
          const hasBody = op.method !== 'GET' && op.method !== 'HEAD';
          const sent = hasBody ? body(op.body, rng, targets, components, mutation) : undefined;
          const headers: Record<string, string> = {};
          if (identity.token) headers.authorization = `Bearer ${identity.token}`;
          if (sent?.bytes) headers['content-type'] = sent.contentType;
          const sentAt = performance.now();
          const res = await t.hub.app.request(url, { method: op.method, headers, body: sent?.bytes });
          const key = `${op.method} ${op.path} ${mutation}`;
          slow.set(key, (slow.get(key) ?? 0) + performance.now() - sentAt);
          counts.sent++;
          counts[`${Math.floor(res.status / 100)}xx` as keyof typeof counts]++;
          const { problem, text } = await judge(res, identity, op);
          if (problem) findings.push({ identity: identity.name, method: op.method, url: url.slice(0, 200), mutation, status: res.status, problem, answer: text.slice(0, 300) });
        }
      }
    }
    stopWatching();

    const socket = await socketSample(new Rng(SEED + 1), ops);
    counts.sent += socket.sent;
    findings.push(...socket.findings);
    for (const status of socket.statuses) counts[`${Math.floor(status / 100)}xx` as keyof typeof counts]++;

    const changes = forbiddenChanges(before, await snapshot());
    const statesAfter = victimStates();
    const summary = { seed: SEED, operations: ops.length, identities: identities.length, ...counts, findings: findings.length, seconds: Math.round((Date.now() - started) / 1000) };
    console.log(`REST fuzz: ${JSON.stringify(summary)}`);
    console.log([...slow].sort((a, b) => b[1] - a[1]).slice(0, 25).map(([k, ms]) => `${Math.round(ms)} ms ${k}`).join('\n'));
    if (findings.length) console.log(`REST fuzz findings (FUZZ_SEED=${SEED}):\n${findings.slice(0, 60).map((f) => JSON.stringify(f)).join('\n')}`);

    const unhandled = t.logs.filter((l) => l.msg === 'unhandled error').map((l) => JSON.stringify(l.err).slice(0, 600));
    if (unhandled.length) console.log(`unhandled errors in the hub's log:\n${[...new Set(unhandled)].join('\n')}`);
    expect(findings, `seed ${SEED}`).toEqual([]);
    expect(changes, `seed ${SEED}`).toEqual([]);
    expect(statesAfter, `seed ${SEED}: home A's entities`).toBe(statesBefore);
    expect(events.map((e) => `${e.event_type} by ${e.context.user_id}`), `seed ${SEED}: events in home A caused by the fuzzing identities`).toEqual([]);
    expect(counts.sent).toBeGreaterThanOrEqual(Math.min(BUDGET, ops.length * identities.length * 2) * 0.8);
  }, 240_000);
});

/**
 * A sample over a real socket, written byte by byte: invalid UTF-8 in the path and the body,
 * which `fetch` and `app.request` would normalise away.
 */
async function socketSample(rng: Rng, ops: Operation[]): Promise<{ sent: number; statuses: number[]; findings: Finding[] }> {
  const { port } = await t.hub.listen();
  const statuses: number[] = [];
  const findings: Finding[] = [];
  const attacker = identities[2]!;
  for (let i = 0; i < SOCKET_SAMPLE; i++) {
    const op = rng.pick(ops);
    const target = Buffer.concat([Buffer.from(fill(op, rng)), rng.chance(0.5) ? Buffer.from([0x2f, 0xff, 0xfe, 0xc3, 0x28]) : Buffer.alloc(0)]);
    const payload = Buffer.concat([Buffer.from('{"name":"'), Buffer.from([0xff, 0xc0, 0xaf, 0xed, 0xa0, 0x80]), Buffer.from(`","home_id":"${victim.homeId}"}`)]);
    const auth = rng.chance(0.5) && attacker.token ? `Authorization: Bearer ${attacker.token}\r\n` : '';
    const head = `${op.method} `;
    const rest = ` HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n${auth}Content-Type: application/json\r\nContent-Length: ${payload.length}\r\nConnection: close\r\n\r\n`;
    const answer = await rawRequest(port, Buffer.concat([Buffer.from(head), target, Buffer.from(rest), payload]));
    const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1] ?? 0);
    statuses.push(status);
    const headers = answer.split('\r\n\r\n')[0]!.toLowerCase();
    let problem: string | undefined;
    if (status === 0 || status >= 500) problem = `${status || 'no'} answer over the socket`;
    else if (status !== 400 || headers.includes('content-type: application/json')) {
      // A 400 without JSON is Node's own parser refusing the request line: fine, and it never reached the hub.
      if (!headers.includes('x-content-type-options: nosniff')) problem = 'no nosniff over the socket';
    }
    if (problem) findings.push({ identity: auth ? 'attacker' : 'anonymous', method: op.method, url: target.toString('latin1').slice(0, 200), mutation: 'raw_bytes', status, problem, answer: answer.slice(0, 300) });
  }
  return { sent: SOCKET_SAMPLE, statuses, findings };
}

function rawRequest(port: number, bytes: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(bytes));
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('end', () => resolve(Buffer.concat(chunks).toString('latin1')));
    socket.on('error', reject);
    socket.setTimeout(10_000, () => socket.destroy(new Error('no answer in 10 s')));
  });
}
