/**
 * Interleaved measurement: several runnables timed in alternation, sample by sample, so that a
 * change of the machine's speed hits them all alike.
 *
 * Why: the development VM has a fast and a slow phase (docs/benchmarks.md, "The machine has two
 * speeds") that switch within seconds, and inside a single measurement as well. Two networks
 * measured one after the other, even right after each other (what the closed loop did before
 * measure jobs took a `reference`), can land in different phases: their ratio then spreads ×2.5 on
 * tfjs-wasm. Alternating samples (A B B A A B …, the order reversed each round so that a drift
 * within a round cancels) puts both in the same phase at each round, and the median over rounds
 * of the per-round ratio B/A is what a closed loop or a table needs: a network's time in the terms
 * of a reference measured alongside it.
 */
import { MorphError } from '../errors.ts';
import { DEFAULT_MEASURE_OPTIONS, summarize, type Measurement, type MeasureOptions, type SampleStats } from './timing.ts';

export interface InterleavedOptions {
  /** Clock in milliseconds. Default `performance.now()`. */
  readonly now?: () => number;
  /** Warm-up runs per runnable. Default 3. */
  readonly warmupRuns?: number;
  /** A sample lasts at least this long, ms: shorter runs are looped. Default 1. */
  readonly targetSampleMs?: number;
  /** Most runs looped in one sample. Default 100_000. */
  readonly maxRunsPerSample?: number;
  /** Minimum rounds (one sample of each runnable per round). Default 15. */
  readonly minRounds?: number;
  /** Minimum time spent in rounds, ms. Default 300. */
  readonly minWindowMs?: number;
  /** Most rounds. Default 500. */
  readonly maxRounds?: number;
  /**
   * Wall-time budget, ms. Default 10_000. No round starts when it would end past the budget
   * (judged by the longest round so far); the first round is always taken.
   */
  readonly maxMs?: number;
}

const DEFAULTS: Required<Omit<InterleavedOptions, 'now'>> = Object.freeze({
  warmupRuns: 3,
  targetSampleMs: 1,
  maxRunsPerSample: 100_000,
  minRounds: 15,
  minWindowMs: 300,
  maxRounds: 500,
  maxMs: 10_000,
});

export interface InterleavedMeasurement {
  /** Per runnable, in the order given: its per-run times over the rounds, ms. */
  readonly each: readonly SampleStats[];
  /**
   * Per runnable: the per-round ratio of its per-run time to the first runnable's (the
   * reference). `ratios[0]` is all ones.
   */
  readonly ratios: readonly SampleStats[];
  readonly rounds: number;
  /** Runs looped in one sample, per runnable. */
  readonly runsPerSample: readonly number[];
  /** Whether `maxMs` stopped the rounds before `minRounds` and `minWindowMs` were reached. */
  readonly capped: boolean;
  readonly totalMs: number;
}

type Run = () => void | Promise<void>;

/** Times a runnable's loop is grown when its samples turn out far shorter than `targetSampleMs`. */
const MAX_RESIZES = 3;

async function runOnce(run: Run): Promise<void> {
  const r = run();
  if (r !== undefined && typeof (r as Promise<void>).then === 'function') await r;
}

function resolve(options: InterleavedOptions): Required<InterleavedOptions> {
  const o = { ...DEFAULTS, now: () => globalThis.performance.now(), ...options };
  const problems: string[] = [];
  for (const k of ['targetSampleMs', 'minWindowMs', 'maxMs'] as const) if (!(Number.isFinite(o[k]) && o[k] >= 0)) problems.push(`${k} must be a finite number ≥ 0, got ${o[k]}`);
  for (const k of ['maxRunsPerSample', 'minRounds', 'maxRounds'] as const) if (!(Number.isInteger(o[k]) && o[k] >= 1)) problems.push(`${k} must be an integer ≥ 1, got ${o[k]}`);
  if (!(Number.isInteger(o.warmupRuns) && o.warmupRuns >= 0)) problems.push(`warmupRuns must be an integer ≥ 0, got ${o.warmupRuns}`);
  if (typeof o.now !== 'function') problems.push('now must be a function returning milliseconds');
  if (problems.length > 0) throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `bad interleaved measure options: ${problems.join('; ')}`, { problems });
  return o;
}

/**
 * Times `runs` in alternation and returns each one's per-run statistics and its per-round ratio
 * to `runs[0]`. Errors thrown by a run propagate unchanged.
 * @throws MorphError MORPH_ERR_BAD_ARGUMENT for fewer than two runnables or bad options;
 *   MORPH_ERR_MEASUREMENT when the clock is not finite or does not advance over a whole sample.
 */
export async function measureInterleaved(runs: readonly Run[], options: InterleavedOptions = {}): Promise<InterleavedMeasurement> {
  if (runs.length < 2) throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `an interleaved measurement needs at least two runnables (a reference first), got ${runs.length}`);
  const o = resolve(options);
  const clock = (): number => {
    const t = o.now();
    if (!Number.isFinite(t)) throw new MorphError('MORPH_ERR_MEASUREMENT', `the clock returned ${t}; it must return finite milliseconds`);
    return t;
  };
  const start = clock();

  // Warm-up: the later half of each runnable's timed runs estimates one run (the first compile).
  const k: number[] = [];
  for (const run of runs) {
    const times: number[] = [];
    for (let i = 0; i < Math.max(1, o.warmupRuns); i++) {
      const t = clock();
      await runOnce(run);
      times.push(clock() - t);
    }
    const tail = times.slice(Math.floor(times.length / 2));
    const estimate = tail.reduce((a, b) => a + b, 0) / tail.length;
    k.push(estimate > 0 ? Math.min(o.maxRunsPerSample, Math.max(1, Math.ceil((o.targetSampleMs * 1.2) / estimate))) : o.maxRunsPerSample);
  }

  const samples: number[][] = runs.map(() => []);
  const resizes: number[] = runs.map(() => 0);
  const roundsStart = clock();
  let longestRound = 0;
  let capped = false;
  let rounds = 0;
  while (rounds < o.maxRounds) {
    const t0 = clock();
    if (rounds >= o.minRounds && t0 - roundsStart >= o.minWindowMs) break;
    if (rounds > 0 && t0 + longestRound > start + o.maxMs) {
      capped = true;
      break;
    }
    // Forward on even rounds, backward on odd ones: a drift within a round cancels over two.
    const order = rounds % 2 === 0 ? runs.map((_, i) => i) : runs.map((_, i) => runs.length - 1 - i);
    const round: number[] = runs.map(() => 0);
    let resized = false;
    for (const i of order) {
      const t = clock();
      for (let j = 0; j < k[i]; j++) await runOnce(runs[i]);
      const elapsed = clock() - t;
      // Runs far shorter than the warm-up said (its runs were slowed by compilation or a busy
      // machine): a loop this short reads the clock's ticks, not the runs (a browser's clock moves
      // in steps of 0.1 ms or more and reads 0 over a fast run). Grow this loop and take the round
      // again, a bounded number of times, as the plain protocol does.
      if (elapsed < o.targetSampleMs / 4 && k[i] < o.maxRunsPerSample && resizes[i] < MAX_RESIZES) {
        resizes[i]++;
        const grow = elapsed > 0 ? Math.ceil((k[i] * o.targetSampleMs * 1.2) / elapsed) : k[i] * 10;
        k[i] = Math.min(o.maxRunsPerSample, Math.max(k[i] + 1, grow));
        resized = true;
        continue;
      }
      if (elapsed <= 0) throw new MorphError('MORPH_ERR_MEASUREMENT', `the clock did not advance over ${k[i]} runs; use a finer clock or a larger targetSampleMs`, { runs: k[i] });
      round[i] = elapsed / k[i];
    }
    longestRound = Math.max(longestRound, clock() - t0);
    // A round with a re-sized loop is incomplete: its ratios would pair samples of unequal loops.
    if (resized) continue;
    for (let i = 0; i < runs.length; i++) samples[i].push(round[i]);
    rounds++;
  }
  return {
    each: samples.map((s) => summarize(s)),
    ratios: samples.map((s) => summarize(s.map((v, r) => v / samples[0][r]))),
    rounds,
    runsPerSample: k,
    capped,
    totalMs: clock() - start,
  };
}

/**
 * The protocol of a closed-loop measurement (a candidate interleaved with the seed): at least 100
 * rounds over 2 s. Why: the per-round ratio of one run of each is wide on tfjs-wasm (p10–p90
 * 0.23–1.16 for a candidate at ratio 0.48 in one `npm start`), so the 20 rounds of the default
 * protocol left its median ±6% between readings of the same network, twice the closed loop's ±3%.
 */
export const PAIRED_MEASURE_OPTIONS = Object.freeze({ minSamples: 100, minWindowMs: 2000, maxMs: 20_000 });

/** The options of a plain measurement (`measure` in ./protocol.ts) carried over to an interleaved one. */
export function interleavedOptionsFrom(o: MeasureOptions): InterleavedOptions {
  const d = DEFAULT_MEASURE_OPTIONS;
  return {
    ...(o.now ? { now: o.now } : {}),
    warmupRuns: o.warmupRuns ?? d.warmupRuns,
    targetSampleMs: o.targetSampleMs ?? d.targetSampleMs,
    maxRunsPerSample: Math.min(o.maxRunsPerSample ?? d.maxRunsPerSample, DEFAULTS.maxRunsPerSample),
    minRounds: o.minSamples ?? d.minSamples,
    minWindowMs: o.minWindowMs ?? d.minWindowMs,
    maxRounds: o.maxSamples ?? d.maxSamples,
    maxMs: o.maxMs ?? d.maxMs,
  };
}

/**
 * A network timed against a reference: its own figures, as a plain measurement gives them (one
 * attempt; `stable` says the ratio held still: its cv within `maxCv` and its p10–p90 spread within
 * `maxSpread` of its median), and the reference's with the ratio between them.
 */
export type PairedMeasurement = Pick<Measurement, 'medianMs' | 'p10Ms' | 'p90Ms' | 'meanMs' | 'cv' | 'n' | 'runsPerSample' | 'stable' | 'totalMs'> & {
  readonly attempts: 1;
  readonly reference: { readonly medianMs: number; readonly ratio: number; readonly ratioP10: number; readonly ratioP90: number; readonly rounds: number };
};

/**
 * Times `network` interleaved with `reference` (reference first) under the plain protocol's options,
 * and reports the network's per-run times with the per-round ratio to the reference.
 */
export async function measurePaired(reference: Run, network: Run, options: MeasureOptions = {}): Promise<PairedMeasurement> {
  const m = await measureInterleaved([reference, network], interleavedOptionsFrom(options));
  const [ref, net] = m.each;
  const ratio = m.ratios[1];
  const maxCv = options.maxCv ?? DEFAULT_MEASURE_OPTIONS.maxCv;
  const maxSpread = options.maxSpread ?? DEFAULT_MEASURE_OPTIONS.maxSpread;
  return {
    medianMs: net.median,
    p10Ms: net.p10,
    p90Ms: net.p90,
    meanMs: net.mean,
    cv: net.cv,
    n: net.n,
    runsPerSample: m.runsPerSample[1],
    stable: ratio.cv <= maxCv && (ratio.p90 - ratio.p10) / ratio.median <= maxSpread,
    attempts: 1,
    totalMs: m.totalMs,
    reference: { medianMs: ref.median, ratio: ratio.median, ratioP10: ratio.p10, ratioP90: ratio.p90, rounds: m.rounds },
  };
}
