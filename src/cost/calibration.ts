/**
 * Per-device, per-runtime calibration of whole-network latency (DESIGN "Measuring latency"):
 *
 *   predicted = a·Σ ops + b·(number of ops) + d·Σ activation MB + e·Σ weight MB + c
 *
 * where Σ ops is the sum of the table-predicted latencies of the network's ops, b the per-op
 * difference between an op timed alone and inside a network, and c the constant per-inference
 * cost (input upload, output download). a ≥ 0 and c ≥ 0; b may be negative: a single-op timing
 * pays a whole inference call and an output read-back per op (tfjs `predict`, a TFLite invoke)
 * that ops inside a network do not, while a network may pay for memory traffic between ops that
 * single ops do not. Fitted by constrained least squares on end-to-end measurements.
 *
 * d and e (either sign) are the memory terms: an op timed alone copies its input in and its
 * output out on every run (d < 0 takes that back in proportion to the bytes: Σ over ops of the MB
 * each reads and writes), while inside a network its weights and its input may no longer be in
 * cache (e > 0, d > 0). With enough networks (`MIN_BYTES_NETWORKS`) the terms are chosen out of
 * sample: every subset of b, c, d, e beside a·Σ ops is judged leave-one-out, and the fewest terms
 * whose mean squared relative error is within one standard error of the least are kept. Which
 * terms hold depends on the runtime, and ten networks do not pin five terms at once. `method`
 * names the family chosen ('bytes' where d or e is in it). Every term is per op, so the layers of
 * a prediction still add up to the total less c.
 *
 * The fit minimises *relative* squared error by default (rows weighted by 1/measured): the
 * quality figure is a relative one (share of networks within ±10%), and networks span orders of
 * magnitude, so an absolute fit would serve the largest networks and fail the small ones.
 */
import { MorphError } from '../errors.ts';

export interface CalibrationSample {
  readonly device: string;
  readonly runtime: string;
  /** Sum of the table-predicted latencies of the network's ops, ms. */
  readonly sumOpsMs: number;
  /** Number of ops summed. */
  readonly nOps: number;
  /** Σ over the ops of the MB of activations each reads and writes (0 or absent: unknown). */
  readonly ioMB?: number;
  /** Σ over the ops of the MB of their weights. */
  readonly weightMB?: number;
  /** Measured end-to-end latency (median), ms. */
  readonly measuredMs: number;
  /** The network's name, for reports. */
  readonly model?: string;
}

/**
 * What was fitted: the memory terms as well ('bytes'), all three classic terms ('full'), or the
 * simpler fits used with fewer than 3 networks.
 */
export const VALID_CALIBRATION_METHODS = ['bytes', 'full', 'scale-offset', 'scale'] as const;
export type CalibrationMethod = (typeof VALID_CALIBRATION_METHODS)[number];

export interface CalibrationQuality {
  readonly n: number;
  /** Relative tolerance, e.g. 0.1 for ±10%. */
  readonly tolerance: number;
  /** Networks predicted within the tolerance. */
  readonly withinCount: number;
  /** withinCount / n. */
  readonly within: number;
  /** Median of |predicted − measured| / measured. */
  readonly medianApe: number;
}

export interface Calibration {
  readonly device: string;
  readonly runtime: string;
  /** Scale on Σ ops (dimensionless). */
  readonly a: number;
  /** Per-op overhead, ms. */
  readonly b: number;
  /** Constant, ms. */
  readonly c: number;
  /** ms per MB of activations an op reads and writes (0 unless `method` is 'bytes'). */
  readonly d: number;
  /** ms per MB of an op's weights (0 unless `method` is 'bytes'). */
  readonly e: number;
  readonly method: CalibrationMethod;
  /** Networks the fit used. */
  readonly samples: number;
  /** What was fitted, in words (says when a simpler fit was used and why). */
  readonly note: string;
  /** In-sample quality of the fit. */
  readonly quality: CalibrationQuality;
  /**
   * Out-of-sample quality, leave-one-out: each network predicted by the same fit on the others
   * (so with n networks, by an (n−1)-network fit, a simpler one below 4; 10-fold beyond
   * `MAX_LEAVE_ONE_OUT` networks). What a network the calibration has not seen can expect; null
   * with a single network.
   */
  readonly outOfSample: CalibrationQuality | null;
}

export interface FitCalibrationOptions {
  /** 'relative' (default): minimise Σ((pred − meas)/meas)²; 'absolute': Σ(pred − meas)². */
  readonly weighting?: 'relative' | 'absolute';
  /** Tolerance of the quality figure. Default 0.1 (±10%). */
  readonly tolerance?: number;
}

export interface NetworkOps {
  readonly sumOpsMs: number;
  readonly nOps: number;
  readonly ioMB?: number;
  readonly weightMB?: number;
}

/** The terms a prediction applies (see the header); absent memory terms are 0. */
export type CalibrationTerms = Pick<Calibration, 'a' | 'b' | 'c'> & Partial<Pick<Calibration, 'd' | 'e'>>;

/** No calibration: Σ ops as it is. */
export const IDENTITY_CALIBRATION: Required<CalibrationTerms> = { a: 1, b: 0, c: 0, d: 0, e: 0 };

/**
 * Fewest networks with which the memory terms are tried: the bytes fit has five unknowns, and its
 * leave-one-out check needs a few networks to spare.
 */
export const MIN_BYTES_NETWORKS = 6;

function calibrationError(message: string, details: Record<string, unknown> = {}): MorphError {
  return new MorphError('MORPH_ERR_CALIBRATION', message, details);
}

function checkNetwork(x: NetworkOps, where: string): void {
  if (!(Number.isFinite(x.sumOpsMs) && x.sumOpsMs >= 0)) throw calibrationError(`${where}: sumOpsMs must be finite and ≥ 0, got ${x.sumOpsMs}`);
  if (!(Number.isInteger(x.nOps) && x.nOps >= 0)) throw calibrationError(`${where}: nOps must be an integer ≥ 0, got ${x.nOps}`);
  for (const k of ['ioMB', 'weightMB'] as const) {
    const v = x[k];
    if (v !== undefined && !(Number.isFinite(v) && v >= 0)) throw calibrationError(`${where}: ${k} must be finite and ≥ 0, got ${v}`);
  }
}

function checkSamples(samples: readonly CalibrationSample[]): void {
  if (samples.length === 0) throw calibrationError('no end-to-end measurements to calibrate on; measure at least one network');
  samples.forEach((s, i) => {
    const where = `sample ${i}${s.model ? ` (${s.model})` : ''}`;
    checkNetwork(s, where);
    if (!(Number.isFinite(s.measuredMs) && s.measuredMs > 0)) throw calibrationError(`${where}: measuredMs must be finite and > 0, got ${s.measuredMs}`);
  });
  if (samples.every((s) => s.sumOpsMs === 0)) throw calibrationError('every sample has sumOpsMs = 0: the op latencies must be predicted before calibrating');
}

/**
 * Solves min ‖A·x − y‖² subject to x_j ≥ 0 for the columns marked `nonNegative` (the others
 * free) exactly for a few columns, by trying every set of columns and keeping the feasible
 * unconstrained solution with the least residual (ties: fewer columns). A column is left out
 * where it is zero or collinear with the others (its set is singular), so a term that the data
 * cannot tell apart from the others is 0, not a large ± pair. Columns are scaled to unit norm
 * first, so the ill-conditioning of ms against counts does not matter.
 */
function constrainedLeastSquares(rows: readonly number[][], y: readonly number[], nonNegative: readonly boolean[]): number[] {
  const m = rows[0].length;
  const norms = Array.from({ length: m }, (_, j) => Math.sqrt(rows.reduce((s, r) => s + r[j] * r[j], 0)));
  const yNorm = Math.sqrt(y.reduce((s, v) => s + v * v, 0));
  let best: { x: number[]; residual: number; size: number } | undefined;
  for (let mask = 1; mask < 1 << m; mask++) {
    const cols = [...Array(m).keys()].filter((j) => mask & (1 << j));
    if (cols.some((j) => norms[j] === 0)) continue;
    const z = solveLeastSquares(rows.map((r) => cols.map((j) => r[j] / norms[j])), y);
    if (z === undefined || cols.some((j, k) => nonNegative[j] && z[k] < -1e-12 * Math.max(1, yNorm))) continue;
    const x = new Array<number>(m).fill(0);
    cols.forEach((j, k) => (x[j] = (nonNegative[j] ? Math.max(0, z[k]) : z[k]) / norms[j]));
    const residual = rows.reduce((s, r, i) => s + (r.reduce((t, v, j) => t + v * x[j], 0) - y[i]) ** 2, 0);
    const tie = best !== undefined && Math.abs(residual - best.residual) <= 1e-12 * Math.max(yNorm * yNorm, 1e-300);
    if (best === undefined || (tie ? cols.length < best.size : residual < best.residual)) best = { x, residual, size: cols.length };
  }
  return best?.x ?? new Array<number>(m).fill(0);
}

/** Normal equations by Gaussian elimination with partial pivoting; undefined when singular. */
function solveLeastSquares(a: readonly number[][], y: readonly number[]): number[] | undefined {
  const k = a[0].length;
  if (a.length < k) return undefined;
  const m = Array.from({ length: k }, (_, i) => [
    ...Array.from({ length: k }, (_, j) => a.reduce((s, r) => s + r[i] * r[j], 0)),
    a.reduce((s, r, n) => s + r[i] * y[n], 0),
  ]);
  for (let col = 0; col < k; col++) {
    let pivot = col;
    for (let r = col + 1; r < k; r++) if (Math.abs(m[r][col]) > Math.abs(m[pivot][col])) pivot = r;
    // Columns have unit norm, so a tiny pivot means (near-)collinear columns.
    if (Math.abs(m[pivot][col]) < 1e-10) return undefined;
    [m[col], m[pivot]] = [m[pivot], m[col]];
    for (let r = 0; r < k; r++) {
      if (r === col) continue;
      const f = m[r][col] / m[col][col];
      for (let c = col; c <= k; c++) m[r][c] -= f * m[col][c];
    }
  }
  return m.map((row, i) => row[k] / row[i]);
}

/**
 * Fits a, b, c for one device and runtime. With 3 or more networks all three terms are fitted;
 * with 2, a·Σ ops + c (no per-op overhead); with 1, a = measured/Σ ops. `note` says which.
 * @throws MorphError MORPH_ERR_CALIBRATION for no samples, non-finite or non-positive
 *   latencies, negative counts, Σ ops = 0 everywhere, or samples from more than one device/runtime.
 */
export function fitCalibration(samples: readonly CalibrationSample[], options: FitCalibrationOptions = {}): Calibration {
  checkSamples(samples);
  const { device, runtime } = samples[0];
  const others = samples.filter((s) => s.device !== device || s.runtime !== runtime);
  if (others.length > 0) {
    throw calibrationError(`calibrate one device and runtime at a time: got ${device}/${runtime} and ${others[0].device}/${others[0].runtime}; use fitCalibrations`);
  }
  const weighting = options.weighting ?? 'relative';
  if (weighting !== 'relative' && weighting !== 'absolute') throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `weighting must be relative or absolute, got ${String(weighting)}`);
  const tolerance = options.tolerance ?? 0.1;
  const base = baseForm(samples.length);
  let form = base;
  let outOfSample = samples.length >= 2 ? leaveOneOut(samples, base, weighting, tolerance) : null;
  let why = '';
  // With enough networks, the terms are chosen by how well they predict networks the fit has not
  // seen: every subset of b, c, d, e beside a·Σ ops is judged leave-one-out by its mean squared
  // relative error, and the fewest terms within one standard error of the best are kept (the
  // "one-standard-error rule" of cross-validation: a term the data cannot confirm only fits
  // noise). Which terms carry a device depends on its runtime (an op alone pays a read-back in
  // proportion to its output on tfjs, a per-call cost on TFLite), and ten networks do not pin five
  // terms at once.
  if (samples.length >= MIN_BYTES_NETWORKS && samples.every((s) => (s.ioMB ?? 0) > 0)) {
    const classic = outOfSample;
    const chosen = chooseForm(samples, weighting);
    form = chosen.form;
    outOfSample = qualityOf(chosen.apes, tolerance);
    const pct = Math.round(tolerance * 100);
    const memory = form.includes('d') || form.includes('e');
    why = `; terms chosen out of sample (the fewest within one standard error of the least leave-one-out squared error, over every subset of b, c, d, e): ${describeForm(form)}, ${outOfSample.withinCount}/${outOfSample.n} within ±${pct}% (RMS ${(Math.sqrt(chosen.mse) * 100).toFixed(1)}%), against ${classic?.withinCount}/${classic?.n} for the classic a·Σops + b·nOps + c; the memory terms ${memory ? 'kept' : 'left out'}`;
  }
  const fitted = fitTerms(samples, form, weighting);
  return { ...fitted, note: fitted.note + why, quality: calibrationQuality(fitted, samples, tolerance), outOfSample };
}

/** A term beside a·Σ ops: b per op, c constant, d per MB of activations, e per MB of weights. */
type Term = 'b' | 'c' | 'd' | 'e';
/** The terms fitted beside a·Σ ops, in the order b, c, d, e. */
type Form = readonly Term[];

/** Every subset of b, c, d, e, fewest terms first. */
const ALL_FORMS: readonly Form[] = (() => {
  const terms: Term[] = ['b', 'c', 'd', 'e'];
  const forms: Term[][] = [];
  for (let mask = 0; mask < 1 << terms.length; mask++) forms.push(terms.filter((_, j) => mask & (1 << j)));
  return forms.sort((x, y) => x.length - y.length);
})();

/** What is fitted without choosing: the classic terms, fewer with fewer than 3 networks. */
function baseForm(networks: number): Form {
  return networks >= 3 ? ['b', 'c'] : networks === 2 ? ['c'] : [];
}

function methodOf(form: Form): CalibrationMethod {
  return form.includes('d') || form.includes('e') ? 'bytes' : form.includes('b') ? 'full' : form.includes('c') ? 'scale-offset' : 'scale';
}

const TERM_TEXT: Record<Term, string> = { b: 'b·nOps', c: 'c', d: 'd·Σ activation MB', e: 'e·Σ weight MB' };

function describeForm(form: Form): string {
  return ['a·Σops', ...(['b', 'd', 'e', 'c'] as const).filter((t) => form.includes(t)).map((t) => TERM_TEXT[t])].join(' + ');
}

/**
 * Beyond this many networks, out-of-sample quality is 10-fold cross-validation instead of
 * leave-one-out: the same idea (every network predicted by a fit it did not shape) at 10 fits
 * instead of n, so a device with hundreds of measured networks still answers in milliseconds.
 */
export const MAX_LEAVE_ONE_OUT = 50;
const FOLDS = 10;

/**
 * The form with the fewest terms whose leave-one-out mean squared relative error is within one
 * standard error of the least (ties: the lower error), with its held-out errors.
 */
function chooseForm(samples: readonly CalibrationSample[], weighting: 'relative' | 'absolute'): { form: Form; apes: number[]; mse: number } {
  const judged = ALL_FORMS.map((form) => {
    const apes = heldOutErrors(samples, form, weighting);
    const sq = apes.map((e) => e * e);
    const mse = sq.reduce((t, v) => t + v, 0) / sq.length;
    const sd = Math.sqrt(sq.reduce((t, v) => t + (v - mse) ** 2, 0) / Math.max(1, sq.length - 1));
    return { form, apes, mse, se: sd / Math.sqrt(sq.length) };
  });
  const best = judged.reduce((x, y) => (y.mse < x.mse ? y : x));
  // Every form missed a network entirely (Σ ops = 0 in all others): the classic form.
  if (!Number.isFinite(best.mse)) return judged.find((j) => j.form.join() === baseForm(samples.length).join()) ?? best;
  const near = judged.filter((j) => j.mse <= best.mse + best.se);
  return near.reduce((x, y) => (y.form.length < x.form.length || (y.form.length === x.form.length && y.mse < x.mse) ? y : x));
}

function leaveOneOut(samples: readonly CalibrationSample[], form: Form, weighting: 'relative' | 'absolute', tolerance: number): CalibrationQuality {
  return qualityOf(heldOutErrors(samples, form, weighting), tolerance);
}

/**
 * Each network's relative error predicted by the same kind of fit on the others (leave-one-out;
 * k-fold above `MAX_LEAVE_ONE_OUT`, network i in fold i mod 10). The classic form falls back to a
 * simpler one when too few networks are left; a chosen form is judged as it is.
 */
function heldOutErrors(samples: readonly CalibrationSample[], form: Form, weighting: 'relative' | 'absolute'): number[] {
  const folds = samples.length > MAX_LEAVE_ONE_OUT ? FOLDS : samples.length;
  const apes = new Array<number>(samples.length);
  const chosen = samples.length >= MIN_BYTES_NETWORKS;
  for (let f = 0; f < folds; f++) {
    const others = samples.filter((_, j) => j % folds !== f);
    const held = samples.map((s, i) => ({ s, i })).filter(({ i }) => i % folds === f);
    // A fit on networks that all have Σ ops = 0 predicts nothing: count it as missed entirely.
    if (others.every((o) => o.sumOpsMs === 0)) {
      for (const { i } of held) apes[i] = Number.POSITIVE_INFINITY;
      continue;
    }
    const fit = fitTerms(others, chosen ? form : baseForm(others.length), weighting);
    for (const { s, i } of held) apes[i] = Math.abs(applyCalibration(fit, s) - s.measuredMs) / s.measuredMs;
  }
  return apes;
}

const COLUMN: Record<Term, (s: NetworkOps) => number> = { b: (s) => s.nOps, c: () => 1, d: (s) => s.ioMB ?? 0, e: (s) => s.weightMB ?? 0 };

function fitTerms(samples: readonly CalibrationSample[], form: Form, weighting: 'relative' | 'absolute'): Omit<Calibration, 'quality' | 'outOfSample'> {
  const { device, runtime } = samples[0];
  const n = samples.length;
  const weight = (s: CalibrationSample): number => (weighting === 'relative' ? 1 / s.measuredMs : 1);
  // a (Σ ops) and c (the constant) are ≥ 0; b, d, e take either sign.
  const x = constrainedLeastSquares(
    samples.map((s) => [s.sumOpsMs, ...form.map((t) => COLUMN[t](s))].map((v) => v * weight(s))),
    samples.map((s) => s.measuredMs * weight(s)),
    [true, ...form.map((t) => t === 'c')],
  );
  const terms: Record<'a' | Term, number> = { a: x[0], b: 0, c: 0, d: 0, e: 0 };
  form.forEach((t, j) => (terms[t] = x[j + 1]));
  const method = methodOf(form);
  const note =
    n === 1 && form.length === 0
      ? 'only 1 network measured: a = measured / Σops, no overhead terms; measure 3 or more for the full fit'
      : n === 2 && form.length === 1 && form[0] === 'c'
        ? 'only 2 networks measured: fitted a·Σops + c without a per-op overhead; measure 3 or more for the full fit'
        : `fitted ${describeForm(form)} on ${n} networks (${weighting} least squares, a ≥ 0${form.includes('c') ? ', c ≥ 0' : ''})`;
  return { device, runtime, ...terms, method, samples: n, note };
}

/** One calibration per (device, runtime) among `samples`, in order of first appearance. */
export function fitCalibrations(samples: readonly CalibrationSample[], options: FitCalibrationOptions = {}): Calibration[] {
  checkSamples(samples);
  const groups = new Map<string, CalibrationSample[]>();
  for (const s of samples) {
    const key = JSON.stringify([s.device, s.runtime]);
    const g = groups.get(key);
    if (g) g.push(s);
    else groups.set(key, [s]);
  }
  return [...groups.values()].map((g) => fitCalibration(g, options));
}

/**
 * Calibrated whole-network latency, ms.
 * @throws MorphError MORPH_ERR_CALIBRATION for a non-finite or negative Σ ops or op count.
 */
export function applyCalibration(calibration: CalibrationTerms, network: NetworkOps): number {
  checkNetwork(network, 'network');
  return calibration.a * network.sumOpsMs + calibration.b * network.nOps + (calibration.d ?? 0) * (network.ioMB ?? 0) + (calibration.e ?? 0) * (network.weightMB ?? 0) + calibration.c;
}

/** One op's calibrated share of a prediction (the layers' shares add up to the total less c). */
export function calibratedOpMs(calibration: CalibrationTerms, tableMs: number, bytes: { readonly ioMB: number; readonly weightMB: number }): number {
  return calibration.a * tableMs + calibration.b + (calibration.d ?? 0) * bytes.ioMB + (calibration.e ?? 0) * bytes.weightMB;
}

/**
 * The quality figure: share of networks predicted within ±`tolerance` of their measured
 * latency, and the median absolute percentage error (as a fraction).
 */
export function calibrationQuality(calibration: CalibrationTerms, samples: readonly CalibrationSample[], tolerance = 0.1): CalibrationQuality {
  checkSamples(samples);
  if (!(Number.isFinite(tolerance) && tolerance >= 0)) throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `tolerance must be finite and ≥ 0, got ${tolerance}`);
  return qualityOf(
    samples.map((s) => Math.abs(applyCalibration(calibration, s) - s.measuredMs) / s.measuredMs),
    tolerance,
  );
}

function qualityOf(errors: readonly number[], tolerance: number): CalibrationQuality {
  const apes = [...errors].sort((x, y) => x - y);
  const withinCount = apes.filter((e) => e <= tolerance + 1e-12).length;
  const mid = apes.length >> 1;
  const medianApe = apes.length % 2 === 1 ? apes[mid] : (apes[mid - 1] + apes[mid]) / 2;
  return { n: apes.length, tolerance, withinCount, within: withinCount / apes.length, medianApe };
}
