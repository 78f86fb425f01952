/**
 * Grid refinement for latency tables: find where the interpolant is poor and propose the extra
 * points to measure there.
 *
 * The test is leave-one-out along each axis: every interior grid line (a c_in value, or a c_out
 * value) is predicted by linear interpolation from its two neighbours, and compared with what was
 * measured on it. A large error means latency bends between the neighbours (a SIMD step, a cache
 * edge) so the interpolant is unreliable on both sides of that line: the midpoints of the two
 * adjacent intervals are proposed. Proposals are whole grid lines (the new c_in with every
 * measured c_out, and vice versa) so that the table stays a full grid.
 */
import { MorphError } from '../errors.ts';
import type { LatencyPoint, LatencyTable } from './latency-table.ts';

export interface RefinementOptions {
  /** Relative leave-one-out error above which a line is refined. Default 0.05 (5%). */
  readonly tolerance?: number;
  /** Round proposed channel counts to a multiple of this. Default 1. */
  readonly multiple?: number;
  /** Most points to propose (largest errors first). Default 64. */
  readonly maxPoints?: number;
}

export interface RefinementPoint {
  readonly cIn: number;
  readonly cOut: number;
  /** The axis along which the interpolant failed. */
  readonly axis: 'cIn' | 'cOut';
  /** The relative leave-one-out error that triggered the proposal. */
  readonly error: number;
}

interface LineFailure {
  readonly axis: 'cIn' | 'cOut';
  readonly newValues: number[];
  readonly error: number;
}

/**
 * Leave-one-out relative error of each interior knot of one axis. The allowance of a point is
 * the larger of `tolerance` and its own measured half-spread (p90 − p10)/(2·median): a line is not
 * refined for an error the measurement noise explains.
 */
function axisFailures(
  knots: readonly number[],
  at: (i: number, j: number) => LatencyPoint,
  otherCount: number,
  tolerance: number,
): { index: number; error: number }[] {
  const failures: { index: number; error: number }[] = [];
  for (let i = 1; i < knots.length - 1; i++) {
    const t = (knots[i] - knots[i - 1]) / (knots[i + 1] - knots[i - 1]);
    let worst = 0;
    let fails = false;
    for (let j = 0; j < otherCount; j++) {
      const p = at(i, j);
      const predicted = (1 - t) * at(i - 1, j).medianMs + t * at(i + 1, j).medianMs;
      const error = Math.abs(predicted - p.medianMs) / p.medianMs;
      const allowance = Math.max(tolerance, (p.p90Ms - p.p10Ms) / (2 * p.medianMs));
      worst = Math.max(worst, error);
      if (error > allowance) fails = true;
    }
    if (fails) failures.push({ index: i, error: worst });
  }
  return failures;
}

function midpoints(knots: readonly number[], i: number, multiple: number): number[] {
  const out: number[] = [];
  for (const [a, b] of [
    [knots[i - 1], knots[i]],
    [knots[i], knots[i + 1]],
  ]) {
    const m = Math.round((a + b) / 2 / multiple) * multiple;
    if (m > a && m < b) out.push(m);
  }
  return out;
}

/**
 * Points worth measuring to improve `table`'s interpolation, largest error first.
 * An axis needs at least three measured values to be tested.
 * @throws MorphError MORPH_ERR_BAD_ARGUMENT for a negative tolerance or a non-positive multiple.
 */
export function refinementPoints(table: LatencyTable, options: RefinementOptions = {}): RefinementPoint[] {
  const tolerance = options.tolerance ?? 0.05;
  const multiple = options.multiple ?? 1;
  const maxPoints = options.maxPoints ?? 64;
  if (!(Number.isFinite(tolerance) && tolerance >= 0)) throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `tolerance must be a finite number ≥ 0, got ${tolerance}`);
  if (!(Number.isInteger(multiple) && multiple >= 1)) throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `multiple must be an integer ≥ 1, got ${multiple}`);
  if (!(Number.isInteger(maxPoints) && maxPoints >= 0)) throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `maxPoints must be an integer ≥ 0, got ${maxPoints}`);

  const lines: LineFailure[] = [];
  if (table.mode === 'tied') {
    const pts = [...table.points].sort((a, b) => a.cIn - b.cIn);
    for (const f of axisFailures(table.cIns, (i) => pts[i], 1, tolerance)) {
      lines.push({ axis: 'cIn', newValues: midpoints(table.cIns, f.index, multiple), error: f.error });
    }
    const out: RefinementPoint[] = [];
    const seen = new Set<number>();
    for (const line of lines.sort((a, b) => b.error - a.error)) {
      for (const cIn of line.newValues) {
        if (seen.has(cIn) || out.length >= maxPoints) continue;
        seen.add(cIn);
        // c_out follows c_in as it does between the neighbours (c_out = m·c_in for depthwise).
        const k = table.cIns.findIndex((x) => x > cIn);
        const t = (cIn - table.cIns[k - 1]) / (table.cIns[k] - table.cIns[k - 1]);
        out.push({ cIn, cOut: Math.round((1 - t) * table.cOuts[k - 1] + t * table.cOuts[k]), axis: 'cIn', error: line.error });
      }
    }
    return out;
  }

  const byPoint = new Map(table.points.map((p) => [`${p.cIn},${p.cOut}`, p]));
  const grid = (cIn: number, cOut: number): LatencyPoint => byPoint.get(`${cIn},${cOut}`) as LatencyPoint;
  for (const f of axisFailures(table.cIns, (i, j) => grid(table.cIns[i], table.cOuts[j]), table.cOuts.length, tolerance)) {
    lines.push({ axis: 'cIn', newValues: midpoints(table.cIns, f.index, multiple), error: f.error });
  }
  for (const f of axisFailures(table.cOuts, (j, i) => grid(table.cIns[i], table.cOuts[j]), table.cIns.length, tolerance)) {
    lines.push({ axis: 'cOut', newValues: midpoints(table.cOuts, f.index, multiple), error: f.error });
  }
  return gridProposals(table, lines, maxPoints);
}

/**
 * Adds whole grid lines, largest error first, while the points they need fit in `maxPoints`; the
 * proposal is every point of the enlarged grid that is not measured yet, so the table stays a full
 * grid once they are.
 */
function gridProposals(table: LatencyTable, lines: LineFailure[], maxPoints: number): RefinementPoint[] {
  const newIn = new Map<number, number>();
  const newOut = new Map<number, number>();
  let count = 0;
  for (const line of [...lines].sort((a, b) => b.error - a.error)) {
    for (const value of line.newValues) {
      const mine = line.axis === 'cIn' ? newIn : newOut;
      if (mine.has(value)) continue;
      const cost = line.axis === 'cIn' ? table.cOuts.length + newOut.size : table.cIns.length + newIn.size;
      if (count + cost > maxPoints) continue;
      mine.set(value, line.error);
      count += cost;
    }
  }
  const out: RefinementPoint[] = [];
  for (const [cIn, error] of newIn) for (const cOut of table.cOuts) out.push({ cIn, cOut, axis: 'cIn', error });
  for (const [cOut, error] of newOut) for (const cIn of table.cIns) out.push({ cIn, cOut, axis: 'cOut', error });
  for (const [cIn, eIn] of newIn) {
    for (const [cOut, eOut] of newOut) out.push({ cIn, cOut, axis: eIn >= eOut ? 'cIn' : 'cOut', error: Math.max(eIn, eOut) });
  }
  return out.sort((a, b) => b.error - a.error || a.cIn - b.cIn || a.cOut - b.cOut);
}
