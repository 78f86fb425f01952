/**
 * A network's cost under any `CostModel` as a function of its group widths: every weighted op is
 * priced at the channel counts its input and output layouts give. This is what the expand step
 * bisects on and what the regularizer differentiates.
 */
import type { CostModel, CostOp } from '../cost/cost-model.ts';
import { channelsAt } from '../graph/widths.ts';

export function opChannels(op: CostOp, widths: ArrayLike<number>): { cIn: number; cOut: number } {
  return { cIn: channelsAt(op.inLayout, widths), cOut: channelsAt(op.outLayout, widths) };
}

export function costAt(ops: readonly CostOp[], model: CostModel, widths: ArrayLike<number>): number {
  let total = 0;
  for (const op of ops) {
    const { cIn, cOut } = opChannels(op, widths);
    total += model.cost(op, cIn, cOut);
  }
  return total;
}
