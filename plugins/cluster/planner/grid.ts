/**
 * A uniform grid over the barrier segments for the clearance test, the planner's hottest
 * question (millions per plan-all). Unlike a bbox tree it visits only the cells along a
 * diagonal segment, stops at the first blocking road, and allocates nothing per query.
 *
 * @module
 */
import { segmentSegmentDistance2 } from './geometry.js';

const CELL_M = 20;
/** Keeps the grid's memory bounded on very large extents (cells grow instead). */
const MAX_CELLS = 1 << 20;

export class SegmentGrid {
  readonly #xy: Float64Array;
  readonly #x0: number;
  readonly #y0: number;
  readonly #cell: number;
  readonly #cols: number;
  readonly #rows: number;
  /** CSR layout: segments of cell c are items[start[c] .. start[c + 1]). */
  readonly #start: Int32Array;
  readonly #items: Int32Array;
  /** Per segment: the query that last tested it, so a segment in several cells is tested once. */
  readonly #seen: Uint32Array;
  #query = 0;

  /** `xy` holds x1, y1, x2, y2 per segment; `box` is the plane's [minX, minY, maxX, maxY] the segments lie in. */
  constructor(xy: Float64Array, [minX, minY, maxX, maxY]: [number, number, number, number]) {
    this.#xy = xy;
    const width = Math.max(maxX - minX, 1);
    const height = Math.max(maxY - minY, 1);
    this.#cell = Math.max(CELL_M, Math.sqrt((width * height) / MAX_CELLS));
    this.#x0 = minX;
    this.#y0 = minY;
    this.#cols = Math.ceil(width / this.#cell) + 1;
    this.#rows = Math.ceil(height / this.#cell) + 1;
    const count = xy.length / 4;
    this.#seen = new Uint32Array(count);
    const counts = new Int32Array(this.#cols * this.#rows + 1);
    this.#eachCell(count, (c) => counts[c + 1]!++);
    for (let c = 1; c < counts.length; c++) counts[c]! += counts[c - 1]!;
    this.#start = counts.slice();
    this.#items = new Int32Array(counts[counts.length - 1]!);
    this.#eachCell(count, (c, i) => (this.#items[counts[c]!++] = i));
  }

  /** Whether segment a–b keeps at least `halfWidth` from every segment. */
  isClear(ax: number, ay: number, bx: number, by: number, halfWidth: number): boolean {
    const query = ++this.#query;
    const limit = halfWidth * halfWidth;
    const reach = halfWidth + this.#cell * Math.SQRT1_2; // a cell's centre to its corners
    const c0 = this.#col(Math.min(ax, bx) - halfWidth);
    const c1 = this.#col(Math.max(ax, bx) + halfWidth);
    const r0 = this.#row(Math.min(ay, by) - halfWidth);
    const r1 = this.#row(Math.max(ay, by) + halfWidth);
    const xy = this.#xy;
    for (let r = r0; r <= r1; r++) {
      for (let c = c0; c <= c1; c++) {
        const cx = this.#x0 + (c + 0.5) * this.#cell;
        const cy = this.#y0 + (r + 0.5) * this.#cell;
        if (segmentSegmentDistance2(ax, ay, bx, by, cx, cy, cx, cy) > reach * reach) continue;
        const cell = r * this.#cols + c;
        for (let k = this.#start[cell]!; k < this.#start[cell + 1]!; k++) {
          const i = this.#items[k]!;
          if (this.#seen[i] === query) continue;
          this.#seen[i] = query;
          if (segmentSegmentDistance2(ax, ay, bx, by, xy[i * 4]!, xy[i * 4 + 1]!, xy[i * 4 + 2]!, xy[i * 4 + 3]!) < limit) return false;
        }
      }
    }
    return true;
  }

  /** Calls `visit(cell, segment)` for each cell a segment's bbox covers. */
  #eachCell(count: number, visit: (cell: number, segment: number) => void): void {
    const xy = this.#xy;
    for (let i = 0; i < count; i++) {
      const c0 = this.#col(Math.min(xy[i * 4]!, xy[i * 4 + 2]!));
      const c1 = this.#col(Math.max(xy[i * 4]!, xy[i * 4 + 2]!));
      const r0 = this.#row(Math.min(xy[i * 4 + 1]!, xy[i * 4 + 3]!));
      const r1 = this.#row(Math.max(xy[i * 4 + 1]!, xy[i * 4 + 3]!));
      for (let r = r0; r <= r1; r++) for (let c = c0; c <= c1; c++) visit(r * this.#cols + c, i);
    }
  }

  #col(x: number): number {
    return Math.min(this.#cols - 1, Math.max(0, Math.floor((x - this.#x0) / this.#cell)));
  }

  #row(y: number): number {
    return Math.min(this.#rows - 1, Math.max(0, Math.floor((y - this.#y0) / this.#cell)));
  }
}
