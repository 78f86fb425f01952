/**
 * The regularizer on a live tfjs model: reads each regularized group's gammas from the batch-norm
 * variables (see `graph/gamma-plan.ts`) and applies λ·R as a proximal step after every optimizer
 * update. R = Σ_g w_g Σ_c max_members |γ|, so the step is the proximal map of the max, per channel.
 */
import * as tf from '@tensorflow/tfjs';
import { applyGroupProx, groupMaxAbs, plannedLayers, type GammaPlan } from '../graph/gamma-plan.ts';

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

function readArrays(plan: GammaPlan, vars: Map<string, tf.LayerVariable>): Map<string, Float32Array> {
  const arrays = new Map<string, Float32Array>();
  for (const layer of plannedLayers(plan)) {
    const v = vars.get(layer);
    if (v) arrays.set(layer, (v.read().dataSync() as Float32Array).slice());
  }
  return arrays;
}

/** Current group gammas (max |γ| per channel) as numbers, for alive counts and reports. */
export function groupGammaValues(plan: GammaPlan, vars: Map<string, tf.LayerVariable>): Float32Array[] {
  const arrays = readArrays(plan, vars);
  return groupMaxAbs(plan, (layer) => arrays.get(layer));
}

/**
 * One proximal step of λ·R at learning rate `lr`: group g's threshold is lr·λ·w_g. Plain gradient
 * steps on |γ| make a dead channel's gamma oscillate around zero by about that much, so it never
 * stays under the alive threshold; the proximal step sets it to exactly 0 and leaves the task
 * gradient to the optimizer (proximal SGD on task loss + λ·R).
 */
export function applyProx(plan: GammaPlan, vars: Map<string, tf.LayerVariable>, coefficients: ArrayLike<number>, lambda: number, lr: number): void {
  const arrays = readArrays(plan, vars);
  applyGroupProx(plan, arrays, Array.from(coefficients, (w) => lr * lambda * w));
  for (const [layer, a] of arrays) {
    const v = vars.get(layer)!;
    tf.tidy(() => {
      v.write(tf.tensor1d(a));
    });
  }
}
