/**
 * Random weights that make an export or equivalence check informative: batch-norm statistics and
 * biases moved off 1/0 (so that folding is exercised) and, optionally, kernels rescaled to variance
 * `kernelGain / fan-in`. With tfjs's Glorot kernels a depthwise or expanding layer shrinks the
 * signal, and after 50 layers the output no longer depends on the input; 1 suits networks with
 * batch norms, 2 (He) ReLU networks without them (whose residual sums would explode with batch norms).
 */
import type { WeightMap } from '../../src/graph/weights.ts';
import { randomArray, seededRandom } from '../../src/ops/spec-weights.ts';

export interface PerturbOptions {
  /** gamma and moving_variance in 1 ± this; beta and moving_mean in ± this (default 0.5). */
  readonly statSpread?: number;
  /** Biases in ± this (default 0.1). */
  readonly biasSpread?: number;
  /** Rescale kernels to variance kernelGain / fan-in; unset: keep them. */
  readonly kernelGain?: number;
}

export function perturbWeights(weights: WeightMap, seed: number, o: PerturbOptions = {}): WeightMap {
  const rand = seededRandom(seed);
  const stat = o.statSpread ?? 0.5;
  const out: WeightMap = new Map();
  for (const [layer, kinds] of weights) {
    const next = new Map(kinds);
    for (const [kind, t] of kinds) {
      const n = t.data.length;
      if (kind === 'gamma' || kind === 'moving_variance') next.set(kind, { shape: t.shape, data: randomArray(n, stat, rand).map((v) => 1 + v) });
      else if (kind === 'beta' || kind === 'moving_mean') next.set(kind, { shape: t.shape, data: randomArray(n, stat, rand) });
      else if (kind === 'bias') next.set(kind, { shape: t.shape, data: randomArray(n, o.biasSpread ?? 0.1, rand) });
      else if (o.kernelGain !== undefined && /kernel$/.test(kind) && n > 1) {
        const s = t.shape;
        // Fan-in as a scale only: [kh, kw, c_in, c_out] (depthwise: per channel), dense [c_in, c_out].
        const fanIn = s.length === 4 ? s[0] * s[1] * (kind === 'depthwise_kernel' ? 1 : s[2]) : s[0];
        const variance = t.data.reduce((a, v) => a + v * v, 0) / n;
        const k = variance > 0 ? Math.sqrt(o.kernelGain / fanIn / variance) : 1;
        next.set(kind, { shape: t.shape, data: t.data.map((v) => v * k) });
      }
    }
    out.set(layer, next);
  }
  return out;
}
