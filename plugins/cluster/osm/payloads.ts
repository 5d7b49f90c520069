/**
 * Files → the JSON bodies the hub's cluster import endpoints take (`POST
 * /api/plugins/cluster/roads` and `/addresses`). Pure: the CLI reads the file and sends the body,
 * tests check the conversion without a hub.
 *
 * @module
 */
import type { FeatureCollection, LineString, Polygon, Position } from 'geojson';
import { OsmFormatError, type OsmBBox, type OsmExtract, type OsmWayProps } from './features.js';
import { readRoadFileAs, utf8, type RoadFileFormat } from './files.js';

/** The body of `POST /api/plugins/cluster/roads`. */
export interface RoadImport {
  name: string;
  source: RoadFileFormat;
  /** The file's declared bounds; null lets the hub use the roads' own bbox. */
  bbox: OsmBBox | null;
  roads: FeatureCollection<LineString, OsmWayProps>;
}

/** One address as `POST /api/plugins/cluster/addresses` takes it. */
export interface ImportedAddress {
  /** Street line: `931 Stone Slope Ln SW`. */
  address: string;
  city: string;
  state: string;
  /** Null when the file has no position for it (the hub geocodes or marks it `no_geocode`). */
  latitude: number | null;
  longitude: number | null;
  /** The building's outline, when the address came from an OSM building. */
  footprint?: Polygon;
}

/** The body of `POST /api/plugins/cluster/addresses`. */
export interface AddressImport {
  source: 'import';
  addresses: ImportedAddress[];
}

/**
 * A road file → the roads import body, with the extract for reporting counts.
 *
 * @param name the extract's name; defaults to the file's base name without extensions.
 * @throws {OsmFormatError} see `readRoadFileAs`.
 */
export function roadImport(data: Uint8Array, fileName: string, name?: string): { payload: RoadImport; extract: OsmExtract } {
  const { format, extract } = readRoadFileAs(data, fileName);
  const baseName = fileName.split(/[\\/]/).pop()!.replace(/\..*$/, '');
  return { payload: { name: name ?? baseName, source: format, bbox: extract.bbox, roads: extract.roads }, extract };
}

/**
 * An address file → the addresses import body: a `.csv` (see {@link addressesFromCsv}) or any
 * road file, whose addressed buildings and address points are used (see {@link addressesFromExtract}).
 *
 * @throws {OsmFormatError} for a malformed CSV, or see `readRoadFileAs`.
 */
export function addressesFromFile(data: Uint8Array, fileName: string): AddressImport {
  const addresses = fileName.toLowerCase().endsWith('.csv') ? addressesFromCsv(utf8(data, fileName)) : addressesFromExtract(readRoadFileAs(data, fileName).extract);
  return { source: 'import', addresses };
}

/**
 * Addresses from CSV text with a header row naming at least `address`, `latitude` and
 * `longitude` (any order, any case); `city` and `state` are used when present, other columns
 * (`postcode`…) ignored. Fields may be quoted as RFC 4180 says (`"2214 2 ST SW, APT D"`).
 * Empty latitude and longitude give nulls; blank lines are skipped.
 *
 * @throws {OsmFormatError} naming the line, for a missing column, a short or long row, an empty address or a bad coordinate.
 */
export function addressesFromCsv(text: string): ImportedAddress[] {
  const rows = csvRows(text.replace(/^\uFEFF/, ''));
  const header = rows.shift();
  if (!header) throw new OsmFormatError('the CSV is empty');
  const columns = header.fields.map((field) => field.trim().toLowerCase());
  const column = (name: string, required: boolean): number => {
    const index = columns.indexOf(name);
    if (index < 0 && required) throw new OsmFormatError(`the CSV header has no "${name}" column (it has: ${columns.join(', ')})`);
    return index;
  };
  const address = column('address', true);
  const latitude = column('latitude', true);
  const longitude = column('longitude', true);
  const city = column('city', false);
  const state = column('state', false);

  return rows.map(({ fields, line }) => {
    if (fields.length !== columns.length) throw new OsmFormatError(`CSV line ${line}: ${fields.length} fields, the header has ${columns.length}`);
    if (!cell(fields, address)) throw new OsmFormatError(`CSV line ${line}: the address is empty`);
    const lat = coordinate(cell(fields, latitude), 90, line, 'latitude');
    const lon = coordinate(cell(fields, longitude), 180, line, 'longitude');
    if ((lat === null) !== (lon === null)) throw new OsmFormatError(`CSV line ${line}: a latitude without a longitude, or the reverse`);
    return { address: cell(fields, address), city: cell(fields, city), state: cell(fields, state), latitude: lat, longitude: lon };
  });
}

/** A trimmed field; '' for a column the header lacks (index -1). */
function cell(fields: string[], index: number): string {
  return index < 0 ? '' : fields[index]!.trim();
}

/**
 * Addresses from an OSM extract: each building carrying `addr:housenumber` and `addr:street`
 * (its footprint, positioned at the footprint's centroid), then each such address point.
 * `address` is `<housenumber> <street>`; `city` and `state` come from `addr:city` and
 * `addr:state`, or are empty.
 */
export function addressesFromExtract(extract: OsmExtract): ImportedAddress[] {
  const fromTags = (tags: OsmWayProps) => {
    const housenumber = tags['addr:housenumber']?.trim();
    const street = tags['addr:street']?.trim();
    return housenumber && street ? { address: `${housenumber} ${street}`, city: tags['addr:city'] ?? '', state: tags['addr:state'] ?? '' } : null;
  };
  const addresses: ImportedAddress[] = [];
  for (const building of extract.buildings) {
    const identity = fromTags(building.properties);
    if (!identity) continue;
    const [longitude, latitude] = centroid(building.geometry.coordinates[0]!);
    addresses.push({ ...identity, latitude, longitude, footprint: building.geometry });
  }
  for (const point of extract.addressPoints) {
    const identity = fromTags(point.properties);
    if (identity) addresses.push({ ...identity, latitude: point.geometry.coordinates[1]!, longitude: point.geometry.coordinates[0]! });
  }
  return addresses;
}

/**
 * The area centroid of a ring, rounded to OSM's 7 decimals. Computed in lon/lat: over a
 * building the plane is affine to lon/lat, and affine maps keep centroids.
 */
function centroid(ring: Position[]): [number, number] {
  const [x0, y0] = ring[0]!;
  let area = 0;
  let cx = 0;
  let cy = 0;
  for (let i = 0; i + 1 < ring.length; i++) {
    // Relative to the first vertex, so the products stay small and exact enough.
    const ax = ring[i]![0]! - x0!;
    const ay = ring[i]![1]! - y0!;
    const bx = ring[i + 1]![0]! - x0!;
    const by = ring[i + 1]![1]! - y0!;
    const cross = ax * by - bx * ay;
    area += cross;
    cx += (ax + bx) * cross;
    cy += (ay + by) * cross;
  }
  const round = (degrees: number) => Math.round(degrees * 1e7) / 1e7;
  if (area === 0) {
    // A degenerate ring (all points on a line): the mean of its distinct vertices.
    const points = ring.slice(0, -1);
    return [round(points.reduce((sum, p) => sum + p[0]!, 0) / points.length), round(points.reduce((sum, p) => sum + p[1]!, 0) / points.length)];
  }
  return [round(x0! + cx / (3 * area)), round(y0! + cy / (3 * area))];
}

function coordinate(text: string, limit: number, line: number, what: string): number | null {
  if (text === '') return null;
  const value = Number(text);
  if (!Number.isFinite(value) || Math.abs(value) > limit) throw new OsmFormatError(`CSV line ${line}: ${what} "${text}" is not a number within ±${limit}`);
  return value;
}

/** RFC 4180 rows, each with the line it starts on; blank lines are skipped. */
function csvRows(text: string): { fields: string[]; line: number }[] {
  const rows: { fields: string[]; line: number }[] = [];
  let fields: string[] = [];
  let field = '';
  let line = 1;
  let rowLine = 1;
  let quoted = false;
  let i = 0;
  const endRow = () => {
    fields.push(field);
    if (fields.length > 1 || fields[0] !== '') rows.push({ fields, line: rowLine });
    fields = [];
    field = '';
  };
  while (i < text.length) {
    const char = text[i]!;
    if (quoted) {
      if (char === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i++;
        } else {
          quoted = false;
          if (![',', '\n', '\r', undefined].includes(text[i + 1])) throw new OsmFormatError(`CSV line ${line}: text after a closing quote`);
        }
      } else {
        if (char === '\n') line++;
        field += char;
      }
    } else if (char === '"') {
      if (field !== '') throw new OsmFormatError(`CSV line ${line}: a quote inside an unquoted field`);
      quoted = true;
    } else if (char === ',') {
      fields.push(field);
      field = '';
    } else if (char === '\n' || char === '\r') {
      if (char === '\r' && text[i + 1] === '\n') i++;
      endRow();
      line++;
      rowLine = line;
    } else {
      field += char;
    }
    i++;
  }
  if (quoted) throw new OsmFormatError(`CSV line ${rowLine}: a quoted field is never closed`);
  endRow();
  return rows;
}
