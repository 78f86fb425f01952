/**
 * The torch engine computes what tfjs computes: for every layer kind the worker builds, the same
 * weights give the same outputs (max abs diff < 1e-4) in inference and in training mode (where
 * batch norm normalises with the batch and moves its statistics), against tfjs's `cpu` kernels;
 * the proximal step gives the gammas `applyGroupProx` gives; and a few training steps (data
 * order, schedule, optimizer, weight decay, proximal step) end at the same weights.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { analyzeChannels } from '../../src/graph/channel-groups.ts';
import { applyGroupProx, planGammas, plannedLayers } from '../../src/graph/gamma-plan.ts';
import type { ModelConfigJson } from '../../src/graph/keras-json.ts';
import { parseModel } from '../../src/graph/parse.ts';
import type { NamedWeight } from '../../src/graph/rebuild.ts';
import type { WeightMap } from '../../src/graph/weights.ts';
import { seedModel } from '../../src/seeds/index.ts';
import { selectBackend } from '../../src/train/backend.ts';
import { openDataset } from '../../src/train/data/index.ts';
import type { FitRequest } from '../../src/train/engine.ts';
import { createTfjsEngine } from '../../src/train/tfjs-engine.ts';
import { assignWeights, namedWeights } from '../../src/train/tf-model.ts';
import type { TorchEngine } from '../../src/train/torch/torch-engine.ts';
import { unsupportedLayers } from '../../src/train/torch/net-spec.ts';
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

interface Case {
  readonly name: string;
  readonly input: [number, number, number];
  build(x: tf.SymbolicTensor): tf.SymbolicTensor;
  /** Fix up the saved topology (tfjs 4.22 omits SeparableConv2D's depth_multiplier from getConfig). */
  patch?(layers: { class_name: string; config: Record<string, unknown> }[]): void;
  readonly inferenceOnly?: boolean;
}

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
];

async function torchForward(e: TorchEngine, x: Float32Array, shape: [number, number, number, number], training: boolean): Promise<Float32Array> {
  const xFile = await e.tempFile('x.bin', x);
  const out = await e.tempFile('out.bin');
  await e.worker.request('forward', { x: xFile, out, shape, training });
  const bytes = await readFile(out);
  return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4).slice();
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
      c.patch?.((topology.config as { layers: { class_name: string; config: Record<string, unknown> }[] }).layers);
      const model = await tf.models.modelFromJSON({ modelTopology: topology } as unknown as tf.io.ModelJSON);
      const weights = randomWeights(model, 100 + k);
      const graph = parseModel({ format: 'layers-model', modelTopology: topology }).graph;
      assert.deepEqual(unsupportedLayers(graph), [], 'the worker builds every layer of the case');
      const shape: [number, number, number, number] = [3, ...c.input];
      const rng = createRng(7 + k);
      const x = Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng() * 2 - 1);
      const modes = c.inferenceOnly ? [false] : [false, true];
      for (const training of modes) {
        const spec = await e.load(graph, weights);
        assignWeights(model, weights);
        const expected = tf.tidy(() => (model.apply(tf.tensor4d(x, shape), { training }) as tf.Tensor).dataSync() as Float32Array);
        const got = await torchForward(e, x, shape, training);
        const diff = maxAbsDiff(got, expected);
        assert.ok(diff < 1e-4, `${training ? 'training' : 'inference'} outputs differ by ${diff}`);
        if (training) {
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
      const model = await tf.models.modelFromJSON({ modelTopology: topology } as unknown as tf.io.ModelJSON);
      const weights = namedWeights(model);
      model.dispose();
      const graph = parseModel({ format: 'layers-model', modelTopology: topology }).graph;
      const analysis = analyzeChannels(graph);
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
