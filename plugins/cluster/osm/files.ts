/**
 * Road files as users hand them over: the reader is chosen by the file name's extension, and
 * the bytes must then match it (a `.pbf` that is XML is refused, not guessed at).
 *
 * @module
 */
import { OsmFormatError, type OsmExtract } from './features.js';
import { readGeoJson } from './geojson.js';
import { readOverpassJson } from './overpass.js';
import { readOsmPbf } from './pbf.js';
import { readOsmXml } from './xml.js';

/** What a road file turned out to be; also the `source` the hub records for an import. */
export type RoadFileFormat = 'geojson' | 'overpass' | 'osm-xml' | 'osm-pbf';

/** A road file read, with the format it was read as. */
export interface RoadFile {
  format: RoadFileFormat;
  extract: OsmExtract;
}

/**
 * Reads a road file by its extension: `.geojson`/`.json` (a GeoJSON FeatureCollection, or an
 * Overpass `[out:json]` answer saved to disk), `.osm`/`.xml` (OSM XML, UTF-8), `.pbf`/`.osm.pbf`.
 *
 * @throws {OsmFormatError} for any other extension, or content that does not match it.
 * @example
 * const { format, extract } = readRoadFileAs(readFileSync(path), path);
 */
export function readRoadFileAs(data: Uint8Array, fileName: string): RoadFile {
  const name = fileName.toLowerCase();
  if (name.endsWith('.pbf')) return { format: 'osm-pbf', extract: readOsmPbf(data) };
  if (name.endsWith('.osm') || name.endsWith('.xml')) return { format: 'osm-xml', extract: readOsmXml(utf8(data, fileName)) };
  if (name.endsWith('.geojson') || name.endsWith('.json')) {
    let json: unknown;
    try {
      json = JSON.parse(utf8(data, fileName));
    } catch (error) {
      if (error instanceof OsmFormatError) throw error;
      throw new OsmFormatError(`${fileName} is not JSON: ${(error as Error).message}`, { cause: error });
    }
    const overpass = typeof json === 'object' && json !== null && 'elements' in json;
    return overpass ? { format: 'overpass', extract: readOverpassJson(json) } : { format: 'geojson', extract: readGeoJson(json) };
  }
  throw new OsmFormatError(`${fileName}: unsupported road file type (use .geojson, .json, .osm, .xml or .osm.pbf)`);
}

/**
 * {@link readRoadFileAs} without the format.
 *
 * @throws {OsmFormatError} see {@link readRoadFileAs}.
 */
export function readRoadFile(data: Uint8Array, fileName: string): OsmExtract {
  return readRoadFileAs(data, fileName).extract;
}

/** Strict UTF-8: OSM XML and JSON are UTF-8 by definition, and a wrong byte means a wrong file. */
export function utf8(data: Uint8Array, fileName: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(data);
  } catch (error) {
    throw new OsmFormatError(`${fileName} is not UTF-8 text`, { cause: error });
  }
}
