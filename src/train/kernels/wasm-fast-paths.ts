/**
 * Faster paths for three wasm kernels that dominate a training step of our seed models, each
 * taken only in the common case and otherwise handing over to the backend's own kernel:
 *
 * - `Conv2DBackpropInput`: wasm's kernel is a naive loop. A 1×1, stride-1 one (every pointwise
 *   conv of a MobileNet) is a matrix product dy · Wᵀ (measured on [64,14,14,64]·[64,64]: 47 ms
 *   vs 4.6 ms); any other is a forward convolution of the spread, padded dy with the flipped
 *   filter, which wasm runs on XNNPACK.
 * - `Sum` and `Mean` over every axis but the last (per-channel statistics of batch norm and its
 *   gradient) are a product with a row of ones; wasm transposes the input first instead.
 *
 * Registered with the gradient kernels (`register-wasm-grads.ts`); tests compare each against
 * tfjs's `cpu` kernels.
 */
import * as tf from '@tensorflow/tfjs';
import { runComposite, type KernelArgs } from './composite.ts';
import { convGeometry } from './geometry.ts';
import { padOrCrop, spreadByStride } from './spatial.ts';

type KernelFunc = tf.KernelConfig['kernelFunc'];

const originals = new Map<string, KernelFunc>();

function original(name: string, args: KernelArgs): tf.TensorInfo | tf.TensorInfo[] {
  const f = originals.get(name);
  if (!f) throw new Error(`internal: no original wasm kernel ${name}`);
  return f(args);
}

function conv2dBackpropInput(args: KernelArgs): tf.TensorInfo | tf.TensorInfo[] {
  const { dy, filter } = args.inputs as unknown as { dy: tf.TensorInfo; filter: tf.TensorInfo };
  const a = args.attrs as unknown as tf.Conv2DBackpropInputAttrs;
  const strides = typeof a.strides === 'number' ? [a.strides, a.strides] : a.strides;
  const pointwise =
    filter.shape[0] === 1 &&
    filter.shape[1] === 1 &&
    strides[0] === 1 &&
    strides[1] === 1 &&
    (a.dataFormat ?? 'NHWC') === 'NHWC' &&
    (typeof a.pad !== 'number' || a.pad === 0) &&
    (a.pad === 'same' || a.pad === 'valid' || a.pad === 0) &&
    a.inputShape[1] === dy.shape[1] &&
    a.inputShape[2] === dy.shape[2];
  const [ci, co] = [filter.shape[2], filter.shape[3]];
  if (!pointwise) {
    // (Conv2DBackpropInput has no dilations attribute: tfjs routes dilated convs elsewhere.)
    if ((a.dataFormat ?? 'NHWC') !== 'NHWC') {
      return original(tf.Conv2DBackpropInput, args);
    }
    // dx is a stride-1 forward convolution of dy, spread by the stride and padded by k − 1 − pad,
    // with the filter flipped in space and its channel axes swapped (as in depthwise-backprop-input).
    const info = convGeometry(tf.Conv2DBackpropInput, a.inputShape, filter.shape, a, false);
    const { strideHeight: sh, strideWidth: sw, filterHeight: fh, filterWidth: fw } = info;
    const [, h, w] = a.inputShape;
    return runComposite(args.backend, [dy, filter] as const, (d, f) => {
      const padded = padOrCrop(
        spreadByStride(d as tf.Tensor4D, sh, sw),
        { start: info.padInfo.top - (fh - 1), length: h + fh - 1 },
        { start: info.padInfo.left - (fw - 1), length: w + fw - 1 },
      );
      const flipped = tf.transpose(tf.reverse(f, [0, 1]), [0, 1, 3, 2]) as tf.Tensor4D;
      return tf.conv2d(padded, flipped, 1, 'valid');
    });
  }
  return runComposite(args.backend, [dy, filter] as const, (d, w) =>
    // Transpose the small filter rather than ask matMul to: wasm's transposeB path is ~10× slower.
    tf.reshape(tf.matMul(tf.reshape(d, [-1, co]), tf.transpose(tf.reshape(w, [ci, co]))), a.inputShape),
  );
}

function leadingReduce(name: 'Sum' | 'Mean') {
  return (args: KernelArgs): tf.TensorInfo | tf.TensorInfo[] => {
    const { x } = args.inputs as unknown as { x: tf.TensorInfo };
    const { axis, keepDims } = args.attrs as unknown as { axis: number | number[]; keepDims: boolean };
    const rank = x.shape.length;
    const axes = (Array.isArray(axis) ? axis : [axis]).map((v) => (v < 0 ? v + rank : v)).sort((p, q) => p - q);
    const leading = rank >= 2 && x.dtype === 'float32' && axes.length === rank - 1 && axes.every((v, i) => v === i);
    if (!leading) return original(name, args);
    const c = x.shape[rank - 1];
    const rows = x.shape.slice(0, -1).reduce((p, q) => p * q, 1);
    const outShape = keepDims ? [...x.shape.slice(0, -1).map(() => 1), c] : [c];
    return runComposite(args.backend, [x] as const, (t) => {
      const ones = tf.fill([1, rows], name === 'Mean' ? 1 / rows : 1);
      return tf.reshape(tf.matMul(ones, tf.reshape(t, [rows, c])), outShape);
    });
  };
}

const FAST: readonly tf.KernelConfig[] = [
  { kernelName: tf.Conv2DBackpropInput, backendName: 'wasm', kernelFunc: conv2dBackpropInput as KernelFunc },
  { kernelName: tf.Sum, backendName: 'wasm', kernelFunc: leadingReduce('Sum') as KernelFunc },
  { kernelName: tf.Mean, backendName: 'wasm', kernelFunc: leadingReduce('Mean') as KernelFunc },
];

/** Swaps in the fast paths (idempotent). @returns the kernel names now served by them. */
export function registerWasmFastPaths(): string[] {
  for (const config of FAST) {
    const current = tf.getKernel(config.kernelName, 'wasm');
    if (current?.kernelFunc === config.kernelFunc) continue;
    if (!current) continue; // nothing to fall back to: leave the backend as it is
    originals.set(config.kernelName, current.kernelFunc);
    tf.unregisterKernel(config.kernelName, 'wasm');
    tf.registerKernel({ ...current, kernelFunc: config.kernelFunc });
  }
  return activeWasmFastPaths();
}

export function activeWasmFastPaths(): string[] {
  return FAST.filter((c) => tf.getKernel(c.kernelName, 'wasm')?.kernelFunc === c.kernelFunc).map((c) => c.kernelName);
}
