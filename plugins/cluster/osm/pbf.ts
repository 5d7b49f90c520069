/**
 * OSM PBF (`.osm.pbf`) → `OsmExtract`, through protobufjs reflection over our own
 * `osmformat.proto`.
 *
 * The file is a run of `<int32 BE length><BlobHeader><Blob>`; the first blob is the OSMHeader,
 * the rest OSMData PrimitiveBlocks, each raw or zlib-compressed. Blocks are decoded one at a
 * time, so memory holds one block plus the extract being built. Dense and plain nodes and ways
 * are read; relations and metadata are not declared in the .proto and are skipped unread.
 *
 * @module
 */
import { fileURLToPath } from 'node:url';
import { inflateSync } from 'node:zlib';
import protobuf from 'protobufjs';
import { checkId, checkLonLat, ExtractBuilder, keepsWay, OsmFormatError, validLonLat, type OsmExtract } from './features.js';

const root = new protobuf.Root().loadSync(fileURLToPath(new URL('./osmformat.proto', import.meta.url)), { keepCase: true });
root.resolveAll();
const BlobHeaderType = root.lookupType('mowthos.osm.BlobHeader');
const BlobType = root.lookupType('mowthos.osm.Blob');
const HeaderBlockType = root.lookupType('mowthos.osm.HeaderBlock');
const PrimitiveBlockType = root.lookupType('mowthos.osm.PrimitiveBlock');

/** The format's limits: a BlobHeader must be under 64 KiB, a blob's data under 32 MiB. */
const MAX_HEADER_BYTES = 64 * 1024;
const MAX_BLOB_BYTES = 32 * 1024 * 1024;

/** Features this reader understands; any other `required_features` entry means it cannot read the file. */
const SUPPORTED_FEATURES = new Set(['OsmSchema-V0.6', 'DenseNodes', 'HistoricalInformation']);

/** protobufjs gives 64-bit fields as Long objects (long.js is installed), or numbers without it. */
type Int64 = number | protobuf.Long;

interface BlobHeader {
  type: string;
  datasize: number;
}
interface Blob {
  raw_size?: number;
  data?: 'raw' | 'zlib_data' | 'lzma_data' | 'OBSOLETE_bzip2_data' | 'lz4_data' | 'zstd_data';
  raw?: Uint8Array;
  zlib_data?: Uint8Array;
}
interface HeaderBlock {
  bbox?: { left: Int64; right: Int64; top: Int64; bottom: Int64 } | null;
  required_features: string[];
}
interface PbfNode {
  id: Int64;
  keys: number[];
  vals: number[];
  lat: Int64;
  lon: Int64;
}
interface DenseNodes {
  id: Int64[];
  lat: Int64[];
  lon: Int64[];
  keys_vals: number[];
}
interface PbfWay {
  id: Int64;
  keys: number[];
  vals: number[];
  refs: Int64[];
  lat: Int64[];
  lon: Int64[];
}
interface PrimitiveBlock {
  stringtable: { s: Uint8Array[] };
  primitivegroup: { nodes: PbfNode[]; dense?: DenseNodes | null; ways: PbfWay[] }[];
  granularity: number;
  lat_offset: Int64;
  lon_offset: Int64;
}

/**
 * Reads an OSM PBF file.
 *
 * @throws {OsmFormatError} for anything that is not a well-formed PBF this reader can decode:
 *   truncation, bad protobuf, a blob over 32 MiB, compression other than zlib, unknown required features.
 * @example
 * const extract = readOsmPbf(readFileSync('monaco.osm.pbf'));
 * extract.stats.ways; // 27,377
 */
export function readOsmPbf(data: Uint8Array): OsmExtract {
  const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (bytes.length === 0) throw new OsmFormatError('not an OSM PBF file: it is empty');
  const builder = new ExtractBuilder();
  let offset = 0;
  let blobs = 0;
  while (offset < bytes.length) {
    if (offset + 4 > bytes.length) throw new OsmFormatError(`truncated OSM PBF: ${bytes.length - offset} stray bytes at the end`);
    const headerLength = bytes.readUInt32BE(offset);
    offset += 4;
    if (headerLength > MAX_HEADER_BYTES) throw new OsmFormatError(`not an OSM PBF file: a blob header of ${headerLength} bytes (at byte ${offset - 4})`);
    if (offset + headerLength > bytes.length) throw new OsmFormatError('truncated OSM PBF: the file ends inside a blob header');
    const header = decode<BlobHeader>(BlobHeaderType, bytes.subarray(offset, offset + headerLength), 'BlobHeader');
    offset += headerLength;
    if (header.datasize < 0 || header.datasize > MAX_BLOB_BYTES) throw new OsmFormatError(`OSM PBF blob of ${header.datasize} bytes: the format's limit is 32 MiB`);
    if (offset + header.datasize > bytes.length) throw new OsmFormatError('truncated OSM PBF: the file ends inside a blob');
    const blob = decode<Blob>(BlobType, bytes.subarray(offset, offset + header.datasize), 'Blob');
    offset += header.datasize;

    if (blobs++ === 0 && header.type !== 'OSMHeader') throw new OsmFormatError(`not an OSM PBF file: the first blob is "${header.type}", not "OSMHeader"`);
    if (header.type === 'OSMHeader') readHeader(decode<HeaderBlock>(HeaderBlockType, blobData(blob), 'HeaderBlock'), builder);
    else if (header.type === 'OSMData') readBlock(decode<PrimitiveBlock>(PrimitiveBlockType, blobData(blob), 'PrimitiveBlock'), builder);
    // The format tells readers to skip blob types they do not know.
  }
  return builder.build();
}

function decode<T>(type: protobuf.Type, bytes: Uint8Array, what: string): T {
  try {
    // Reflection gives a protobuf.Message; its fields are the .proto's, mirrored by the interfaces above.
    return type.decode(bytes) as unknown as T;
  } catch (error) {
    throw new OsmFormatError(`bad OSM PBF ${what}: ${(error as Error).message}`, { cause: error });
  }
}

function blobData(blob: Blob): Uint8Array {
  // Unset proto2 fields read as their default through the prototype; only an own property was on the wire.
  const rawSize = Object.hasOwn(blob, 'raw_size') ? blob.raw_size : undefined;
  if (rawSize !== undefined && (rawSize < 0 || rawSize > MAX_BLOB_BYTES)) {
    throw new OsmFormatError(`OSM PBF blob claims ${rawSize} bytes uncompressed: the format's limit is 32 MiB`);
  }
  switch (blob.data) {
    case 'raw':
      return blob.raw ?? new Uint8Array();
    case 'zlib_data': {
      let out: Buffer;
      try {
        out = inflateSync(blob.zlib_data ?? new Uint8Array(), { maxOutputLength: MAX_BLOB_BYTES });
      } catch (error) {
        throw new OsmFormatError(`bad OSM PBF blob: zlib data does not inflate (${(error as Error).message})`, { cause: error });
      }
      if (rawSize !== undefined && out.length !== rawSize) throw new OsmFormatError(`bad OSM PBF blob: inflates to ${out.length} bytes, raw_size says ${rawSize}`);
      return out;
    }
    case undefined:
      throw new OsmFormatError('bad OSM PBF blob: it holds no data');
    default:
      throw new OsmFormatError(`OSM PBF blob compressed with ${blob.data.replace('_data', '')}: only raw and zlib blobs are supported`);
  }
}

function readHeader(header: HeaderBlock, builder: ExtractBuilder): void {
  const unsupported = header.required_features.filter((feature) => !SUPPORTED_FEATURES.has(feature));
  if (unsupported.length > 0) throw new OsmFormatError(`OSM PBF needs features this reader lacks: ${unsupported.join(', ')}`);
  const box = header.bbox;
  if (box) {
    const bbox: [number, number, number, number] = [toNumber(box.left) / 1e9, toNumber(box.bottom) / 1e9, toNumber(box.right) / 1e9, toNumber(box.top) / 1e9];
    checkLonLat(bbox[0], bbox[1], 'the header bbox');
    checkLonLat(bbox[2], bbox[3], 'the header bbox');
    builder.bbox = bbox;
  }
}

function readBlock(block: PrimitiveBlock, builder: ExtractBuilder): void {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  let strings: string[];
  try {
    strings = block.stringtable.s.map((s) => decoder.decode(s));
  } catch (error) {
    throw new OsmFormatError('bad OSM PBF string table: not UTF-8', { cause: error });
  }
  const granularity = block.granularity;
  if (!Number.isInteger(granularity) || granularity <= 0) throw new OsmFormatError(`bad OSM PBF block: granularity ${granularity}`);
  const latOffset = toNumber(block.lat_offset);
  const lonOffset = toNumber(block.lon_offset);
  const degrees = (offset: number, value: number) => (offset + granularity * value) / 1e9;
  const string = (index: number): string => {
    const text = strings[index];
    if (text === undefined) throw new OsmFormatError(`bad OSM PBF block: string index ${index} of ${strings.length}`);
    return text;
  };
  // -1 when the block lacks the string, which no key index can equal.
  const housenumber = strings.indexOf('addr:housenumber');
  const highway = strings.indexOf('highway');
  const building = strings.indexOf('building');

  for (const group of block.primitivegroup) {
    for (const node of group.nodes) {
      const id = toNumber(node.id);
      checkId(id, 'a node');
      const lon = degrees(lonOffset, toNumber(node.lon));
      const lat = degrees(latOffset, toNumber(node.lat));
      checkLonLat(lon, lat, `node ${id}`);
      const tags = node.keys.includes(housenumber) ? tagObject(node.keys, node.vals, string, `node ${id}`) : null;
      builder.addNode(id, lon, lat, tags);
    }
    if (group.dense) readDense(group.dense, builder, { degrees, latOffset, lonOffset, string, housenumber });
    for (const way of group.ways) {
      const id = toNumber(way.id);
      checkId(id, 'a way');
      // Tags are only turned into strings for ways the extract keeps; the rest are just counted.
      const relevant = way.keys.includes(highway) || way.keys.includes(building);
      const tags = relevant ? tagObject(way.keys, way.vals, string, `way ${id}`) : {};
      if (!keepsWay(tags)) {
        builder.addWay(id, [], {});
        continue;
      }
      const refs = deltas(way.refs);
      if (!refs.every(Number.isSafeInteger)) throw new OsmFormatError(`bad OSM PBF way ${id}: a node reference is not an id`);
      if (way.lat.length > 0 && way.lat.length === refs.length && way.lon.length === refs.length) {
        // LocationsOnWays: the way carries its nodes' positions; a real node, if present, wins.
        const lats = deltas(way.lat);
        const lons = deltas(way.lon);
        refs.forEach((ref, j) => {
          if (builder.hasNode(ref)) return;
          const lon = degrees(lonOffset, lons[j]!);
          const lat = degrees(latOffset, lats[j]!);
          checkLonLat(lon, lat, `node ${ref}`);
          builder.addNode(ref, lon, lat);
        });
      }
      builder.addWay(id, refs, tags);
    }
  }
}

function readDense(
  dense: DenseNodes,
  builder: ExtractBuilder,
  block: { degrees: (offset: number, value: number) => number; latOffset: number; lonOffset: number; string: (index: number) => string; housenumber: number },
): void {
  const { id: ids, lat: lats, lon: lons, keys_vals: keysVals } = dense;
  if (lats.length !== ids.length || lons.length !== ids.length) throw new OsmFormatError(`bad OSM PBF DenseNodes: ${ids.length} ids, ${lats.length} lats, ${lons.length} lons`);
  const tagged = keysVals.length > 0;
  let id = 0;
  let lat = 0;
  let lon = 0;
  let k = 0;
  for (let j = 0; j < ids.length; j++) {
    id += toNumber(ids[j]!);
    lat += toNumber(lats[j]!);
    lon += toNumber(lons[j]!);
    checkId(id, 'a node');
    const lonDeg = block.degrees(block.lonOffset, lon);
    const latDeg = block.degrees(block.latOffset, lat);
    // The message is only built for a bad node: this loop runs once per node in the file.
    if (!validLonLat(lonDeg, latDeg)) checkLonLat(lonDeg, latDeg, `node ${id}`);
    let tags: Record<string, string> | null = null;
    if (tagged) {
      // keys_vals: (key, value)* 0 per node; only address nodes get their strings looked up.
      const start = k;
      let isAddress = false;
      for (;;) {
        const key = keysVals[k];
        if (key === undefined) throw new OsmFormatError('bad OSM PBF DenseNodes: keys_vals ends early');
        if (key === 0) break;
        if (keysVals[k + 1] === undefined) throw new OsmFormatError('bad OSM PBF DenseNodes: a key without a value');
        if (key === block.housenumber) isAddress = true;
        k += 2;
      }
      if (isAddress) {
        tags = {};
        for (let t = start; t < k; t += 2) tags[block.string(keysVals[t]!)] = block.string(keysVals[t + 1]!);
      }
      k++;
    }
    builder.addNode(id, lonDeg, latDeg, tags);
  }
}

function tagObject(keys: number[], vals: number[], string: (index: number) => string, what: string): Record<string, string> {
  if (keys.length !== vals.length) throw new OsmFormatError(`bad OSM PBF ${what}: ${keys.length} keys, ${vals.length} values`);
  const tags: Record<string, string> = {};
  keys.forEach((key, j) => {
    tags[string(key)] = string(vals[j]!);
  });
  return tags;
}

function deltas(values: Int64[]): number[] {
  let sum = 0;
  return values.map((value) => (sum += toNumber(value)));
}

function toNumber(value: Int64): number {
  // high is signed, low unsigned: exact for every value within 2^53, which covers OSM ids and nanodegrees.
  return typeof value === 'number' ? value : value.high * 0x1_0000_0000 + (value.low >>> 0);
}
