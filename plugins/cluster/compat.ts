/**
 * The original Mowthos-Cluster-Logic API (SPEC §1.2), served by the planner: a client that
 * used it sets its base URL to `http://<hub>/api/plugins/cluster`, adds a hub API token as
 * `Authorization: Bearer …`, and keeps its paths and bodies. The answers keep FastAPI's shapes,
 * 422 validation errors included. What changes is underneath: one record per address (the
 * "host is its own neighbour" defect is gone), the planner's road test instead of osmnx's, and
 * a 200 with an empty list where the original raised a 500.
 *
 * These routes see the plugin's address pool only (registrations and imports), never the
 * hub's homes. Registering writes that pool, whose rows then compete in the hub's clusters, so
 * only hub administrators may register (a coded 403 for others); anyone signed in may ask.
 *
 * @module
 */
import type { Context } from 'hono';
import type { HubEnv, HubRouter } from '../../core/api/rest/index.js';
import { requireAdmin } from '../../core/auth/index.js';
import { HubError } from '../../core/errors/index.js';
import type { Logger } from '../../core/log/index.js';
import { geocodeQuery, partsQuery, type Geocoder } from './geocode.js';
import { addressKey, type HomeInput, type PairResult, type Planner } from './planner/index.js';
import type { ClusterPlanning } from './planning.js';
import { addressCandidateId, addressInput, addressRowId } from './store.js';
import type { ClusterDb } from './tables.js';

/** pydantic 2.5's error item, as FastAPI 0.104 returns it in `{"detail": [...]}`. */
interface ValidationIssue {
  type: string;
  loc: (string | number)[];
  msg: string;
  input: unknown;
  ctx?: Record<string, unknown>;
  url?: string;
}

type FieldKind = 'str' | 'float?';

const issue = (type: string, loc: (string | number)[], msg: string, input: unknown, ctx?: Record<string, unknown>): ValidationIssue => ({
  type,
  loc,
  msg,
  input,
  ...(ctx ? { ctx } : {}),
  url: `https://errors.pydantic.dev/2.5/v/${type}`,
});

/** Reads a JSON body and checks its fields the way the original's pydantic models did. */
async function readModel<K extends string>(
  c: Context<HubEnv>,
  fields: Record<K, FieldKind>,
): Promise<{ value: Record<K, string | number | null> } | { detail: ValidationIssue[] }> {
  const text = await c.req.text();
  if (text.trim() === '') return { detail: [issue('missing', ['body'], 'Field required', null)] };
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (error) {
    const position = Number(/position (\d+)/.exec((error as Error).message)?.[1] ?? 0);
    return { detail: [{ type: 'json_invalid', loc: ['body', position], msg: 'JSON decode error', input: {}, ctx: { error: 'Expecting value' } }] };
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return { detail: [issue('model_attributes_type', ['body'], 'Input should be a valid dictionary or object to extract fields from', body)] };
  }
  const record = body as Record<string, unknown>;
  const value = {} as Record<K, string | number | null>;
  const detail: ValidationIssue[] = [];
  for (const [name, kind] of Object.entries(fields) as [K, FieldKind][]) {
    const input = record[name];
    const loc = ['body', name];
    if (kind === 'str') {
      if (input === undefined) detail.push(issue('missing', loc, 'Field required', record));
      else if (typeof input !== 'string') detail.push(issue('string_type', loc, 'Input should be a valid string', input));
      else value[name] = input;
    } else if (input === undefined || input === null) {
      value[name] = null;
    } else if (typeof input === 'number') {
      value[name] = input;
    } else if (typeof input === 'string' && input.trim() !== '' && Number.isFinite(Number(input))) {
      // pydantic's lax mode takes a numeric string for a float.
      value[name] = Number(input);
    } else if (typeof input === 'string') {
      detail.push(issue('float_parsing', loc, 'Input should be a valid number, unable to parse string as a number', input));
    } else {
      detail.push(issue('float_type', loc, 'Input should be a valid number', input));
    }
  }
  return detail.length > 0 ? { detail } : { value };
}

const HOME_FIELDS = { address: 'str', city: 'str', state: 'str', latitude: 'float?', longitude: 'float?' } as const;
const ADDRESS_FIELDS = { address: 'str', city: 'str', state: 'str' } as const;

/** `RegisterHomeCSVResponse`: FastAPI writes every field, null when unset. */
interface RegisterResponse {
  success: boolean;
  full_address: string | null;
  latitude: number | null;
  longitude: number | null;
  message: string | null;
}

const failure = (message: string): RegisterResponse => ({ success: false, full_address: null, latitude: null, longitude: null, message });
const fullAddress = (row: { address: string; city: string; state: string }) => `${row.address}, ${row.city}, ${row.state}`;

export interface CompatDeps {
  db: ClusterDb;
  planning: ClusterPlanning;
  geocoder: Geocoder;
  log: Logger;
  /** Tells other hub instances which pool rows changed. */
  changed(addressIds: string[]): void;
}

const POOL_COLUMNS = ['id', 'role', 'address', 'city', 'state', 'latitude', 'longitude', 'footprint', 'geocode_quality'] as const;

export function compatRoutes(router: HubRouter, deps: CompatDeps): void {
  const { db, planning, geocoder } = deps;

  const byKey = (address: string, city: string) =>
    db.selectFrom('cluster_addresses').select(POOL_COLUMNS).where('address_key', '=', addressKey(address, city)).executeTakeFirst();

  /** One record per address: a second registration returns the first (and a host registration promotes it). */
  async function register(input: Record<keyof typeof HOME_FIELDS, string | number | null>, role: 'host' | 'neighbor'): Promise<RegisterResponse> {
    const address = String(input.address).trim();
    const city = String(input.city).trim();
    const state = String(input.state).trim();
    if (!address) return failure('The address is empty.');
    if (address.length > 200 || city.length > 100 || state.length > 50) return failure('The address is too long.');
    let lat = input.latitude as number | null;
    let lon = input.longitude as number | null;
    if (lat !== null && lon !== null && (Math.abs(lat) > 90 || Math.abs(lon) > 180)) return failure('Latitude must be within ±90 and longitude within ±180.');

    const existing = await byKey(address, city);
    if (existing && existing.latitude !== null && existing.longitude !== null) {
      if (role === 'host' && existing.role !== 'host') await db.updateTable('cluster_addresses').set({ role: 'host' }).where('id', '=', existing.id).execute();
      return { success: true, full_address: fullAddress(existing), latitude: existing.latitude, longitude: existing.longitude, message: 'Already registered; this is the existing record.' };
    }
    let quality = 'point';
    if (lat === null || lon === null) {
      const found = await geocoder.geocode(partsQuery(address, city, state));
      if (!found) return failure('Could not geocode address.');
      [lat, lon, quality] = [found.lat, found.lon, found.quality];
    }
    let row;
    if (existing) {
      // An imported address without a position gets this one.
      row = await db
        .updateTable('cluster_addresses')
        .set({ latitude: lat, longitude: lon, geocode_quality: quality, ...(role === 'host' || existing.role === 'prospect' ? { role } : {}) })
        .where('id', '=', existing.id)
        .returning(POOL_COLUMNS)
        .executeTakeFirstOrThrow();
    } else {
      row = await db
        .insertInto('cluster_addresses')
        .values({ role, address, city, state, latitude: lat, longitude: lon, geocode_quality: quality, source: 'compat', created_by: null, footprint: null, address_key: addressKey(address, city) })
        .onConflict((oc) => oc.column('address_key').doNothing())
        .returning(POOL_COLUMNS)
        .executeTakeFirst();
      // Registered by a concurrent request a moment ago: answer with that one.
      row ??= (await byKey(address, city))!;
    }
    await planning.addressesChanged([row.id]);
    deps.changed([row.id]);
    return { success: true, full_address: fullAddress(row), latitude: row.latitude, longitude: row.longitude, message: null };
  }

  /** Full addresses of pool rows, in the order of `candidateIds`. */
  async function fullAddresses(candidateIds: string[]): Promise<string[]> {
    if (candidateIds.length === 0) return [];
    const rows = await db.selectFrom('cluster_addresses').select(['id', 'address', 'city', 'state']).where('id', 'in', candidateIds.map(addressRowId)).execute();
    const byId = new Map(rows.map((r) => [addressCandidateId(r.id), fullAddress(r)]));
    return candidateIds.flatMap((id) => byId.get(id) ?? []);
  }

  /**
   * The pool planner of the extract holding the point; undefined without usable road data
   * there (none, deleted a moment ago, or roads that do not build), which these routes answer
   * with an empty list, as for any address the planner cannot place.
   */
  async function poolPlannerFor(home: HomeInput): Promise<Planner | undefined> {
    await planning.settled();
    if (home.lat == null || home.lon == null) return undefined;
    const extract = planning.extractAt([home.lon, home.lat]);
    if (!extract) return undefined;
    try {
      return (await planning.built(extract.id)).pool;
    } catch (error) {
      if (error instanceof HubError && error.code === 'HUB_ERR_CLUSTER_NO_ROAD_DATA') return undefined;
      throw error;
    }
  }

  const qualifiedOrder = (a: PairResult, b: PairResult) => (a.pathM ?? 0) - (b.pathM ?? 0) || a.distM - b.distM || (a.candidateId < b.candidateId ? -1 : 1);

  // Checked before the body is read: a caller who may not register learns nothing about it.
  router.post('/clusters/register_host_home_csv', async (c) => {
    requireAdmin(c.var.principal);
    const parsed = await readModel(c, HOME_FIELDS);
    if ('detail' in parsed) return c.json({ detail: parsed.detail }, 422);
    return c.json(await register(parsed.value, 'host'), 200);
  });

  router.post('/clusters/register_neighbor_home_csv', async (c) => {
    requireAdmin(c.var.principal);
    const parsed = await readModel(c, HOME_FIELDS);
    if ('detail' in parsed) return c.json({ detail: parsed.detail }, 422);
    return c.json(await register(parsed.value, 'neighbor'), 200);
  });

  // Every pool address the host's mower can reach: the original had no cap, so neither has this list.
  router.post('/clusters/discover_neighbors_for_host_csv', async (c) => {
    const parsed = await readModel(c, ADDRESS_FIELDS);
    if ('detail' in parsed) return c.json({ detail: parsed.detail }, 422);
    const host = await byKey(String(parsed.value.address), String(parsed.value.city));
    if (!host || host.role !== 'host') return c.json({ qualified_addresses: [] }, 200);
    const input = addressInput(host);
    const planner = await poolPlannerFor(input);
    if (!planner) return c.json({ qualified_addresses: [] }, 200);
    if (!planner.home(input.id)) planner.upsertHome(input);
    const plan = planner.plan(input.id);
    const qualified = [...plan.members, ...plan.rejected.filter((r) => r.reason === 'capacity')].sort(qualifiedOrder);
    return c.json({ qualified_addresses: await fullAddresses(qualified.map((p) => p.candidateId)) }, 200);
  });

  // Registered hosts whose mower can reach this address; an unregistered address is geocoded.
  router.post('/clusters/find_qualified_host_for_neighbor_csv', async (c) => {
    const parsed = await readModel(c, ADDRESS_FIELDS);
    if ('detail' in parsed) return c.json({ detail: parsed.detail }, 422);
    const [address, city, state] = [String(parsed.value.address), String(parsed.value.city), String(parsed.value.state)];
    const row = await byKey(address, city);
    let input: HomeInput;
    if (row && row.latitude !== null) {
      input = addressInput(row);
    } else {
      const found = await geocoder.geocode(partsQuery(address, city, state));
      if (!found) return c.json({ qualified_addresses: [] }, 200);
      input = { id: `query:${crypto.randomUUID()}`, address, city, state, lat: found.lat, lon: found.lon, geocodeQuality: found.quality };
    }
    const planner = await poolPlannerFor(input);
    if (!planner) return c.json({ qualified_addresses: [] }, 200);
    const hostRows = await db.selectFrom('cluster_addresses').select('id').where('role', '=', 'host').execute();
    // No await from here to the end of the planner calls: a transient query home never outlives them.
    const transient = input.id.startsWith('query:');
    if (!planner.home(input.id)) planner.upsertHome(input);
    let hosts: (PairResult & { hostId: string })[];
    try {
      const hostIds = hostRows.map((r) => addressCandidateId(r.id)).filter((id) => id !== input.id && planner.home(id));
      hosts = planner.hostsFor(input.id, hostIds).filter((h) => h.qualified);
    } finally {
      if (transient) planner.removeHome(input.id);
    }
    return c.json({ qualified_addresses: await fullAddresses(hosts.map((h) => h.hostId)) }, 200);
  });

  router.post('/clusters/geocode', async (c) => {
    const parsed = await readModel(c, { address: 'str' });
    if ('detail' in parsed) return c.json({ detail: parsed.detail }, 422);
    const address = String(parsed.value.address);
    const found = address.trim() ? await geocoder.geocode(geocodeQuery(address)) : null;
    if (!found) return c.json({ detail: 'Address not found' }, 404);
    return c.json({ latitude: found.lat, longitude: found.lon, address }, 200);
  });

  router.get('/health', (c) => c.json({ status: 'healthy', service: 'mowthos-cluster-logic' }, 200));
}
