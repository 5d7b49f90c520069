/**
 * The OSM readers (plugins/cluster/osm) on real extracts — OSM XML checked against the
 * osmtogeojson output of the same files, Monaco's PBF for scale — plus PBF built here from our
 * own .proto, malformed input of every kind, Overpass over a real socket, and the CLI's payloads.
 * Data: test/plugins/cluster/data and test/bench/data, © OpenStreetMap contributors, ODbL.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { deflateSync } from 'node:zlib';
import { booleanPointInPolygon } from '@turf/turf';
import type { Feature, FeatureCollection, Geometry } from 'geojson';
import protobuf from 'protobufjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  addressesFromCsv,
  addressesFromFile,
  fetchOverpass,
  OsmFormatError,
  OverpassError,
  overpassQuery,
  readOsmPbf,
  readOsmXml,
  readOverpassJson,
  readRoadFile,
  roadImport,
  type OsmExtract,
} from '../../../plugins/cluster/osm/index.js';

const data = (name: string) => readFileSync(new URL(`./data/${name}`, import.meta.url));
const monacoBytes = readFileSync(new URL('../../bench/data/monaco.osm.pbf', import.meta.url));
let monacoExtract: OsmExtract | undefined;
/** Read once: the file is the biggest thing this suite touches. */
const monaco = () => (monacoExtract ??= readRoadFile(monacoBytes, 'monaco.osm.pbf'));

const countBy = (values: string[]) => values.reduce<Record<string, number>>((counts, v) => ({ ...counts, [v]: (counts[v] ?? 0) + 1 }), {});
const highways = (extract: OsmExtract) => countBy(extract.roads.features.map((f) => f.properties.highway!));
const wayNumber = (id: string) => Number(id.split('/')[1]);
const isAscending = (ids: number[]) => ids.every((id, i) => i === 0 || ids[i - 1]! <= id);

/** What a thrown error is, by class name: malformed input must give OsmFormatError, never a TypeError. */
function outcome(read: () => unknown): string {
  try {
    read();
    return 'ok';
  } catch (error) {
    return (error as Error).constructor.name;
  }
}

describe('OSM XML, checked against osmtogeojson on the same files', () => {
  // osmtogeojson mixes the element's metadata and its id into the tags; these are not OSM tags.
  const META = new Set(['id', 'version', 'timestamp', 'changeset', 'user', 'uid']);
  const tagsOf = (feature: Feature) => Object.fromEntries(Object.entries(feature.properties ?? {}).filter(([k]) => !META.has(k)));
  const ownTags = ({ '@id': _, ...tags }: Record<string, string>) => tags;

  function expectSameAsOsmtogeojson(extract: OsmExtract, geojson: FeatureCollection) {
    const theirRoads = geojson.features.filter((f) => f.geometry.type === 'LineString' && f.properties?.highway !== undefined);
    expect(extract.roads.features.map((f) => f.properties['@id'])).toEqual(theirRoads.map((f) => String(f.id)).sort((a, b) => wayNumber(a) - wayNumber(b)));
    const roadsById = new Map(extract.roads.features.map((f) => [f.properties['@id'], f]));
    for (const theirs of theirRoads) {
      const ours = roadsById.get(String(theirs.id))!;
      expect(ours.geometry.coordinates).toEqual((theirs.geometry as Geometry & { coordinates: unknown }).coordinates);
      expect(ownTags(ours.properties)).toEqual(tagsOf(theirs));
    }
    const theirBuildings = geojson.features.filter((f) => f.geometry.type === 'Polygon' && f.properties?.building !== undefined && String(f.id).startsWith('way/'));
    const buildingsById = new Map(extract.buildings.map((f) => [f.properties['@id'], f]));
    expect([...buildingsById.keys()].sort()).toEqual(theirBuildings.map((f) => String(f.id)).sort());
    for (const theirs of theirBuildings) {
      const ours = buildingsById.get(String(theirs.id))!;
      expect(ours.geometry.coordinates).toEqual((theirs.geometry as Geometry & { coordinates: unknown }).coordinates);
      expect(ownTags(ours.properties)).toEqual(tagsOf(theirs));
    }
  }

  it('German street: 4 residential, 8 private driveways, 2 tracks; 32 footprints; the address node', () => {
    const extract = readOsmXml(data('german-street.osm').toString('utf8'));
    expect(extract.bbox).toEqual([10.068, 48.135, 10.071, 48.137]);
    expect(extract.stats).toEqual({ nodes: 281, ways: 56, missingNodes: 0 });
    expect(highways(extract)).toEqual({ residential: 4, service: 8, track: 2 });
    expect(extract.roads.features.filter((f) => f.properties.highway === 'service').every((f) => f.properties.service === 'driveway' && f.properties.access === 'private')).toBe(true);
    // 33 ways are tagged building, but the osmconvert clip left way 275490779 with a single node.
    expect(extract.buildings).toHaveLength(32);
    expect(extract.buildings.every((b) => b.geometry.coordinates[0]!.length >= 4)).toBe(true);
    expect(extract.addressPoints).toEqual([
      {
        type: 'Feature',
        properties: {
          'addr:city': 'Kirchberg an der Iller',
          'addr:street': 'Richard-Wagner-Straße',
          'addr:country': 'DE',
          'addr:postcode': '88486',
          'addr:housenumber': '20',
          '@id': 'node/6199069340',
        },
        geometry: { type: 'Point', coordinates: [10.0707279, 48.1361912] },
      },
    ]);
    const haydn = extract.roads.features.find((f) => f.properties.name === 'Haydnstraße')!;
    expect(haydn.geometry.coordinates).toHaveLength(10);
    expectSameAsOsmtogeojson(extract, JSON.parse(data('german-street.geojson').toString('utf8')) as FeatureCollection);
  });

  it('West Oakland: residential 9, secondary 5, unclassified 3, footway 7, service 6, cycleway 1; 23 buildings', () => {
    const extract = readOsmXml(data('west-oakland.osm').toString('utf8'));
    expect(extract.bbox).toEqual([-122.30258, 37.80615, -122.29825, 37.80914]);
    expect(extract.stats).toEqual({ nodes: 446, ways: 66, missingNodes: 0 });
    expect(highways(extract)).toEqual({ residential: 9, secondary: 5, unclassified: 3, footway: 7, service: 6, cycleway: 1 });
    expect(extract.buildings).toHaveLength(23);
    expect(extract.addressPoints.map((p) => [p.properties['@id'], p.properties.name])).toEqual([['node/1747162566', 'Revolution Cafe']]);
    expectSameAsOsmtogeojson(extract, JSON.parse(data('west-oakland.geojson').toString('utf8')) as FeatureCollection);
  });

  it('is sorted by id and byte-for-byte repeatable', () => {
    const xml = data('west-oakland.osm').toString('utf8');
    const extract = readOsmXml(xml);
    expect(isAscending(extract.roads.features.map((f) => wayNumber(f.properties['@id'])))).toBe(true);
    expect(isAscending(extract.buildings.map((f) => wayNumber(f.properties['@id'])))).toBe(true);
    expect(JSON.stringify(readOsmXml(xml))).toBe(JSON.stringify(extract));
  });

  it('decodes entities and normalises attribute whitespace as XML 1.0 says', () => {
    const extract = readOsmXml(`<?xml version="1.0" encoding="UTF-8"?>
<!-- a JOSM-style file -->
<osm version='0.6'>
  <node id='-1' lat='48.1' lon='10.2'>
    <tag k="addr:housenumber" v="3&#x2F;1"/>
    <tag k='name' v='A &amp; B &lt;&gt; &quot;q&quot; &apos;s&apos; caf&#233; &#x1F600;'/>
    <tag k="note" v="two&#10;lines, a	tab and a
break"/>
  </node>
  <node id="2" lat="48.2" lon="10.3" action="delete"><tag k="addr:housenumber" v="9"/></node>
  <relation id="5"><member type="node" ref="-1" role=""/><tag k="type" v="site"/><![CDATA[ ignored <text> ]]></relation>
</osm>`);
    expect(extract.addressPoints).toHaveLength(1);
    expect(extract.addressPoints[0]!.properties).toEqual({ 'addr:housenumber': '3/1', name: `A & B <> "q" 's' café 😀`, note: 'two\nlines, a tab and a break', '@id': 'node/-1' });
    expect(extract.stats.nodes).toBe(1);
  });

  it('cuts a way at nodes the file lacks and counts them', () => {
    const extract = readOsmXml(`<osm>
      <node id="1" lat="0" lon="0"/><node id="2" lat="0" lon="0.001"/><node id="4" lat="0" lon="0.003"/><node id="5" lat="0" lon="0.004"/>
      <way id="7"><nd ref="1"/><nd ref="2"/><nd ref="3"/><nd ref="4"/><nd ref="5"/><nd ref="6"/><tag k="highway" v="residential"/></way>
      <way id="8"><nd ref="1"/><nd ref="9"/><nd ref="2"/><tag k="highway" v="footway"/></way>
      <way id="9"><nd ref="1"/><nd ref="2"/><nd ref="10"/><nd ref="1"/><tag k="building" v="yes"/></way>
    </osm>`);
    expect(extract.roads.features.map((f) => [f.properties['@id'], f.geometry.coordinates])).toEqual([
      ['way/7', [[0, 0], [0.001, 0]]],
      ['way/7', [[0.003, 0], [0.004, 0]]],
    ]);
    expect(extract.buildings).toEqual([]);
    expect(extract.stats).toEqual({ nodes: 4, ways: 3, missingNodes: 4 });
  });

  it.each([
    ['an unclosed tag', '<osm><node id="1" lat="1" lon="2"></osm>'],
    ['an unclosed root', '<osm><node id="1" lat="1" lon="2"/>'],
    ['a tag cut off', '<osm><node id="1" lat="1" lon='],
    ['a stray end tag', '<osm></node></osm>'],
    ['an empty document', ''],
    ['another root element', '<gpx><trk/></gpx>'],
    ['two roots', '<osm/><osm/>'],
    ['text outside the root', 'hello <osm/>'],
    ['a DOCTYPE', '<!DOCTYPE osm [<!ENTITY a "aaaa">]><osm/>'],
    ['a bare ampersand', '<osm><node id="1" lat="1" lon="2"><tag k="a" v="A & B"/></node></osm>'],
    ['an unknown entity', '<osm><node id="1" lat="1" lon="2"><tag k="a" v="&nbsp;"/></node></osm>'],
    ['a reference to a non-character', '<osm><node id="1" lat="1" lon="2"><tag k="a" v="&#0;"/></node></osm>'],
    ['< inside an attribute', '<osm><node id="1" lat="1" lon="2"><tag k="a" v="<"/></node></osm>'],
    ['a repeated attribute', '<osm><node id="1" id="2" lat="1" lon="2"/></osm>'],
    ['a node without lat', '<osm><node id="1" lon="2"/></osm>'],
    ['a latitude that is not a number', '<osm><node id="1" lat="north" lon="2"/></osm>'],
    ['a latitude off the globe', '<osm><node id="1" lat="91" lon="2"/></osm>'],
    ['a fractional id', '<osm><node id="1.5" lat="1" lon="2"/></osm>'],
    ['an nd outside a way', '<osm><nd ref="1"/></osm>'],
    ['a tag without v', '<osm><way id="1"><tag k="highway"/></way></osm>'],
    ['an unterminated comment', '<osm><!-- </osm>'],
  ])('refuses %s with OsmFormatError', (_, xml) => {
    expect(() => readOsmXml(xml)).toThrow(OsmFormatError);
  });

  it('refuses every truncation of a real file with OsmFormatError', () => {
    const xml = data('german-street.osm').toString('utf8');
    const cuts = Array.from({ length: 60 }, (_, i) => Math.floor(((i + 0.5) / 60) * (xml.trimEnd().length - 1)));
    expect(new Set(cuts.map((at) => outcome(() => readOsmXml(xml.slice(0, at)))))).toEqual(new Set(['OsmFormatError']));
  });
});

describe('OSM PBF', () => {
  it('Monaco: 180,118 nodes, 27,377 ways; 658 residential lines, 23,326 footprints, 65 address nodes', () => {
    const extract = monaco();
    expect(extract.bbox).toEqual([7.349, 43.71, 7.491, 43.77]);
    expect(extract.stats).toEqual({ nodes: 180_118, ways: 27_377, missingNodes: 0 });
    const counts = highways(extract);
    // The file has 660 highway=residential ways and 394 service ways, but osmconvert's clip left
    // two residential ways and one service way with a single node: no line.
    expect(counts).toMatchObject({ residential: 658, footway: 566, service: 393, primary: 309, steps: 259, path: 169, secondary: 140 });
    expect(extract.roads.features).toHaveLength(2924);
    // 23,370 building ways; 44 are no longer closed rings of ≥ 4 positions after the clip.
    expect(extract.buildings).toHaveLength(23_326);
    expect(extract.addressPoints).toHaveLength(65);
    expect(isAscending(extract.roads.features.map((f) => wayNumber(f.properties['@id'])))).toBe(true);
    expect(isAscending(extract.buildings.map((f) => wayNumber(f.properties['@id'])))).toBe(true);
    expect(isAscending(extract.addressPoints.map((f) => wayNumber(f.properties['@id'])))).toBe(true);
    // Positions have OSM's 7 decimals (nanodegrees at granularity 100, divided exactly) and lie in or near the bbox.
    const positions = [...extract.roads.features, ...extract.buildings].flatMap((f) => (f.geometry.type === 'Polygon' ? f.geometry.coordinates[0]! : f.geometry.coordinates));
    expect(positions).toHaveLength(224_345);
    const odd = positions.filter(([lon, lat]) => !(lon! > 7.3 && lon! < 7.6 && lat! > 43.6 && lat! < 43.8) || Math.abs(lon! * 1e7 - Math.round(lon! * 1e7)) > 1e-6 || Math.abs(lat! * 1e7 - Math.round(lat! * 1e7)) > 1e-6);
    expect(odd).toEqual([]);
  });

  describe('built here from our own osmformat.proto', () => {
    const root = new protobuf.Root().loadSync(fileURLToPath(new URL('../../../plugins/cluster/osm/osmformat.proto', import.meta.url)), { keepCase: true });
    const type = (name: string) => root.lookupType(`mowthos.osm.${name}`);
    const bytes = (name: string, value: Record<string, unknown>) => type(name).encode(type(name).fromObject(value)).finish();
    const deltas = (values: number[]) => values.map((v, i) => v - (i === 0 ? 0 : values[i - 1]!));

    function frame(kind: string, blob: Record<string, unknown>): Buffer {
      const body = bytes('Blob', blob);
      const header = bytes('BlobHeader', { type: kind, datasize: body.length });
      const length = Buffer.alloc(4);
      length.writeUInt32BE(header.length);
      return Buffer.concat([length, header, body]);
    }
    const zlib = (kind: string, message: Uint8Array) => frame(kind, { raw_size: message.length, zlib_data: deflateSync(message) });
    const raw = (kind: string, message: Uint8Array) => frame(kind, { raw: message });

    // Nanodegree offsets and granularity 100 as real files use; one id above 2^32 to go through 64-bit decoding.
    const strings = ['', 'highway', 'residential', 'name', 'Rue du Test', 'building', 'yes', 'addr:housenumber', '7', 'addr:street', 'service', 'amenity', 'bench'];
    const s = (text: string) => strings.indexOf(text);
    const nodes = [
      { id: 1001, lat: 7_312_345, lon: 4_212_345 },
      { id: 1002, lat: 7_312_400, lon: 4_212_345 },
      { id: 1003, lat: 7_312_400, lon: 4_212_500 },
      { id: 5_000_000_000, lat: -1_000, lon: 9_999_999 },
    ];
    const header = bytes('HeaderBlock', {
      bbox: { left: 7_400_000_000, right: 7_500_000_000, top: 43_800_000_000, bottom: 43_700_000_000 },
      required_features: ['OsmSchema-V0.6', 'DenseNodes'],
      writingprogram: 'mowthos test',
    });
    const block = bytes('PrimitiveBlock', {
      stringtable: { s: strings.map((text) => Buffer.from(text)) },
      granularity: 100,
      lat_offset: 43_000_000_000,
      lon_offset: 7_000_000_000,
      primitivegroup: [
        {
          dense: {
            id: deltas(nodes.map((n) => n.id)),
            lat: deltas(nodes.map((n) => n.lat)),
            lon: deltas(nodes.map((n) => n.lon)),
            keys_vals: [0, s('addr:housenumber'), s('7'), s('addr:street'), s('Rue du Test'), 0, 0, 0],
          },
        },
        {
          ways: [
            { id: 10, keys: [s('highway'), s('name')], vals: [s('residential'), s('Rue du Test')], refs: deltas([1001, 1002, 5_000_000_000]) },
            { id: 11, keys: [s('highway')], vals: [s('service')], refs: deltas([1001, 999, 1002, 1003]) },
            { id: 12, keys: [s('building')], vals: [s('yes')], refs: deltas([1001, 1002, 1003, 1001]) },
            { id: 13, keys: [s('amenity')], vals: [s('bench')], refs: [1001] },
          ],
        },
      ],
    });
    const file = Buffer.concat([zlib('OSMHeader', header), raw('OSMData', block)]);

    it('reads back DenseNodes with their tags and delta-coded Ways, exactly', () => {
      const extract = readOsmPbf(file);
      expect(extract.bbox).toEqual([7.4, 43.7, 7.5, 43.8]);
      expect(extract.stats).toEqual({ nodes: 4, ways: 4, missingNodes: 1 });
      const a = [7.4212345, 43.7312345];
      const b = [7.4212345, 43.73124];
      const c = [7.42125, 43.73124];
      expect(extract.roads.features).toEqual([
        { type: 'Feature', properties: { highway: 'residential', name: 'Rue du Test', '@id': 'way/10' }, geometry: { type: 'LineString', coordinates: [a, b, [7.9999999, 42.9999]] } },
        { type: 'Feature', properties: { highway: 'service', '@id': 'way/11' }, geometry: { type: 'LineString', coordinates: [b, c] } },
      ]);
      // Mapped clockwise; rewound counterclockwise as RFC 7946 asks.
      expect(extract.buildings).toEqual([{ type: 'Feature', properties: { building: 'yes', '@id': 'way/12' }, geometry: { type: 'Polygon', coordinates: [[a, c, b, a]] } }]);
      expect(extract.addressPoints).toEqual([
        { type: 'Feature', properties: { 'addr:housenumber': '7', 'addr:street': 'Rue du Test', '@id': 'node/1002' }, geometry: { type: 'Point', coordinates: b } },
      ]);
      expect(readRoadFile(file, 'tiny.osm.pbf')).toEqual(extract);
    });

    it('refuses truncations, garbage and damage with OsmFormatError — never a TypeError', () => {
      const prefixes = Array.from({ length: file.length }, (_, n) => outcome(() => readOsmPbf(file.subarray(0, n))));
      // Only the prefix that ends right after the header blob is itself a whole (empty) file.
      expect(prefixes.filter((o) => o === 'ok')).toHaveLength(1);
      expect(new Set(prefixes.filter((o) => o !== 'ok'))).toEqual(new Set(['OsmFormatError']));

      let seed = 42;
      const random = () => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
      const damaged = new Set<string>();
      for (let i = 0; i < 400; i++) {
        const copy = Buffer.from(file);
        for (let j = 0; j < 1 + (i % 3); j++) copy[Math.floor(random() * copy.length)] = Math.floor(random() * 256);
        damaged.add(outcome(() => readOsmPbf(copy)));
      }
      expect([...damaged].filter((o) => o !== 'ok' && o !== 'OsmFormatError')).toEqual([]);

      const garbage = Buffer.from(Array.from({ length: 4096 }, () => Math.floor(random() * 256)));
      expect(outcome(() => readOsmPbf(garbage))).toBe('OsmFormatError');
      expect(outcome(() => readOsmPbf(Buffer.from('<?xml version="1.0"?><osm/>')))).toBe('OsmFormatError');
      expect(outcome(() => readOsmPbf(new Uint8Array()))).toBe('OsmFormatError');
      expect(outcome(() => readOsmPbf(monacoBytes.subarray(0, 100_000)))).toBe('OsmFormatError');
      expect(outcome(() => readOsmPbf(monacoBytes.subarray(0, 60)))).toBe('OsmFormatError');
    });

    it('refuses an oversized blob, other compressions and unknown required features', () => {
      const huge = bytes('BlobHeader', { type: 'OSMData', datasize: 33 * 1024 * 1024 });
      const length = Buffer.alloc(4);
      length.writeUInt32BE(huge.length);
      expect(() => readOsmPbf(Buffer.concat([zlib('OSMHeader', header), length, huge, Buffer.alloc(64)]))).toThrow(/32 MiB/);
      expect(() => readOsmPbf(Buffer.concat([zlib('OSMHeader', header), frame('OSMData', { raw_size: 64 * 1024 * 1024, zlib_data: deflateSync(block) })]))).toThrow(/32 MiB/);
      expect(() => readOsmPbf(Buffer.concat([zlib('OSMHeader', header), frame('OSMData', { raw_size: block.length, lzma_data: block })]))).toThrow(/only raw and zlib/);
      expect(() => readOsmPbf(Buffer.concat([zlib('OSMHeader', header), frame('OSMData', { raw_size: block.length + 1, zlib_data: deflateSync(block) })]))).toThrow(OsmFormatError);
      const historical = bytes('HeaderBlock', { required_features: ['OsmSchema-V0.6', 'DenseNodes', 'Has_Metadata_Of_Mars'] });
      expect(() => readOsmPbf(Buffer.concat([raw('OSMHeader', historical), raw('OSMData', block)]))).toThrow(/Has_Metadata_Of_Mars/);
      expect(() => readOsmPbf(raw('OSMData', block))).toThrow(/first blob/);
    });

    it('takes positions carried on ways (LocationsOnWays) where the file has no node', () => {
      const onWays = bytes('PrimitiveBlock', {
        stringtable: { s: ['', 'highway', 'path'].map((text) => Buffer.from(text)) },
        primitivegroup: [{ ways: [{ id: 1, keys: [1], vals: [2], refs: [5, 1], lat: [100, 1], lon: [200, -1] }] }],
      });
      const extract = readOsmPbf(Buffer.concat([raw('OSMHeader', bytes('HeaderBlock', { optional_features: ['LocationsOnWays'] })), raw('OSMData', onWays)]));
      expect(extract.roads.features[0]!.geometry.coordinates).toEqual([
        [0.00002, 0.00001],
        [0.0000199, 0.0000101],
      ]);
    });
  });
});

describe('Overpass', () => {
  // The shape Overpass answers `out body; >; out skel qt;` with: ways (tags, node ids) first, then bare nodes.
  const answer = {
    version: 0.6,
    generator: 'Overpass API 0.7.62.1 084b4234',
    osm3s: { timestamp_osm_base: '2025-07-23T17:19:50Z', copyright: 'The data included in this document is from www.openstreetmap.org. The data is made available under ODbL.' },
    elements: [
      { type: 'way', id: 19_000_002, nodes: [2, 3], tags: { highway: 'service', service: 'driveway' } },
      { type: 'way', id: 19_000_001, nodes: [1, 2, 3, 4], tags: { highway: 'residential', name: 'Stone Slope Lane Southwest' } },
      { type: 'relation', id: 5, members: [], tags: { type: 'route' } },
      { type: 'node', id: 1, lat: 44.0119495, lon: -92.5069581 },
      { type: 'node', id: 2, lat: 44.0117071, lon: -92.507216 },
      { type: 'node', id: 3, lat: 44.0114115, lon: -92.5070947, tags: { 'addr:housenumber': '943', 'addr:street': 'Stone Slope Lane Southwest' } },
    ],
  };

  it('reads ways before their nodes, cuts at the missing one, and ignores relations', () => {
    const extract = readOverpassJson(answer);
    expect(extract.bbox).toBeNull();
    expect(extract.stats).toEqual({ nodes: 3, ways: 2, missingNodes: 1 });
    expect(extract.roads.features.map((f) => [f.properties['@id'], f.geometry.coordinates.length])).toEqual([
      ['way/19000001', 3],
      ['way/19000002', 2],
    ]);
    expect(extract.addressPoints.map((p) => p.properties['@id'])).toEqual(['node/3']);
  });

  it.each([
    ['null', null],
    ['an array', []],
    ['no elements', { version: 0.6 }],
    ['elements not a list', { elements: {} }],
    ['an element that is a number', { elements: [1] }],
    ['a string id', { elements: [{ type: 'node', id: '1', lat: 1, lon: 1 }] }],
    ['a string latitude', { elements: [{ type: 'node', id: 1, lat: '1', lon: 1 }] }],
    ['a latitude off the globe', { elements: [{ type: 'node', id: 1, lat: 95, lon: 1 }] }],
    ['way nodes that are not ids', { elements: [{ type: 'way', id: 1, nodes: ['a'] }] }],
    ['tags that are not strings', { elements: [{ type: 'way', id: 1, nodes: [1], tags: { lanes: 2 } }] }],
    ['geometry that does not match', { elements: [{ type: 'way', id: 1, nodes: [1, 2], geometry: [{ lat: 1, lon: 1 }] }] }],
  ])('refuses %s with OsmFormatError', (_, json) => {
    expect(() => readOverpassJson(json)).toThrow(OsmFormatError);
  });

  it('builds the QL with (south, west, north, east) and a timeout', () => {
    expect(overpassQuery([10.068, 48.135, 10.071, 48.137])).toBe('[out:json][timeout:60];(way["highway"](48.135,10.068,48.137,10.071););out body;>;out skel qt;');
    expect(overpassQuery([-92.5319, 44.0028, -92.4866, 44.0325], 25)).toBe('[out:json][timeout:25];(way["highway"](44.0028,-92.5319,44.0325,-92.4866););out body;>;out skel qt;');
    expect(() => overpassQuery([10.071, 48.135, 10.068, 48.137])).toThrow(RangeError);
    expect(() => overpassQuery([10, 91, 11, 92])).toThrow(RangeError);
    expect(() => overpassQuery([10, 48, 11, 49], 0)).toThrow(RangeError);
  });

  describe('over HTTP, against a local server speaking Overpass', () => {
    let server: Server;
    let endpoint: string;
    const requests: { method?: string; url?: string; contentType?: string; body: string }[] = [];
    let reply: (response: ServerResponse) => void = () => {};

    beforeAll(async () => {
      server = createServer((request: IncomingMessage, response: ServerResponse) => {
        const chunks: Buffer[] = [];
        request.on('data', (chunk: Buffer) => chunks.push(chunk));
        request.on('end', () => {
          requests.push({ method: request.method, url: request.url, contentType: request.headers['content-type'], body: Buffer.concat(chunks).toString('utf8') });
          reply(response);
        });
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/interpreter`;
    });
    afterAll(async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    });

    it('POSTs the query form-encoded as data=… and reads the JSON answer', async () => {
      reply = (response) => response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
      const query = overpassQuery([-92.508, 44.011, -92.506, 44.013]);
      const extract = await fetchOverpass(endpoint, query);
      expect(extract.roads.features).toHaveLength(2);
      const request = requests.at(-1)!;
      expect(request).toMatchObject({ method: 'POST', url: '/api/interpreter' });
      expect(request.contentType).toMatch(/^application\/x-www-form-urlencoded/);
      expect(request.body.startsWith('data=%5Bout%3Ajson%5D')).toBe(true);
      expect(new URLSearchParams(request.body).get('data')).toBe(query);
    });

    it('gives an OverpassError with the status and the start of the body on 429', async () => {
      const body = `rate_limited: You have exceeded your quota. ${'Please wait. '.repeat(40)}`;
      reply = (response) => response.writeHead(429, { 'content-type': 'text/plain' }).end(body);
      const error = (await fetchOverpass(endpoint, '[out:json];node(1);out;').catch((e: unknown) => e)) as OverpassError;
      expect(error).toBeInstanceOf(OverpassError);
      expect(error.status).toBe(429);
      expect(error.reason).toBe('http');
      expect(error.bodyStart).toBe(body.slice(0, 200));
      expect(error.message).toContain('429');
      expect(error.message).toContain('rate_limited');
    });

    it('times out a server that never answers', async () => {
      reply = () => {};
      const started = Date.now();
      const error = (await fetchOverpass(endpoint, 'x', { timeoutMs: 150 }).catch((e: unknown) => e)) as OverpassError;
      expect(error).toBeInstanceOf(OverpassError);
      expect(error.status).toBeNull();
      expect(error.reason).toBe('timeout');
      expect(error.message).toMatch(/did not answer within 150 ms/);
      expect(Date.now() - started).toBeLessThan(2000);
    });

    it('refuses a 200 that is not JSON, and a 200 whose remark reports a runtime error', async () => {
      reply = (response) => response.writeHead(200, { 'content-type': 'text/html' }).end('<html><body>The server is probably too busy</body></html>');
      await expect(fetchOverpass(endpoint, 'x')).rejects.toMatchObject({ reason: 'not_json', status: 200, message: expect.stringMatching(/not JSON: <html>/) });
      reply = (response) => response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ...answer, elements: [], remark: 'runtime error: Query timed out in "query" at line 1 after 26 seconds.' }));
      await expect(fetchOverpass(endpoint, 'x')).rejects.toMatchObject({ name: 'OverpassError', reason: 'runtime_error' });
      reply = (response) => response.writeHead(200, { 'content-type': 'application/json' }).end('{"elements": "none"}');
      await expect(fetchOverpass(endpoint, 'x')).rejects.toThrow(OsmFormatError);
    });

    it('reports a refused connection and a cancelled request as OverpassError, and uses an injected fetch', async () => {
      const closed = createServer();
      await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
      const port = (closed.address() as AddressInfo).port;
      await new Promise((resolve) => closed.close(resolve));
      await expect(fetchOverpass(`http://127.0.0.1:${port}/api/interpreter`, 'x')).rejects.toMatchObject({ name: 'OverpassError', reason: 'network', status: null });

      reply = () => {};
      const controller = new AbortController();
      setTimeout(() => controller.abort(), 50);
      await expect(fetchOverpass(endpoint, 'x', { signal: controller.signal })).rejects.toMatchObject({ reason: 'cancelled' });

      const seen: string[] = [];
      const injected: typeof fetch = async (input) => {
        seen.push(String(input));
        return new Response(JSON.stringify(answer), { status: 200 });
      };
      expect((await fetchOverpass('https://overpass.example/api/interpreter', 'x', { fetch: injected })).roads.features).toHaveLength(2);
      expect(seen).toEqual(['https://overpass.example/api/interpreter']);
    });
  });
});

describe('road files by name', () => {
  it('reads GeoJSON: highway lines as roads, MultiLineStrings split, buildings and address points alongside', () => {
    const extract = readRoadFile(data('german-street.geojson'), 'german-street.geojson');
    expect(highways(extract)).toEqual({ residential: 4, service: 8, track: 2 });
    expect(extract.buildings).toHaveLength(32);
    expect(extract.addressPoints.map((p) => p.properties['@id'])).toEqual(['node/6199069340']);
    expect(extract.roads.features[0]!.properties['@id']).toBe('way/25216931');

    const multi = {
      type: 'FeatureCollection',
      bbox: [0, 0, 1, 1],
      features: [
        { type: 'Feature', properties: { highway: 'primary', lanes: 2, oneway: true, note: null }, geometry: { type: 'MultiLineString', coordinates: [[[0, 0], [0.5, 0]], [[0.5, 0.1], [1, 0.1, 12]]] } },
        { type: 'Feature', properties: { waterway: 'river' }, geometry: { type: 'LineString', coordinates: [[0, 0], [1, 1]] } },
        { type: 'Feature', properties: null, geometry: null },
      ],
    };
    const split = readRoadFile(Buffer.from(JSON.stringify(multi)), 'roads.json');
    expect(split.bbox).toEqual([0, 0, 1, 1]);
    expect(split.roads.features.map((f) => [f.properties, f.geometry.coordinates])).toEqual([
      [{ highway: 'primary', lanes: '2', oneway: 'true', '@id': 'feature/0' }, [[0, 0], [0.5, 0]]],
      [{ highway: 'primary', lanes: '2', oneway: 'true', '@id': 'feature/0' }, [[0.5, 0.1], [1, 0.1]]],
    ]);
  });

  it('chooses the reader by extension, and reads a saved Overpass answer from .json', () => {
    expect(readRoadFile(data('german-street.osm'), 'Kirchberg.OSM').roads.features).toHaveLength(14);
    expect(readRoadFile(Buffer.from(JSON.stringify({ version: 0.6, elements: [] })), 'overpass.json').roads.features).toEqual([]);
  });

  it.each([
    ['a .txt file', Buffer.from('highway=residential'), 'roads.txt'],
    ['a file without an extension', data('german-street.osm'), 'german-street'],
    ['XML named .pbf', data('german-street.osm'), 'german-street.osm.pbf'],
    ['PBF named .osm', monacoBytes.subarray(0, 4096), 'monaco.osm'],
    ['Latin-1 named .osm', Buffer.from('<osm><node id="1" lat="1" lon="2"><tag k="name" v="caf\xe9"/></node></osm>', 'latin1'), 'latin.osm'],
    ['broken JSON', Buffer.from('{"type": "FeatureCollection", '), 'roads.geojson'],
    ['JSON that is no FeatureCollection', Buffer.from('{"type": "Feature"}'), 'roads.geojson'],
    ['a line with one position', Buffer.from('{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"highway":"x"},"geometry":{"type":"LineString","coordinates":[[0,0]]}}]}'), 'roads.geojson'],
    ['a position that is text', Buffer.from('{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"highway":"x"},"geometry":{"type":"LineString","coordinates":[["0","0"],[1,1]]}}]}'), 'roads.geojson'],
  ])('refuses %s with OsmFormatError', (_, bytes, name) => {
    expect(outcome(() => readRoadFile(bytes, name))).toBe('OsmFormatError');
  });
});

describe('CLI payloads', () => {
  it('import-roads: the file read by extension, named after it, with its bbox and source', () => {
    const { payload, extract } = roadImport(data('german-street.osm'), 'test/plugins/cluster/data/german-street.osm');
    expect(payload.name).toBe('german-street');
    expect(payload.source).toBe('osm-xml');
    expect(payload.bbox).toEqual([10.068, 48.135, 10.071, 48.137]);
    expect(payload.roads).toBe(extract.roads);
    expect(roadImport(data('west-oakland.osm'), 'West Oakland.osm', 'Oakland').payload).toMatchObject({ name: 'Oakland', source: 'osm-xml' });
    expect(roadImport(data('west-oakland.geojson'), 'west-oakland.geojson').payload).toMatchObject({ name: 'west-oakland', source: 'geojson', bbox: null });
  });

  it('import-addresses from OSM: 15 addressed buildings with footprints at their centroids, then the address node', () => {
    const { source, addresses } = addressesFromFile(data('german-street.osm'), 'german-street.osm');
    expect(source).toBe('import');
    expect(addresses).toHaveLength(16);
    expect(addresses.filter((a) => a.footprint)).toHaveLength(15);
    expect(addresses[0]).toMatchObject({ address: '19 Richard-Wagner-Straße', city: 'Kirchberg an der Iller', state: '' });
    expect(addresses.at(-1)).toEqual({ address: '20 Richard-Wagner-Straße', city: 'Kirchberg an der Iller', state: '', latitude: 48.1361912, longitude: 10.0707279 });
    for (const address of addresses.filter((a) => a.footprint)) {
      expect(booleanPointInPolygon([address.longitude!, address.latitude!], address.footprint!)).toBe(true);
    }
    // A building clipped to one node (12 Goethestraße) has no footprint and is not an address.
    expect(addresses.map((a) => a.address)).not.toContain('12 Goethestraße');
  });

  it('import-addresses from CSV: either header, quoted fields, blank lines, missing coordinates', () => {
    // The shape of the original's host_homes.csv (blank line included) and of the county CSV.
    expect(addressesFromCsv('address,city,state,latitude,longitude\n\n931 Stone Slope Ln SW,Rochester,Minnesota,44.011942,-92.506961\n')).toEqual([
      { address: '931 Stone Slope Ln SW', city: 'Rochester', state: 'Minnesota', latitude: 44.011942, longitude: -92.506961 },
    ]);
    const county = '\uFEFFaddress,city,postcode,latitude,longitude\r\n"2214 2 ST SW, APT D",ROCHESTER,55902,44.0214176,-92.4980461\r\n"116 1/2 ""B"" 21 ST SW",ROCHESTER,55902,,\r\n';
    expect(addressesFromFile(Buffer.from(county), 'addresses.CSV').addresses).toEqual([
      { address: '2214 2 ST SW, APT D', city: 'ROCHESTER', state: '', latitude: 44.0214176, longitude: -92.4980461 },
      { address: '116 1/2 "B" 21 ST SW', city: 'ROCHESTER', state: '', latitude: null, longitude: null },
    ]);
  });

  it.each([
    ['an empty file', '', /empty/],
    ['no latitude column', 'address,city,lat,lon\n1 A St,X,1,2\n', /no "latitude" column/],
    ['a short row', 'address,city,state,latitude,longitude\n1 A St,X,MN,44\n', /line 2: 4 fields/],
    ['a bad latitude', 'address,city,state,latitude,longitude\n1 A St,X,MN,44.0,-92\n2 B St,X,MN,north,-92\n', /line 3: latitude "north"/],
    ['a latitude without longitude', 'address,latitude,longitude\n1 A St,44,\n', /line 2/],
    ['an empty address', 'address,latitude,longitude\n ,44,-92\n', /line 2: the address is empty/],
    ['an unclosed quote', 'address,latitude,longitude\n"1 A St,44,-92\n', /never closed/],
    ['text after a quote', 'address,latitude,longitude\n"1 A St"x,44,-92\n', /after a closing quote/],
  ])('refuses a CSV with %s', (_, csv, message) => {
    expect(() => addressesFromCsv(csv)).toThrow(OsmFormatError);
    expect(() => addressesFromCsv(csv)).toThrow(message);
  });

  describe('npm run cluster, against a stub hub', () => {
    const run = promisify(execFile);
    const cli = fileURLToPath(new URL('../../../plugins/cluster/cli.ts', import.meta.url));
    const file = fileURLToPath(new URL('./data/german-street.osm', import.meta.url));
    let server: Server;
    let url: string;
    const seen: { url?: string; authorization?: string; body: unknown }[] = [];

    beforeAll(async () => {
      server = createServer((request, response) => {
        const chunks: Buffer[] = [];
        request.on('data', (chunk: Buffer) => chunks.push(chunk));
        request.on('end', () => {
          seen.push({ url: request.url, authorization: request.headers.authorization, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) });
          if (request.headers.authorization === 'Bearer mhub_good') response.writeHead(201, { 'content-type': 'application/json' }).end('{"id":"1","ways":14,"barrierWays":4}');
          else response.writeHead(401, { 'content-type': 'application/json' }).end('{"error":{"code":"HUB_ERR_UNAUTHENTICATED","message":"Authentication required"}}');
        });
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    afterAll(async () => {
      await new Promise((resolve) => server.close(resolve));
    });

    it('POSTs the roads with the token from HUB_TOKEN and prints the answer; a refusal exits 1 with the error JSON', async () => {
      const env = { ...process.env, HUB_TOKEN: 'mhub_good', HUB_URL: url };
      const [ok, refused] = await Promise.all([
        run(process.execPath, ['--import', 'tsx', cli, 'import-roads', file, '--name', 'Kirchberg'], { env }),
        run(process.execPath, ['--import', 'tsx', cli, 'import-addresses', file, '--url', url, '--token', 'mhub_bad'], { env }).catch((error: { code: number; stdout: string; stderr: string }) => error),
      ]);
      expect(JSON.parse(ok.stdout)).toEqual({ id: '1', ways: 14, barrierWays: 4 });
      expect(ok.stderr).toContain('osm-xml, 281 nodes, 56 ways → 14 road lines');
      expect('code' in refused && refused.code).toBe(1);
      expect(JSON.parse(refused.stdout)).toEqual({ error: { code: 'HUB_ERR_UNAUTHENTICATED', message: 'Authentication required' } });

      const roads = seen.find((request) => request.url === '/api/plugins/cluster/roads')!;
      expect(roads.authorization).toBe('Bearer mhub_good');
      expect(roads.body).toMatchObject({ name: 'Kirchberg', source: 'osm-xml', bbox: [10.068, 48.135, 10.071, 48.137], roads: { type: 'FeatureCollection' } });
      expect((roads.body as { roads: FeatureCollection }).roads.features).toHaveLength(14);
      const addresses = seen.find((request) => request.url === '/api/plugins/cluster/addresses')!;
      expect(addresses.body).toMatchObject({ source: 'import' });
      expect((addresses.body as { addresses: unknown[] }).addresses).toHaveLength(16);
    });
  });
});
