/**
 * Planar segment geometry in the local metric plane: the distances the clearance test and the
 * detour search are made of.
 *
 * @module
 */

// Squared distances: the clearance test runs millions of times per plan-all and needs no roots.

/** Squared distance from point (px, py) to segment (ax, ay)–(bx, by). */
export function pointSegmentDistance2(px: number, py: number, ax: number, ay: number, bx: number, by: number): number {
  const dx = bx - ax;
  const dy = by - ay;
  const lengthSquared = dx * dx + dy * dy;
  let t = lengthSquared === 0 ? 0 : ((px - ax) * dx + (py - ay) * dy) / lengthSquared;
  t = t < 0 ? 0 : t > 1 ? 1 : t;
  const ex = px - (ax + t * dx);
  const ey = py - (ay + t * dy);
  return ex * ex + ey * ey;
}

/** Squared distance between segments p1–p2 and q1–q2: zero when they touch or cross. */
export function segmentSegmentDistance2(
  p1x: number, p1y: number, p2x: number, p2y: number,
  q1x: number, q1y: number, q2x: number, q2y: number,
): number {
  if (segmentsCross(p1x, p1y, p2x, p2y, q1x, q1y, q2x, q2y)) return 0;
  return Math.min(
    pointSegmentDistance2(p1x, p1y, q1x, q1y, q2x, q2y),
    pointSegmentDistance2(p2x, p2y, q1x, q1y, q2x, q2y),
    pointSegmentDistance2(q1x, q1y, p1x, p1y, p2x, p2y),
    pointSegmentDistance2(q2x, q2y, p1x, p1y, p2x, p2y),
  );
}

/** Whether two segments properly cross (touching is caught by the endpoint distances). */
function segmentsCross(p1x: number, p1y: number, p2x: number, p2y: number, q1x: number, q1y: number, q2x: number, q2y: number): boolean {
  const o1 = orient(p1x, p1y, p2x, p2y, q1x, q1y);
  const o2 = orient(p1x, p1y, p2x, p2y, q2x, q2y);
  const o3 = orient(q1x, q1y, q2x, q2y, p1x, p1y);
  const o4 = orient(q1x, q1y, q2x, q2y, p2x, p2y);
  return ((o1 > 0 && o2 < 0) || (o1 < 0 && o2 > 0)) && ((o3 > 0 && o4 < 0) || (o3 < 0 && o4 > 0));
}

/** Twice the signed area of triangle a, b, c: > 0 when c is left of a→b. */
export function orient(ax: number, ay: number, bx: number, by: number, cx: number, cy: number): number {
  return (bx - ax) * (cy - ay) - (by - ay) * (cx - ax);
}
