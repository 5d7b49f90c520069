/**
 * Geocoding (SPEC §2.7-3): addresses to points, behind one provider interface. Offline by
 * default — an exact match of the normalised address in the plugin's address pool. With
 * `geocoderUrl` set, a Nominatim-compatible `/search` endpoint is asked too, constrained by
 * country and view box, cached in memory, and its answers outside every road extract are thrown
 * away (that is how a wrong-country match, the original's Medicine Hat case, is caught). The
 * HTTP geocoder sends one request at a time, a second apart (Nominatim's usage policy allows at
 * most one a second), and the same address asked twice at once is one request.
 *
 * @module
 */
import type { Logger } from '../../core/log/index.js';
import { addressKey, type BBox, type GeocodeQuality } from './planner/index.js';
import { splitAddress } from './store.js';
import type { ClusterDb } from './tables.js';

/** An address to find, as one line and as its parts (`street, city, state`). */
export interface GeocodeQuery {
  text: string;
  street: string;
  city: string;
  state: string;
}

export interface GeocodeResult {
  lat: number;
  lon: number;
  quality: GeocodeQuality;
  /** Which provider answered. */
  provider: string;
  /** The provider's name for the place (Nominatim's `display_name`), when it has one. */
  label: string | null;
  /** `geocode_imprecise` when the match is a street or an area, not a house. */
  warnings: string[];
  /** The pool row that matched (pool provider only). */
  poolId?: string;
}

/** One way of turning an address into a point; `null` means not found, a throw that the provider failed. */
export interface GeocoderProvider {
  readonly name: string;
  geocode(query: GeocodeQuery): Promise<GeocodeResult | null>;
}

/** `"931 Stone Slope Ln SW, Rochester, MN"` as a query. */
export function geocodeQuery(text: string): GeocodeQuery {
  const { street, city, state } = splitAddress(text);
  return { text: text.trim(), street, city, state };
}

/** The parts as a query (the original API sends them separately). */
export function partsQuery(street: string, city: string, state: string): GeocodeQuery {
  return { text: [street, city, state].map((p) => p.trim()).filter(Boolean).join(', '), street: street.trim(), city: city.trim(), state: state.trim() };
}

/** The offline provider: the pool row with the same normalised street and city. */
export class PoolGeocoder implements GeocoderProvider {
  readonly name = 'pool';

  constructor(private readonly db: ClusterDb) {}

  async geocode(query: GeocodeQuery): Promise<GeocodeResult | null> {
    if (!query.street) return null;
    const row = await this.db
      .selectFrom('cluster_addresses')
      .select(['id', 'latitude', 'longitude', 'geocode_quality'])
      .where('address_key', '=', addressKey(query.street, query.city))
      .executeTakeFirst();
    if (!row || row.latitude === null || row.longitude === null) return null;
    return { lat: row.latitude, lon: row.longitude, quality: row.geocode_quality as GeocodeQuality, provider: this.name, label: null, warnings: [], poolId: row.id };
  }
}

export interface NominatimOptions {
  /** The `/search` endpoint, e.g. `https://nominatim.openstreetmap.org/search`. */
  url: string;
  /** ISO 3166-1 alpha-2 codes, comma-separated (`us`, `us,ca`). */
  countryCodes?: string;
  /** Results are kept inside this box (`viewbox` + `bounded=1`). */
  viewbox?: BBox;
  /** Nominatim's usage policy requires one that names the application. */
  userAgent: string;
  timeoutMs?: number;
  /**
   * The least time from one request's answer to the next request, in ms. Default 1000:
   * Nominatim's usage policy allows at most one request a second. Tests shorten it.
   */
  minIntervalMs?: number;
  /** Lookups waiting for their turn beyond this many fail at once (counted as not found). Default 30. */
  maxQueue?: number;
  fetch?: typeof fetch;
  log: Logger;
}

/** A Nominatim `/search?format=jsonv2` answer item (the fields read here). */
interface NominatimPlace {
  lat: string;
  lon: string;
  display_name?: string;
  category?: string;
  type?: string;
  addresstype?: string;
}

/** Answers for a house or a building are a house's point; anything coarser is only the street. */
const HOUSE_TYPES = new Set(['house', 'building']);

/**
 * A Nominatim-compatible HTTP geocoder; it throws when the service fails (the caller logs it,
 * and does not cache it). Requests go out one at a time, `minIntervalMs` after the previous
 * answer, whatever the number of callers.
 */
export class NominatimGeocoder implements GeocoderProvider {
  readonly name = 'nominatim';
  /** Settles when the previous request has answered and its interval has passed. */
  #turn: Promise<void> = Promise.resolve();
  #waiting = 0;

  constructor(private readonly options: NominatimOptions) {}

  async geocode(query: GeocodeQuery): Promise<GeocodeResult | null> {
    if (this.#waiting >= (this.options.maxQueue ?? 30)) throw new Error('too many geocoder lookups are waiting');
    this.#waiting++;
    const previous = this.#turn;
    let done!: () => void;
    this.#turn = new Promise((resolve) => (done = resolve));
    await previous;
    this.#waiting--;
    try {
      return await this.#request(query);
    } finally {
      setTimeout(done, this.options.minIntervalMs ?? 1000).unref();
    }
  }

  async #request(query: GeocodeQuery): Promise<GeocodeResult | null> {
    const url = new URL(this.options.url);
    // URLSearchParams encodes the address (the original sent it raw in the path).
    url.searchParams.set('q', query.text);
    url.searchParams.set('format', 'jsonv2');
    url.searchParams.set('limit', '1');
    if (this.options.countryCodes) url.searchParams.set('countrycodes', this.options.countryCodes);
    if (this.options.viewbox) {
      url.searchParams.set('viewbox', this.options.viewbox.join(','));
      url.searchParams.set('bounded', '1');
    }
    const response = await (this.options.fetch ?? fetch)(url, {
      headers: { 'user-agent': this.options.userAgent, accept: 'application/json' },
      signal: AbortSignal.timeout(this.options.timeoutMs ?? 10_000),
    });
    if (!response.ok) throw new Error(`the geocoder answered HTTP ${response.status}`);
    const places: unknown = await response.json();
    const place = Array.isArray(places) ? (places[0] as NominatimPlace | undefined) : undefined;
    const lat = Number(place?.lat);
    const lon = Number(place?.lon);
    if (!place || !Number.isFinite(lat) || !Number.isFinite(lon) || Math.abs(lat) > 90 || Math.abs(lon) > 180) return null;
    const house = HOUSE_TYPES.has(place.addresstype ?? '') || HOUSE_TYPES.has(place.type ?? '') || place.category === 'building';
    return {
      lat,
      lon,
      quality: house ? 'rooftop' : 'street',
      provider: this.name,
      label: place.display_name ?? null,
      warnings: house ? [] : ['geocode_imprecise'],
    };
  }
}

export interface GeocoderOptions {
  /** Asked in order; the first answer wins. */
  providers: GeocoderProvider[];
  /** Whether a point lies inside some road extract; remote answers outside every one are dropped. */
  covers: (lonLat: [number, number]) => boolean;
  log: Logger;
  /** Remembered answers (and misses) of remote providers. */
  cacheSize?: number;
  cacheTtlMs?: number;
}

/** The providers in order, with the coverage rule and a cache for the remote ones. */
export class Geocoder {
  readonly #cache = new Map<string, { result: GeocodeResult | null; until: number }>();
  /** Lookups under way, so that the same address asked twice at once is asked once. */
  readonly #pending = new Map<string, Promise<GeocodeResult | null>>();

  constructor(private readonly options: GeocoderOptions) {}

  async geocode(query: GeocodeQuery): Promise<GeocodeResult | null> {
    for (const provider of this.options.providers) {
      const result = provider instanceof PoolGeocoder ? await provider.geocode(query) : await this.#remote(provider, query);
      if (!result) continue;
      if (provider instanceof PoolGeocoder || this.options.covers([result.lon, result.lat])) return result;
      this.options.log.info({ provider: provider.name, lat: result.lat, lon: result.lon }, 'geocode outside every road extract ignored');
    }
    return null;
  }

  async #remote(provider: GeocoderProvider, query: GeocodeQuery): Promise<GeocodeResult | null> {
    const key = `${provider.name}|${query.text.toUpperCase().replace(/\s+/g, ' ')}`;
    const cached = this.#cache.get(key);
    if (cached && cached.until > Date.now()) return cached.result;
    let pending = this.#pending.get(key);
    if (!pending) {
      pending = this.#ask(provider, query, key).finally(() => this.#pending.delete(key));
      this.#pending.set(key, pending);
    }
    return pending;
  }

  async #ask(provider: GeocoderProvider, query: GeocodeQuery, key: string): Promise<GeocodeResult | null> {
    let result: GeocodeResult | null;
    try {
      result = await provider.geocode(query);
    } catch (error) {
      // Not cached: the next request asks again.
      this.options.log.warn({ err: error, provider: provider.name }, 'geocoder failed; the address counts as not found');
      return null;
    }
    const size = this.options.cacheSize ?? 5000;
    if (this.#cache.size >= size) this.#cache.delete(this.#cache.keys().next().value!);
    this.#cache.set(key, { result, until: Date.now() + (this.options.cacheTtlMs ?? 24 * 3600_000) });
    return result;
  }
}
