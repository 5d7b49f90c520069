/**
 * The planner cache: one road model per stored extract, built the first time it is needed and
 * kept in memory with two planners on it — the hub's (its homes plus the address pool) and the
 * pool's (pool addresses only, for the original API, which must not see the hub's homes).
 * A home or an address that changes moves only that one home in the planners that hold it; the
 * road model is never rebuilt for it.
 *
 * @module
 */
import type { FeatureCollection } from 'geojson';
import { hubError } from '../../core/errors/index.js';
import type { Logger } from '../../core/log/index.js';
import { buildRoadModel, Planner, type BarrierOptions, type BBox, type HomeInput, type PlannerConfig, type RoadModel } from './planner/index.js';
import { addressesById, addressesIn, asPoolCandidate, homeById, homesIn } from './store.js';
import type { ClusterDb } from './tables.js';

const EXTRACT_COLUMNS = ['id', 'name', 'source', 'bbox', 'query', 'fetched_at', 'way_count', 'barrier_count'] as const;

/** What the hub keeps about a stored extract without its features. */
export interface ExtractInfo {
  id: string;
  name: string;
  source: string;
  bbox: BBox;
  query: string | null;
  fetchedAt: Date;
  ways: number;
  barrierWays: number;
}

/** A built extract: its road model and the two planners on it. */
export interface BuiltExtract {
  extract: ExtractInfo;
  model: RoadModel;
  /** Hub homes and pool addresses inside the extract. */
  hub: Planner;
  /** Pool addresses only (the original API's world). */
  pool: Planner;
}

export interface PlanningOptions {
  db: ClusterDb;
  planner: Partial<PlannerConfig>;
  barriers: BarrierOptions;
  log: Logger;
}

/** More changed addresses than this reload the planners' homes at once instead of one by one. */
export const BULK_CHANGE = 200;

export class ClusterPlanning {
  readonly #extracts = new Map<string, ExtractInfo>();
  readonly #built = new Map<string, Promise<BuiltExtract>>();
  /** Changes to the planners run one after another, so an older home row never overwrites a newer one. */
  #changes: Promise<unknown> = Promise.resolve();

  constructor(private readonly options: PlanningOptions) {}

  /** Reads the list of extracts (not their features). */
  async load(): Promise<void> {
    const rows = await this.options.db.selectFrom('cluster_road_extracts').select(EXTRACT_COLUMNS).execute();
    this.#extracts.clear();
    for (const row of rows) this.#extracts.set(row.id, extractInfo(row));
  }

  extracts(): ExtractInfo[] {
    return [...this.#extracts.values()].sort((a, b) => a.name.localeCompare(b.name) || compare(a.id, b.id));
  }

  extract(id: string): ExtractInfo | undefined {
    return this.#extracts.get(id);
  }

  /**
   * The extract that covers a point best: of those whose box contains it, the one it is deepest
   * inside (so the coverage margin hurts least), then the newest.
   */
  extractAt([lon, lat]: [number, number]): ExtractInfo | undefined {
    let best: { extract: ExtractInfo; depth: number } | undefined;
    const cosLat = Math.cos((lat * Math.PI) / 180);
    for (const extract of this.#extracts.values()) {
      const [w, s, e, n] = extract.bbox;
      if (lon < w || lon > e || lat < s || lat > n) continue;
      const depth = Math.min((lon - w) * cosLat, (e - lon) * cosLat, lat - s, n - lat);
      if (
        !best ||
        depth > best.depth ||
        (depth === best.depth && (extract.fetchedAt > best.extract.fetchedAt || (extract.fetchedAt.getTime() === best.extract.fetchedAt.getTime() && extract.id < best.extract.id)))
      ) {
        best = { extract, depth };
      }
    }
    return best?.extract;
  }

  /** Whether any extract's box contains the point. */
  covers(lonLat: [number, number]): boolean {
    return this.extractAt(lonLat) !== undefined;
  }

  /**
   * The built extract, building it (once) when it is first asked for. Rejects with
   * HUB_ERR_CLUSTER_NO_ROAD_DATA when the extract is gone or its roads do not build.
   */
  built(id: string): Promise<BuiltExtract> {
    let built = this.#built.get(id);
    if (!built) {
      const extract = this.#extracts.get(id);
      if (!extract) return Promise.reject(hubError('HUB_ERR_CLUSTER_NO_ROAD_DATA', 'The road extract was deleted; plan again'));
      built = this.#build(extract, undefined);
      this.#built.set(id, built);
      // A failed build is not cached: the next request tries again (and logs again).
      built.catch(() => {
        if (this.#built.get(id) === built) this.#built.delete(id);
      });
    }
    return built;
  }

  /** Adds a new (or refreshed) extract whose model the import just built. */
  add(extract: ExtractInfo, model: RoadModel): Promise<BuiltExtract> {
    return this.#serially(async () => {
      this.#extracts.set(extract.id, extract);
      const built = this.#build(extract, model);
      this.#built.set(extract.id, built);
      return built;
    });
  }

  remove(id: string): Promise<void> {
    return this.#serially(async () => {
      this.#extracts.delete(id);
      this.#built.delete(id);
    });
  }

  /** A hub home was created, moved or renamed: it moves in every built planner whose box holds it. */
  homeChanged(homeId: string): Promise<void> {
    return this.#serially(async () => {
      const home = await homeById(this.options.db, homeId);
      if (!home) return this.#removeEverywhere(homeId);
      for (const built of await this.#allBuilt()) place(built.hub, built.extract.bbox, home);
    });
  }

  homeRemoved(homeId: string): Promise<void> {
    return this.#serially(() => this.#removeEverywhere(homeId));
  }

  /** Pool addresses were added or changed (ids of `cluster_addresses` rows). */
  addressesChanged(ids: string[]): Promise<void> {
    return this.#serially(async () => {
      if (ids.length === 0) return;
      const built = await this.#allBuilt();
      if (ids.length > BULK_CHANGE) {
        for (const entry of built) await this.#fill(entry);
        return;
      }
      const inputs = await addressesById(this.options.db, ids);
      for (const entry of built) {
        for (const input of inputs) {
          place(entry.hub, entry.extract.bbox, asPoolCandidate(input));
          place(entry.pool, entry.extract.bbox, input);
        }
      }
    });
  }

  /**
   * Another hub instance stored, refreshed or deleted one extract: this one re-reads that row
   * only. A model whose extract is unchanged (same fetch time) stays; a changed one is dropped
   * and built again when next asked for; the other extracts' models are not touched.
   */
  extractChanged(id: string): Promise<void> {
    return this.#serially(async () => {
      const row = await this.options.db.selectFrom('cluster_road_extracts').select(EXTRACT_COLUMNS).where('id', '=', id).executeTakeFirst();
      if (!row) {
        this.#extracts.delete(id);
        this.#built.delete(id);
        return;
      }
      const known = this.#extracts.get(id);
      const extract = extractInfo(row);
      this.#extracts.set(id, extract);
      if (known?.fetchedAt.getTime() !== extract.fetchedAt.getTime()) this.#built.delete(id);
    });
  }

  /** Many addresses changed at once (a bulk import elsewhere): every built planner re-reads its homes; no road model is rebuilt. */
  addressesReloaded(): Promise<void> {
    return this.#serially(async () => {
      for (const entry of await this.#allBuilt()) await this.#fill(entry);
    });
  }

  /** Resolves once every change made so far is in the planners: read-your-writes for a request. */
  async settled(): Promise<void> {
    await this.#changes.catch(() => {});
  }

  async #build(extract: ExtractInfo, given: RoadModel | undefined): Promise<BuiltExtract> {
    let model = given;
    if (!model) {
      try {
        const row = await this.options.db.selectFrom('cluster_road_extracts').select('features').where('id', '=', extract.id).executeTakeFirst();
        if (!row) throw new Error('the extract was deleted');
        model = buildRoadModel(row.features as FeatureCollection, { extent: extract.bbox, barriers: this.options.barriers });
      } catch (error) {
        // A caller cannot fix stored roads: it is told there is no road data, the log says why.
        this.options.log.error({ err: error, extract: extract.id, name: extract.name }, 'road model not built');
        throw hubError('HUB_ERR_CLUSTER_NO_ROAD_DATA', `The roads of "${extract.name}" cannot be used; import them again`, { cause: error });
      }
      this.options.log.info({ extract: extract.id, name: extract.name, ...model.stats }, 'road model built');
    }
    const entry: BuiltExtract = { extract, model, hub: new Planner(model, this.options.planner), pool: new Planner(model, this.options.planner) };
    await this.#fill(entry);
    return entry;
  }

  /** Puts every home and address inside the extract into its planners (replacing what they held). */
  async #fill(entry: BuiltExtract): Promise<void> {
    const [homes, addresses] = await Promise.all([homesIn(this.options.db, entry.extract.bbox), addressesIn(this.options.db, entry.extract.bbox)]);
    entry.hub.setHomes([...homes, ...addresses.map(asPoolCandidate)]);
    entry.pool.setHomes(addresses);
  }

  async #allBuilt(): Promise<BuiltExtract[]> {
    const settled = await Promise.allSettled([...this.#built.values()]);
    return settled.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
  }

  async #removeEverywhere(candidateId: string): Promise<void> {
    for (const built of await this.#allBuilt()) {
      if (built.hub.home(candidateId)) built.hub.removeHome(candidateId);
      if (built.pool.home(candidateId)) built.pool.removeHome(candidateId);
    }
  }

  #serially<T>(change: () => Promise<T>): Promise<T> {
    const next = this.#changes.catch(() => {}).then(change);
    this.#changes = next;
    next.catch((error: unknown) => this.options.log.error({ err: error }, 'cluster planner update failed'));
    return next;
  }
}

/** Adds or moves a home in a planner when its point is in the box; takes it out when it left. */
function place(planner: Planner, bbox: BBox, home: HomeInput): void {
  if (inBox(bbox, home)) planner.upsertHome(home);
  else if (planner.home(home.id)) planner.removeHome(home.id);
}

function inBox([w, s, e, n]: BBox, home: HomeInput): boolean {
  const { lat, lon } = home;
  return typeof lat === 'number' && typeof lon === 'number' && lon >= w && lon <= e && lat >= s && lat <= n;
}

export function extractInfo(row: {
  id: string;
  name: string;
  source: string;
  bbox: number[];
  query: string | null;
  fetched_at: Date;
  way_count: number;
  barrier_count: number;
}): ExtractInfo {
  const [w = 0, s = 0, e = 0, n = 0] = row.bbox.map(Number);
  return {
    id: row.id,
    name: row.name,
    source: row.source,
    bbox: [w, s, e, n],
    query: row.query,
    fetchedAt: row.fetched_at,
    ways: row.way_count,
    barrierWays: row.barrier_count,
  };
}

const compare = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
