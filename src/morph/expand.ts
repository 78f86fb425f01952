/**
 * MorphNet's expand step: one uniform width multiplier ω over the learned (alive) structure,
 * the largest whose cost stays within the target, found by bisection. Widths are rounded to a
 * multiple of `divisor` (hardware likes multiples of 8; tiny models use 4). Groups MorphNet does
 * not regularize keep their width; what rounding leaves of the budget goes to the groups it cut
 * most. The same routine, started from the seed's widths, gives the
 * uniform-multiplier baseline.
 *
 * The cost is any function of the group widths (`WidthCost`): FLOPs or parameters under a
 * `CostModel` (`costModelCost`), or a device's predicted latency (`expandToLatency`,
 * expand-latency.ts).
 */
import { MorphError } from '../errors.ts';
import type { CostModel, CostOp } from '../cost/cost-model.ts';
import type { ChannelAnalysis } from '../graph/channel-groups.ts';
import { roundWidth } from '../graph/widths.ts';
import { costAt } from './network-cost.ts';

export interface ExpandOptions {
  /** Round widths to a multiple of this (default 1). */
  readonly divisor?: number;
  /** Bisection stops when the bracket is narrower than this relative width (default 1e-4). */
  readonly tolerance?: number;
  /**
   * The most a target may be, in the cost's unit: a larger one throws (`details.seed`). Default:
   * no cap. Latency expand caps at the seed's predicted latency, since a network above it would
   * be wider than the seed the tables were profiled for.
   */
  readonly ceiling?: number;
}

export interface ExpandResult {
  readonly multiplier: number;
  /** Width of every group. */
  readonly widths: number[];
  readonly cost: number;
}

/**
 * What expand prices a network with: its whole cost at any group widths. `at` must not decrease
 * when a regularized group widens (bisection on ω and the rounding fill rely on it).
 */
export interface WidthCost {
  /** The network's cost at `widths` (one per channel group of the analysis). */
  readonly at: (widths: number[]) => number;
  /** The cost's unit in messages: 'FLOPs', 'params', 'ms'. */
  readonly unit: string;
  /** Decimal places of a cost in messages (0 for FLOPs and params, 3 for ms). */
  readonly digits: number;
}

/** The cost of `ops` under `model` as a `WidthCost` (no decimals in messages). */
export function costModelCost(ops: readonly CostOp[], model: CostModel): WidthCost {
  return { at: (widths) => costAt(ops, model, widths), unit: model.unit, digits: 0 };
}

export function widthsAt(analysis: ChannelAnalysis, base: ArrayLike<number>, multiplier: number, divisor: number): number[] {
  return analysis.groups.map((g) => (g.regularized ? roundWidth(base[g.id] * multiplier, divisor) : g.channels));
}

/** The cheapest network the structure can become: every regularized group at `divisor` channels. */
export function minimumCost(ops: readonly CostOp[], analysis: ChannelAnalysis, model: CostModel, divisor = 1): number {
  return costAt(ops, model, floorWidths(analysis, divisor));
}

/** The smallest network expand can reach: every regularized group at `divisor` channels, the others at their own. */
export function floorWidths(analysis: ChannelAnalysis, divisor: number): number[] {
  return analysis.groups.map((g) => (g.regularized ? divisor : g.channels));
}

/**
 * Largest ω with cost(round(ω·base)) ≤ target, by bisection, then the budget that rounding
 * leaves given back one `divisor` at a time (`fillRounding`). Only regularized groups change;
 * `cost` of the result is `cost.at(widths)`.
 * @throws MorphError `MORPH_ERR_BAD_ARGUMENT` for a divisor that is not a positive integer, a
 *   tolerance outside (0, 1) or a `base` of the wrong length; `MORPH_ERR_TARGET` for a target
 *   that is not a positive number, one below the minimum reachable cost (every regularized group
 *   at `divisor` channels; `details.minimum`) or one above `options.ceiling` (`details.seed`);
 *   whatever `cost.at` throws.
 */
export function expandToTarget(analysis: ChannelAnalysis, cost: WidthCost, base: ArrayLike<number>, target: number, options: ExpandOptions = {}): ExpandResult {
  const divisor = options.divisor ?? 1;
  const tolerance = options.tolerance ?? 1e-4;
  if (!Number.isInteger(divisor) || divisor < 1) throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `divisor must be a positive integer, got ${divisor}`);
  if (!(tolerance > 0 && tolerance < 1)) throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `tolerance must be in (0, 1), got ${tolerance}`);
  if (base.length !== analysis.groups.length) throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `base has ${base.length} widths; the network has ${analysis.groups.length} channel groups`);
  const show = (x: number): string => `${x.toFixed(cost.digits)} ${cost.unit}`;
  if (!(Number.isFinite(target) && target > 0)) throw new MorphError('MORPH_ERR_TARGET', `target ${target} must be a positive number of ${cost.unit}`, { target });
  const minimum = cost.at(floorWidths(analysis, divisor));
  if (minimum > target) {
    throw new MorphError(
      'MORPH_ERR_TARGET',
      `target ${show(target)} is below the minimum reachable ${show(minimum)} (every regularized group at ${divisor} channel${divisor > 1 ? 's' : ''}, everything else at its fixed cost); raise the target or lower the divisor`,
      { target, minimum },
    );
  }
  if (options.ceiling !== undefined && target > options.ceiling) {
    throw new MorphError('MORPH_ERR_TARGET', `target ${show(target)} is above the seed's ${show(options.ceiling)}: the seed already meets it; give a smaller target`, { target, seed: options.ceiling });
  }
  const at = (w: number): ExpandResult => {
    const widths = widthsAt(analysis, base, w, divisor);
    return { multiplier: w, widths, cost: cost.at(widths) };
  };
  const maxBase = Math.max(1, ...analysis.groups.filter((g) => g.regularized).map((g) => base[g.id]));
  // Below lo every group sits at the divisor; grow hi until it overshoots.
  let lo = divisor / (2 * maxBase);
  let hi = 1;
  let guard = 0;
  while (at(hi).cost <= target && guard++ < 40) {
    lo = hi;
    hi *= 2;
  }
  while ((hi - lo) / hi > tolerance) {
    const mid = (lo + hi) / 2;
    if (at(mid).cost <= target) lo = mid;
    else hi = mid;
  }
  return fillRounding(analysis, cost, base, target, at(lo), divisor);
}

/**
 * Rounding to integer widths leaves part of the budget unused (one more step of ω changes many
 * groups at once). Give it back one divisor at a time to the groups that rounding cut most
 * (largest ω·base − width first, ties in group order) while the cost stays within the target.
 */
function fillRounding(analysis: ChannelAnalysis, cost: WidthCost, base: ArrayLike<number>, target: number, start: ExpandResult, divisor: number): ExpandResult {
  const widths = [...start.widths];
  let total = start.cost;
  const cut = (id: number): number => start.multiplier * base[id] - start.widths[id];
  const order = analysis.groups.filter((g) => g.regularized).sort((a, b) => cut(b.id) - cut(a.id));
  for (const g of order) {
    widths[g.id] += divisor;
    const c = cost.at(widths);
    if (c <= target) total = c;
    else widths[g.id] -= divisor;
  }
  return { multiplier: start.multiplier, widths, cost: total };
}
