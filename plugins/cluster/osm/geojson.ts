/**
 * A GeoJSON FeatureCollection that already holds OSM ways (osmtogeojson's output, or the
 * planner's own road files) → `OsmExtract`: the highway lines as roads, building polygons and
 * address points alongside, so a GeoJSON file serves both imports.
 *
 * @module
 */
import type { Feature, LineString, Point, Polygon, Position } from 'geojson';
import { isObject, OsmFormatError, rfc7946Rings, type OsmBBox, type OsmExtract, type OsmWayProps } from './features.js';

/**
 * Reads a parsed GeoJSON FeatureCollection. Features keep the file's order. Properties become
 * strings (numbers and booleans are written out, nulls and nested objects dropped) and get an
 * `'@id'`: the feature's own `@id` property, else its `id` (`way/123` in osmtogeojson), else
 * `feature/<index>`. `stats.ways` counts the features; there are no nodes to count.
 *
 * @throws {OsmFormatError} when the value is not a FeatureCollection, or a geometry's coordinates are not positions.
 */
export function readGeoJson(json: unknown): OsmExtract {
  if (!isObject(json) || json.type !== 'FeatureCollection' || !Array.isArray(json.features)) throw new OsmFormatError('not a GeoJSON FeatureCollection');
  const roads: Feature<LineString, OsmWayProps>[] = [];
  const buildings: Feature<Polygon, OsmWayProps>[] = [];
  const addressPoints: Feature<Point, OsmWayProps>[] = [];
  json.features.forEach((feature: unknown, index) => {
    if (!isObject(feature) || feature.type !== 'Feature' || !isObject(feature.properties ?? {})) throw new OsmFormatError(`GeoJSON feature ${index} is not a Feature`);
    const properties = stringProperties(feature, index);
    const geometry = feature.geometry;
    if (geometry === null) return;
    if (!isObject(geometry)) throw new OsmFormatError(`GeoJSON feature ${index} has no geometry object`);
    const what = `GeoJSON feature ${index} (${properties['@id']})`;
    switch (geometry.type) {
      case 'LineString':
        if (properties.highway !== undefined) roads.push(line(positions(geometry.coordinates, what), properties, what));
        break;
      case 'MultiLineString':
        if (properties.highway !== undefined) {
          if (!Array.isArray(geometry.coordinates)) throw new OsmFormatError(`${what}: coordinates are not a list of lines`);
          for (const part of geometry.coordinates as unknown[]) roads.push(line(positions(part, what), { ...properties }, what));
        }
        break;
      case 'Polygon': {
        if (properties.building === undefined || properties.building === 'no') break;
        if (!Array.isArray(geometry.coordinates) || geometry.coordinates.length === 0) throw new OsmFormatError(`${what}: a polygon without rings`);
        const rings = (geometry.coordinates as unknown[]).map((ring) => positions(ring, what));
        if (rings.some((ring) => ring.length < 4 || !samePosition(ring[0]!, ring[ring.length - 1]!))) throw new OsmFormatError(`${what}: a polygon ring is not closed`);
        buildings.push({ type: 'Feature', properties, geometry: { type: 'Polygon', coordinates: rfc7946Rings(rings) } });
        break;
      }
      case 'Point': {
        if (properties['addr:housenumber'] === undefined) break;
        const [point] = positions([geometry.coordinates], what);
        addressPoints.push({ type: 'Feature', properties, geometry: { type: 'Point', coordinates: point! } });
        break;
      }
      default:
        // MultiPolygon buildings, GeometryCollections…: not roads, and the planner takes one ring per home.
        break;
    }
  });
  return { bbox: bboxOf(json.bbox), roads: { type: 'FeatureCollection', features: roads }, buildings, addressPoints, stats: { nodes: 0, ways: json.features.length, missingNodes: 0 } };
}

function line(coordinates: Position[], properties: OsmWayProps, what: string): Feature<LineString, OsmWayProps> {
  if (coordinates.length < 2) throw new OsmFormatError(`${what}: a line needs two positions`);
  return { type: 'Feature', properties, geometry: { type: 'LineString', coordinates } };
}

function positions(value: unknown, what: string): Position[] {
  if (!Array.isArray(value)) throw new OsmFormatError(`${what}: coordinates are not a list of positions`);
  return value.map((position: unknown) => {
    if (!Array.isArray(position) || position.length < 2) throw new OsmFormatError(`${what}: ${JSON.stringify(position)} is not a position`);
    const [lon, lat] = position as unknown[];
    if (typeof lon !== 'number' || typeof lat !== 'number' || !(Math.abs(lon) <= 180) || !(Math.abs(lat) <= 90)) throw new OsmFormatError(`${what}: ${JSON.stringify(position)} is not a lon/lat position`);
    // Altitudes are dropped: the planner works in the plane.
    return [lon, lat];
  });
}

function samePosition(a: Position, b: Position): boolean {
  return a[0] === b[0] && a[1] === b[1];
}

function stringProperties(feature: Record<string, unknown>, index: number): OsmWayProps {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries((feature.properties ?? {}) as Record<string, unknown>)) {
    if (typeof value === 'string') out[key] = value;
    else if (typeof value === 'number' || typeof value === 'boolean') out[key] = String(value);
  }
  const id = out['@id'] ?? (typeof feature.id === 'string' || typeof feature.id === 'number' ? String(feature.id) : `feature/${index}`);
  return { ...out, '@id': id };
}

function bboxOf(value: unknown): OsmBBox | null {
  if (!Array.isArray(value) || value.length !== 4 || !value.every((v) => typeof v === 'number' && Number.isFinite(v))) return null;
  return value as OsmBBox;
}
