import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { MorphError } from '../../src/errors.ts';
import { writeNetworkTflite } from '../../src/export/tflite/network.ts';
import type { LayerJson, ModelConfigJson, TfjsModelJson } from '../../src/graph/keras-json.ts';
import { analyzeChannels } from '../../src/graph/channel-groups.ts';
import { identitySelection } from '../../src/graph/widths.ts';
import { initialWeights, rebuild } from '../../src/graph/rebuild.ts';
import { parseModel } from '../../src/graph/parse.ts';
import type { WeightMap } from '../../src/graph/weights.ts';
import { randomArray, seededRandom } from '../../src/ops/spec-weights.ts';
import { loadTfliteModel, loadTfliteRuntime } from '../../device-agent/node/tflite-runtime.ts';
import { seedModel, VALID_SEEDS } from '../../src/seeds/index.ts';
import { perturbWeights } from '../helpers/random-weights.ts';
import { assignWeights, buildTfModel, readWeights } from '../../src/train/tf-model.ts';

before(async () => {
  await tf.setBackend('cpu');
  await loadTfliteRuntime();
});

async function checkSeed(json: TfjsModelJson, seed: number): Promise<{ diff: number; operators: number; folded: number; fused: number }> {
  const parsed = parseModel(json);
  const model = await buildTfModel(parsed.modelConfig, null);
  try {
    const weights = perturbWeights(readWeights(model), seed);
    assignWeights(model, weights);
    const result = writeNetworkTflite(parsed.graph, weights);
    const tflite = await loadTfliteModel(result.bytes);
    try {
      const shape = [1, ...(parsed.graph.layers[0].calls[0].outputShape.slice(1) as number[])];
      const x = randomArray(shape.reduce((a, b) => a * b, 1), 1, seededRandom(seed + 100));
      const [got] = tflite.run([x]);
      const input = tf.tensor(x, shape);
      const y = model.predict(input) as tf.Tensor;
      const want = y.dataSync();
      input.dispose();
      y.dispose();
      assert.equal(got.length, want.length);
      let diff = 0;
      for (let i = 0; i < want.length; i++) diff = Math.max(diff, Math.abs(got[i] - want[i]));
      return { diff, operators: result.operators, folded: result.foldedBatchNorms, fused: result.fusedActivations };
    } finally {
      tflite.dispose();
    }
  } finally {
    model.dispose();
  }
}

describe('whole-network .tflite vs tfjs', () => {
  for (const name of VALID_SEEDS) {
    it(`seed ${name}: predictions match (< 1e-4) with batch norms folded`, async () => {
      const r = await checkSeed(seedModel(name), 7);
      assert.ok(r.diff < 1e-4, `max abs diff ${r.diff}`);
      assert.ok(r.folded > 0 && r.fused > 0);
    });
  }

  it('folds mobilenet into conv/depthwise ops only (one op per conv, BN and ReLU absorbed)', async () => {
    const parsed = parseModel(seedModel('mobilenet'));
    const model = await buildTfModel(parsed.modelConfig, null);
    const weights = readWeights(model);
    model.dispose();
    const r = writeNetworkTflite(parsed.graph, weights);
    // conv1 + 7 × (dw + pw) + MEAN + FULLY_CONNECTED + SOFTMAX
    assert.equal(r.operators, 1 + 14 + 3);
    assert.equal(r.foldedBatchNorms, 15);
    assert.equal(r.fusedActivations, 15);
  });

  it('handles a standalone batch norm, sigmoid, concat with relu, zero padding and global max pooling', async () => {
    const json = {
      format: 'layers-model',
      modelTopology: {
        class_name: 'Model',
        config: {
          name: 'mixed',
          layers: [
            { class_name: 'InputLayer', name: 'in', config: { name: 'in', batch_input_shape: [null, 8, 8, 3] }, inbound_nodes: [] },
            { class_name: 'Conv2D', name: 'c1', config: { name: 'c1', filters: 4, kernel_size: 3, padding: 'same', activation: 'relu' }, inbound_nodes: [[['in', 0, 0, {}]]] },
            { class_name: 'BatchNormalization', name: 'bn', config: { name: 'bn' }, inbound_nodes: [[['c1', 0, 0, {}]]] },
            { class_name: 'ZeroPadding2D', name: 'pad', config: { name: 'pad', padding: [[1, 0], [0, 1]] }, inbound_nodes: [[['in', 0, 0, {}]]] },
            { class_name: 'SeparableConv2D', name: 'sep', config: { name: 'sep', filters: 5, kernel_size: 2, padding: 'valid', activation: 'sigmoid' }, inbound_nodes: [[['pad', 0, 0, {}]]] },
            { class_name: 'Concatenate', name: 'cat', config: { name: 'cat', axis: -1 }, inbound_nodes: [[['bn', 0, 0, {}], ['sep', 0, 0, {}]]] },
            { class_name: 'ReLU', name: 'cat_relu', config: { name: 'cat_relu' }, inbound_nodes: [[['cat', 0, 0, {}]]] },
            { class_name: 'GlobalMaxPooling2D', name: 'gmp', config: { name: 'gmp' }, inbound_nodes: [[['cat_relu', 0, 0, {}]]] },
            { class_name: 'Dense', name: 'out', config: { name: 'out', units: 3, activation: 'tanh' }, inbound_nodes: [[['gmp', 0, 0, {}]]] },
          ],
          input_layers: [['in', 0, 0]],
          output_layers: [['out', 0, 0]],
        },
      },
    } as unknown as TfjsModelJson;
    const r = await checkSeed(json, 3);
    assert.ok(r.diff < 1e-4, `max abs diff ${r.diff}`);
  });

  it('refuses a layer it cannot express, naming it', async () => {
    const json = {
      format: 'layers-model',
      modelTopology: {
        class_name: 'Sequential',
        config: {
          name: 's',
          layers: [
            { class_name: 'Dense', config: { name: 'd', units: 2, batch_input_shape: [null, 4] } },
            { class_name: 'ThresholdedReLU', config: { name: 'lrelu', theta: 0.5 } },
          ],
        },
      },
    };
    const parsed = parseModel(json);
    const model = await buildTfModel(parsed.modelConfig, null);
    const weights = readWeights(model);
    model.dispose();
    assert.throws(
      () => writeNetworkTflite(parsed.graph, weights),
      (err: unknown) => err instanceof MorphError && err.code === 'MORPH_ERR_EXPORT' && /lrelu/.test(err.message),
    );
  });

  it('refuses missing weights with MORPH_ERR_WEIGHTS_MISMATCH', () => {
    const parsed = parseModel(seedModel('vgg'));
    assert.throws(() => writeNetworkTflite(parsed.graph, new Map()), (err: unknown) => err instanceof MorphError && err.code === 'MORPH_ERR_WEIGHTS_MISMATCH');
  });
});

describe('whole-network .tflite vs tfjs: the layers of models users bring', () => {
  const layer = (class_name: string, name: string, input: string | string[], config: Record<string, unknown> = {}): LayerJson => ({
    class_name,
    name,
    config: { name, ...config },
    inbound_nodes: [(Array.isArray(input) ? input : [input]).map((i) => [i, 0, 0, {}])],
  }) as unknown as LayerJson;
  const model: ModelConfigJson = {
    class_name: 'Functional',
    config: {
      name: 'byom_layers',
      layers: [
        { class_name: 'InputLayer', name: 'in', config: { name: 'in', batch_input_shape: [null, 12, 10, 3] }, inbound_nodes: [] },
        layer('Rescaling', 'rescale', 'in', { scale: [0.5, 1, 2], offset: 0.1 }),
        layer('Normalization', 'norm', 'rescale', { axis: -1 }),
        layer('Conv2D', 'conv', 'norm', { filters: 8, kernel_size: 3, padding: 'same', activation: 'swish' }),
        layer('GlobalAveragePooling2D', 'squeeze', 'conv', { keepdims: true }),
        layer('Conv2D', 'excite', 'squeeze', { filters: 8, kernel_size: 1, activation: 'sigmoid' }),
        layer('Multiply', 'gate', ['conv', 'excite']),
        layer('Cropping2D', 'crop', 'gate', { cropping: [[1, 2], [0, 1]] }),
        layer('Conv2DTranspose', 'up', 'crop', { filters: 5, kernel_size: 3, strides: 2, padding: 'same', activation: 'relu' }),
        layer('Conv2DTranspose', 'up_valid', 'up', { filters: 4, kernel_size: 2, strides: 2, padding: 'valid' }),
        layer('UpSampling2D', 'resize', 'up_valid', { size: [1, 2], interpolation: 'bilinear' }),
        layer('LeakyReLU', 'leaky', 'resize', { alpha: 0.2 }),
        layer('Maximum', 'sub', ['leaky', 'resize']),
        layer('Softmax', 'probs', 'sub', { axis: -1 }),
      ],
      input_layers: [['in', 0, 0]],
      output_layers: [['probs', 0, 0]],
    },
  } as unknown as ModelConfigJson;

  it('Rescaling, Normalization, swish, SE gate, Cropping2D, Conv2DTranspose, bilinear UpSampling2D, LeakyReLU, Maximum, softmax over rank 4: < 1e-4', async () => {
    const { graph } = parseModel(model);
    const analysis = analyzeChannels(graph);
    const weights = initialWeights(graph, analysis, 5);
    const rand = seededRandom(9);
    // Statistics and biases away from 0/1, so the affine maps are exercised.
    weights.get('norm')!.set('mean', { shape: [3], data: randomArray(3, 0.5, rand) });
    weights.get('norm')!.set('variance', { shape: [3], data: randomArray(3, 0.5, rand).map((v) => 1 + v) });
    for (const l of ['conv', 'excite', 'up', 'up_valid']) weights.get(l)!.set('bias', { shape: weights.get(l)!.get('bias')!.shape, data: randomArray(weights.get(l)!.get('bias')!.data.length, 0.3, rand) });
    // tfjs runs the model we write (Normalization and the per-channel Rescaling as 1×1 depthwise convs).
    const flat = rebuild(graph, analysis, identitySelection(analysis), weights);
    const tfModel = await tf.loadLayersModel(
      tf.io.fromMemory({
        modelTopology: flat.modelTopology as unknown as object,
        weightSpecs: flat.weights.map((w) => ({ name: w.name, shape: [...w.shape], dtype: 'float32' as const })),
        weightData: Float32Array.from(flat.weights.flatMap((w) => [...w.data])).buffer,
      }),
    );
    const tflite = await loadTfliteModel(writeNetworkTflite(graph, weights).bytes);
    try {
      const x = randomArray(12 * 10 * 3, 1, seededRandom(3));
      const [got] = tflite.run([x]);
      const want = tf.tidy(() => (tfModel.predict(tf.tensor(x, [1, 12, 10, 3])) as tf.Tensor).dataSync());
      assert.equal(got.length, want.length);
      // 12×10 → crop 9×9 → 'same' ×2: 18×18 → 'valid' k2 s2: 36×36 → resize (1, 2): 36×72, 4 channels.
      assert.equal(want.length, 36 * 72 * 4);
      let diff = 0;
      for (let i = 0; i < want.length; i++) diff = Math.max(diff, Math.abs(got[i] - want[i]));
      assert.ok(diff < 1e-4, `max abs diff ${diff}`);
    } finally {
      tflite.dispose();
      tfModel.dispose();
    }
  });
});
