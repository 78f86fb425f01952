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

/**
 * Per batch norm, the L1 weight of each gamma: λ·w_g of the group its channel belongs to. The
 * proximal step below shrinks each gamma by lr times this weight.
 */
export function proxWeights(plan: GammaPlan, coefficients: ArrayLike<number>, lambda: number): Map<string, { positions: Int32Array; weights: Float32Array }> {
  const perLayer = new Map<string, { positions: number[]; weights: number[] }>();
  plan.slices.forEach((slices, g) => {
    if (!coefficients[g]) return;
    for (const s of slices) {
      const entry = perLayer.get(s.layer) ?? { positions: [], weights: [] };
      for (let i = 0; i < s.channels * s.repeat; i++) {
        entry.positions.push(s.offset + i);
        entry.weights.push(lambda * coefficients[g]);
      }
      perLayer.set(s.layer, entry);
    }
  });
  return new Map([...perLayer].map(([layer, e]) => [layer, { positions: Int32Array.from(e.positions), weights: Float32Array.from(e.weights) }]));
}

/**
 * One proximal step of the L1 part of the loss (soft thresholding): γ ← sign(γ)·max(|γ| − lr·λ·w_g, 0).
 * Plain gradient steps on |γ| make a dead channel's gamma oscillate around zero by about lr·λ·w_g,
 * so it never stays under the alive threshold; the proximal step sets it to exactly 0 and leaves
 * the task gradient to the optimizer (ISTA / proximal SGD on task loss + λ·R).
 */
export function applyProx(vars: Map<string, tf.LayerVariable>, weights: Map<string, { positions: Int32Array; weights: Float32Array }>, lr: number): void {
  for (const [layer, w] of weights) {
    const v = vars.get(layer);
    if (!v) continue;
    tf.tidy(() => {
      const size = v.shape[0] as number;
      const t = new Float32Array(size);
      for (let i = 0; i < w.positions.length; i++) t[w.positions[i]] = lr * w.weights[i];
      const gamma = v.read();
      v.write(tf.mul(tf.sign(gamma), tf.relu(tf.sub(tf.abs(gamma), tf.tensor1d(t)))));
    });
  }
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
