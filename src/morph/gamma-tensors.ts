/**
 * The regularizer on a live tfjs model: gathers each regularized group's batch-norm gammas (the
 * max |γ| over the batch norms that cover it, through concat slices and depthwise repeats) as
 * differentiable tensors, and builds λ·R from them inside the training step.
 */
import * as tf from '@tensorflow/tfjs';
import type { ChannelAnalysis } from '../graph/channel-groups.ts';
import { layoutOf } from '../graph/channel-groups.ts';
import type { Graph } from '../graph/graph.ts';

/**
 * One batch norm's view of one group: channel c of the group is gamma[offset + c·repeat + r] for
 * r < repeat. Contiguous, so a slice and a reshape reach it: wasm has no gradient for gather.
 */
interface GammaSlice {
  readonly layer: string;
  readonly offset: number;
  readonly channels: number;
  readonly repeat: number;
}

export interface GammaPlan {
  /** Per group id: the slices covering it (empty for unregularized groups). */
  readonly slices: readonly (readonly GammaSlice[])[];
}

export function planGammas(graph: Graph, analysis: ChannelAnalysis): GammaPlan {
  const slices: GammaSlice[][] = analysis.groups.map(() => []);
  for (const layer of graph.layers) {
    if (layer.kind !== 'batchnorm' || !(layer.attrs as { scale?: boolean }).scale) continue;
    const layout = layoutOf(analysis, { layer: layer.name, nodeIndex: 0, tensorIndex: 0 });
    let offset = 0;
    for (const s of layout.segments) {
      const size = analysis.groups[s.group].channels;
      if (analysis.groups[s.group].regularized) slices[s.group].push({ layer: layer.name, offset, channels: size, repeat: s.repeat });
      offset += size * s.repeat;
    }
  }
  return { slices };
}

/** tfjs gamma variables by batch-norm layer name. */
export function gammaVariables(model: tf.LayersModel): Map<string, tf.LayerVariable> {
  const out = new Map<string, tf.LayerVariable>();
  for (const layer of model.layers) {
    if (layer.getClassName() !== 'BatchNormalization') continue;
    const gamma = layer.weights.find((w) => w.originalName.endsWith('/gamma'));
    if (gamma) out.set(layer.name, gamma);
  }
  return out;
}

/** |γ| of a group: max over every slice (batch norm × repeat) that covers it. */
export function groupGammaTensor(plan: GammaPlan, vars: Map<string, tf.LayerVariable>, group: number): tf.Tensor1D | null {
  const parts: tf.Tensor1D[] = [];
  for (const slice of plan.slices[group]) {
    const v = vars.get(slice.layer);
    if (!v) continue;
    const block = (v.read() as tf.Tensor1D).slice([slice.offset], [slice.channels * slice.repeat]).abs();
    parts.push(slice.repeat === 1 ? block : (block.reshape([slice.channels, slice.repeat]).max(1) as tf.Tensor1D));
  }
  if (parts.length === 0) return null;
  return parts.length === 1 ? parts[0] : (tf.stack(parts).max(0) as tf.Tensor1D);
}

/** R = Σ_g w_g · Σ_c |γ_g,c| as a scalar tensor (differentiable w.r.t. the gammas). */
export function regularizerTensor(plan: GammaPlan, vars: Map<string, tf.LayerVariable>, coefficients: ArrayLike<number>): tf.Scalar {
  return tf.tidy(() => {
    let r: tf.Scalar = tf.scalar(0);
    for (let g = 0; g < plan.slices.length; g++) {
      if (!coefficients[g]) continue;
      const gam = groupGammaTensor(plan, vars, g);
      if (gam) r = r.add(gam.sum().mul(coefficients[g]));
    }
    return r;
  });
}

/** Current group gammas as numbers (for alive counts and reports). */
export function groupGammaValues(plan: GammaPlan, vars: Map<string, tf.LayerVariable>): Float32Array[] {
  return plan.slices.map((_, g) =>
    tf.tidy(() => {
      const t = groupGammaTensor(plan, vars, g);
      return t ? (t.dataSync() as Float32Array).slice() : new Float32Array(0);
    }),
  );
}
