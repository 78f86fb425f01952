/**
 * The measurement protocol of DESIGN "Measuring latency", shared by the Node agent and the
 * browser agent (so: no Node-only imports here).
 *
 * 1. Warm up: at least `warmupRuns` runs and `warmupMs` of running.
 * 2. Choose runs per sample: when one run is shorter than `targetSampleMs`, a sample times a loop
 *    of k runs (browser clocks are coarse, down to 0.1 ms or worse) and records the per-run time.
 * 3. Sample until at least `minSamples` samples and `minWindowMs` of sampling.
 * 4. If the spread is too wide (CV above `maxCv`, or (p90 − p10)/median above `maxSpread`),
 *    sample again, up to `maxAttempts` attempts in all, and keep the tightest attempt; when none
 *    passes the result says `stable: false`.
 *
 * Everything is capped by `maxMs` of wall time and `maxSamples` per attempt. The clock is
 * injectable, so tests drive the protocol with a fake clock and fake runs.
 */
import { MorphError } from '../errors.ts';

export interface MeasureOptions {
  /** Clock in milliseconds. Default `performance.now()`. */
  readonly now?: () => number;
  /** Minimum warm-up runs. Default 5. */
  readonly warmupRuns?: number;
  /** Minimum warm-up time, ms. Default 50. */
  readonly warmupMs?: number;
  /** Minimum samples per attempt. Default 20. */
  readonly minSamples?: number;
  /** Minimum sampling time per attempt, ms. Default 200. */
  readonly minWindowMs?: number;
  /** Most samples per attempt. Default 1000. */
  readonly maxSamples?: number;
  /** A sample lasts at least this long, ms: shorter runs are looped. Default 1. */
  readonly targetSampleMs?: number;
  /** Most runs looped in one sample. Default 1_000_000. */
  readonly maxRunsPerSample?: number;
  /** Largest acceptable coefficient of variation (stddev/mean). Default 0.15. */
  readonly maxCv?: number;
  /** Largest acceptable (p90 − p10)/median. Default 0.5. */
  readonly maxSpread?: number;
  /** Attempts in all (the first plus re-measurements). Default 3. */
  readonly maxAttempts?: number;
  /**
   * Wall-time budget for the whole measurement, ms. Default 5000. No run or sample starts when it
   * would end past the budget (judged by the longest run seen, the very first one excepted as it
   * pays for compilation), except that the first warm-up run and the first sample are always taken.
   */
  readonly maxMs?: number;
}

export const DEFAULT_MEASURE_OPTIONS: Readonly<Required<Omit<MeasureOptions, 'now'>>> = Object.freeze({
  warmupRuns: 5,
  warmupMs: 50,
  minSamples: 20,
  minWindowMs: 200,
  maxSamples: 1000,
  targetSampleMs: 1,
  maxRunsPerSample: 1_000_000,
  maxCv: 0.15,
  maxSpread: 0.5,
  maxAttempts: 3,
  maxMs: 5000,
});

/** Order statistics and moments of a set of numbers (quantiles interpolate linearly). */
export interface SampleStats {
  readonly n: number;
  readonly median: number;
  readonly p10: number;
  readonly p90: number;
  readonly mean: number;
  /** Sample standard deviation (n − 1); 0 for a single value. */
  readonly std: number;
  /** std/mean; 0 when the mean is 0. */
  readonly cv: number;
  readonly min: number;
  readonly max: number;
}

export interface Measurement {
  /** Per-run times, ms. */
  readonly medianMs: number;
  readonly p10Ms: number;
  readonly p90Ms: number;
  readonly meanMs: number;
  readonly cv: number;
  /** Samples in the kept attempt. */
  readonly n: number;
  /** Runs timed together in one sample (1 unless runs are shorter than `targetSampleMs`). */
  readonly runsPerSample: number;
  /** Whether the kept attempt's spread passes `maxCv` and `maxSpread`. */
  readonly stable: boolean;
  /** Attempts made (1 + re-measurements). */
  readonly attempts: number;
  /** Runs before sampling (warm-up and choosing the loop size). */
  readonly warmupRuns: number;
  /** Whether `maxMs` cut the warm-up short, or `maxMs`/`maxSamples` stopped an attempt before `minSamples` and `minWindowMs` were reached. */
  readonly capped: boolean;
  /** Wall time of the whole measurement, ms. */
  readonly totalMs: number;
  /** The kept attempt's per-run times, ms, in the order taken. */
  readonly samplesMs: readonly number[];
}

/** Linear-interpolation quantile (R type 7) of sorted values. */
function quantileSorted(sorted: readonly number[], q: number): number {
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

/**
 * Median, p10, p90, mean, standard deviation and CV of `samples`.
 * @throws MorphError MORPH_ERR_BAD_ARGUMENT when empty or holding a non-finite value.
 */
export function summarize(samples: readonly number[]): SampleStats {
  if (samples.length === 0) throw new MorphError('MORPH_ERR_BAD_ARGUMENT', 'summarize needs at least one sample, got none');
  for (const s of samples) {
    if (!Number.isFinite(s)) throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `summarize needs finite samples, got ${s}`);
  }
  const sorted = [...samples].sort((a, b) => a - b);
  const n = sorted.length;
  const mean = sorted.reduce((a, b) => a + b, 0) / n;
  const variance = n > 1 ? sorted.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1) : 0;
  const std = Math.sqrt(variance);
  return {
    n,
    median: quantileSorted(sorted, 0.5),
    p10: quantileSorted(sorted, 0.1),
    p90: quantileSorted(sorted, 0.9),
    mean,
    std,
    cv: mean > 0 ? std / mean : 0,
    min: sorted[0],
    max: sorted[n - 1],
  };
}

function resolveOptions(options: MeasureOptions): Required<MeasureOptions> {
  const o = { ...DEFAULT_MEASURE_OPTIONS, now: defaultNow, ...options };
  const problems: string[] = [];
  const positive = ['warmupMs', 'minWindowMs', 'targetSampleMs', 'maxCv', 'maxSpread', 'maxMs'] as const;
  const counts = ['minSamples', 'maxSamples', 'maxRunsPerSample', 'maxAttempts'] as const;
  for (const k of positive) if (!(Number.isFinite(o[k]) && o[k] >= 0)) problems.push(`${k} must be a finite number ≥ 0, got ${o[k]}`);
  for (const k of counts) if (!(Number.isInteger(o[k]) && o[k] >= 1)) problems.push(`${k} must be an integer ≥ 1, got ${o[k]}`);
  if (!(Number.isInteger(o.warmupRuns) && o.warmupRuns >= 0)) problems.push(`warmupRuns must be an integer ≥ 0, got ${o.warmupRuns}`);
  if (typeof o.now !== 'function') problems.push('now must be a function returning milliseconds');
  if (problems.length > 0) throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `bad measure options: ${problems.join('; ')}`, { problems });
  return o;
}

/**
 * Fewest clock ticks one sample spans. A sample is rounded to the clock, so at 100 ticks the
 * rounding is within ±1% of it. A browser page that is not cross-origin isolated reads
 * `performance.now()` in 100 µs steps: there the 1 ms default sample was rounded by ±10%, and
 * the median of per-round ratios fell on a grid of ratios of small integers (0.5, 0.483, 0.25:
 * docs/benchmarks.md, Chromium tfjs-wasm readings of one network 25% apart).
 */
export const MIN_TICKS_PER_SAMPLE = 100;

/**
 * The clock's step, ms: the smallest positive difference between successive readings, over
 * `advances` steps (at most `reads` readings). 0 when the clock never advanced.
 */
export function clockTickMs(now: () => number = defaultNow, advances = 20, reads = 1_000_000): number {
  let tick = Number.POSITIVE_INFINITY;
  let seen = 0;
  let last = now();
  for (let i = 0; i < reads && seen < advances; i++) {
    const t = now();
    if (t > last) {
      tick = Math.min(tick, t - last);
      seen++;
      last = t;
    }
  }
  return Number.isFinite(tick) ? tick : 0;
}

/**
 * `targetSampleMs` raised to `MIN_TICKS_PER_SAMPLE` ticks of a clock of step `tickMs` (no
 * change for a fine clock: Node's 1 ms default is already 10⁴ ticks and more).
 */
export function withClockFloor<T extends { readonly targetSampleMs?: number }>(options: T | undefined, tickMs: number, defaultTargetMs = DEFAULT_MEASURE_OPTIONS.targetSampleMs): T {
  const o = (options ?? {}) as T;
  const floor = MIN_TICKS_PER_SAMPLE * (Number.isFinite(tickMs) && tickMs > 0 ? tickMs : 0);
  const target = o.targetSampleMs ?? defaultTargetMs;
  return target >= floor ? o : { ...o, targetSampleMs: floor };
}

function defaultNow(): number {
  return globalThis.performance.now();
}

/** Runs `run` once, awaiting it only when it returns a thenable (sync ops pay no microtask). */
async function runOnce(run: () => void | Promise<void>): Promise<void> {
  const r = run();
  if (r !== undefined && typeof (r as Promise<void>).then === 'function') await r;
}

/** A clock reading that must be finite. */
function readClock(now: () => number): number {
  const t = now();
  if (!Number.isFinite(t)) throw new MorphError('MORPH_ERR_MEASUREMENT', `the clock returned ${t}; it must return finite milliseconds`);
  return t;
}

interface Attempt {
  readonly samples: number[];
  readonly stats: SampleStats;
  /** max(cv/maxCv, spread/maxSpread): ≤ 1 passes; the smallest is the tightest. */
  readonly looseness: number;
  readonly capped: boolean;
}

function loosenessOf(stats: SampleStats, o: Required<MeasureOptions>): number {
  const spread = stats.median > 0 ? (stats.p90 - stats.p10) / stats.median : stats.p90 > stats.p10 ? Infinity : 0;
  const byCv = o.maxCv > 0 ? stats.cv / o.maxCv : stats.cv > 0 ? Infinity : 0;
  const bySpread = o.maxSpread > 0 ? spread / o.maxSpread : spread > 0 ? Infinity : 0;
  return Math.max(byCv, bySpread);
}

/**
 * The wall-time budget: a run or loop may start only if it would end by the deadline, judged by
 * the longest per-run time seen so far (the first run excepted: it pays for compilation).
 */
class Budget {
  readonly deadline: number;
  #longest = 0;
  #seen = 0;

  constructor(deadline: number) {
    this.deadline = deadline;
  }

  record(perRunMs: number): void {
    if (this.#seen++ === 0) return;
    this.#longest = Math.max(this.#longest, perRunMs);
  }

  fits(t: number, runs: number): boolean {
    return t + this.#longest * runs <= this.deadline;
  }
}

/**
 * Times `run` by the protocol above and returns per-run statistics in milliseconds.
 * Errors thrown by `run` propagate unchanged.
 * @throws MorphError MORPH_ERR_BAD_ARGUMENT for bad options; MORPH_ERR_MEASUREMENT when the clock
 *   is non-finite or does not advance over `maxRunsPerSample` runs.
 */
export async function measure(run: () => void | Promise<void>, options: MeasureOptions = {}): Promise<Measurement> {
  const o = resolveOptions(options);
  const start = readClock(o.now);
  const budget = new Budget(start + o.maxMs);
  let capped = false;

  // 1. Warm-up, timing each run to estimate one run's duration (the later half: first runs JIT).
  let warmupRuns = 0;
  const warmTimes: number[] = [];
  for (;;) {
    const t = readClock(o.now);
    if (warmupRuns >= o.warmupRuns && t - start >= o.warmupMs) break;
    // A clock that does not advance would keep us here forever; step 2 reports it.
    if (warmupRuns >= Math.max(o.warmupRuns, o.maxRunsPerSample)) break;
    if (warmupRuns > 0 && !budget.fits(t, 1)) {
      capped = true;
      break;
    }
    await runOnce(run);
    const dt = readClock(o.now) - t;
    budget.record(dt);
    warmTimes.push(dt);
    warmupRuns++;
  }

  // 2. Runs per sample, from the warm-up's estimate of one run, checked by timed loops.
  const tail = warmTimes.slice(Math.floor(warmTimes.length / 2));
  const estimate = tail.length > 0 ? tail.reduce((a, b) => a + b, 0) / tail.length : 0;
  let k = 1;
  // With a single warm-up run the estimate is that run, which pays for compilation: it says
  // nothing about one run's length, so time loops as for a short run (k stays 1 if it is long).
  if (estimate < o.targetSampleMs || warmTimes.length < 2) {
    if (estimate > 0) k = Math.min(o.maxRunsPerSample, Math.ceil((o.targetSampleMs * 1.2) / estimate));
    const sized = await sizeLoop(run, k, o, budget, warmupRuns > 0);
    k = sized.k;
    warmupRuns += sized.runs;
    capped ||= sized.capped;
  }

  // 3–4. Sample; re-measure while the spread is too wide and time is left.
  const attempts: Attempt[] = [];
  let resized = 0;
  while (attempts.length < o.maxAttempts) {
    if (attempts.length > 0 && !budget.fits(readClock(o.now), k)) break;
    const attempt = await sampleOnce(run, k, o, budget);
    // Runs became much faster than the warm-up said (a warm-up slowed by a busy machine, or a
    // JIT that settled late): a loop this short reads the clock's ticks, not the op (a 20 µs op
    // on a browser's 0.1 ms clock reads 0). Size the loop again and sample anew.
    if (attempt.stats.median * k < o.targetSampleMs / 4 && k < o.maxRunsPerSample && resized < MAX_RESIZES) {
      resized++;
      const perRun = attempt.stats.median;
      const start = perRun > 0 ? Math.ceil((o.targetSampleMs * 1.2) / perRun) : k * 10;
      const sized = await sizeLoop(run, Math.min(o.maxRunsPerSample, Math.max(k + 1, start)), o, budget, true);
      warmupRuns += sized.runs + attempt.samples.length * k;
      capped ||= sized.capped;
      if (!sized.capped && sized.k > k) {
        k = sized.k;
        continue;
      }
    }
    attempts.push(attempt);
    capped ||= attempt.capped;
    if (attempt.looseness <= 1) break;
  }
  const best = attempts.reduce((a, b) => (b.looseness < a.looseness ? b : a));
  return {
    medianMs: best.stats.median,
    p10Ms: best.stats.p10,
    p90Ms: best.stats.p90,
    meanMs: best.stats.mean,
    cv: best.stats.cv,
    n: best.stats.n,
    runsPerSample: k,
    stable: best.looseness <= 1,
    attempts: attempts.length,
    warmupRuns,
    capped,
    totalMs: readClock(o.now) - start,
    samplesMs: best.samples,
  };
}

/** Times the sampling loop is re-sized when its samples turn out far shorter than `targetSampleMs`. */
const MAX_RESIZES = 3;

/**
 * Grows a timed loop of `k` runs until one loop lasts `targetSampleMs` (a coarse clock can read 0
 * for a few runs). The loops run here count as warm-up.
 * @throws MorphError MORPH_ERR_MEASUREMENT when the clock does not advance over `maxRunsPerSample` runs.
 */
async function sizeLoop(run: () => void | Promise<void>, k: number, o: Required<MeasureOptions>, budget: Budget, mayCap: boolean): Promise<{ k: number; runs: number; capped: boolean }> {
  let runs = 0;
  for (;;) {
    const t = readClock(o.now);
    if (mayCap && !budget.fits(t, k)) return { k, runs, capped: true };
    for (let i = 0; i < k; i++) await runOnce(run);
    const elapsed = readClock(o.now) - t;
    budget.record(elapsed / k);
    runs += k;
    mayCap = true;
    if (elapsed >= o.targetSampleMs || k >= o.maxRunsPerSample) {
      if (elapsed <= 0) {
        throw new MorphError('MORPH_ERR_MEASUREMENT', `the clock did not advance over ${k} runs; raise maxRunsPerSample or use a finer clock`, { runs: k });
      }
      return { k, runs, capped: false };
    }
    const grow = elapsed > 0 ? Math.ceil((k * o.targetSampleMs * 1.2) / elapsed) : k * 10;
    k = Math.min(o.maxRunsPerSample, Math.max(k + 1, grow));
  }
}

async function sampleOnce(run: () => void | Promise<void>, k: number, o: Required<MeasureOptions>, budget: Budget): Promise<Attempt> {
  const samples: number[] = [];
  const begin = readClock(o.now);
  let capped = false;
  for (;;) {
    const t = readClock(o.now);
    if (samples.length >= o.minSamples && t - begin >= o.minWindowMs) break;
    if (samples.length >= o.maxSamples || (samples.length > 0 && !budget.fits(t, k))) {
      capped = true;
      break;
    }
    for (let i = 0; i < k; i++) await runOnce(run);
    const perRun = (readClock(o.now) - t) / k;
    budget.record(perRun);
    samples.push(perRun);
  }
  const stats = summarize(samples);
  return { samples, stats, looseness: loosenessOf(stats, o), capped };
}
