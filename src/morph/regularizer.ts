/**
 * The MorphNet resource regularizer (DESIGN "The math"):
 *
 *   R = Σ_L [ ∂cost/∂c_out(L) · Σ_j |γ_out,j| + ∂cost/∂c_in(L) · Σ_i |γ_in,i| ]
 *
 * with |γ| of a channel group taken as the max over the batch norms that cover it, and the
 * marginals evaluated at the current *alive* channel counts. R is linear in each group's Σ|γ|,
 * so it is computed as Σ_g w_g · Σ_c max|γ_g,c| with per-group coefficients w_g that only change
 * when alive counts do. For the FLOP cost this equals the reference implementation's
 * `coeff·(a_in·Σ|γ_out| + a_out·Σ|γ_in|)`.
 */
import type { CostModel, CostOp } from '../cost/cost-model.ts';
import type { ChannelAnalysis, ChannelLayout } from '../graph/channel-groups.ts';
import { opChannels } from './network-cost.ts';

/**
 * w_g for every group (0 for groups MorphNet does not regularize).
 * @param alive the alive channel count of every group (full width for unregularized groups).
 */
export function groupCoefficients(ops: readonly CostOp[], analysis: ChannelAnalysis, model: CostModel, alive: ArrayLike<number>): Float64Array {
  const w = new Float64Array(analysis.groups.length);
  const addLayout = (layout: ChannelLayout, marginal: number): void => {
    // A channel repeated r times (depthwise multiplier) is r input channels of the op.
    for (const s of layout.segments) if (analysis.groups[s.group].regularized) w[s.group] += marginal * s.repeat;
  };
  for (const op of ops) {
    const { cIn, cOut } = opChannels(op, alive);
    const m = model.marginals(op, cIn, cOut);
    addLayout(op.inLayout, m.dIn);
    addLayout(op.outLayout, m.dOut);
  }
  return w;
}

/** R evaluated on plain numbers: Σ_g w_g · Σ_c |γ_g,c|, with `gammas[g]` the group max |γ|. */
export function regularizerValue(coefficients: ArrayLike<number>, gammas: readonly ArrayLike<number>[]): number {
  let r = 0;
  for (let g = 0; g < gammas.length; g++) {
    if (!coefficients[g]) continue;
    let s = 0;
    for (let c = 0; c < gammas[g].length; c++) s += Math.abs(gammas[g][c]);
    r += coefficients[g] * s;
  }
  return r;
}
