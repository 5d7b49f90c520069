/**
 * Noding (SPEC §2.5 A 3–4): barrier lines cut into segments that meet only at their ends, which
 * `turf.polygonize` requires ("edges must be correctly noded"). OSM bridges and bad joins cross
 * without a shared node; T-junctions and collinear overlaps touch mid-segment. Coordinates are
 * snapped to OSM's 1e-7° grid and handled as integers there, so every orientation test is exact
 * and the two halves of a split meet at the very same point.
 *
 * @module
 */
import Flatbush from 'flatbush';
import { orient } from './geometry.js';
import type { LonLat } from './plane.js';

const GRID = 1e7;

/** A noded segment: `a` < `b` lexicographically; `way` indexes the input lines (−1 for the extent ring). */
export interface NodedSegment {
  a: LonLat;
  b: LonLat;
  way: number;
}

export interface BarrierLine {
  coordinates: LonLat[];
  /** Index of the source way, or −1 for the extent ring. */
  way: number;
}

interface GridSegment {
  ax: number;
  ay: number;
  bx: number;
  by: number;
  way: number;
  /** Points (grid) where other segments touch or cross this one's interior. */
  cuts: number[];
}

/** Cuts `lines` into noded segments, without zero-length or duplicate (either direction) ones, sorted. */
export function nodeLines(lines: BarrierLine[]): NodedSegment[] {
  const origin = gridOrigin(lines);
  const segments = explode(lines, origin);
  findCuts(segments);
  return toLonLat(splitAtCuts(segments), origin);
}

function gridOrigin(lines: BarrierLine[]): [number, number] {
  let x = Infinity;
  let y = Infinity;
  for (const line of lines) {
    for (const [lon, lat] of line.coordinates) {
      x = Math.min(x, Math.round(lon * GRID));
      y = Math.min(y, Math.round(lat * GRID));
    }
  }
  return Number.isFinite(x) ? [x, y] : [0, 0];
}

function explode(lines: BarrierLine[], [ox, oy]: [number, number]): GridSegment[] {
  const seen = new Set<string>();
  const segments: GridSegment[] = [];
  for (const line of lines) {
    for (let i = 1; i < line.coordinates.length; i++) {
      const [ax, ay] = toGrid(line.coordinates[i - 1]!, ox, oy);
      const [bx, by] = toGrid(line.coordinates[i]!, ox, oy);
      addSegment(segments, seen, ax, ay, bx, by, line.way);
    }
  }
  return segments;
}

function addSegment(segments: GridSegment[], seen: Set<string>, ax: number, ay: number, bx: number, by: number, way: number): void {
  if (ax === bx && ay === by) return;
  const forward = ax < bx || (ax === bx && ay < by);
  const segment = forward ? { ax, ay, bx, by, way, cuts: [] } : { ax: bx, ay: by, bx: ax, by: ay, way, cuts: [] };
  const key = `${segment.ax},${segment.ay},${segment.bx},${segment.by}`;
  if (seen.has(key)) return;
  seen.add(key);
  segments.push(segment);
}

function toGrid([lon, lat]: LonLat, ox: number, oy: number): [number, number] {
  return [Math.round(lon * GRID) - ox, Math.round(lat * GRID) - oy];
}

function findCuts(segments: GridSegment[]): void {
  if (segments.length === 0) return;
  const index = new Flatbush(segments.length);
  for (const s of segments) index.add(Math.min(s.ax, s.bx), Math.min(s.ay, s.by), Math.max(s.ax, s.bx), Math.max(s.ay, s.by));
  index.finish();
  segments.forEach((p, i) => {
    for (const j of index.search(Math.min(p.ax, p.bx), Math.min(p.ay, p.by), Math.max(p.ax, p.bx), Math.max(p.ay, p.by))) {
      if (j > i) cutPair(p, segments[j]!);
    }
  });
}

/** Records where p and q touch or cross each other's interiors. */
function cutPair(p: GridSegment, q: GridSegment): void {
  const o1 = orient(p.ax, p.ay, p.bx, p.by, q.ax, q.ay);
  const o2 = orient(p.ax, p.ay, p.bx, p.by, q.bx, q.by);
  const o3 = orient(q.ax, q.ay, q.bx, q.by, p.ax, p.ay);
  const o4 = orient(q.ax, q.ay, q.bx, q.by, p.bx, p.by);
  // An endpoint on the other segment's interior: a T-junction, or the ends of a collinear overlap.
  if (o1 === 0) cutAtEnd(p, q.ax, q.ay);
  if (o2 === 0) cutAtEnd(p, q.bx, q.by);
  if (o3 === 0) cutAtEnd(q, p.ax, p.ay);
  if (o4 === 0) cutAtEnd(q, p.bx, p.by);
  if (Math.sign(o1) * Math.sign(o2) < 0 && Math.sign(o3) * Math.sign(o4) < 0) {
    const t = o3 / (o3 - o4);
    const x = Math.round(p.ax + t * (p.bx - p.ax));
    const y = Math.round(p.ay + t * (p.by - p.ay));
    p.cuts.push(x, y);
    q.cuts.push(x, y);
  }
}

/** Cuts s at (x, y) when that point, known to be on s's line, lies strictly between its ends. */
function cutAtEnd(s: GridSegment, x: number, y: number): void {
  const along = (x - s.ax) * (s.bx - s.ax) + (y - s.ay) * (s.by - s.ay);
  const length2 = (s.bx - s.ax) ** 2 + (s.by - s.ay) ** 2;
  if (along > 0 && along < length2) s.cuts.push(x, y);
}

function splitAtCuts(segments: GridSegment[]): GridSegment[] {
  const seen = new Set<string>();
  const out: GridSegment[] = [];
  for (const s of segments) {
    const points: [number, number, number][] = [[s.ax, s.ay, 0]];
    for (let k = 0; k < s.cuts.length; k += 2) {
      const x = s.cuts[k]!;
      const y = s.cuts[k + 1]!;
      points.push([x, y, (x - s.ax) * (s.bx - s.ax) + (y - s.ay) * (s.by - s.ay)]);
    }
    points.push([s.bx, s.by, Infinity]);
    points.sort((u, v) => u[2] - v[2]);
    for (let k = 1; k < points.length; k++) {
      const [ax, ay] = points[k - 1]!;
      const [bx, by] = points[k]!;
      addSegment(out, seen, ax, ay, bx, by, s.way);
    }
  }
  return out.sort((u, v) => u.ax - v.ax || u.ay - v.ay || u.bx - v.bx || u.by - v.by);
}

/** Back to lon/lat, every grid point as one shared coordinate array (polygonize matches them exactly). */
function toLonLat(segments: GridSegment[], [ox, oy]: [number, number]): NodedSegment[] {
  const points = new Map<string, LonLat>();
  const point = (x: number, y: number): LonLat => {
    const key = `${x},${y}`;
    let p = points.get(key);
    if (!p) {
      p = [(x + ox) / GRID, (y + oy) / GRID];
      points.set(key, p);
    }
    return p;
  };
  return segments.map((s) => ({ a: point(s.ax, s.ay), b: point(s.bx, s.by), way: s.way }));
}

