/**
 * The bounded detour (SPEC §2.5 D): the shortest clear path between two homes when the straight
 * line is blocked, e.g. around the tip of a cul-de-sac. A visibility graph over waypoints set
 * round the barrier vertices, searched with A*, confined to the ellipse of paths no longer than
 * the limit. It overestimates the exact clear geodesic by about 1–2 %.
 *
 * @module
 */
import { OCTAGON, type RoadModel } from './model.js';

/** Octagon waypoints at this radius keep their chords `halfWidth` away from the vertex they surround. */
const WAYPOINT_RADIUS = 1.02 / Math.cos(Math.PI / 8);

export type DetourResult = { lengthM: number } | { lengthM: null; tooComplex: boolean };

/**
 * The length of the shortest clear path from h to c no longer than `maxLength`, or null (and
 * whether the search was refused because more than `maxVertices` barrier vertices were in reach).
 */
export function boundedDetour(
  model: RoadModel,
  [hx, hy]: [number, number],
  [cx, cy]: [number, number],
  options: { maxLength: number; halfWidth: number; maxVertices: number },
): DetourResult {
  const { maxLength, halfWidth } = options;
  const reach = maxLength + 2 * halfWidth;
  const inEllipse = (x: number, y: number, limit: number) => distance(x - hx, y - hy) + distance(x - cx, y - cy) <= limit;
  const midX = (hx + cx) / 2;
  const midY = (hy + cy) / 2;
  const at = model.vertices;
  const vertices = model.verticesIn(midX - reach / 2, midY - reach / 2, midX + reach / 2, midY + reach / 2).filter((v) => inEllipse(at[v * 2]!, at[v * 2 + 1]!, reach));
  if (vertices.length > options.maxVertices) return { lengthM: null, tooComplex: true };

  // Node 0 is h, node 1 is c, the rest are waypoints.
  const xs = [hx, cx];
  const ys = [hy, cy];
  const radius = halfWidth * WAYPOINT_RADIUS;
  for (const v of vertices) {
    const clear = model.detourWaypoints(v, radius, halfWidth);
    for (let k = 0; k < 8; k++) {
      const x = at[v * 2]! + OCTAGON[k]![0] * radius;
      const y = at[v * 2 + 1]! + OCTAGON[k]![1] * radius;
      if (clear & (1 << k) && inEllipse(x, y, maxLength)) {
        xs.push(x);
        ys.push(y);
      }
    }
  }
  const lengthM = aStar(xs, ys, maxLength, (a, b) => model.isClear(xs[a]!, ys[a]!, xs[b]!, ys[b]!, halfWidth));
  return lengthM === null ? { lengthM: null, tooComplex: false } : { lengthM };
}

/**
 * A* from node 0 to node 1 over the complete graph of the nodes, with the Euclidean heuristic;
 * an edge's clearance is tested only when it would improve a node, and the search stops once
 * every open path must exceed `maxLength`.
 */
function aStar(xs: number[], ys: number[], maxLength: number, isClear: (a: number, b: number) => boolean): number | null {
  const n = xs.length;
  const g = new Float64Array(n).fill(Infinity);
  const h = xs.map((x, i) => distance(x - xs[1]!, ys[i]! - ys[1]!));
  const closed = new Uint8Array(n);
  g[0] = 0;
  const limit = maxLength + 1e-9;
  for (;;) {
    let u = -1;
    for (let i = 0; i < n; i++) if (!closed[i] && g[i]! < Infinity && (u < 0 || g[i]! + h[i]! < g[u]! + h[u]!)) u = i;
    if (u < 0 || g[u]! + h[u]! > limit) return null;
    if (u === 1) return g[1]!;
    closed[u] = 1;
    for (let v = 1; v < n; v++) {
      if (closed[v]) continue;
      const through = g[u]! + distance(xs[v]! - xs[u]!, ys[v]! - ys[u]!);
      if (through < g[v]! && through + h[v]! <= limit && isClear(u, v)) g[v] = through;
    }
  }
}

/** Math.hypot is several times slower, and these inputs cannot overflow. */
const distance = (dx: number, dy: number) => Math.sqrt(dx * dx + dy * dy);
