/**
 * A leaner gradient for `FusedBatchNorm` (tf.batchNorm), the op every BatchNormalization layer
 * runs. tfjs-core's own gradient tiles 1/σ up to the full activation shape and multiplies whole
 * activations several times over; on wasm that tiling and the extra full-size products took more
 * than half of a MobileNet training step. This one reduces first and broadcasts only [C]-sized
 * factors, so each full-size tensor is touched a minimum number of times. Same mathematics:
 *
 *   r = 1/√(var + ε),  dx = dy·γ·r,  dmean = −r·Σ dy·γ,  dvar = −½·r³·Σ dy·γ·(x − mean),
 *   dγ = r·Σ dy·(x − mean),  dβ = Σ dy       (Σ over every axis but the channel axis)
 *
 * It is a gradient, not a kernel, so it serves every backend; it is registered with the wasm
 * gradient kernels and applies to the 1-D (per-channel) statistics Keras layers use, falling back
 * to tfjs's own formula otherwise.
 */
import * as tf from '@tensorflow/tfjs';

type GradFunc = NonNullable<ReturnType<typeof tf.getGradient>>['gradFunc'];

let original: ReturnType<typeof tf.getGradient> | undefined;

const gradFunc: GradFunc = (dy, saved, attrs) => {
  const [x, mean, variance, scale] = saved as tf.Tensor[];
  if (mean.rank !== 1 || variance.rank !== 1 || (scale !== undefined && scale !== null && scale.rank !== 1)) {
    return original!.gradFunc(dy, saved, attrs);
  }
  const dyT = dy as tf.Tensor;
  const eps = (attrs as { varianceEpsilon: number }).varianceEpsilon;
  const axes = x.shape.slice(0, -1).map((_, i) => i);
  const r = tf.rsqrt(tf.add(variance, eps));
  const gamma = scale ?? tf.onesLike(mean);
  const xm = () => tf.sub(x, mean);
  const sumDyXm = () => tf.sum(tf.mul(dyT, xm()), axes);
  return {
    x: () => tf.mul(dyT, tf.mul(gamma, r)),
    mean: () => tf.neg(tf.mul(tf.sum(dyT, axes), tf.mul(gamma, r))),
    variance: () => tf.mul(sumDyXm(), tf.mul(gamma, tf.mul(-0.5, tf.pow(r, 3)))),
    scale: () => tf.mul(sumDyXm(), r),
    offset: () => tf.sum(dyT, axes),
  };
};

export const fusedBatchNormGradConfig = { kernelName: 'FusedBatchNorm', inputsToSave: ['x', 'mean', 'variance', 'scale'], gradFunc };

/** Installs the leaner gradient (idempotent). @returns whether this call changed the registry. */
export function registerFusedBatchNormGrad(): boolean {
  const current = tf.getGradient('FusedBatchNorm');
  if (current?.gradFunc === gradFunc) return false;
  original = current;
  tf.registerGradient(fusedBatchNormGradConfig as unknown as tf.GradConfig);
  return true;
}
