/**
 * Route ordering (SPEC §2.5 F): the order one mower visits a cluster's yards, starting and
 * ending at the host. Exact (every order) for small clusters; nearest neighbour, 2-opt and
 * Or-opt above. Ties go to the orientation whose first yard is nearer the host, then by id, so
 * the same cluster always gets the same route.
 *
 * @module
 */

/**
 * `distance[i][j]` between stops; stop 0 is the host, stops 1..n the members (whose ids are
 * `ids[i - 1]`). Returns the member ids in visiting order and the tour's length.
 */
export function orderRoute(ids: string[], distance: number[][], exactMaxN: number): { order: string[]; lengthM: number } {
  const n = ids.length;
  if (n === 0) return { order: [], lengthM: 0 };
  const stops = Array.from({ length: n }, (_, i) => i + 1);
  const tour = n < exactMaxN ? bestPermutation(stops, distance) : improve(nearestNeighbour(stops, distance), distance);
  const oriented = orient(tour, distance, ids);
  return { order: oriented.map((stop) => ids[stop - 1]!), lengthM: Math.round(tourLength(oriented, distance) * 100) / 100 };
}

function tourLength(tour: number[], d: number[][]): number {
  let length = 0;
  let at = 0;
  for (const stop of tour) {
    length += d[at]![stop]!;
    at = stop;
  }
  return length + d[at]![0]!;
}

const EPSILON = 1e-9;

/** Every order (Heap's algorithm would be faster, but lexicographic order keeps ties stable). */
function bestPermutation(stops: number[], d: number[][]): number[] {
  let best = stops;
  let bestLength = tourLength(stops, d);
  const current = [...stops];
  while (nextPermutation(current)) {
    const length = tourLength(current, d);
    if (length < bestLength - EPSILON) {
      best = [...current];
      bestLength = length;
    }
  }
  return best;
}

function nextPermutation(a: number[]): boolean {
  let i = a.length - 2;
  while (i >= 0 && a[i]! >= a[i + 1]!) i--;
  if (i < 0) return false;
  let j = a.length - 1;
  while (a[j]! <= a[i]!) j--;
  [a[i], a[j]] = [a[j]!, a[i]!];
  a.splice(i + 1, a.length - i - 1, ...a.slice(i + 1).reverse());
  return true;
}

function nearestNeighbour(stops: number[], d: number[][]): number[] {
  const left = new Set(stops);
  const tour: number[] = [];
  let at = 0;
  while (left.size) {
    let next = -1;
    for (const s of left) if (next < 0 || d[at]![s]! < d[at]![next]! - EPSILON) next = s;
    tour.push(next);
    left.delete(next);
    at = next;
  }
  return tour;
}

/** 2-opt and Or-opt moves until neither shortens the tour. */
function improve(tour: number[], d: number[][]): number[] {
  let best = tour;
  let bestLength = tourLength(best, d);
  for (let improved = true; improved; ) {
    improved = false;
    for (const candidate of neighbours(best)) {
      const length = tourLength(candidate, d);
      if (length < bestLength - EPSILON) {
        best = candidate;
        bestLength = length;
        improved = true;
        break;
      }
    }
  }
  return best;
}

/** Tours one move away: a reversed stretch (2-opt) or a stretch of 1–3 stops moved elsewhere (Or-opt). */
function* neighbours(tour: number[]): Generator<number[]> {
  const n = tour.length;
  for (let i = 0; i < n - 1; i++) {
    for (let j = i + 1; j < n; j++) yield [...tour.slice(0, i), ...tour.slice(i, j + 1).reverse(), ...tour.slice(j + 1)];
  }
  for (let size = 1; size <= 3; size++) {
    for (let i = 0; i + size <= n; i++) {
      const stretch = tour.slice(i, i + size);
      const rest = [...tour.slice(0, i), ...tour.slice(i + size)];
      for (let k = 0; k <= rest.length; k++) if (k !== i) yield [...rest.slice(0, k), ...stretch, ...rest.slice(k)];
    }
  }
}

/** A tour and its reverse are equally long: take the one whose first stop is nearer the host, then the smaller id. */
function orient(tour: number[], d: number[][], ids: string[]): number[] {
  const reversed = [...tour].reverse();
  if (Math.abs(tourLength(reversed, d) - tourLength(tour, d)) > EPSILON) return tour;
  const [a, b] = [tour[0]!, reversed[0]!];
  const nearer = d[0]![a]! - d[0]![b]!;
  if (Math.abs(nearer) > EPSILON) return nearer < 0 ? tour : reversed;
  return ids[a - 1]! <= ids[b - 1]! ? tour : reversed;
}
