/**
 * The torch engine computes what tfjs computes: for every layer kind the worker builds, the same
 * weights give the same outputs (max abs diff < 1e-4) in inference and in training mode (where
 * batch norm normalises with the batch and moves its statistics), against tfjs's `cpu` kernels;
 * the proximal step gives the gammas `applyGroupProx` gives; and a few training steps (data
 * order, schedule, optimizer, weight decay, proximal step) end at the same weights.
 *
 * Where tfjs departs from Keras (it ignores Conv2DTranspose's `output_padding` and
 * GlobalAveragePooling2D's `keepdims`, and cannot load Normalization, 'silu' or 'hard_swish'), the
 * torch engine is given the Keras topology and compared with what Keras computes, written in tfjs
 * ops (`reference`) or as an equivalent model tfjs loads.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { analyzeChannels } from '../../src/graph/channel-groups.ts';
import { applyGroupProx, planGammas, plannedLayers } from '../../src/graph/gamma-plan.ts';
import type { Graph } from '../../src/graph/graph.ts';
import type { ModelConfigJson } from '../../src/graph/keras-json.ts';
import { parseModel } from '../../src/graph/parse.ts';
import { rebuild, type NamedWeight } from '../../src/graph/rebuild.ts';
import type { WeightMap } from '../../src/graph/weights.ts';
import { identitySelection } from '../../src/graph/widths.ts';
import { seedModel } from '../../src/seeds/index.ts';
import { selectBackend } from '../../src/train/backend.ts';
import { openDataset } from '../../src/train/data/index.ts';
import type { FitRequest } from '../../src/train/engine.ts';
import { createTfjsEngine } from '../../src/train/tfjs-engine.ts';
import { assignWeights, namedWeights } from '../../src/train/tf-model.ts';
import type { TorchEngine } from '../../src/train/torch/torch-engine.ts';
import { TORCH_ACTIVATIONS, unsupportedLayers } from '../../src/train/torch/net-spec.ts';
import { createRng } from '../../src/util/random.ts';
import { torchOrSkip, torchUnavailable } from '../helpers/torch.ts';
import { tinyTopology } from './tiny-model.ts';

let engine: TorchEngine | null = null;

before(async () => {
  await selectBackend({ backend: 'cpu' });
});
after(async () => {
  await engine?.close();
});

async function torch(t: Parameters<typeof torchOrSkip>[0]): Promise<TorchEngine | null> {
  if (engine) return engine;
  engine = await torchOrSkip(t);
  return engine;
}

/** Every weight of `model` drawn afresh (statistics positive), so no layer is at its identity. */
function randomWeights(model: tf.LayersModel, seed: number): NamedWeight[] {
  const rng = createRng(seed);
  return namedWeights(model).map((w) => {
    const data = new Float32Array(w.data.length);
    const kind = w.name.slice(w.name.lastIndexOf('/') + 1);
    for (let i = 0; i < data.length; i++) {
      const u = rng();
      data[i] = kind === 'moving_variance' || kind === 'gamma' ? 0.5 + u : (u - 0.5) * 1.2;
    }
    return { name: w.name, shape: w.shape, data };
  });
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, 'same number of values');
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

interface TopologyLayer {
  class_name: string;
  name?: string;
  config: Record<string, unknown>;
  inbound_nodes?: unknown[][][];
}

interface Case {
  readonly name: string;
  readonly input: [number, number, number];
  build(x: tf.SymbolicTensor): tf.SymbolicTensor;
  /** Fix up the saved topology (tfjs 4.22 omits SeparableConv2D's depth_multiplier from getConfig). */
  patch?(layers: TopologyLayer[]): void;
  /** Keras fields tfjs ignores or cannot load, set only in the topology the torch engine builds. */
  torchPatch?(layers: TopologyLayer[]): void;
  /**
   * What Keras computes, in tfjs ops, where no tfjs layer computes it; the weights (random, drawn
   * for the torch engine's graph) by name. Without it the tfjs model built by `build` is the reference.
   */
  reference?(x: tf.Tensor4D, w: (name: string) => tf.Tensor): tf.Tensor;
  readonly inferenceOnly?: boolean;
}

function layerNamed(layers: TopologyLayer[], name: string): TopologyLayer {
  const l = layers.find((x) => x.config.name === name);
  assert.ok(l, `layer ${name} in the topology`);
  return l;
}

/** Removes a one-input layer, its consumers reading its input instead. */
function dropLayer(layers: TopologyLayer[], name: string): void {
  const at = layers.findIndex((x) => x.config.name === name);
  const [gone] = layers.splice(at, 1);
  const source = gone.inbound_nodes![0][0];
  for (const l of layers) l.inbound_nodes = l.inbound_nodes?.map((node) => node.map((ref) => ((ref as unknown[])[0] === name ? [...(source as unknown[])] : ref)));
}

/** Every weight of the torch engine's graph drawn afresh (variances and gammas positive). */
function graphWeights(graph: Graph, seed: number): NamedWeight[] {
  const rng = createRng(seed);
  return graph.layers.flatMap((layer) =>
    layer.weights.map((w) => {
      const data = Float32Array.from({ length: w.shape.reduce((a, b) => a * b, 1) }, () => {
        const u = rng();
        return w.kind === 'variance' || w.kind === 'moving_variance' || w.kind === 'gamma' ? 0.5 + u : (u - 0.5) * 1.2;
      });
      return { name: `${layer.name}/${w.kind}`, shape: [...w.shape], data };
    }),
  );
}

const hardSwish = (t: tf.Tensor): tf.Tensor => tf.mul(t, tf.div(tf.relu6(tf.add(t, 3)), 6));
const silu = (t: tf.Tensor): tf.Tensor => tf.mul(t, tf.sigmoid(t));
/** Keras Normalization: (x - mean) / max(sqrt(variance), 1e-7), over the last axis. */
const normalize = (t: tf.Tensor, w: (name: string) => tf.Tensor, layer: string): tf.Tensor =>
  tf.div(tf.sub(t, w(`${layer}/mean`)), tf.maximum(tf.sqrt(w(`${layer}/variance`)), 1e-7));
const NORMALIZATION = (name: string): Record<string, unknown> => ({ name, trainable: true, dtype: 'float32', axis: [3], invert: false, mean: null, variance: null });
/** Keras fused and layer activations tfjs lacks ('linear' stands in for them in tfjs's model). */
const ACTIVATION_OPS: Record<string, (t: tf.Tensor) => tf.Tensor> = { hard_swish: hardSwish, hard_silu: hardSwish, silu };

const L = tf.layers;
const CASES: readonly Case[] = [
  { name: 'Conv2D valid with bias', input: [7, 7, 3], build: (x) => L.conv2d({ filters: 5, kernelSize: 3, useBias: true }).apply(x) as tf.SymbolicTensor },
  { name: "Conv2D 'same' stride 2, even input (TF pads bottom/right)", input: [8, 8, 3], build: (x) => L.conv2d({ filters: 4, kernelSize: 3, strides: 2, padding: 'same' }).apply(x) as tf.SymbolicTensor },
  { name: "Conv2D 'same' stride 2, odd input, 1×3 kernel", input: [7, 9, 2], build: (x) => L.conv2d({ filters: 4, kernelSize: [1, 3], strides: 2, padding: 'same', activation: 'relu6' }).apply(x) as tf.SymbolicTensor },
  { name: "Conv2D dilated 'same'", input: [9, 9, 2], build: (x) => L.conv2d({ filters: 3, kernelSize: 3, dilationRate: 2, padding: 'same' }).apply(x) as tf.SymbolicTensor },
  { name: "DepthwiseConv2D 'same' stride 2", input: [8, 8, 4], build: (x) => L.depthwiseConv2d({ kernelSize: 3, strides: 2, padding: 'same' }).apply(x) as tf.SymbolicTensor },
  { name: 'DepthwiseConv2D depth multiplier 3', input: [6, 6, 2], build: (x) => L.depthwiseConv2d({ kernelSize: 3, depthMultiplier: 3, padding: 'same' }).apply(x) as tf.SymbolicTensor },
  {
    name: 'SeparableConv2D multiplier 2, stride 2',
    input: [9, 9, 3],
    build: (x) => L.separableConv2d({ filters: 5, kernelSize: 3, depthMultiplier: 2, strides: 2, padding: 'same', activation: 'relu' }).apply(x) as tf.SymbolicTensor,
    patch: (layers) => layers.filter((l) => l.class_name === 'SeparableConv2D').forEach((l) => (l.config.depth_multiplier = 2)),
  },
  {
    name: 'BatchNormalization (momentum 0.9, epsilon 1e-3) + ReLU',
    input: [5, 5, 3],
    build: (x) => L.reLU().apply(L.batchNormalization({ momentum: 0.9, epsilon: 1e-3 }).apply(L.conv2d({ filters: 6, kernelSize: 1, useBias: false }).apply(x))) as tf.SymbolicTensor,
  },
  { name: 'Dense after Flatten (NHWC row order) with softmax', input: [3, 4, 5], build: (x) => L.dense({ units: 7, activation: 'softmax' }).apply(L.flatten().apply(x)) as tf.SymbolicTensor },
  { name: 'Dense on a rank-4 tensor (last axis)', input: [3, 3, 4], build: (x) => L.dense({ units: 2, activation: 'tanh' }).apply(x) as tf.SymbolicTensor },
  { name: 'BatchNormalization on dense features', input: [2, 2, 3], build: (x) => L.batchNormalization({ momentum: 0.8 }).apply(L.dense({ units: 6 }).apply(L.flatten().apply(x))) as tf.SymbolicTensor },
  {
    name: 'activations: sigmoid, elu, selu, softplus, softsign, swish, hard_sigmoid, exponential, leakyReLU, relu max',
    input: [4, 4, 2],
    build: (x) => {
      const acts = ['sigmoid', 'elu', 'selu', 'softplus', 'softsign', 'swish', 'hardSigmoid', 'linear'] as const;
      const outs = acts.map((a) => L.activation({ activation: a }).apply(x) as tf.SymbolicTensor);
      outs.push(L.leakyReLU({ alpha: 0.2 }).apply(x) as tf.SymbolicTensor, L.reLU({ maxValue: 0.3 }).apply(x) as tf.SymbolicTensor, L.elu({}).apply(x) as tf.SymbolicTensor);
      return L.concatenate().apply(outs) as tf.SymbolicTensor;
    },
  },
  { name: 'Softmax layer head (tfjs has no softmax over a non-last axis of rank 4)', input: [3, 3, 5], build: (x) => L.softmax().apply(L.dense({ units: 4 }).apply(L.flatten().apply(x))) as tf.SymbolicTensor },
  { name: 'Dropout (identity at inference)', input: [4, 4, 2], build: (x) => L.dropout({ rate: 0.5 }).apply(x) as tf.SymbolicTensor, inferenceOnly: true },
  { name: 'ZeroPadding2D asymmetric', input: [4, 5, 2], build: (x) => L.zeroPadding2d({ padding: [[1, 2], [0, 3]] }).apply(x) as tf.SymbolicTensor },
  { name: "MaxPooling2D 'same' stride 2, odd input", input: [7, 7, 3], build: (x) => L.maxPooling2d({ poolSize: 3, strides: 2, padding: 'same' }).apply(x) as tf.SymbolicTensor },
  { name: "AveragePooling2D 'same' stride 2 (padding not counted)", input: [7, 8, 3], build: (x) => L.averagePooling2d({ poolSize: 3, strides: 2, padding: 'same' }).apply(x) as tf.SymbolicTensor },
  { name: 'AveragePooling2D valid', input: [6, 6, 2], build: (x) => L.averagePooling2d({ poolSize: 2 }).apply(x) as tf.SymbolicTensor },
  { name: 'GlobalAveragePooling2D', input: [5, 4, 3], build: (x) => L.globalAveragePooling2d({}).apply(x) as tf.SymbolicTensor },
  { name: 'GlobalMaxPooling2D', input: [5, 4, 3], build: (x) => L.globalMaxPooling2d({}).apply(x) as tf.SymbolicTensor },
  {
    name: 'Add (three inputs), Multiply, Average, Maximum, Minimum',
    input: [4, 4, 3],
    build: (x) => {
      const a = L.conv2d({ filters: 3, kernelSize: 1 }).apply(x) as tf.SymbolicTensor;
      const b = L.conv2d({ filters: 3, kernelSize: 3, padding: 'same' }).apply(x) as tf.SymbolicTensor;
      const outs = [L.add().apply([a, b, x]), L.multiply().apply([a, b]), L.average().apply([a, b]), L.maximum().apply([a, b]), L.minimum().apply([a, b])] as tf.SymbolicTensor[];
      return L.concatenate().apply(outs) as tf.SymbolicTensor;
    },
  },
  {
    name: 'Concatenate on channels, Reshape to features and back',
    input: [4, 4, 2],
    build: (x) => {
      const a = L.conv2d({ filters: 3, kernelSize: 1 }).apply(x) as tf.SymbolicTensor;
      const c = L.concatenate({ axis: -1 }).apply([x, a]) as tf.SymbolicTensor;
      const flat = L.reshape({ targetShape: [80] }).apply(c) as tf.SymbolicTensor;
      return L.reshape({ targetShape: [4, 4, 5] }).apply(L.dense({ units: 80 }).apply(flat)) as tf.SymbolicTensor;
    },
  },
  // Transposed convolutions: TF's output size (deconvLength) and its 'same' cropping of the full result.
  { name: "Conv2DTranspose 'valid' stride 2, kernel 3, bias, relu", input: [4, 5, 3], build: (x) => L.conv2dTranspose({ filters: 4, kernelSize: 3, strides: 2, activation: 'relu' }).apply(x) as tf.SymbolicTensor },
  { name: "Conv2DTranspose 'same' stride 2, kernel 3 (TF crops the last row and column), sigmoid", input: [4, 4, 2], build: (x) => L.conv2dTranspose({ filters: 3, kernelSize: 3, strides: 2, padding: 'same', activation: 'sigmoid' }).apply(x) as tf.SymbolicTensor },
  { name: "Conv2DTranspose 'same' stride 2, kernel 4 (crops one each side), no bias", input: [3, 5, 2], build: (x) => L.conv2dTranspose({ filters: 3, kernelSize: 4, strides: 2, padding: 'same', useBias: false }).apply(x) as tf.SymbolicTensor },
  {
    name: "Conv2DTranspose kernel 2 stride 2, 'valid' and 'same', tanh",
    input: [3, 4, 2],
    build: (x) => {
      const a = L.conv2dTranspose({ filters: 2, kernelSize: 2, strides: 2, activation: 'tanh' }).apply(x) as tf.SymbolicTensor;
      const b = L.conv2dTranspose({ filters: 3, kernelSize: 2, strides: 2, padding: 'same' }).apply(x) as tf.SymbolicTensor;
      return L.concatenate().apply([a, b]) as tf.SymbolicTensor;
    },
  },
  {
    name: 'Conv2DTranspose kernel 1 stride 2 (zero rows past the full result), stride 1 kernel 3 and kernel 3×2 strides 2×1',
    input: [3, 3, 2],
    build: (x) => {
      const a = L.conv2dTranspose({ filters: 2, kernelSize: 1, strides: 2 }).apply(x) as tf.SymbolicTensor;
      const b = L.conv2dTranspose({ filters: 2, kernelSize: 1, strides: 2, padding: 'same', activation: 'relu6' }).apply(x) as tf.SymbolicTensor;
      const c = L.conv2dTranspose({ filters: 2, kernelSize: 3, strides: 1, padding: 'same' }).apply(x) as tf.SymbolicTensor;
      const d = L.conv2dTranspose({ filters: 2, kernelSize: [3, 2], strides: [2, 1], padding: 'same' }).apply(c) as tf.SymbolicTensor;
      const e = L.conv2dTranspose({ filters: 2, kernelSize: [1, 2], strides: [1, 2], padding: 'same' }).apply(d) as tf.SymbolicTensor;
      return L.concatenate().apply([a, b, e]) as tf.SymbolicTensor;
    },
  },
  // UpSampling2D: tfjs's resize (source index r·in/out, not torch's half-pixel one).
  { name: 'UpSampling2D nearest 2×2', input: [3, 4, 2], build: (x) => L.upSampling2d({ size: [2, 2] }).apply(x) as tf.SymbolicTensor },
  { name: 'UpSampling2D nearest (2, 3)', input: [3, 4, 2], build: (x) => L.upSampling2d({ size: [2, 3] }).apply(x) as tf.SymbolicTensor },
  { name: 'UpSampling2D bilinear 2×2', input: [3, 4, 2], build: (x) => L.upSampling2d({ size: [2, 2], interpolation: 'bilinear' }).apply(x) as tf.SymbolicTensor },
  { name: 'UpSampling2D bilinear (2, 3) and (3, 5) after a conv', input: [4, 3, 2], build: (x) => L.upSampling2d({ size: [3, 5], interpolation: 'bilinear' }).apply(L.upSampling2d({ size: [2, 3], interpolation: 'bilinear' }).apply(L.conv2d({ filters: 3, kernelSize: 1 }).apply(x))) as tf.SymbolicTensor },
  { name: 'Cropping2D asymmetric', input: [6, 7, 2], build: (x) => L.cropping2D({ cropping: [[1, 2], [0, 3]] }).apply(x) as tf.SymbolicTensor },
  { name: 'Rescaling scalar with offset (1/127.5, -1)', input: [4, 4, 3], build: (x) => L.rescaling({ scale: 1 / 127.5, offset: -1 }).apply(x) as tf.SymbolicTensor },
  {
    name: 'Rescaling per channel with offset, then a one-value list',
    input: [4, 4, 3],
    build: (x) => {
      const a = L.rescaling({ scale: [0.5, 2, -1.5], offset: [0.1, 0, -0.3] } as unknown as { scale: number; offset: number }).apply(x);
      return L.rescaling({ scale: [2], offset: [0.25] } as unknown as { scale: number; offset: number }).apply(a) as tf.SymbolicTensor;
    },
  },
  {
    name: 'squeeze-and-excitation: GAP → Reshape(1,1,C) → Conv2D relu → Conv2D sigmoid → Multiply (broadcast)',
    input: [5, 5, 3],
    build: (x) => {
      const feat = L.conv2d({ filters: 6, kernelSize: 3, padding: 'same', activation: 'swish' }).apply(x) as tf.SymbolicTensor;
      const s = L.reshape({ targetShape: [1, 1, 6] }).apply(L.globalAveragePooling2d({}).apply(feat));
      const gate = L.conv2d({ filters: 6, kernelSize: 1, activation: 'sigmoid' }).apply(L.conv2d({ filters: 2, kernelSize: 1, activation: 'relu' }).apply(s)) as tf.SymbolicTensor;
      return L.multiply().apply([feat, gate]) as tf.SymbolicTensor;
    },
  },
  {
    name: 'squeeze-and-excitation with Dense swish / hard_sigmoid, the gate first; Add, Average, Maximum, Minimum broadcast',
    input: [4, 5, 4],
    build: (x) => {
      const g = L.dense({ units: 4, activation: 'hardSigmoid' }).apply(L.dense({ units: 2, activation: 'swish' }).apply(L.globalAveragePooling2d({}).apply(x)));
      const gate = L.reshape({ targetShape: [1, 1, 4] }).apply(g) as tf.SymbolicTensor;
      const outs = [L.multiply().apply([gate, x]), L.add().apply([x, gate]), L.average().apply([gate, x]), L.maximum().apply([x, gate]), L.minimum().apply([gate, x])] as tf.SymbolicTensor[];
      return L.concatenate().apply(outs) as tf.SymbolicTensor;
    },
  },
  {
    name: 'Reshape [N, C] → [N, 1, 1, C], 1×1 Conv2D, Reshape back (MobileNet head)',
    input: [3, 3, 4],
    build: (x) => {
      const s = L.reshape({ targetShape: [1, 1, 4] }).apply(L.globalAveragePooling2d({}).apply(x));
      const c = L.conv2d({ filters: 5, kernelSize: 1, activation: 'softmax' }).apply(s);
      return L.dense({ units: 3 }).apply(L.reshape({ targetShape: [5] }).apply(c)) as tf.SymbolicTensor;
    },
  },
  {
    name: 'activations: gelu, mish, relu6, hard_sigmoid, swish, LeakyReLU default slope, as layers and fused in Conv2D',
    input: [4, 4, 2],
    build: (x) => {
      // Inputs up to ±8 reach relu6's and hard_sigmoid's clips.
      const big = L.rescaling({ scale: 8 }).apply(x) as tf.SymbolicTensor;
      const acts = ['gelu', 'mish', 'relu6', 'hardSigmoid', 'swish'] as const;
      const outs = acts.map((a) => L.activation({ activation: a as 'relu' }).apply(big) as tf.SymbolicTensor);
      outs.push(L.leakyReLU({}).apply(big) as tf.SymbolicTensor);
      for (const a of acts) outs.push(L.conv2d({ filters: 2, kernelSize: 1, activation: a as 'relu' }).apply(big) as tf.SymbolicTensor);
      return L.concatenate().apply(outs) as tf.SymbolicTensor;
    },
  },
  // Keras layers and fields tfjs cannot load or ignores: the torch engine follows Keras.
  {
    name: 'GlobalAveragePooling2D keepdims (Keras 3 SE block: no Reshape) = GAP → Reshape(1,1,C)',
    input: [5, 4, 3],
    build: (x) => {
      const feat = L.conv2d({ name: 'feat', filters: 4, kernelSize: 3, padding: 'same' }).apply(x) as tf.SymbolicTensor;
      const s = L.reshape({ name: 'se_reshape', targetShape: [1, 1, 4] }).apply(L.globalAveragePooling2d({ name: 'se_squeeze' }).apply(feat));
      const gate = L.conv2d({ filters: 4, kernelSize: 1, activation: 'sigmoid' }).apply(L.conv2d({ filters: 2, kernelSize: 1, activation: 'swish' }).apply(s)) as tf.SymbolicTensor;
      return L.multiply().apply([feat, gate]) as tf.SymbolicTensor;
    },
    torchPatch: (layers) => {
      layerNamed(layers, 'se_squeeze').config.keepdims = true;
      dropLayer(layers, 'se_reshape');
    },
  },
  {
    name: 'LeakyReLU with Keras 3 negative_slope',
    input: [4, 4, 2],
    build: (x) => L.leakyReLU({ name: 'lrelu', alpha: 0.05 }).apply(x) as tf.SymbolicTensor,
    torchPatch: (layers) => {
      const c = layerNamed(layers, 'lrelu').config;
      delete c.alpha;
      c.negative_slope = 0.05;
    },
  },
  {
    name: "hard_swish, Keras 3 hard_silu and silu (Keras's formulas: tfjs has none), as layers and fused in Conv2D",
    input: [4, 4, 2],
    build: (x) => {
      const big = L.rescaling({ name: 'big', scale: 4 }).apply(x) as tf.SymbolicTensor;
      const outs = ['hard_swish', 'hard_silu', 'silu'].map((a) => L.activation({ name: `act_${a}`, activation: 'linear' }).apply(big) as tf.SymbolicTensor);
      for (const a of ['hard_swish', 'silu']) outs.push(L.conv2d({ name: `conv_${a}`, filters: 2, kernelSize: 1 }).apply(big) as tf.SymbolicTensor);
      return L.concatenate().apply(outs) as tf.SymbolicTensor;
    },
    torchPatch: (layers) => {
      for (const a of ['hard_swish', 'hard_silu', 'silu']) layerNamed(layers, `act_${a}`).config.activation = a;
      for (const a of ['hard_swish', 'silu']) layerNamed(layers, `conv_${a}`).config.activation = a;
    },
    reference: (x, w) => {
      const big = tf.mul(x, 4);
      const conv = (name: string): tf.Tensor => tf.add(tf.conv2d(big as tf.Tensor4D, w(`${name}/kernel`) as tf.Tensor4D, 1, 'valid'), w(`${name}/bias`));
      const outs = ['hard_swish', 'hard_silu', 'silu'].map((a) => ACTIVATION_OPS[a](big));
      for (const a of ['hard_swish', 'silu']) outs.push(ACTIVATION_OPS[a](conv(`conv_${a}`)));
      return tf.concat(outs, -1);
    },
  },
  {
    name: 'Normalization on the image and on pooled features (mean, variance, count weights)',
    input: [4, 5, 3],
    build: (x) => {
      const n = L.activation({ name: 'norm', activation: 'linear' }).apply(x) as tf.SymbolicTensor;
      const pooled = L.activation({ name: 'norm_pooled', activation: 'linear' }).apply(L.globalAveragePooling2d({ name: 'gap' }).apply(n));
      return L.multiply().apply([n, L.reshape({ targetShape: [1, 1, 3] }).apply(pooled) as tf.SymbolicTensor]) as tf.SymbolicTensor;
    },
    torchPatch: (layers) => {
      for (const name of ['norm', 'norm_pooled']) Object.assign(layerNamed(layers, name), { class_name: 'Normalization', config: NORMALIZATION(name) });
      layerNamed(layers, 'norm_pooled').config.axis = -1;
    },
    reference: (x, w) => {
      const n = normalize(x, w, 'norm');
      const pooled = normalize(tf.mean(n, [1, 2]), w, 'norm_pooled');
      return tf.mul(n, tf.reshape(pooled, [-1, 1, 1, 3]));
    },
  },
  ...(
    [
      // [input, kernel, padding, output_padding, activation]: sizes Keras computes and TF accepts.
      [[4, 5, 2], 3, 'same', [0, 1], 'sigmoid'],
      [[3, 4, 2], 2, 'valid', [1, 1], 'linear'],
      [[3, 3, 2], 4, 'same', [1, 1], 'relu'],
    ] as const
  ).map(
    ([input, k, padding, outputPadding, activation]): Case => ({
      name: `Conv2DTranspose '${padding}' stride 2, kernel ${k}, output_padding ${JSON.stringify(outputPadding)}, ${activation} (tfjs ignores output_padding: Keras's size)`,
      input: [...input],
      build: (x) => L.conv2dTranspose({ name: 'deconv', filters: 3, kernelSize: k, strides: 2, padding, activation }).apply(x) as tf.SymbolicTensor,
      torchPatch: (layers) => {
        layerNamed(layers, 'deconv').config.output_padding = [...outputPadding];
      },
      reference: (x, w) => {
        const pad = padding === 'same' ? Math.floor(k / 2) : 0;
        const size = (n: number, op: number): number => (n - 1) * 2 + k - 2 * pad + op;
        const y = tf.conv2dTranspose(x, w('deconv/kernel') as tf.Tensor4D, [x.shape[0], size(input[0], outputPadding[0]), size(input[1], outputPadding[1]), 3], 2, padding);
        const z = tf.add(y, w('deconv/bias'));
        return activation === 'sigmoid' ? tf.sigmoid(z) : activation === 'relu' ? tf.relu(z) : z;
      },
    }),
  ),
];

async function torchForward(e: TorchEngine, x: Float32Array, shape: [number, number, number, number], training: boolean): Promise<{ data: Float32Array; shape: number[] }> {
  const xFile = await e.tempFile('x.bin', x);
  const out = await e.tempFile('out.bin');
  const reply = await e.worker.request('forward', { x: xFile, out, shape, training });
  const bytes = await readFile(out);
  return { data: new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4).slice(), shape: (reply as unknown as { shape: number[] }).shape };
}

function layersOf(topology: ModelConfigJson): TopologyLayer[] {
  return (topology.config as unknown as { layers: TopologyLayer[] }).layers;
}

function weightOf(map: WeightMap, name: string): Float32Array {
  const slash = name.lastIndexOf('/');
  return map.get(name.slice(0, slash))!.get(name.slice(slash + 1))!.data;
}

describe('torch engine = tfjs, layer by layer (same weights, max abs diff < 1e-4)', () => {
  CASES.forEach((c, k) => {
    it(c.name, async (t) => {
      const e = await torch(t);
      if (!e) return;
      const input = tf.input({ shape: c.input });
      const built = tf.model({ inputs: input, outputs: c.build(input) });
      const topology = built.toJSON(null, false) as unknown as ModelConfigJson;
      built.dispose();
      c.patch?.(layersOf(topology));
      const model = await tf.models.modelFromJSON({ modelTopology: topology } as unknown as tf.io.ModelJSON);
      const torchTopology = JSON.parse(JSON.stringify(topology)) as ModelConfigJson;
      c.torchPatch?.(layersOf(torchTopology));
      const graph = parseModel({ format: 'layers-model', modelTopology: torchTopology }).graph;
      const weights = c.reference ? graphWeights(graph, 100 + k) : randomWeights(model, 100 + k);
      assert.deepEqual(unsupportedLayers(graph), [], 'the worker builds every layer of the case');
      const outShape = graph.layers.find((l) => l.name === graph.outputs[0].layer)!.calls[graph.outputs[0].nodeIndex].outputShape;
      const shape: [number, number, number, number] = [3, ...c.input];
      const rng = createRng(7 + k);
      const x = Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng() * 2 - 1);
      const modes = c.inferenceOnly ? [false] : [false, true];
      for (const training of modes) {
        const spec = await e.load(graph, weights);
        if (!training) {
          const back = await e.readWeights(spec);
          for (const w of weights) assert.equal(maxAbsDiff(weightOf(back, w.name), w.data), 0, `${w.name} round-trips through the worker unchanged`);
        }
        let expected: Float32Array;
        let expectedShape: number[];
        if (c.reference) {
          const byName = new Map(weights.map((w) => [w.name, w]));
          [expected, expectedShape] = tf.tidy(() => {
            const y = c.reference!(tf.tensor4d(x, shape), (name) => tf.tensor(byName.get(name)!.data, [...byName.get(name)!.shape]));
            return [y.dataSync() as Float32Array, y.shape];
          });
        } else {
          assignWeights(model, weights);
          [expected, expectedShape] = tf.tidy(() => {
            const y = model.apply(tf.tensor4d(x, shape), { training }) as tf.Tensor;
            return [y.dataSync() as Float32Array, y.shape];
          });
        }
        const got = await torchForward(e, x, shape, training);
        assert.deepEqual(got.shape, expectedShape, 'the output shape');
        assert.deepEqual(got.shape.slice(1), outShape.slice(1), "the output shape is the parser's");
        const diff = maxAbsDiff(got.data, expected);
        t.diagnostic(`${training ? 'training' : 'inference'}: max abs diff ${diff}`);
        assert.ok(diff < 1e-4, `${training ? 'training' : 'inference'} outputs differ by ${diff}`);
        if (training && !c.reference) {
          // Batch norm moved its statistics in both, the same way (biased batch variance, Keras momentum).
          const after = await e.readWeights(spec);
          for (const w of namedWeights(model)) {
            if (!w.name.endsWith('moving_mean') && !w.name.endsWith('moving_variance')) continue;
            const d = maxAbsDiff(weightOf(after, w.name), w.data);
            assert.ok(d < 1e-4, `${w.name} after a training-mode pass differs by ${d}`);
          }
        }
      }
      model.dispose();
    });
  });

  it('computes every activation TORCH_ACTIVATIONS names, as a layer and fused in Conv2DTranspose', async (t) => {
    const e = await torch(t);
    if (!e) return;
    const input = tf.input({ shape: [2, 4, 2] });
    const outs = TORCH_ACTIVATIONS.flatMap((a) => [
      L.activation({ name: `act_${a}`, activation: 'linear' }).apply(input) as tf.SymbolicTensor,
      L.conv2dTranspose({ name: `deconv_${a}`, filters: 2, kernelSize: 1 }).apply(input) as tf.SymbolicTensor,
    ]);
    const built = tf.model({ inputs: input, outputs: L.concatenate().apply(outs) as tf.SymbolicTensor });
    const topology = built.toJSON(null, false) as unknown as ModelConfigJson;
    const weights = randomWeights(built, 3);
    built.dispose();
    for (const a of TORCH_ACTIVATIONS) {
      layerNamed(layersOf(topology), `act_${a}`).config.activation = a;
      layerNamed(layersOf(topology), `deconv_${a}`).config.activation = a;
    }
    const graph = parseModel({ format: 'layers-model', modelTopology: topology }).graph;
    assert.deepEqual(unsupportedLayers(graph), []);
    await e.load(graph, weights);
    const x = Float32Array.from({ length: 16 }, (_, i) => i / 4 - 2);
    const got = await torchForward(e, x, [1, 2, 4, 2], false);
    assert.deepEqual(got.shape, [1, 2, 4, 4 * TORCH_ACTIVATIONS.length]);
    assert.ok(got.data.every(Number.isFinite));
  });

  it('round-trips the weights of every seed through the worker unchanged (tfjs layout in and out)', async (t) => {
    const e = await torch(t);
    if (!e) return;
    for (const seed of ['mobilenet', 'resnet', 'vgg'] as const) {
      const topology = seedModel(seed).modelTopology as ModelConfigJson;
      const model = await tf.models.modelFromJSON({ modelTopology: topology } as unknown as tf.io.ModelJSON);
      const weights = randomWeights(model, 5);
      const graph = parseModel({ format: 'layers-model', modelTopology: topology }).graph;
      const spec = await e.load(graph, weights);
      const back = await e.readWeights(spec);
      for (const w of weights) assert.equal(maxAbsDiff(weightOf(back, w.name), w.data), 0, `${seed} ${w.name}`);
      model.dispose();
    }
  });
});

describe('torch engine: the proximal step', () => {
  it('gives the gammas applyGroupProx gives, residual groups (several batch norms) included', async (t) => {
    const e = await torch(t);
    if (!e) return;
    const topology = seedModel('resnet').modelTopology as ModelConfigJson;
    const graph = parseModel({ format: 'layers-model', modelTopology: topology }).graph;
    const analysis = analyzeChannels(graph);
    const plan = planGammas(graph, analysis);
    assert.ok(plan.slices.some((s) => s.length > 1), 'the resnet seed has groups covered by several batch norms');
    const model = await tf.models.modelFromJSON({ modelTopology: topology } as unknown as tf.io.ModelJSON);
    const weights = randomWeights(model, 11);
    model.dispose();
    const spec = await e.load(graph, weights);
    const rng = createRng(3);
    const thresholds = plan.slices.map(() => 0.2 + rng() * 0.8);
    const lr = 0.7;
    await e.worker.request('prox', { lr, groups: plan.slices.map((slices, g) => ({ threshold: thresholds[g], slices })) });
    const got = await e.readWeights(spec);
    const arrays = new Map<string, Float32Array>();
    for (const layer of plannedLayers(plan)) arrays.set(layer, Float32Array.from(weights.find((w) => w.name === `${layer}/gamma`)!.data));
    applyGroupProx(plan, arrays, thresholds.map((x) => x * lr));
    let zeros = 0;
    for (const [layer, expected] of arrays) {
      const d = maxAbsDiff(weightOf(got, `${layer}/gamma`), expected);
      assert.ok(d < 1e-6, `${layer} gammas differ by ${d}`);
      zeros += expected.filter((v) => v === 0).length;
    }
    assert.ok(zeros > 0, 'some channels were set to exactly zero');
  });
});

describe('torch engine: training steps end where tfjs ends', () => {
  for (const optimizer of ['sgd', 'adam'] as const) {
    it(`${optimizer}, cosine schedule, weight decay, proximal step: same weights after 2 epochs × 4 steps`, async (t) => {
      const e = await torch(t);
      if (!e) return;
      // A small, well-conditioned net: on a deep net with 2×2 maps and batches of 16, batch norm
      // amplifies float rounding (1e-7 after two steps, 1e-4 after three): chaos, not a difference.
      const topology = tinyTopology([12, 12, 1], 3);
      const graph = parseModel({ format: 'layers-model', modelTopology: topology }).graph;
      const analysis = analyzeChannels(graph);
      // Seeded initial weights (tfjs's initialisers draw from Math.random: an unlucky draw put Adam's
      // difference at 1.3e-4 once in a clean-clone run).
      const weights = rebuild(graph, analysis, identitySelection(analysis), null, { seed: 3 }).weights;
      const plan = planGammas(graph, analysis);
      const dataset = await openDataset('synthetic:h=12,w=12,c=1,classes=3,train=200,test=40', { seed: 1 });
      const request: FitRequest = {
        modelTopology: topology,
        weights,
        dataset,
        train: { epochs: 2, batchSize: 16, maxStepsPerEpoch: 4, seed: 5, schedule: 'cosine', optimizer: { kind: optimizer, lr: optimizer === 'sgd' ? 0.02 : 1e-3, weightDecay: 1e-3 } },
        prox: { plan, lambda: 0.01, coefficients: plan.slices.map((s, g) => (s.length > 0 ? 1 + g / 10 : 0)) },
        recalibrate: { seed: 2, batches: 3, batchSize: 16 },
        evaluate: { split: 'test', batchSize: 16 },
      };
      const coefficientsSeen: number[][] = [];
      const onEpochGammas = (gammas: Float32Array[]): number[] => {
        coefficientsSeen.push(gammas.map((g) => g.length));
        return plan.slices.map((s, g) => (s.length > 0 ? 2 + g / 10 : 0));
      };
      const tfjsFit = await createTfjsEngine(await selectBackend({ backend: 'cpu' })).fit(request, { onEpochGammas });
      const torchFit = await e.fit(request, { onEpochGammas });
      assert.equal(coefficientsSeen.length, 4, 'each engine asked for new coefficients after each epoch');
      let worst = 0;
      for (const [layer, kinds] of tfjsFit.weights) {
        for (const [kind, w] of kinds) worst = Math.max(worst, maxAbsDiff(torchFit.weights.get(layer)!.get(kind)!.data, w.data));
      }
      assert.ok(worst < 1e-4, `weights after training differ by up to ${worst}`);
      assert.ok(Math.abs(torchFit.train.history[1].trainLoss - tfjsFit.train.history[1].trainLoss) < 1e-4, 'same mean training loss in epoch 2');
      assert.equal(torchFit.evaluation!.n, tfjsFit.evaluation!.n);
      assert.ok(Math.abs(torchFit.evaluation!.loss - tfjsFit.evaluation!.loss) < 1e-3, `test loss ${torchFit.evaluation!.loss} vs ${tfjsFit.evaluation!.loss}`);
    });
  }
});

/**
 * Rescaling, a squeeze-and-excitation block (GAP → Reshape → Conv2D → Conv2D → Multiply), bilinear
 * UpSampling2D next to a Conv2DTranspose, Cropping2D: every new layer kind that has gradients.
 */
function seTransposeTopology(): ModelConfigJson {
  const input = tf.input({ shape: [12, 12, 1], name: 'image' });
  const pre = L.rescaling({ name: 'pre', scale: 2, offset: -1 }).apply(input) as tf.SymbolicTensor;
  const c1 = L.conv2d({ name: 'c1', filters: 6, kernelSize: 3, strides: 2, padding: 'same', useBias: false }).apply(pre);
  const act = L.activation({ name: 'c1_swish', activation: 'swish' }).apply(L.batchNormalization({ name: 'c1_bn', momentum: 0.9 }).apply(c1)) as tf.SymbolicTensor;
  const squeeze = L.reshape({ name: 'se_reshape', targetShape: [1, 1, 6] }).apply(L.globalAveragePooling2d({ name: 'se_squeeze' }).apply(act));
  const reduce = L.conv2d({ name: 'se_reduce', filters: 2, kernelSize: 1, activation: 'relu' }).apply(squeeze);
  const gate = L.conv2d({ name: 'se_expand', filters: 6, kernelSize: 1, activation: 'sigmoid' }).apply(reduce) as tf.SymbolicTensor;
  const excited = L.multiply({ name: 'se_excite' }).apply([act, gate]) as tf.SymbolicTensor;
  const deconv = L.conv2dTranspose({ name: 'up', filters: 4, kernelSize: 3, strides: 2, padding: 'same', useBias: false }).apply(excited);
  const upBranch = L.reLU({ name: 'up_relu' }).apply(L.batchNormalization({ name: 'up_bn', momentum: 0.9 }).apply(deconv)) as tf.SymbolicTensor;
  const resized = L.upSampling2d({ name: 'resize', size: [2, 2], interpolation: 'bilinear' }).apply(excited) as tf.SymbolicTensor;
  const joined = L.cropping2D({ name: 'crop', cropping: [[1, 1], [1, 1]] }).apply(L.concatenate({ name: 'join' }).apply([upBranch, resized]));
  const c2 = L.conv2d({ name: 'c2', filters: 8, kernelSize: 3, strides: 2, useBias: false }).apply(joined);
  const c2Act = L.reLU({ name: 'c2_relu' }).apply(L.batchNormalization({ name: 'c2_bn', momentum: 0.9 }).apply(c2));
  const out = L.dense({ name: 'predictions', units: 3, activation: 'softmax' }).apply(L.globalAveragePooling2d({ name: 'gap' }).apply(c2Act)) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: out, name: 'se_transpose' });
  const topology = model.toJSON(null, false) as unknown as ModelConfigJson;
  model.dispose();
  return topology;
}

describe('torch engine: training through the new layer kinds ends where tfjs ends', () => {
  for (const optimizer of ['sgd', 'adam'] as const) {
    it(`SE block, Conv2DTranspose, bilinear UpSampling2D, Cropping2D, Rescaling: ${optimizer} + weight decay + proximal step, 2 epochs × 3 steps`, async (t) => {
      const e = await torch(t);
      if (!e) return;
      const topology = seTransposeTopology();
      const model = await tf.models.modelFromJSON({ modelTopology: topology } as unknown as tf.io.ModelJSON);
      const weights = randomWeights(model, 21);
      model.dispose();
      const graph = parseModel({ format: 'layers-model', modelTopology: topology }).graph;
      assert.deepEqual(unsupportedLayers(graph), []);
      const plan = planGammas(graph, analyzeChannels(graph));
      const dataset = await openDataset('synthetic:h=12,w=12,c=1,classes=3,train=120,test=32', { seed: 4 });
      const request: FitRequest = {
        modelTopology: topology,
        weights,
        dataset,
        train: { epochs: 2, batchSize: 16, maxStepsPerEpoch: 3, seed: 9, schedule: 'cosine', optimizer: optimizer === 'sgd' ? { kind: 'sgd', lr: 0.05, momentum: 0.9, weightDecay: 1e-3 } : { kind: 'adam', lr: 1e-2, weightDecay: 1e-3 } },
        prox: { plan, lambda: 0.01, coefficients: plan.slices.map((s) => (s.length > 0 ? 1 : 0)) },
        evaluate: { split: 'test', batchSize: 16 },
      };
      const tfjsFit = await createTfjsEngine(await selectBackend({ backend: 'cpu' })).fit(request);
      const torchFit = await e.fit(request);
      let worst = 0;
      let moved = 0;
      const initial = new Map(weights.map((w) => [w.name, w.data]));
      for (const [layer, kinds] of tfjsFit.weights) {
        for (const [kind, w] of kinds) {
          worst = Math.max(worst, maxAbsDiff(torchFit.weights.get(layer)!.get(kind)!.data, w.data));
          if (!kind.startsWith('moving_')) moved = Math.max(moved, maxAbsDiff(initial.get(`${layer}/${kind}`)!, w.data));
        }
      }
      t.diagnostic(`trained weights moved up to ${moved}; the engines differ by up to ${worst}`);
      assert.ok(moved > 1e-2, 'training changed the weights');
      assert.ok(worst < 1e-4, `weights after training differ by up to ${worst}`);
      for (const epoch of [0, 1]) {
        const d = Math.abs(torchFit.train.history[epoch].trainLoss - tfjsFit.train.history[epoch].trainLoss);
        assert.ok(d < 1e-4, `mean training loss in epoch ${epoch + 1} differs by ${d}`);
      }
      assert.ok(Math.abs(torchFit.evaluation!.loss - tfjsFit.evaluation!.loss) < 1e-4, `test loss ${torchFit.evaluation!.loss} vs ${tfjsFit.evaluation!.loss}`);
    });
  }
});

/** Real model files (test/fixtures/real-models) with the new layer kinds, at a small input where they allow one. */
const REAL_MODELS: readonly { file: string; inputShape?: [number, number, number]; what: string }[] = [
  { file: 'efficientnetb0-tfjs-notop.json', inputShape: [32, 32, 3], what: 'Rescaling scalar and per channel, Normalization, swish, SE blocks (GAP → Reshape → Conv2D → Multiply)' },
  { file: 'denoising-autoencoder-nested.json', what: 'Conv2DTranspose decoder, Dense bottleneck + Reshape, nested models' },
  { file: 'small-cnn-leakyrelu-34px.json', what: 'LeakyReLU layers' },
  { file: 'mobilenet-v1-keras-app.json', inputShape: [32, 32, 3], what: 'ReLU(6.), Reshape((1, 1, 1024)) → Conv2D classifier → Reshape((1000,))' },
];

function readFixture(file: string): unknown {
  return JSON.parse(readFileSync(new URL(`../fixtures/real-models/${file}`, import.meta.url), 'utf8'));
}

describe('torch engine = tfjs on real model files with the new layer kinds', () => {
  it('builds every layer of the real files that use them (U-Net: Conv2DTranspose, Cropping2D; YOLOv3-tiny: UpSampling2D, LeakyReLU)', () => {
    const files: [string, [number, number, number]?][] = [...REAL_MODELS.map((m): [string, [number, number, number]?] => [m.file, m.inputShape]), ['unet-cropping-keras3.json'], ['yolov3-tiny-tfjs.json', [416, 416, 3]]];
    for (const [file, inputShape] of files) {
      const { graph } = parseModel(readFixture(file), { source: file, inputShape });
      // YOLOv3-tiny has two outputs, which the torch engine does not train: its layers are what is checked.
      const layers = unsupportedLayers(graph).filter((u) => u.className !== 'Model');
      assert.deepEqual(layers, [], file);
    }
  });

  REAL_MODELS.forEach((m, k) => {
    it(`${m.file}: ${m.what}`, async (t) => {
      const e = await torch(t);
      if (!e) return;
      const { graph } = parseModel(readFixture(m.file), { source: m.file, inputShape: m.inputShape });
      assert.deepEqual(unsupportedLayers(graph), []);
      const analysis = analyzeChannels(graph);
      // Random weights that keep activations near unit scale through a deep net (kernels ±√(3/fan-in));
      // tfjs runs the flat model we write, where Normalization and per-channel Rescaling are 1×1 depthwise convolutions.
      const rng = createRng(40 + k);
      const weights: WeightMap = new Map();
      for (const layer of graph.layers) {
        for (const w of layer.weights) {
          const n = w.shape.reduce((a, b) => a * b, 1);
          const fanIn = w.kind === 'depthwise_kernel' ? w.shape[0] * w.shape[1] : n / w.shape[w.shape.length - 1];
          const draw = (): number => {
            const u = rng() * 2 - 1;
            if (w.kind.endsWith('kernel')) return u * Math.sqrt(3 / fanIn);
            if (w.kind === 'gamma' || w.kind === 'variance' || w.kind === 'moving_variance') return 1 + 0.5 * u;
            return w.kind === 'count' ? 1000 : 0.2 * u;
          };
          if (!weights.has(layer.name)) weights.set(layer.name, new Map());
          weights.get(layer.name)!.set(w.kind, { shape: [...w.shape], data: Float32Array.from({ length: n }, draw) });
        }
      }
      const flat = rebuild(graph, analysis, identitySelection(analysis), weights);
      const model = await tf.models.modelFromJSON({ modelTopology: flat.modelTopology } as unknown as tf.io.ModelJSON);
      assignWeights(model, flat.weights);
      const input = graph.layers.find((l) => l.name === graph.inputs[0].layer)!.calls[0].outputShape;
      const shape: [number, number, number, number] = [2, input[1] as number, input[2] as number, input[3] as number];
      const x = Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng() * 255);
      const expected = tf.tidy(() => (model.predict(tf.tensor4d(x, shape)) as tf.Tensor).dataSync() as Float32Array);
      model.dispose();
      await e.load(graph, weights);
      const got = await torchForward(e, x, shape, false);
      const scale = expected.reduce((a, v) => Math.max(a, Math.abs(v)), 0);
      const diff = maxAbsDiff(got.data, expected);
      t.diagnostic(`max abs diff ${diff}, largest output ${scale}`);
      assert.ok(diff < 1e-4 * Math.max(1, scale), `outputs differ by ${diff} (largest ${scale})`);
    });
  });
});

describe('torch engine: what it cannot build', () => {
  it('names the layer (GaussianNoise) and refuses before training', async (t) => {
    if ((await torchUnavailable()) !== null && process.env.MORPHNET_REQUIRE_TORCH !== '1') return t.skip('torch not available');
    const e = await torch(t);
    if (!e) return;
    const input = tf.input({ shape: [4, 4, 1] });
    const out = L.dense({ units: 2, activation: 'softmax' }).apply(L.flatten().apply(L.gaussianNoise({ stddev: 0.1 }).apply(input))) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: out });
    const topology = model.toJSON(null, false) as unknown as ModelConfigJson;
    const dataset = await openDataset('synthetic:h=4,w=4,c=1,classes=2,train=20,test=4', { seed: 1 });
    await assert.rejects(e.fit({ modelTopology: topology, weights: namedWeights(model), dataset, train: { epochs: 1 } }), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'MORPH_ERR_ENGINE');
      assert.match(err.message, /GaussianNoise/);
      return true;
    });
    model.dispose();
  });
});
