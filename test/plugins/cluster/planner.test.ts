/**
 * The cluster planner's first pieces on real OpenStreetMap extracts (test/plugins/cluster/data,
 * ODbL): which ways are barriers, the local plane, address identity.
 */
import { readFileSync } from 'node:fs';
import type { FeatureCollection } from 'geojson';
import { describe, expect, it } from 'vitest';
import { addressKey, barrierVerdict, barrierWays, LocalPlane, normaliseState, normaliseStreet } from '../../../plugins/cluster/planner/index.js';

const load = (name: string) => JSON.parse(readFileSync(new URL(`./data/${name}`, import.meta.url), 'utf8')) as FeatureCollection;
const names = (ways: ReturnType<typeof barrierWays>) => ways.map((w) => `${String(w.properties.highway)}:${String(w.properties.name ?? w.properties.id)}`).sort();

describe('barrier ways (SPEC §2.4)', () => {
  it('on the German street: the residential streets, not the private driveways or the tracks', () => {
    const ways = barrierWays(load('german-street.geojson'));
    expect(ways.map((w) => w.properties.highway)).toEqual(['residential', 'residential', 'residential', 'residential']);
    expect(names(ways).join(',')).toContain('Haydnstraße'); // the dead end with the turning circle is still a road
  });

  it('in West Oakland: streets are barriers; footways, the cycleway, parking aisles and private service ways are not; the alley by switch', () => {
    const roads = load('west-oakland.geojson');
    const ways = barrierWays(roads);
    const classes = ways.map((w) => String(w.properties.highway));
    expect(classes.filter((c) => c === 'residential')).toHaveLength(9);
    expect(classes.filter((c) => c === 'secondary')).toHaveLength(5);
    expect(classes.filter((c) => c === 'unclassified')).toHaveLength(3);
    expect(ways).toHaveLength(17);
    const withAlleys = barrierWays(roads, { serviceAlleysAreBarriers: true, countPrivateRoads: true });
    expect(withAlleys).toHaveLength(18);
    expect(withAlleys.filter((w) => w.properties.service === 'alley')).toHaveLength(1);
  });

  it.each([
    [{ highway: 'residential', tunnel: 'yes' }, false],
    [{ highway: 'primary', covered: 'yes' }, false],
    [{ highway: 'residential', area: 'yes' }, false],
    [{ highway: 'residential', motor_vehicle: 'no' }, false],
    [{ highway: 'residential', motorcar: 'no' }, false],
    [{ highway: 'secondary', bridge: 'yes' }, true],
    [{ highway: 'residential', access: 'private' }, true],
    [{ highway: 'living_street' }, true],
    [{ highway: 'track' }, false],
    [{ highway: 'footway', footway: 'sidewalk' }, false],
    [{ highway: 'service', service: 'driveway', access: 'private' }, false],
    [{ building: 'yes' }, false],
  ])('%j → %s', (tags, barrier) => {
    expect(barrierVerdict(tags).barrier).toBe(barrier);
  });

  it('drops private streets only when told to', () => {
    expect(barrierVerdict({ highway: 'residential', access: 'private' }, { serviceAlleysAreBarriers: false, countPrivateRoads: false })).toEqual({ barrier: false, why: 'private' });
  });
});

describe('local plane (SPEC §2.3)', () => {
  const plane = new LocalPlane([-92.5069, 44.0119]);

  it('measures like the great circle at cluster scale', () => {
    // 931 and 925 Stone Slope Ln SW, the original's one real pair
    const a: [number, number] = [-92.506961, 44.011942];
    const b: [number, number] = [-92.506588, 44.012024];
    const haversine = (() => {
      const R = 6_371_008.8;
      const φ1 = (a[1] * Math.PI) / 180;
      const φ2 = (b[1] * Math.PI) / 180;
      const dφ = φ2 - φ1;
      const dλ = ((b[0] - a[0]) * Math.PI) / 180;
      const h = Math.sin(dφ / 2) ** 2 + Math.cos(φ1) * Math.cos(φ2) * Math.sin(dλ / 2) ** 2;
      return 2 * R * Math.asin(Math.sqrt(h));
    })();
    expect(plane.distance(a, b)).toBeCloseTo(haversine, 2);
    expect(plane.distance(a, b)).toBeGreaterThan(30);
    expect(plane.distance(a, b)).toBeLessThan(32);
  });

  it('goes back and forth without drift', () => {
    const point: [number, number] = [-92.5, 44.02];
    const [lon, lat] = plane.toLonLat(plane.toXY(point));
    expect(lon).toBeCloseTo(point[0], 10);
    expect(lat).toBeCloseTo(point[1], 10);
  });
});

describe('address identity (SPEC §2.5 B)', () => {
  it.each([
    ['931 Stone Slope Lane S.W.', '931 STONE SLOPE LN SW'],
    ['931 STONE SLOPE LN SW', '931 STONE SLOPE LN SW'],
    ['2659 9th Street Southwest', '2659 9 ST SW'],
    ['116 1/2 21 St SW', '116 1/2 21 ST SW'],
    ['  3110  Golfview   Lane, SW ', '3110 GOLFVIEW LN SW'],
    ['12 Goethestraße', '12 GOETHESTRASSE'],
  ])('%s → %s', (street, normalised) => {
    expect(normaliseStreet(street)).toBe(normalised);
  });

  it('makes differently typed addresses of one home equal, and different homes not', () => {
    expect(addressKey('931 Stone Slope Lane S.W.', 'Rochester')).toBe(addressKey('931 STONE SLOPE LN SW', 'ROCHESTER'));
    expect(addressKey('1 Main St', 'Rochester')).not.toBe(addressKey('11 Main St', 'Rochester')); // the original's substring match confused these
  });

  it('turns state names into USPS codes', () => {
    expect(normaliseState('Minnesota')).toBe('MN');
    expect(normaliseState('new york')).toBe('NY');
    expect(normaliseState('mn')).toBe('MN');
  });
});
