/**
 * Hub homes and pool addresses as the planner's {@link HomeInput}s, the queries that read them,
 * and how a yard is named (candidate ids, street lines, opaque tokens).
 *
 * @module
 */
import type { Polygon } from 'geojson';
import type { BBox, GeocodeQuality, HomeInput } from './planner/index.js';
import type { ClusterDb } from './tables.js';

/** Pool addresses are planner ids `address:<uuid>`; hub homes are their own uuid. */
const ADDRESS_PREFIX = 'address:';
export const addressCandidateId = (id: string) => `${ADDRESS_PREFIX}${id}`;
export const isAddressCandidate = (candidateId: string) => candidateId.startsWith(ADDRESS_PREFIX);
export const addressRowId = (candidateId: string) => candidateId.slice(ADDRESS_PREFIX.length);

/** `931 Stone Slope Ln SW, Rochester, MN 55902` → street, city and state (what a free-text home address offers). */
export function splitAddress(text: string | null): { street: string; city: string; state: string } {
  const [street = '', city = '', state = ''] = (text ?? '').split(',').map((part) => part.trim());
  return { street, city, state: state.replace(/\s+\d{5}(-\d{4})?$/, '') };
}

type HomeRow = { id: string; address: string | null; latitude: number | null; longitude: number | null };
type AddressRow = {
  id: string;
  address: string;
  city: string;
  state: string;
  latitude: number | null;
  longitude: number | null;
  footprint: unknown;
  geocode_quality: string;
};

const QUALITIES = new Set<GeocodeQuality>(['rooftop', 'parcel', 'point', 'interpolated', 'street', 'unknown']);

/**
 * A hub home for the planner. Its owner placed the pin on their own house, so it ranks as a
 * rooftop geocode: when a pool address is the same house, the home is the record that stays
 * (see {@link asPoolCandidate}).
 */
export function homeInput(row: HomeRow): HomeInput {
  const { street, city, state } = splitAddress(row.address);
  return { id: row.id, address: street || null, city, state, lat: row.latitude, lon: row.longitude, geocodeQuality: 'rooftop' };
}

/**
 * A pool address next to the hub's homes: its rooftop rank drops to parcel, so that a hub home
 * with the same address is always the canonical one and the cluster invites the home.
 */
export function asPoolCandidate(input: HomeInput): HomeInput {
  return input.geocodeQuality === 'rooftop' ? { ...input, geocodeQuality: 'parcel' } : input;
}

export function addressInput(row: AddressRow): HomeInput {
  const quality = QUALITIES.has(row.geocode_quality as GeocodeQuality) ? (row.geocode_quality as GeocodeQuality) : 'unknown';
  return {
    id: addressCandidateId(row.id),
    address: row.address,
    city: row.city,
    state: row.state,
    lat: row.latitude,
    lon: row.longitude,
    footprint: (row.footprint as Polygon | null) ?? null,
    geocodeQuality: quality,
  };
}

const ADDRESS_COLUMNS = ['id', 'address', 'city', 'state', 'latitude', 'longitude', 'footprint', 'geocode_quality'] as const;

/** Hub homes with a point inside the box. */
export async function homesIn(db: ClusterDb, [west, south, east, north]: BBox): Promise<HomeInput[]> {
  const rows = await db
    .selectFrom('homes')
    .select(['id', 'address', 'latitude', 'longitude'])
    .where('latitude', '>=', south)
    .where('latitude', '<=', north)
    .where('longitude', '>=', west)
    .where('longitude', '<=', east)
    .execute();
  return rows.map(homeInput);
}

/** Pool addresses with a point inside the box. */
export async function addressesIn(db: ClusterDb, [west, south, east, north]: BBox): Promise<HomeInput[]> {
  const rows = await db
    .selectFrom('cluster_addresses')
    .select(ADDRESS_COLUMNS)
    .where('latitude', '>=', south)
    .where('latitude', '<=', north)
    .where('longitude', '>=', west)
    .where('longitude', '<=', east)
    .execute();
  return rows.map(addressInput);
}

export async function homeById(db: ClusterDb, id: string): Promise<HomeInput | undefined> {
  const row = await db.selectFrom('homes').select(['id', 'address', 'latitude', 'longitude']).where('id', '=', id).executeTakeFirst();
  return row && homeInput(row);
}

export async function addressesById(db: ClusterDb, ids: string[]): Promise<HomeInput[]> {
  if (ids.length === 0) return [];
  const rows = await db.selectFrom('cluster_addresses').select(ADDRESS_COLUMNS).where('id', 'in', ids).execute();
  return rows.map(addressInput);
}

/** The street line of each candidate id (hub homes and pool addresses), for display. */
export async function streetLines(db: ClusterDb, candidateIds: Iterable<string>): Promise<Map<string, string | null>> {
  const homes: string[] = [];
  const addresses: string[] = [];
  for (const id of new Set(candidateIds)) (isAddressCandidate(id) ? addresses : homes).push(id);
  const lines = new Map<string, string | null>();
  const uuid = /^[0-9a-f-]{36}$/i;
  const homeIds = homes.filter((id) => uuid.test(id));
  if (homeIds.length > 0) {
    for (const row of await db.selectFrom('homes').select(['id', 'address']).where('id', 'in', homeIds).execute()) lines.set(row.id, splitAddress(row.address).street || null);
  }
  const addressIds = addresses.map(addressRowId).filter((id) => uuid.test(id));
  if (addressIds.length > 0) {
    for (const row of await db.selectFrom('cluster_addresses').select(['id', 'address']).where('id', 'in', addressIds).execute()) {
      lines.set(addressCandidateId(row.id), row.address);
    }
  }
  return lines;
}

/** The point of each candidate id, `[lon, lat]`, for maps. */
export async function points(db: ClusterDb, candidateIds: Iterable<string>): Promise<Map<string, [number, number]>> {
  const homes: string[] = [];
  const addresses: string[] = [];
  for (const id of new Set(candidateIds)) (isAddressCandidate(id) ? addresses.push(addressRowId(id)) : homes.push(id));
  const found = new Map<string, [number, number]>();
  if (homes.length > 0) {
    for (const row of await db.selectFrom('homes').select(['id', 'latitude', 'longitude']).where('id', 'in', homes).execute()) {
      if (row.latitude !== null && row.longitude !== null) found.set(row.id, [row.longitude, row.latitude]);
    }
  }
  if (addresses.length > 0) {
    for (const row of await db.selectFrom('cluster_addresses').select(['id', 'latitude', 'longitude']).where('id', 'in', addresses).execute()) {
      if (row.latitude !== null && row.longitude !== null) found.set(addressCandidateId(row.id), [row.longitude, row.latitude]);
    }
  }
  return found;
}

/**
 * How a yard appears to someone who may not see that home: `yard-<n>`, numbered within one
 * stored plan or one cluster, never the home's id or street line.
 */
export const yardToken = (n: number) => `yard-${n}`;
export const YARD_TOKEN = /^yard-[0-9]{1,4}$/;

/**
 * Whether the host home sees a cluster yard as it is (id, street line, point): its own yard
 * (position 0), a pool address, or a member home that accepted. Any other yard — invited,
 * declined, or gone from the cluster (`consent` null) — is its `yard-<position>` to the host,
 * wherever the host looks: the cluster, its map, its entities, runs, usage and actions.
 */
export function seenByHost(yard: { candidateId: string; position: number | null; consent: string | null }): boolean {
  return yard.position === 0 || isAddressCandidate(yard.candidateId) || yard.consent === 'accepted';
}
