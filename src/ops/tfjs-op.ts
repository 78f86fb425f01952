/**
 * A runnable tfjs function for an OpSpec: the op as tfjs runs it at inference (fused conv/matMul
 * with bias and activation), with fixed random weights, for agents to time and for tests to
 * compare against the `.tflite` of the same spec.
 */
import * as tf from '@tensorflow/tfjs';
import type { OpSpec } from './op-spec.ts';
import { inputShapes, LEAKY_RELU_ALPHA, outputShape, validateSpec } from './op-spec.ts';
import { specWeights } from './spec-weights.ts';

export interface TfjsOp {
  readonly spec: OpSpec;
  /** Shape of the first input (NHWC, dense `[batch, cIn]`). */
  readonly inputShape: readonly number[];
  /** Shapes of every input (add/concat take several). */
  readonly inputShapes: readonly (readonly number[])[];
  /** Runs the op once; the caller disposes the result. */
  run(inputs: tf.Tensor | readonly tf.Tensor[]): tf.Tensor;
  /** Frees the weights; `run` throws afterwards. Safe to call twice. */
  dispose(): void;
}

export interface TfjsOpOptions {
  /** Seed of the random weights (default 1, the same default as the single-op `.tflite`). */
  readonly seed?: number;
}

function tfActivation(a: OpSpec['activation']): 'linear' | 'relu' | 'relu6' {
  return a === 'none' ? 'linear' : a;
}

function applyActivation(x: tf.Tensor, a: OpSpec['activation']): tf.Tensor {
  if (a === 'relu') return tf.relu(x);
  if (a === 'relu6') return tf.relu6(x);
  return x;
}

/**
 * Builds the tfjs function of `spec` on the current tfjs backend.
 * @throws MorphError `MORPH_ERR_BAD_OP_SPEC` for an invalid spec.
 */
export function buildTfjsOp(spec: OpSpec, options: TfjsOpOptions = {}): TfjsOp {
  validateSpec(spec);
  const shapes = inputShapes(spec);
  const w = specWeights(spec, options.seed ?? 1);
  const filter = w ? tf.tensor(w.filter, [...w.filterShape], 'float32') : null;
  const bias = w ? tf.tensor1d(w.bias, 'float32') : null;
  let disposed = false;
  const pad = spec.padding;
  const stride: [number, number] = [spec.stride[0], spec.stride[1]];
  const dilation: [number, number] = [spec.dilation[0], spec.dilation[1]];
  const kernel: [number, number] = [spec.kernel[0], spec.kernel[1]];
  const activation = tfActivation(spec.activation);

  const body = (xs: readonly tf.Tensor[]): tf.Tensor => {
    const x = xs[0];
    switch (spec.kind) {
      case 'conv2d':
        return tf.fused.conv2d({ x: x as tf.Tensor4D, filter: filter as tf.Tensor4D, strides: stride, pad, dilations: dilation, bias: bias!, activation });
      case 'depthwise':
        return tf.fused.depthwiseConv2d({ x: x as tf.Tensor4D, filter: filter as tf.Tensor4D, strides: stride, pad, dilations: dilation, bias: bias!, activation });
      case 'dense':
        return tf.fused.matMul({ a: x as tf.Tensor2D, b: filter as tf.Tensor2D, bias: bias!, activation });
      case 'maxpool':
        return applyActivation(tf.maxPool(x as tf.Tensor4D, kernel, stride, pad), spec.activation);
      case 'avgpool':
        return applyActivation(tf.avgPool(x as tf.Tensor4D, kernel, stride, pad), spec.activation);
      case 'globalavgpool':
        return applyActivation(tf.mean(x, [1, 2]), spec.activation);
      case 'add':
        return applyActivation(xs.length === 2 ? tf.add(xs[0], xs[1]) : tf.addN([...xs]), spec.activation);
      case 'concat':
        return applyActivation(tf.concat([...xs], 3), spec.activation);
      case 'mul':
        return tf.mul(xs[0], xs[1]);
      case 'sigmoid':
        return tf.sigmoid(x);
      case 'swish':
        return tf.mul(x, tf.sigmoid(x));
      case 'leaky_relu':
        return tf.leakyRelu(x, LEAKY_RELU_ALPHA);
      case 'transposeconv': {
        const out = outputShape(spec) as [number, number, number, number];
        const y = tf.conv2dTranspose(x as tf.Tensor4D, filter as tf.Tensor4D, out, stride, pad);
        return applyActivation(tf.add(y, bias!), spec.activation);
      }
      case 'upsample_nearest':
      case 'upsample_bilinear': {
        const size: [number, number] = [spec.inH * spec.stride[0], spec.inW * spec.stride[1]];
        return spec.kind === 'upsample_nearest' ? tf.image.resizeNearestNeighbor(x as tf.Tensor4D, size) : tf.image.resizeBilinear(x as tf.Tensor4D, size);
      }
    }
  };

  return {
    spec,
    inputShape: shapes[0],
    inputShapes: shapes,
    run(inputs) {
      if (disposed) throw new Error('this tfjs op was disposed');
      const xs = inputs instanceof tf.Tensor ? [inputs] : inputs;
      if (xs.length !== shapes.length) throw new Error(`op ${spec.kind} takes ${shapes.length} inputs, got ${xs.length}`);
      return tf.tidy(() => body(xs));
    },
    dispose() {
      if (disposed) return;
      disposed = true;
      filter?.dispose();
      bias?.dispose();
    },
  };
}
