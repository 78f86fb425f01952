/**
 * MorphNet's expand step against measured latency: the uniform width multiplier over the learned
 * structure whose network, priced by one device's tables (`networkLatencyAt`, calibrated), is the
 * largest within the target in ms. The latency twin of `expandToTarget` (expand.ts), with the same
 * rounding and result.
 */
import { MorphError } from '../errors.ts';
import { seedWidths } from '../graph/widths.ts';
import { networkLatencyAt, type CalibrationTerms, type NetworkLatencyPlan, type TableOf } from '../cost/latency-locate.ts';
import { floorWidths, widthsAt, type ExpandOptions, type ExpandResult } from './expand.ts';

export interface ExpandLatencyOptions extends ExpandOptions {
  /** The device's calibration; without it the target is compared with Σ table latencies. */
  readonly calibration?: CalibrationTerms;
  /**
   * The latency a target may not exceed, ms. Default: the plan's own network at its own widths.
   * A later round of the search plans the network the previous round found (already near the
   * target), so it passes the original seed's latency here.
   */
  readonly seedMs?: number;
}

const ms = (x: number): string => `${x.toFixed(3)} ms`;

/**
 * MorphNet's expand against measured latency: the largest ω with
 * `networkLatencyAt(round(ω·base)).predictedMs ≤ targetMs` (whole network, calibrated), by
 * bisection, then the budget that rounding leaves is given back one `divisor` at a time to the
 * groups rounding cut most — as `expandToTarget` does, with the same rounding and result
 * (`cost` is the predicted latency in ms). Only regularized groups change.
 * @throws MorphError `MORPH_ERR_TARGET` for a target below the minimum reachable latency (every
 *   regularized group at `divisor` channels; `details.minimum`) or above the seed's
 *   (`options.seedMs`, default the plan's network; `details.seed`); `MORPH_ERR_MISSING_OPS` as
 *   `networkLatencyAt`; `MORPH_ERR_BAD_ARGUMENT` for a bad divisor, tolerance or base length.
 */
export function expandToLatency(plan: NetworkLatencyPlan, base: ArrayLike<number>, targetMs: number, tableOf: TableOf, options: ExpandLatencyOptions = {}): ExpandResult {
  const { analysis } = plan;
  const divisor = options.divisor ?? 1;
  const tolerance = options.tolerance ?? 1e-4;
  if (!Number.isInteger(divisor) || divisor < 1) throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `divisor must be a positive integer, got ${divisor}`);
  if (!(tolerance > 0 && tolerance < 1)) throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `tolerance must be in (0, 1), got ${tolerance}`);
  if (base.length !== analysis.groups.length) throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `base has ${base.length} widths; the network has ${analysis.groups.length} channel groups`);
  if (!(Number.isFinite(targetMs) && targetMs > 0)) throw new MorphError('MORPH_ERR_TARGET', `target ${targetMs} must be a positive number of ms`, { target: targetMs });
  const latency = (widths: number[]): number => networkLatencyAt(plan, widths, tableOf, options.calibration).predictedMs;
  const at = (w: number): ExpandResult => {
    const widths = widthsAt(analysis, base, w, divisor);
    return { multiplier: w, widths, cost: latency(widths) };
  };
  const minimum = latency(floorWidths(analysis, divisor));
  if (minimum > targetMs) {
    throw new MorphError(
      'MORPH_ERR_TARGET',
      `target ${ms(targetMs)} is below the minimum reachable ${ms(minimum)} (every regularized group at ${divisor} channel${divisor > 1 ? 's' : ''}; the fixed layers and the calibration's constant cost the rest); raise the target or lower the divisor`,
      { target: targetMs, minimum },
    );
  }
  const seed = options.seedMs ?? latency(seedWidths(analysis));
  if (targetMs > seed) {
    throw new MorphError('MORPH_ERR_TARGET', `target ${ms(targetMs)} is above the seed's predicted ${ms(seed)}: the seed already meets it; give a smaller target`, { target: targetMs, seed });
  }
  const maxBase = Math.max(1, ...analysis.groups.filter((g) => g.regularized).map((g) => base[g.id]));
  // Below lo every group sits at the divisor; grow hi until it overshoots.
  let lo = divisor / (2 * maxBase);
  let hi = 1;
  let guard = 0;
  while (at(hi).cost <= targetMs && guard++ < 40) {
    lo = hi;
    hi *= 2;
  }
  while ((hi - lo) / hi > tolerance) {
    const mid = (lo + hi) / 2;
    if (at(mid).cost <= targetMs) lo = mid;
    else hi = mid;
  }
  const start = at(lo);
  const widths = [...start.widths];
  let cost = start.cost;
  const cut = (id: number): number => start.multiplier * base[id] - widths[id];
  const order = analysis.groups.filter((g) => g.regularized).sort((a, b) => cut(b.id) - cut(a.id));
  for (const g of order) {
    widths[g.id] += divisor;
    const c = latency(widths);
    if (c <= targetMs) cost = c;
    else widths[g.id] -= divisor;
  }
  return { multiplier: start.multiplier, widths, cost };
}
