/**
 * Pair evaluation (SPEC §2.5 C): can the host's mower reach a candidate without crossing a
 * road? The decision order is fixed and the first rule that matches gives the reason.
 *
 * @module
 */
import { boundedDetour } from './detour.js';
import type { RoadModel } from './model.js';
import type { XY } from './plane.js';
import type { HomeStatus, PairResult, PlannerConfig, Reason } from './types.js';

/** What pair evaluation needs of a prepared home. */
export interface PairHome {
  id: string;
  status: HomeStatus;
  xy: XY | null;
  key: string | null;
  canonicalId: string | null;
  block: number;
}

export function evaluatePair(model: RoadModel, config: PlannerConfig, host: PairHome, candidate: PairHome): PairResult {
  const d = host.xy && candidate.xy ? Math.hypot(candidate.xy[0] - host.xy[0], candidate.xy[1] - host.xy[1]) : Infinity;
  const sameBlock = host.block === candidate.block;
  const result = (reason: Reason, pathM: number | null, lineClear = false): PairResult => ({
    candidateId: candidate.id,
    distM: centimetres(d),
    pathM: pathM === null ? null : centimetres(pathM),
    reason,
    qualified: pathM !== null,
    sameBlock,
    lineClear,
  });

  if (candidate.status !== 'ok') return result(candidate.status === 'duplicate' && candidate.canonicalId === host.id ? 'duplicate_of_host' : candidate.status, null);
  if (!(d <= config.radiusM)) return result('out_of_radius', null);
  if (host.key !== null && host.key === candidate.key) return result('duplicate_of_host', null);
  if (d < config.colocatedM) return result('colocated', d);
  const [hx, hy] = host.xy!;
  const [cx, cy] = candidate.xy!;
  const lineClear = model.isClear(hx, hy, cx, cy, config.roadHalfWidthM);
  if (config.adjacency === 'line-of-sight') return lineClear ? result('direct', d, true) : result('crosses_road', null);
  if (!sameBlock) return result('different_block', null, lineClear);
  if (lineClear) return result('direct', d, true);
  const detour = boundedDetour(model, [hx, hy], [cx, cy], {
    maxLength: config.maxDetourFactor * d,
    halfWidth: config.roadHalfWidthM,
    maxVertices: config.maxDetourVertices,
  });
  return detour.lengthM === null ? result('detour_too_long', null) : result('detour', detour.lengthM);
}

/** Distances are reported to the centimetre: finer is noise, and it keeps outputs byte-stable. */
export function centimetres(metres: number): number {
  return Math.round(metres * 100) / 100;
}
