/**
 * MorphNet's expand step against measured latency: `expandToTarget` (expand.ts) with the cost a
 * network's latency as one device's tables predict it (`networkLatencyAt`, calibrated), and the
 * seed's latency as the ceiling of a target.
 */
import { seedWidths } from '../graph/widths.ts';
import { networkLatencyAt, type CalibrationTerms, type NetworkLatencyPlan, type TableOf } from '../cost/latency-locate.ts';
import { expandToTarget, type ExpandResult, type WidthCost } from './expand.ts';

export interface ExpandLatencyOptions {
  /** Round widths to a multiple of this (default 1). */
  readonly divisor?: number;
  /** Bisection stops when the bracket is narrower than this relative width (default 1e-4). */
  readonly tolerance?: number;
  /** The device's calibration; without it the target is compared with Σ table latencies. */
  readonly calibration?: CalibrationTerms;
  /**
   * The latency a target may not exceed, ms. Default: the plan's own network at its own widths.
   * A later round of the search plans the network the previous round found (already near the
   * target), so it passes the original seed's latency here.
   */
  readonly seedMs?: number;
  /**
   * Multiplies every predicted latency (default 1). A search anchors the prediction to the seed's
   * measured latency with it (`DeviceLatencyData.seedMeasuredMs`), so a target in measured ms and
   * the predictions it is compared with are in the same units.
   */
  readonly scale?: number;
}

/** The network of `plan` priced by the device's tables (and calibration), in ms, times `scale`. */
export function latencyCost(plan: NetworkLatencyPlan, tableOf: TableOf, calibration?: CalibrationTerms, scale = 1): WidthCost {
  return { at: (widths) => networkLatencyAt(plan, widths, tableOf, calibration).predictedMs * scale, unit: 'ms', digits: 3 };
}

/**
 * `expandToTarget` on `latencyCost(plan, tableOf, options.calibration, options.scale)`, capped at
 * `options.seedMs`: the largest ω with `networkLatencyAt(round(ω·base)).predictedMs ≤ targetMs`,
 * rounding filled back (`cost` is the predicted latency in ms). Only regularized groups change.
 * @throws MorphError `MORPH_ERR_TARGET` for a target below the minimum reachable latency (every
 *   regularized group at `divisor` channels; `details.minimum`) or above the seed's
 *   (`options.seedMs`, default the plan's network; `details.seed`); `MORPH_ERR_MISSING_OPS` as
 *   `networkLatencyAt`; `MORPH_ERR_BAD_ARGUMENT` for a bad divisor, tolerance or base length.
 */
export function expandToLatency(plan: NetworkLatencyPlan, base: ArrayLike<number>, targetMs: number, tableOf: TableOf, options: ExpandLatencyOptions = {}): ExpandResult {
  const cost = latencyCost(plan, tableOf, options.calibration, options.scale);
  const ceiling = options.seedMs ?? cost.at(seedWidths(plan.analysis));
  return expandToTarget(plan.analysis, cost, base, targetMs, { divisor: options.divisor, tolerance: options.tolerance, ceiling });
}
