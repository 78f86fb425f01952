/**
 * Latency tables: the measured latency of one op signature on one device and runtime, as a
 * function of its channel counts, and the interpolant the latency cost model reads.
 *
 * A table is keyed by (device, runtime, signature), the signature being the OpSpec without
 * c_in/c_out (DESIGN "Measuring latency"), and holds measured points (c_in, c_out) → median, p10,
 * p90, n. Two shapes:
 *
 * - `grid`: the points form a full grid c_in ∈ X × c_out ∈ Y (conv, dense, separable pointwise).
 * - `tied`: c_out is a function of c_in (depthwise: c_out = m·c_in; pooling, add: c_out = c_in),
 *   one point per c_in; latency is a function of c_in alone.
 *
 * Interpolation is bilinear on the grid cell (piecewise linear for tied tables). Why:
 * - A convolution's work is k·H·W·c_in·c_out and its memory traffic is ∝ c_in (input) and ∝ c_out
 *   (output, weights ∝ c_in·c_out), so latency ≈ α·c_in·c_out + β·c_in + γ·c_out + δ. That is
 *   exactly the span of bilinear interpolation {1, x, y, xy}: a table of such a latency is
 *   reproduced exactly between and (by extending the edge cell) beyond its grid points.
 * - Being piecewise, it keeps the device's real steps (SIMD widths, cache sizes) between grid
 *   points, where a global fit (polynomial, roofline) would smooth them away.
 * - It is a convex combination of the cell's corners, so monotone corner values give a monotone
 *   interpolant with non-negative slopes; bicubic or spline interpolation overshoots at the kinks
 *   that latency has and could give negative marginals.
 *
 * Noise: measured medians can dip (a 64-channel conv faster than a 60-channel one). With
 * `monotone` (the default) the grid is replaced by its least-squares non-decreasing fit
 * (2-D isotonic regression) before interpolating, so marginals are ≥ 0.
 *
 * Edges: beyond the grid the edge cell is extended (linear along an axis, bilinear at corners);
 * slopes are clamped at ≥ 0 and the value at ≥ 0. An axis with a single measured value is scaled
 * proportionally (a virtual point at 0 channels with 0 ms), the FLOP-proportional assumption.
 */
import { MorphError } from '../errors.ts';
import { isotonic1d, isotonic2d } from './isotonic.ts';

export interface LatencyTableKey {
  readonly device: string;
  readonly runtime: string;
  /** The op signature: everything in the OpSpec but c_in and c_out. */
  readonly signature: string;
}

/** One measured point of a table; times per run in ms. */
export interface LatencyPoint {
  readonly cIn: number;
  readonly cOut: number;
  readonly medianMs: number;
  readonly p10Ms: number;
  readonly p90Ms: number;
  /** Samples behind the median. */
  readonly n: number;
}

export const VALID_TABLE_MODES = ['grid', 'tied'] as const;
export type LatencyTableMode = (typeof VALID_TABLE_MODES)[number];

export interface LatencyTableOptions {
  /** 'auto' (default): a full grid is 'grid'; one point per c_in and per c_out is 'tied'. */
  readonly mode?: LatencyTableMode | 'auto';
  /** Enforce non-decreasing latency in c_in and c_out (isotonic fit). Default true. */
  readonly monotone?: boolean;
  /**
   * Complete a grid with holes instead of refusing it (default false): each missing cell gets the
   * least-squares fit of α·c_in·c_out + β·c_in + γ·c_out + δ over the measured points (the form of a
   * conv's latency, see above), or, with too few points for that fit, the nearest measured
   * point scaled by c_in·c_out. Tables shared by several models have holes: each model measures
   * its own channel counts.
   */
  readonly fillMissing?: boolean;
}

/** The interpolated latency at a point and its local slopes. */
export interface LatencyEstimate {
  readonly ms: number;
  /** ∂ms/∂c_in (≥ 0, finite). */
  readonly dIn: number;
  /** ∂ms/∂c_out (≥ 0, finite; 0 for tied tables). */
  readonly dOut: number;
  /** Whether the point lies outside the measured range of either axis. */
  readonly extrapolated: boolean;
}

/** A string that identifies a table key, for maps and database rows. */
export function tableKey(key: LatencyTableKey): string {
  return JSON.stringify([key.device, key.runtime, key.signature]);
}

const isPositiveInt = (x: number): boolean => Number.isInteger(x) && x > 0;
const pointName = (p: { cIn: number; cOut: number }): string => `(${p.cIn}, ${p.cOut})`;

function tableError(key: LatencyTableKey, problems: string[], extra: Record<string, unknown> = {}): MorphError {
  const shown = problems.slice(0, 8).join('; ') + (problems.length > 8 ? `; and ${problems.length - 8} more` : '');
  return new MorphError('MORPH_ERR_LATENCY_TABLE', `latency table ${key.signature} on ${key.device}/${key.runtime}: ${shown}`, { ...key, problems, ...extra });
}

function validatePoints(key: LatencyTableKey, points: readonly LatencyPoint[]): void {
  const problems: string[] = [];
  for (const f of ['device', 'runtime', 'signature'] as const) {
    if (typeof key[f] !== 'string' || key[f].length === 0) problems.push(`${f} must be a non-empty string`);
  }
  if (points.length === 0) problems.push('it has no points; measure at least one (c_in, c_out)');
  const seen = new Set<string>();
  for (const p of points) {
    const at = pointName(p);
    if (!isPositiveInt(p.cIn) || !isPositiveInt(p.cOut)) problems.push(`point ${at}: channel counts must be positive integers`);
    if (!(Number.isFinite(p.medianMs) && p.medianMs > 0)) problems.push(`point ${at}: medianMs must be finite and > 0, got ${p.medianMs}`);
    if (!(Number.isFinite(p.p10Ms) && Number.isFinite(p.p90Ms) && p.p10Ms >= 0 && p.p10Ms <= p.medianMs && p.medianMs <= p.p90Ms)) {
      problems.push(`point ${at}: need finite 0 ≤ p10Ms ≤ medianMs ≤ p90Ms, got ${p.p10Ms}, ${p.medianMs}, ${p.p90Ms}`);
    }
    if (!isPositiveInt(p.n)) problems.push(`point ${at}: n must be a positive integer, got ${p.n}`);
    const id = pointName(p);
    if (seen.has(id)) problems.push(`point ${at} appears twice; keep one measurement per point`);
    seen.add(id);
  }
  if (problems.length > 0) throw tableError(key, problems);
}

const sortedUnique = (xs: Iterable<number>): number[] => [...new Set(xs)].sort((a, b) => a - b);

/** Grid points (c_in ∈ X, c_out ∈ Y of the given points) that are not among them. */
export function missingGridPoints(points: readonly { cIn: number; cOut: number }[]): { cIn: number; cOut: number }[] {
  const have = new Set(points.map(pointName));
  const missing: { cIn: number; cOut: number }[] = [];
  for (const cIn of sortedUnique(points.map((p) => p.cIn))) {
    for (const cOut of sortedUnique(points.map((p) => p.cOut))) if (!have.has(pointName({ cIn, cOut }))) missing.push({ cIn, cOut });
  }
  return missing;
}

function isTiedShape(points: readonly LatencyPoint[]): boolean {
  const byIn = [...points].sort((a, b) => a.cIn - b.cIn);
  for (let i = 1; i < byIn.length; i++) if (!(byIn[i].cIn > byIn[i - 1].cIn && byIn[i].cOut > byIn[i - 1].cOut)) return false;
  return true;
}

/** Where x falls among sorted knots: cell index and position in it (outside [0, 1] beyond the edges). */
function locate(knots: readonly number[], x: number): { i: number; u: number } {
  const last = knots.length - 1;
  let i: number;
  if (x <= knots[0]) i = 0;
  else if (x >= knots[last]) i = last - 1;
  else {
    // The cell starting at the largest knot ≤ x: at a knot, the slope is that of the next cell,
    // the cost of one more channel, as the FLOP model's forward difference.
    let lo = 0;
    let hi = last;
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (knots[mid] <= x) lo = mid;
      else hi = mid;
    }
    i = lo;
  }
  return { i, u: (x - knots[i]) / (knots[i + 1] - knots[i]) };
}

/** Knots and values with a virtual 0-channel, 0-ms knot prepended to an axis with one value. */
function withZeroKnot(knots: readonly number[]): number[] {
  return knots.length === 1 ? [0, knots[0]] : [...knots];
}

/**
 * Values for the missing cells of a grid: the least-squares fit of a·xy + b·x + c·y + d over the
 * measured points when they determine it (≥ 4 points, a well-conditioned system, a positive
 * value), else the nearest measured point (in log channels) scaled by xy.
 */
function fillGrid(points: readonly LatencyPoint[], missing: readonly { cIn: number; cOut: number }[]): { cIn: number; cOut: number; ms: number }[] {
  const fit = fitBilinear(points);
  return missing.map(({ cIn, cOut }) => {
    const v = fit ? fit[0] * cIn * cOut + fit[1] * cIn + fit[2] * cOut + fit[3] : NaN;
    if (Number.isFinite(v) && v > 0) return { cIn, cOut, ms: v };
    let best = points[0];
    let bestD = Infinity;
    for (const p of points) {
      const d = Math.log(p.cIn / cIn) ** 2 + Math.log(p.cOut / cOut) ** 2;
      if (d < bestD) {
        bestD = d;
        best = p;
      }
    }
    return { cIn, cOut, ms: (best.medianMs * cIn * cOut) / (best.cIn * best.cOut) };
  });
}

/** Least squares of median ≈ a·xy + b·x + c·y + d, weighted by 1/median (relative error); undefined when underdetermined. */
function fitBilinear(points: readonly LatencyPoint[]): [number, number, number, number] | undefined {
  if (points.length < 4) return undefined;
  const rows = points.map((p) => [p.cIn * p.cOut, p.cIn, p.cOut, 1].map((v) => v / p.medianMs));
  const y = points.map(() => 1);
  const norms = [0, 1, 2, 3].map((j) => Math.sqrt(rows.reduce((s, r) => s + r[j] * r[j], 0)));
  const m = [0, 1, 2, 3].map((i) => [...[0, 1, 2, 3].map((j) => rows.reduce((s, r) => s + (r[i] / norms[i]) * (r[j] / norms[j]), 0)), rows.reduce((s, r, n) => s + (r[i] / norms[i]) * y[n], 0)]);
  for (let col = 0; col < 4; col++) {
    let pivot = col;
    for (let r = col + 1; r < 4; r++) if (Math.abs(m[r][col]) > Math.abs(m[pivot][col])) pivot = r;
    if (Math.abs(m[pivot][col]) < 1e-9) return undefined;
    [m[col], m[pivot]] = [m[pivot], m[col]];
    for (let r = 0; r < 4; r++) {
      if (r === col) continue;
      const f = m[r][col] / m[col][col];
      for (let c = col; c <= 4; c++) m[r][c] -= f * m[col][c];
    }
  }
  return [0, 1, 2, 3].map((i) => m[i][4] / m[i][i] / norms[i]) as [number, number, number, number];
}

/**
 * conv2d, dense and concat latencies depend on c_in and c_out (a grid); depthwise, pooling and
 * add have c_out fixed by c_in (tied). Decided by the op kind, the signature's first field, not
 * by the points' shape: points of several models on one conv table can look tied by chance.
 */
export function tableModeOf(signature: string): 'grid' | 'tied' {
  const kind = signature.split('/')[0];
  return kind === 'conv2d' || kind === 'dense' || kind === 'concat' ? 'grid' : 'tied';
}

export class LatencyTable {
  readonly key: LatencyTableKey;
  readonly mode: LatencyTableMode;
  /** The measured points, sorted by (c_in, c_out). */
  readonly points: readonly LatencyPoint[];
  /** Measured c_in values, ascending. */
  readonly cIns: readonly number[];
  /** Measured c_out values, ascending (tied: the c_out of each c_in). */
  readonly cOuts: readonly number[];
  /** Values interpolated, [i][j] for (cIns[i], cOuts[j]) (tied: [i][0]), after the monotone fit. */
  readonly values: readonly (readonly number[])[];
  readonly monotone: boolean;
  /** Grid cells that were not measured and were filled in (`fillMissing`), with their values. */
  readonly filled: readonly { readonly cIn: number; readonly cOut: number; readonly ms: number }[];
  readonly #measured: Map<string, number>;
  readonly #xs: number[];
  readonly #ys: number[];
  readonly #v: number[][];

  private constructor(key: LatencyTableKey, mode: LatencyTableMode, points: LatencyPoint[], monotone: boolean, filled: { cIn: number; cOut: number; ms: number }[] = []) {
    this.key = { device: key.device, runtime: key.runtime, signature: key.signature };
    this.mode = mode;
    this.points = points;
    this.monotone = monotone;
    this.filled = filled;
    this.#measured = new Map(points.map((p) => [pointName(p), p.medianMs]));
    if (mode === 'tied') {
      const byIn = [...points].sort((a, b) => a.cIn - b.cIn);
      this.cIns = byIn.map((p) => p.cIn);
      this.cOuts = byIn.map((p) => p.cOut);
      const fitted = monotone ? isotonic1d(byIn.map((p) => p.medianMs)) : byIn.map((p) => p.medianMs);
      this.values = fitted.map((v) => [v]);
      this.#xs = withZeroKnot(this.cIns);
      this.#ys = [0, 1];
      const column = fitted.length === 1 ? [0, fitted[0]] : fitted;
      this.#v = column.map((v) => [v, v]);
    } else {
      this.cIns = sortedUnique([...points, ...filled].map((p) => p.cIn));
      this.cOuts = sortedUnique([...points, ...filled].map((p) => p.cOut));
      const at = new Map([...points.map((p) => [pointName(p), p.medianMs] as const), ...filled.map((p) => [pointName(p), p.ms] as const)]);
      const raw = this.cIns.map((cIn) => this.cOuts.map((cOut) => at.get(pointName({ cIn, cOut })) as number));
      const fitted = monotone ? isotonic2d(raw) : raw;
      this.values = fitted;
      this.#xs = withZeroKnot(this.cIns);
      this.#ys = withZeroKnot(this.cOuts);
      let v = fitted.map((row) => [...row]);
      if (this.cOuts.length === 1) v = v.map((row) => [0, row[0]]);
      if (this.cIns.length === 1) v = [v[0].map(() => 0), v[0]];
      this.#v = v;
    }
  }

  /**
   * Builds a table from measured points.
   * @throws MorphError MORPH_ERR_LATENCY_TABLE for an empty table, non-finite, negative or
   *   misordered timings, non-positive or fractional channel counts, duplicate points, or points
   *   that are neither a full grid nor tied (the missing grid points are in `details.missing`).
   */
  static fromPoints(key: LatencyTableKey, points: readonly LatencyPoint[], options: LatencyTableOptions = {}): LatencyTable {
    validatePoints(key, points);
    const requested = options.mode ?? 'auto';
    if (requested !== 'auto' && !(VALID_TABLE_MODES as readonly string[]).includes(requested)) {
      throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `mode must be one of auto, ${VALID_TABLE_MODES.join(', ')}; got ${String(requested)}`);
    }
    const missing = missingGridPoints(points);
    let mode: LatencyTableMode;
    if (requested === 'tied') {
      if (!isTiedShape(points)) throw tableError(key, ['a tied table needs one point per c_in, with c_out increasing with c_in']);
      mode = 'tied';
    } else if (missing.length === 0) {
      mode = 'grid';
    } else if (requested === 'auto' && isTiedShape(points)) {
      mode = 'tied';
    } else if (options.fillMissing) {
      const sorted = [...points].sort((a, b) => a.cIn - b.cIn || a.cOut - b.cOut).map((p) => ({ ...p }));
      return new LatencyTable(key, 'grid', sorted, options.monotone ?? true, fillGrid(points, missing));
    } else {
      throw tableError(key, [`the grid lacks ${missing.length} point(s): ${missing.slice(0, 8).map(pointName).join(', ')}`], { missing });
    }
    const sorted = [...points].sort((a, b) => a.cIn - b.cIn || a.cOut - b.cOut).map((p) => ({ ...p }));
    return new LatencyTable(key, mode, sorted, options.monotone ?? true);
  }

  /** Whether (cIn, cOut) lies within the measured range (tied tables: cIn only). */
  covers(cIn: number, cOut: number): boolean {
    const inX = cIn >= this.cIns[0] && cIn <= this.cIns[this.cIns.length - 1];
    if (this.mode === 'tied') return inX;
    return inX && cOut >= this.cOuts[0] && cOut <= this.cOuts[this.cOuts.length - 1];
  }

  /** Interpolated latency (ms) at (cIn, cOut) and its slopes; `cOut` is ignored by tied tables. */
  estimate(cIn: number, cOut: number): LatencyEstimate {
    if (!Number.isFinite(cIn) || !Number.isFinite(cOut) || cIn < 0 || cOut < 0) {
      throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `channel counts must be finite and ≥ 0, got (${cIn}, ${cOut})`);
    }
    const xs = this.#xs;
    const ys = this.#ys;
    const v = this.#v;
    const { i, u } = locate(xs, cIn);
    const { j, w } = this.mode === 'tied' ? { j: 0, w: 0 } : ((l) => ({ j: l.i, w: l.u }))(locate(ys, cOut));
    const v00 = v[i][j];
    const v10 = v[i + 1][j];
    const v01 = v[i][j + 1];
    const v11 = v[i + 1][j + 1];
    const ms = (1 - u) * (1 - w) * v00 + u * (1 - w) * v10 + (1 - u) * w * v01 + u * w * v11;
    const dIn = ((1 - w) * (v10 - v00) + w * (v11 - v01)) / (xs[i + 1] - xs[i]);
    const dOut = this.mode === 'tied' ? 0 : ((1 - u) * (v01 - v00) + u * (v11 - v10)) / (ys[j + 1] - ys[j]);
    return {
      ms: Math.max(0, ms),
      dIn: Math.max(0, dIn),
      dOut: Math.max(0, dOut),
      extrapolated: !this.covers(cIn, cOut),
    };
  }

  /** The measured median at exactly (cIn, cOut), if that point was measured (tied: by cIn). */
  measured(cIn: number, cOut: number): number | undefined {
    if (this.mode === 'tied') return this.points.find((p) => p.cIn === cIn)?.medianMs;
    return this.#measured.get(pointName({ cIn, cOut }));
  }

  /** Interpolated latency in ms. */
  latency(cIn: number, cOut: number): number {
    return this.estimate(cIn, cOut).ms;
  }
}

/** Tables by key. */
export class LatencyTableSet {
  readonly #tables = new Map<string, LatencyTable>();

  constructor(tables: Iterable<LatencyTable> = []) {
    for (const t of tables) this.set(t);
  }

  /** Adds or replaces the table with `table.key`. */
  set(table: LatencyTable): this {
    this.#tables.set(tableKey(table.key), table);
    return this;
  }

  get(key: LatencyTableKey): LatencyTable | undefined {
    return this.#tables.get(tableKey(key));
  }

  has(key: LatencyTableKey): boolean {
    return this.#tables.has(tableKey(key));
  }

  get size(): number {
    return this.#tables.size;
  }

  tables(): LatencyTable[] {
    return [...this.#tables.values()];
  }
}
