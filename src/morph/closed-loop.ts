/**
 * The aim of closed-loop expand: what predicted latency to ask expand for next, given the
 * measurements so far. Scaling the aim by target/measured assumes the prediction is off by one
 * constant factor; with a one-network calibration it is not (on Node tflite the 0.1 ms networks
 * ran 1.8× faster than predicted, the 0.3 ms ones 1.06×), and that rule jumped between the two
 * for five measurements. Once one measurement lies on each side of the target, the next aim is
 * interpolated between them instead (regula falsi), which closes on the target whatever the
 * factor does in between.
 */

/** One measured candidate: the predicted latency expand aimed at, and the device's median. */
export interface AimPoint {
  readonly aimedAt: number;
  readonly measured: number;
}

/** The measurements closest to the target from below and from above (null where there is none). */
function closestEitherSide<T extends { readonly measured: number }>(steps: readonly T[], target: number): { below: T | null; above: T | null } {
  let below: T | null = null;
  let above: T | null = null;
  for (const s of steps) {
    if (s.measured < target && (below === null || s.measured > below.measured)) below = s;
    if (s.measured > target && (above === null || s.measured < above.measured)) above = s;
  }
  return { below, above };
}

/** A measured candidate with the width multiplier it was built at. */
export interface MultiplierPoint {
  readonly multiplier: number;
  readonly measured: number;
}

/**
 * Once the measurements bracket the target, the next width multiplier, interpolated between the
 * closest measurement below and above it in ω (regula falsi, Illinois variant); null while they
 * do not. This steps past the prediction altogether: on Node tflite the table predicted 0.268 ms
 * at ω 0.53 and 0.285 ms at ω 0.80 while the device measured 0.16 and 0.245 ms, so every aim
 * between the two predictions gave back ω 0.53 or 0.80, nothing in between. Measured latency
 * grows with ω whatever the table says, so a bracket in ω holds the networks in between.
 */
export function bracketMultiplier<T extends MultiplierPoint>(steps: readonly T[], target: number): { multiplier: number; below: T; above: T } | null {
  const { below, above } = closestEitherSide(steps, target);
  if (!below || !above || !(above.multiplier > below.multiplier) || !(above.measured > below.measured)) return null;
  // Illinois: when the latest measurements all fell on one side, the far end of the bracket has
  // not moved and plain regula falsi creeps up on a convex curve (Node tflite, uniform baseline:
  // 0.130, 0.154, 0.169 ms against a 0.192 ms target); halve the far end's weight for each
  // repeat so the next step reaches past them.
  const side = (m: MultiplierPoint): number => Math.sign(m.measured - target);
  let repeats = 0;
  for (let i = steps.length - 1; i > 0 && side(steps[i]) === side(steps[i - 1]); i--) repeats++;
  const lastBelow = side(steps[steps.length - 1]) < 0;
  const weightAbove = lastBelow ? 0.5 ** repeats : 1;
  const weightBelow = lastBelow ? 1 : 0.5 ** repeats;
  const fa = (above.measured - target) * weightAbove;
  const fb = (below.measured - target) * weightBelow;
  const multiplier = (below.multiplier * fa - above.multiplier * fb) / (fa - fb);
  return { multiplier, below, above };
}

/**
 * The next aim after `steps` (at least one), for a measured `target`, below `ceiling` (the seed's
 * predicted latency, the most expand can reach): a ratio step past it (the first candidate ran
 * at half the target) would end the loop as unreachable, where the seed itself is a candidate
 * that brackets the target.
 */
export function nextAim(steps: readonly AimPoint[], target: number, ceiling = Number.POSITIVE_INFINITY): number {
  return Math.min(unclamped(steps, target), ceiling * (1 - 1e-6));
}

function unclamped(steps: readonly AimPoint[], target: number): number {
  const last = steps[steps.length - 1];
  const { below, above } = closestEitherSide(steps, target);
  if (below && above && above.aimedAt > below.aimedAt && above.measured > below.measured) {
    return below.aimedAt + ((target - below.measured) * (above.aimedAt - below.aimedAt)) / (above.measured - below.measured);
  }
  return last.aimedAt * (target / last.measured);
}

/** Most measurements `settledLow` takes of one network. */
export const MAX_MEASUREMENTS = 6;

/**
 * Measures one network until two of its measurements agree: after each measurement, the lowest
 * pair within `spread` (relative) of each other decides, and the lower of the two is kept. When no
 * two agree after `maxRuns`, the median of all is kept.
 *
 * Why not one measurement, or the lowest of a few: on these 2-core VMs a whole measurement (one
 * load, a few hundred ms of runs) of the same tfjs-wasm network came out at 2.7 or 4.2 ms, and a
 * memory-bound loop alternated between two speeds for seconds at a time (cache contention from
 * outside the VM); interference only slows a run down, so the floor is the figure that repeats.
 * A single low outlier happens too (1.85 ms between 2.51 and 2.71 in one closed loop), so the
 * floor has to be confirmed by a second measurement before it counts.
 */
export async function settledLow(measureOnce: (run: number) => Promise<number>, spread = 0.03, maxRuns = MAX_MEASUREMENTS): Promise<{ measured: number; runs: number[]; settled: boolean }> {
  const runs: number[] = [];
  while (runs.length < maxRuns) {
    runs.push(await measureOnce(runs.length + 1));
    const agreed = lowestAgreeing(runs, spread);
    if (agreed !== null) return { measured: agreed, runs, settled: true };
  }
  const sorted = [...runs].sort((a, b) => a - b);
  const mid = sorted.length / 2;
  const median = sorted.length % 2 === 1 ? sorted[Math.floor(mid)] : (sorted[mid - 1] + sorted[mid]) / 2;
  return { measured: median, runs, settled: false };
}

/** The lower value of the lowest pair of `values` within `spread` of each other; null when none agree. */
export function lowestAgreeing(values: readonly number[], spread: number): number | null {
  const sorted = [...values].sort((a, b) => a - b);
  for (let i = 0; i + 1 < sorted.length; i++) {
    if (sorted[i + 1] - sorted[i] <= spread * sorted[i]) return sorted[i];
  }
  return null;
}

/**
 * A network's latency in the terms of a reference (the seed): its ratio to the reference, timed
 * interleaved with it (src/measure/interleaved.ts), times the reference's settled latency.
 *
 * Why: on this 2-core VM the same MobileNetV2 at ω 0.8 measured 0.86 ms or 1.30 ms on Node tflite,
 * in phases of up to 15 s with nothing else running, and every network slowed by the same factor
 * (×1.54 for the seed and for ω 0.8). One closed loop ran in a fast phase and the next in a slow
 * one, so at the same target the uniform baseline got two thirds of latency-MorphNet's MACs
 * and the comparison measured the machine, not the search. Measuring the seed right before each
 * candidate was not enough: the phases switch inside a measurement too, and on tfjs-wasm the
 * ratio of two back-to-back measurements spread ×2.5 (docs/benchmarks.md). Interleaved sample by
 * sample, both share each phase, and the ratio's spread fell to ×1.055.
 */
export function referencedMs(ratio: number, referenceMs: number): number {
  return ratio * referenceMs;
}
