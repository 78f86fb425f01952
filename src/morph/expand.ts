/**
 * MorphNet's expand step: one uniform width multiplier ω over the learned (alive) structure,
 * the largest whose cost stays within the target, found by bisection. Widths are rounded to a
 * multiple of `divisor` (hardware likes multiples of 8; tiny models use 4). Groups MorphNet does
 * not regularize keep their width; what rounding leaves of the budget goes to the groups it cut
 * most. The same routine, started from the seed's widths, gives the
 * uniform-multiplier baseline.
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
}

export interface ExpandResult {
  readonly multiplier: number;
  /** Width of every group. */
  readonly widths: number[];
  readonly cost: number;
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
 * Largest ω with cost(round(ω·base)) ≤ target.
 * @throws MorphError `MORPH_ERR_TARGET` when even the minimum widths cost more than the target.
 */
export function expandToTarget(
  ops: readonly CostOp[],
  analysis: ChannelAnalysis,
  model: CostModel,
  base: ArrayLike<number>,
  target: number,
  options: ExpandOptions = {},
): ExpandResult {
  const divisor = options.divisor ?? 1;
  const tolerance = options.tolerance ?? 1e-4;
  const at = (w: number): ExpandResult => {
    const widths = widthsAt(analysis, base, w, divisor);
    return { multiplier: w, widths, cost: costAt(ops, model, widths) };
  };
  const floor = minimumCost(ops, analysis, model, divisor);
  if (floor > target) {
    throw new MorphError(
      'MORPH_ERR_TARGET',
      `target ${fmt(target)} ${model.unit} is below the minimum reachable ${fmt(floor)} ${model.unit} (every resizable group at ${divisor} channel${divisor > 1 ? 's' : ''}; the fixed layers alone cost that); raise the target`,
      { target, minimum: floor },
    );
  }
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
  return fillRounding(ops, analysis, model, base, target, at(lo), divisor);
}

/**
 * Rounding to integer widths leaves part of the budget unused (one more step of ω changes many
 * groups at once). Give it back one divisor at a time to the groups that rounding cut most
 * (largest ω·base − width first) while the cost stays within the target.
 */
function fillRounding(
  ops: readonly CostOp[],
  analysis: ChannelAnalysis,
  model: CostModel,
  base: ArrayLike<number>,
  target: number,
  start: ExpandResult,
  divisor: number,
): ExpandResult {
  const widths = [...start.widths];
  let cost = start.cost;
  const order = analysis.groups
    .filter((g) => g.regularized)
    .sort((a, b) => start.multiplier * base[b.id] - widths[b.id] - (start.multiplier * base[a.id] - widths[a.id]));
  for (const g of order) {
    widths[g.id] += divisor;
    const c = costAt(ops, model, widths);
    if (c <= target) cost = c;
    else widths[g.id] -= divisor;
  }
  return { multiplier: start.multiplier, widths, cost };
}

function fmt(n: number): string {
  return n >= 1e6 ? `${(n / 1e6).toFixed(3)}M` : n.toFixed(0);
}
