/**
 * The Overpass API: the query for a bbox's roads, the HTTP call, and its `[out:json]` answer →
 * `OsmExtract`.
 *
 * @see {@link https://wiki.openstreetmap.org/wiki/Overpass_API/Overpass_QL}
 * @module
 */
import { checkId, checkLonLat, ExtractBuilder, isObject, OsmFormatError, type OsmBBox, type OsmExtract } from './features.js';

/** Why an Overpass call failed; `timeout` and `http` 429/504 are the ones worth retrying later. */
export type OverpassFailure = 'timeout' | 'cancelled' | 'network' | 'http' | 'not_json' | 'runtime_error';

/** Overpass failed to give an answer: network error, timeout, non-2xx status, a non-JSON body, or a runtime error remark. */
export class OverpassError extends Error {
  override readonly name = 'OverpassError';
  constructor(
    message: string,
    readonly reason: OverpassFailure,
    /** The HTTP status, or null when no response arrived. */
    readonly status: number | null = null,
    /** The first 200 characters of the response body. */
    readonly bodyStart = '',
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/**
 * The Overpass QL for every `highway` way in a bbox, with the nodes they use: ways with their
 * tags first (`out body`), then their nodes as bare positions (`>; out skel qt`).
 *
 * @param bbox `[west, south, east, north]`; Overpass wants `(south, west, north, east)`, which this does.
 * @param timeoutS the server-side time limit (Overpass refuses long queries on busy servers).
 * @throws {RangeError} for a bbox that is not on the globe or is empty, or a bad timeout.
 * @example
 * overpassQuery([10.068, 48.135, 10.071, 48.137]);
 * // '[out:json][timeout:60];(way["highway"](48.135,10.068,48.137,10.071););out body;>;out skel qt;'
 */
export function overpassQuery(bbox: OsmBBox, timeoutS = 60): string {
  const [west, south, east, north] = bbox;
  const onGlobe = [west, east].every((lon) => Number.isFinite(lon) && lon >= -180 && lon <= 180) && [south, north].every((lat) => Number.isFinite(lat) && lat >= -90 && lat <= 90);
  if (!onGlobe || west >= east || south >= north) throw new RangeError(`not a bbox [west, south, east, north]: ${JSON.stringify(bbox)}`);
  if (!Number.isInteger(timeoutS) || timeoutS < 1 || timeoutS > 3600) throw new RangeError(`Overpass timeout must be 1–3600 s, not ${timeoutS}`);
  // OSM's own precision; more digits would only make the query text unstable.
  const q = (degrees: number) => String(Number(degrees.toFixed(7)));
  return `[out:json][timeout:${timeoutS}];(way["highway"](${q(south)},${q(west)},${q(north)},${q(east)}););out body;>;out skel qt;`;
}

/**
 * Runs a query against an Overpass endpoint (e.g. `https://overpass-api.de/api/interpreter`):
 * POST, form-encoded `data=<query>`, as the Overpass API documents.
 *
 * @param options.fetch a fetch to use instead of the global one.
 * @param options.timeoutMs abort when the whole answer has not arrived by then (default 90 s).
 * @param options.signal the caller's own abort signal.
 * @throws {OverpassError} on a network failure, a timeout, a non-2xx status, a body that is not
 *   JSON, or a 200 whose `remark` reports a runtime error (Overpass's way of saying it gave up mid-query).
 * @throws {OsmFormatError} when the JSON is not Overpass's element list.
 */
export async function fetchOverpass(endpoint: string, query: string, options: { fetch?: typeof fetch; timeoutMs?: number; signal?: AbortSignal } = {}): Promise<OsmExtract> {
  const timeoutMs = options.timeoutMs ?? 90_000;
  const timeout = AbortSignal.timeout(timeoutMs);
  const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
  const failed = (error: unknown): never => {
    if (timeout.aborted) throw new OverpassError(`Overpass at ${endpoint} did not answer within ${timeoutMs} ms`, 'timeout', null, '', { cause: error });
    if (options.signal?.aborted) throw new OverpassError(`Overpass request to ${endpoint} was cancelled`, 'cancelled', null, '', { cause: error });
    throw new OverpassError(`Overpass request to ${endpoint} failed: ${(error as Error).message}`, 'network', null, '', { cause: error });
  };

  let status: number;
  let statusText: string;
  let body: string;
  try {
    const response = await (options.fetch ?? fetch)(endpoint, {
      method: 'POST',
      body: new URLSearchParams({ data: query }),
      headers: { accept: 'application/json', 'user-agent': 'mowthos-hub cluster planner' },
      signal,
    });
    status = response.status;
    statusText = response.statusText;
    body = await response.text();
  } catch (error) {
    return failed(error);
  }
  const bodyStart = body.slice(0, 200);
  if (status < 200 || status > 299) throw new OverpassError(`Overpass answered ${status}${statusText ? ` ${statusText}` : ''}: ${bodyStart}`, 'http', status, bodyStart);
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    throw new OverpassError(`Overpass answered ${status} with something that is not JSON: ${bodyStart}`, 'not_json', status, bodyStart);
  }
  const remark = isObject(json) && typeof json.remark === 'string' ? json.remark : '';
  if (/runtime error/i.test(remark)) throw new OverpassError(`Overpass gave up: ${remark.slice(0, 200)}`, 'runtime_error', status, bodyStart);
  return readOverpassJson(json);
}

/**
 * Reads an Overpass `[out:json]` answer: `{ elements: [...] }` with nodes (`id`, `lat`, `lon`,
 * `tags`) and ways (`id`, `nodes`, `tags`; with `out geom`, also `geometry`). Relations and other
 * element types are ignored. Elements may come in any order.
 *
 * @throws {OsmFormatError} when the value is not that shape.
 */
export function readOverpassJson(json: unknown): OsmExtract {
  if (!isObject(json) || !Array.isArray(json.elements)) throw new OsmFormatError('not an Overpass JSON answer: no "elements" array');
  const builder = new ExtractBuilder();
  const ways: { id: number; refs: number[]; tags: Record<string, string> }[] = [];
  json.elements.forEach((element: unknown, index) => {
    if (!isObject(element)) throw new OsmFormatError(`Overpass element ${index} is not an object`);
    const what = `Overpass ${String(element.type)} ${String(element.id)}`;
    if (element.type !== 'node' && element.type !== 'way') return;
    const id = element.id;
    if (typeof id !== 'number') throw new OsmFormatError(`${what}: id is not a number`);
    checkId(id, what);
    const tags = tagsOf(element.tags, what);
    if (element.type === 'node') {
      const { lat, lon } = element;
      if (typeof lat !== 'number' || typeof lon !== 'number') throw new OsmFormatError(`${what}: lat/lon are not numbers`);
      checkLonLat(lon, lat, what);
      builder.addNode(id, lon, lat, tags);
      return;
    }
    const refs = element.nodes;
    if (!Array.isArray(refs) || !refs.every((ref): ref is number => typeof ref === 'number' && Number.isSafeInteger(ref))) throw new OsmFormatError(`${what}: nodes is not a list of node ids`);
    ways.push({ id, refs, tags: tags ?? {} });
    if (element.geometry !== undefined) geometryNodes(element.geometry, refs, builder, what);
  });
  // Ways last, so a node listed after its way (the usual `out body; >;` order) still counts as present.
  for (const way of ways) builder.addWay(way.id, way.refs, way.tags);
  return builder.build();
}

/** `out geom`: the positions ride along with the way; nodes printed separately win. */
function geometryNodes(geometry: unknown, refs: number[], builder: ExtractBuilder, what: string): void {
  if (!Array.isArray(geometry) || geometry.length !== refs.length) throw new OsmFormatError(`${what}: geometry does not match its nodes`);
  geometry.forEach((point: unknown, j) => {
    // Overpass writes null for a node outside the requested bbox when `out geom(bbox)` clips.
    if (point === null) return;
    if (!isObject(point) || typeof point.lat !== 'number' || typeof point.lon !== 'number') throw new OsmFormatError(`${what}: geometry point ${j} is not {lat, lon}`);
    checkLonLat(point.lon, point.lat, what);
    const ref = refs[j]!;
    if (!builder.hasNode(ref)) builder.addNode(ref, point.lon, point.lat);
  });
}

function tagsOf(value: unknown, what: string): Record<string, string> | null {
  if (value === undefined) return null;
  if (!isObject(value) || !Object.values(value).every((v) => typeof v === 'string')) throw new OsmFormatError(`${what}: tags is not an object of strings`);
  return value as Record<string, string>;
}
