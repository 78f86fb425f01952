/**
 * An OpSpec as a one-op tfjs LayersModel: the op as a tfjs runtime really runs it in a model,
 * which is what tfjs agents time. `run` applies the model to its inputs (`model.apply`, eager), as
 * a network's `predict` applies each of its layers: `predict` itself adds, per call, the batching
 * of its inputs (a slice and a concat of every tensor) that a network pays once and an op timed
 * alone paid on every run. On tfjs-wasm in Node an add on 124×124×8 took 0.07 ms applied and 2.9 ms
 * through `predict` (docs/benchmarks.md).
 *
 * Why not `buildTfjsOp` (the fused kernels): tfjs-layers does not run an op the way the fused
 * kernels could. It fuses only linear/relu/elu into a conv, so a ReLU6 runs as Relu + Minimum (a
 * slow broadcast in wasm: 0.7 ms on 48×48×96 against a 0.3 ms depthwise conv); a depthwise conv
 * runs unfused (conv, bias add, activation); and every layer call costs bookkeeping. Timing the
 * fused kernels made Σ ops half of a real network's time on some models. The same weights as
 * `buildTfjsOp` (same seed) are set, so both compute the same function (a test checks this).
 */
import * as tf from '@tensorflow/tfjs';
import type { OpSpec } from './op-spec.ts';
import { depthMultiplier, inputShapes, LEAKY_RELU_ALPHA, validateSpec } from './op-spec.ts';
import { specWeights } from './spec-weights.ts';
import type { TfjsOp, TfjsOpOptions } from './tfjs-op.ts';

function activationLayer(a: OpSpec['activation']): tf.layers.Layer | null {
  if (a === 'relu') return tf.layers.reLU();
  if (a === 'relu6') return tf.layers.reLU({ maxValue: 6 });
  return null;
}

/**
 * Builds the op as a tfjs-layers model on the current backend.
 * @throws MorphError `MORPH_ERR_BAD_OP_SPEC` for an invalid spec.
 */
export function buildLayersOp(spec: OpSpec, options: TfjsOpOptions = {}): TfjsOp {
  validateSpec(spec);
  const shapes = inputShapes(spec);
  const inputs = shapes.map((s) => tf.input({ batchShape: s }));
  const activation = spec.activation === 'none' ? 'linear' : spec.activation;
  const common = { strides: [spec.stride[0], spec.stride[1]] as [number, number], padding: spec.padding };
  let main: tf.layers.Layer;
  let after: tf.layers.Layer | null = null;
  switch (spec.kind) {
    case 'conv2d':
      main = tf.layers.conv2d({ ...common, filters: spec.cOut, kernelSize: [spec.kernel[0], spec.kernel[1]], dilationRate: [spec.dilation[0], spec.dilation[1]], activation, useBias: true });
      break;
    case 'depthwise':
      main = tf.layers.depthwiseConv2d({ ...common, kernelSize: [spec.kernel[0], spec.kernel[1]], depthMultiplier: depthMultiplier(spec), dilationRate: [spec.dilation[0], spec.dilation[1]], activation, useBias: true });
      break;
    case 'dense':
      main = tf.layers.dense({ units: spec.cOut, activation, useBias: true });
      break;
    case 'maxpool':
      main = tf.layers.maxPooling2d({ ...common, poolSize: [spec.kernel[0], spec.kernel[1]] });
      after = activationLayer(spec.activation);
      break;
    case 'avgpool':
      main = tf.layers.averagePooling2d({ ...common, poolSize: [spec.kernel[0], spec.kernel[1]] });
      after = activationLayer(spec.activation);
      break;
    case 'globalavgpool':
      main = tf.layers.globalAveragePooling2d({});
      after = activationLayer(spec.activation);
      break;
    case 'add':
      main = tf.layers.add();
      after = activationLayer(spec.activation);
      break;
    case 'concat':
      main = tf.layers.concatenate({ axis: -1 });
      after = activationLayer(spec.activation);
      break;
    case 'mul':
      main = tf.layers.multiply();
      break;
    case 'sigmoid':
    case 'swish':
      main = tf.layers.activation({ activation: spec.kind });
      break;
    case 'leaky_relu':
      main = tf.layers.leakyReLU({ alpha: LEAKY_RELU_ALPHA });
      break;
    case 'transposeconv':
      main = tf.layers.conv2dTranspose({ ...common, filters: spec.cOut, kernelSize: [spec.kernel[0], spec.kernel[1]], activation, useBias: true });
      break;
    case 'upsample_nearest':
    case 'upsample_bilinear':
      main = tf.layers.upSampling2d({ size: [spec.stride[0], spec.stride[1]], interpolation: spec.kind === 'upsample_nearest' ? 'nearest' : 'bilinear' });
      break;
  }
  let out = main.apply(inputs.length === 1 ? inputs[0] : inputs) as tf.SymbolicTensor;
  if (after) out = after.apply(out) as tf.SymbolicTensor;
  const model = tf.model({ inputs, outputs: out });
  const w = specWeights(spec, options.seed ?? 1);
  if (w) {
    const values = [tf.tensor(w.filter, [...w.filterShape], 'float32'), tf.tensor1d(w.bias, 'float32')];
    main.setWeights(values);
    tf.dispose(values);
  }
  let disposed = false;
  return {
    spec,
    inputShape: shapes[0],
    inputShapes: shapes,
    run(xs) {
      if (disposed) throw new Error('this tfjs layers op was disposed');
      const list = xs instanceof tf.Tensor ? [xs] : [...xs];
      if (list.length !== shapes.length) throw new Error(`op ${spec.kind} takes ${shapes.length} inputs, got ${list.length}`);
      // tidy: an activation layer after the op leaves the op's own output to free.
      return tf.tidy(() => model.apply(list.length === 1 ? list[0] : list) as tf.Tensor);
    },
    dispose() {
      if (disposed) return;
      disposed = true;
      model.dispose();
    },
  };
}
