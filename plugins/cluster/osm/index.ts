/**
 * OpenStreetMap data for the cluster planner: roads, buildings and address points read from
 * OSM XML, OSM PBF, Overpass JSON or GeoJSON, and fetched from Overpass. Everything comes out
 * as GeoJSON with the OSM tags as properties, sorted by OSM id, ready for `buildRoadModel`.
 *
 * OSM data is © OpenStreetMap contributors, under the ODbL 1.0
 * (https://www.openstreetmap.org/copyright): whatever is built from it keeps that attribution.
 *
 * @module
 */
export { type AddressImport, addressesFromCsv, addressesFromExtract, addressesFromFile, type ImportedAddress, roadImport, type RoadImport } from './payloads.js';
export { OsmFormatError, type OsmBBox, type OsmExtract, type OsmWayProps } from './features.js';
export { readRoadFile, readRoadFileAs, type RoadFile, type RoadFileFormat } from './files.js';
export { readGeoJson } from './geojson.js';
export { fetchOverpass, OverpassError, type OverpassFailure, overpassQuery, readOverpassJson } from './overpass.js';
export { readOsmPbf } from './pbf.js';
export { readOsmXml } from './xml.js';
