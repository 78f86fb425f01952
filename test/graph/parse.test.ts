import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { MorphError, type ErrorCode } from '../../src/errors.ts';
import { layerByName, type Graph } from '../../src/graph/graph.ts';
import type { FunctionalConfigJson, LayerJson, ModelConfigJson } from '../../src/graph/keras-json.ts';
import { parseModel } from '../../src/graph/parse.ts';
import { networkCost } from '../../src/cost/counts.ts';
import { residualNet } from '../fixtures/reference-models.ts';

const KERAS3 = JSON.parse(readFileSync(new URL('../fixtures/keras3-small.json', import.meta.url), 'utf8')) as ModelConfigJson;

/** Asserts `fn` throws a MorphError with `code` whose message contains every `parts`. */
function throwsCode(fn: () => unknown, code: ErrorCode, ...parts: string[]): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof MorphError, `expected a MorphError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    for (const p of parts) assert.ok(err.message.includes(p), `message ${JSON.stringify(err.message)} lacks ${JSON.stringify(p)}`);
    return true;
  });
}

function shapes(graph: Graph): Record<string, readonly (number | null)[]> {
  return Object.fromEntries(graph.layers.map((l) => [l.name, l.calls[0].outputShape]));
}

const clone = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

const res = residualNet();
after(() => res.model.dispose());
const resTopology = res.modelJson.modelTopology as ModelConfigJson;

describe('parseModel: formats', () => {
  it('reads a tfjs model.json without weightsManifest', () => {
    const p = parseModel(res.modelJson);
    assert.equal(p.format, 'tfjs-layers-model');
    assert.equal(p.weightsManifest, null);
    assert.equal(p.graph.modelClass, 'Model');
    assert.equal(p.graph.name, 'residual_net');
    assert.deepEqual(p.graph.inputs, [{ layer: 'input', nodeIndex: 0, tensorIndex: 0 }]);
    assert.deepEqual(p.graph.outputs, [{ layer: 'predictions', nodeIndex: 0, tensorIndex: 0 }]);
    assert.equal(p.graph.layers.length, res.model.layers.length);
    assert.deepEqual(p.graph.warnings, []);
  });

  it('reads a tfjs model.json with weightsManifest and keeps the manifest', () => {
    const manifest = [{ paths: ['weights.bin'], weights: [{ name: 'stem/kernel', shape: [3, 3, 3, 16], dtype: 'float32' }] }];
    const p = parseModel({ ...res.modelJson, weightsManifest: manifest });
    assert.equal(p.format, 'tfjs-layers-model');
    assert.deepEqual(p.weightsManifest, manifest);
  });

  it('infers every layer shape of a tfjs functional model as tfjs does', () => {
    const graph = parseModel(res.modelJson).graph;
    for (const layer of res.model.layers) {
      assert.deepEqual(layerByName(graph, layer.name)!.calls[0].outputShape, layer.outputShape, layer.name);
    }
    // Weight shapes follow tfjs too.
    for (const layer of res.model.layers) {
      const ours = layerByName(graph, layer.name)!.weights.map((w) => `${layer.name}/${w.kind}:${JSON.stringify(w.shape)}`).sort();
      const theirs = layer.weights.map((w) => `${w.originalName}:${JSON.stringify(w.shape)}`).sort();
      assert.deepEqual(ours, theirs, layer.name);
    }
  });

  it('keeps layers in topological order', () => {
    const graph = parseModel(res.modelJson).graph;
    const seen = new Set<string>();
    for (const l of graph.layers) {
      for (const c of l.calls) for (const r of c.inputs) assert.ok(seen.has(r.layer), `${l.name} before its input ${r.layer}`);
      seen.add(l.name);
    }
  });

  it('reads a bare Keras 2 config {"class_name": "Functional"} with nested-array inbound_nodes', () => {
    const keras2: ModelConfigJson = { ...clone(resTopology), class_name: 'Functional', keras_version: '2.15.0', backend: 'tensorflow' };
    const first = (keras2.config as FunctionalConfigJson).layers[1];
    assert.ok(Array.isArray(first.inbound_nodes![0]), 'fixture uses Keras 2 nested arrays');
    const p = parseModel(keras2);
    assert.equal(p.format, 'keras-config');
    assert.equal(p.weightsManifest, null);
    assert.equal(p.graph.modelClass, 'Functional');
    assert.deepEqual(shapes(p.graph), shapes(parseModel(res.modelJson).graph));
  });

  it('reads a tfjs model.json whose modelTopology wraps {model_config, training_config}', () => {
    const wrapped = { format: 'layers-model', modelTopology: { model_config: clone(resTopology), training_config: { loss: 'mse' }, keras_version: '2.4.0' } };
    const p = parseModel(wrapped);
    assert.equal(p.format, 'tfjs-layers-model');
    assert.equal(p.graph.layers.length, res.model.layers.length);
  });

  it('reads a Keras 3 config: __keras_tensor__ args, batch_shape, single-ref input_layers', () => {
    const p = parseModel(KERAS3);
    const g = p.graph;
    assert.equal(p.format, 'keras-config');
    assert.equal(g.modelClass, 'Functional');
    assert.equal(g.name, 'keras3_small');
    assert.deepEqual(g.inputs, [{ layer: 'input_1', nodeIndex: 0, tensorIndex: 0 }]);
    assert.deepEqual(g.outputs, [{ layer: 'dense', nodeIndex: 0, tensorIndex: 0 }]);
    assert.deepEqual(g.warnings, []);
    assert.deepEqual(shapes(g), {
      input_1: [null, 16, 16, 3],
      conv1: [null, 16, 16, 8],
      bn1: [null, 16, 16, 8],
      relu1: [null, 16, 16, 8],
      conv2: [null, 16, 16, 8],
      bn2: [null, 16, 16, 8],
      add: [null, 16, 16, 8],
      conv3: [null, 16, 16, 4],
      concat: [null, 16, 16, 12],
      gap: [null, 12],
      dense: [null, 10],
    });
    // The Add and Concatenate calls list both operands, from Keras 3's nested args.
    assert.deepEqual(layerByName(g, 'add')!.calls[0].inputs.map((r) => r.layer), ['bn2', 'relu1']);
    assert.deepEqual(layerByName(g, 'concat')!.calls[0].inputs.map((r) => r.layer), ['add', 'conv3']);
    assert.equal(layerByName(g, 'conv1')!.kind, 'conv2d');
    assert.equal(layerByName(g, 'relu1')!.kind, 'activation');
    const cost = networkCost(g);
    assert.equal(cost.macs, 9 * 3 * 8 * 256 + 9 * 8 * 8 * 256 + 8 * 4 * 256 + 12 * 10);
    assert.equal(cost.params, 216 + 4 * 8 + 576 + 4 * 8 + (32 + 4) + (120 + 10));
  });

  it('reads a Keras 3 config with list-form input_layers too', () => {
    const k = clone(KERAS3);
    (k.config as FunctionalConfigJson).input_layers = [['input_1', 0, 0]];
    (k.config as FunctionalConfigJson).output_layers = [['dense', 0, 0]];
    assert.deepEqual(shapes(parseModel(k).graph), shapes(parseModel(KERAS3).graph));
  });

  it('reads a tfjs Sequential model without InputLayer (batch_input_shape on the first layer)', () => {
    const m = tf.sequential({
      name: 'seq',
      layers: [
        tf.layers.conv2d({ inputShape: [8, 8, 1], filters: 4, kernelSize: 3, name: 'c1' }),
        tf.layers.maxPooling2d({ poolSize: 2, name: 'pool' }),
        tf.layers.flatten({ name: 'flat' }),
        tf.layers.dense({ units: 3, name: 'd' }),
      ],
    });
    try {
      const topo = m.toJSON(null, false) as unknown as ModelConfigJson;
      const p = parseModel({ format: 'layers-model', modelTopology: topo });
      const g = p.graph;
      assert.equal(g.modelClass, 'Sequential');
      assert.equal(g.syntheticInput, true);
      assert.equal(g.layers[0].kind, 'input');
      assert.equal(g.layers[0].name, 'c1_input');
      assert.deepEqual(g.inputs, [{ layer: 'c1_input', nodeIndex: 0, tensorIndex: 0 }]);
      assert.deepEqual(g.outputs, [{ layer: 'd', nodeIndex: 0, tensorIndex: 0 }]);
      assert.deepEqual(shapes(g), { c1_input: [null, 8, 8, 1], c1: [null, 6, 6, 4], pool: [null, 3, 3, 4], flat: [null, 36], d: [null, 3] });
      assert.equal(networkCost(g).params, m.countParams());
    } finally {
      m.dispose();
    }
  });

  it('reads a Sequential model that starts with an InputLayer, and the old list-form config', () => {
    const layers: LayerJson[] = [
      { class_name: 'InputLayer', config: { batch_input_shape: [null, 10, 10, 2], dtype: 'float32', name: 'in' } },
      { class_name: 'Conv2D', config: { name: 'c', filters: 5, kernel_size: [3, 3], strides: [2, 2], padding: 'same', use_bias: true } },
      { class_name: 'BatchNormalization', config: { name: 'bn', axis: -1 } },
      { class_name: 'GlobalMaxPooling2D', config: { name: 'gmp' } },
      { class_name: 'Dense', config: { name: 'out', units: 4 } },
    ];
    for (const config of [{ name: 'seq_in', layers }, layers]) {
      const g = parseModel({ class_name: 'Sequential', config }).graph;
      assert.equal(g.syntheticInput, false);
      assert.deepEqual(g.inputs, [{ layer: 'in', nodeIndex: 0, tensorIndex: 0 }]);
      assert.deepEqual(shapes(g), { in: [null, 10, 10, 2], c: [null, 5, 5, 5], bn: [null, 5, 5, 5], gmp: [null, 5], out: [null, 4] });
    }
  });

  it('accepts input_shape without the batch dimension on a Sequential first layer', () => {
    const g = parseModel({ class_name: 'Sequential', config: { layers: [{ class_name: 'Dense', config: { name: 'd', units: 2, input_shape: [5] } }] } }).graph;
    assert.deepEqual(shapes(g), { d_input: [null, 5], d: [null, 2] });
  });
});

describe('parseModel: bad input', () => {
  it('refuses JSON that is not an object or not a model (MORPH_ERR_NOT_A_MODEL)', () => {
    throwsCode(() => parseModel({ foo: 1 }), 'MORPH_ERR_NOT_A_MODEL', 'neither "modelTopology" nor "class_name"');
    throwsCode(() => parseModel([1, 2]), 'MORPH_ERR_NOT_A_MODEL', 'not an object');
    throwsCode(() => parseModel('model'), 'MORPH_ERR_NOT_A_MODEL');
    throwsCode(() => parseModel(null), 'MORPH_ERR_NOT_A_MODEL');
    throwsCode(() => parseModel({ class_name: 'Conv2D', config: {} }), 'MORPH_ERR_NOT_A_MODEL', '"Conv2D"');
    throwsCode(() => parseModel({ class_name: 'Functional' }), 'MORPH_ERR_NOT_A_MODEL', 'config is missing');
    throwsCode(() => parseModel({ class_name: 'Functional', config: { layers: 3 } }), 'MORPH_ERR_NOT_A_MODEL', 'config.layers');
    throwsCode(() => parseModel({ class_name: 'Sequential', config: { layers: [] } }), 'MORPH_ERR_NOT_A_MODEL', 'no layers');
    throwsCode(() => parseModel({ class_name: 'Functional', config: { layers: [{ class_name: 'Dense' }] } }), 'MORPH_ERR_NOT_A_MODEL', 'layer #0');
    throwsCode(() => parseModel({ modelTopology: 5 }), 'MORPH_ERR_NOT_A_MODEL', 'modelTopology');
    throwsCode(() => parseModel({ ...res.modelJson, weightsManifest: {} }), 'MORPH_ERR_NOT_A_MODEL', 'weightsManifest');
  });

  it('refuses a tfjs graph-model (MORPH_ERR_NOT_A_MODEL)', () => {
    const graphModel = {
      format: 'graph-model',
      generatedBy: '2.15.0',
      convertedBy: 'TensorFlow.js Converter v4.22.0',
      modelTopology: { node: [{ name: 'x', op: 'Placeholder', attr: {} }], library: {}, versions: { producer: 1 } },
      weightsManifest: [],
    };
    throwsCode(() => parseModel(graphModel), 'MORPH_ERR_NOT_A_MODEL', '"graph-model"');
  });

  it('refuses a Sequential model whose first layer has no batch_input_shape (MORPH_ERR_SHAPE)', () => {
    const seq = { class_name: 'Sequential', config: { layers: [{ class_name: 'Conv2D', config: { name: 'conv', filters: 4, kernel_size: 3 } }] } };
    throwsCode(() => parseModel(seq), 'MORPH_ERR_SHAPE', '"conv"', 'batch_input_shape');
  });

  it('refuses an InputLayer without a usable shape (MORPH_ERR_SHAPE)', () => {
    const m = { class_name: 'Functional', config: { layers: [{ class_name: 'InputLayer', name: 'x', config: { name: 'x', batch_input_shape: [null, null, null, 3] } }], input_layers: [['x', 0, 0]], output_layers: [['x', 0, 0]] } };
    throwsCode(() => parseModel(m), 'MORPH_ERR_SHAPE', '"x"');
  });

  /** A three-layer functional model whose inbound nodes the tests rewrite. */
  function chain(): ModelConfigJson {
    return {
      class_name: 'Functional',
      config: {
        name: 'chain',
        layers: [
          { class_name: 'InputLayer', name: 'in', config: { name: 'in', batch_input_shape: [null, 4] }, inbound_nodes: [] },
          { class_name: 'Dense', name: 'a', config: { name: 'a', units: 3 }, inbound_nodes: [[['in', 0, 0, {}]]] },
          { class_name: 'Dense', name: 'b', config: { name: 'b', units: 2 }, inbound_nodes: [[['a', 0, 0, {}]]] },
        ],
        input_layers: [['in', 0, 0]],
        output_layers: [['b', 0, 0]],
      },
    };
  }
  const layersOf = (m: ModelConfigJson): LayerJson[] => (m.config as FunctionalConfigJson).layers;

  it('refuses an inbound ref to an unknown layer, naming the layer and the ref (MORPH_ERR_BAD_TOPOLOGY)', () => {
    const m = chain();
    layersOf(m)[2].inbound_nodes = [[['nope', 0, 0, {}]]];
    throwsCode(() => parseModel(m), 'MORPH_ERR_BAD_TOPOLOGY', 'layer "b"', 'nope[0][0]', 'does not exist');
  });

  it('refuses a ref to a call or tensor that is never produced (MORPH_ERR_BAD_TOPOLOGY)', () => {
    const m = chain();
    layersOf(m)[2].inbound_nodes = [[['a', 1, 0, {}]]];
    throwsCode(() => parseModel(m), 'MORPH_ERR_BAD_TOPOLOGY', 'a[1][0]', 'no call number 1');
    const m2 = chain();
    layersOf(m2)[2].inbound_nodes = [[['a', 0, 1, {}]]];
    throwsCode(() => parseModel(m2), 'MORPH_ERR_BAD_TOPOLOGY', 'a[0][1]', 'tensor index 1');
  });

  it('refuses a cycle in inbound_nodes (MORPH_ERR_BAD_TOPOLOGY)', () => {
    const m = chain();
    layersOf(m)[1].inbound_nodes = [[['b', 0, 0, {}]]];
    throwsCode(() => parseModel(m), 'MORPH_ERR_BAD_TOPOLOGY', 'cycle');
  });

  it('refuses malformed refs, duplicate names and unknown model outputs (MORPH_ERR_BAD_TOPOLOGY)', () => {
    const m = chain();
    layersOf(m)[2].inbound_nodes = [[['a', '0', 0]]] as unknown as LayerJson['inbound_nodes'];
    throwsCode(() => parseModel(m), 'MORPH_ERR_BAD_TOPOLOGY', 'layer "b"', 'malformed');
    const dup = chain();
    layersOf(dup)[2].name = 'a';
    layersOf(dup)[2].config.name = 'a';
    throwsCode(() => parseModel(dup), 'MORPH_ERR_BAD_TOPOLOGY', 'two layers are named "a"');
    const out = chain();
    (out.config as FunctionalConfigJson).output_layers = [['zzz', 0, 0]];
    throwsCode(() => parseModel(out), 'MORPH_ERR_BAD_TOPOLOGY', '"zzz"');
    const k3 = clone(KERAS3);
    layersOf(k3)[1].inbound_nodes = [{ args: [{ class_name: '__keras_tensor__', config: { keras_history: ['ghost', 0, 0] } }], kwargs: {} }];
    throwsCode(() => parseModel(k3), 'MORPH_ERR_BAD_TOPOLOGY', 'layer "conv1"', 'ghost[0][0]');
  });

  it('refuses shapes that do not fit (MORPH_ERR_SHAPE)', () => {
    const m = chain();
    layersOf(m).push({ class_name: 'Add', name: 'sum', config: { name: 'sum' }, inbound_nodes: [[['a', 0, 0, {}], ['b', 0, 0, {}]]] });
    (m.config as FunctionalConfigJson).output_layers = [['sum', 0, 0]];
    throwsCode(() => parseModel(m), 'MORPH_ERR_SHAPE', '"sum"');
    const conv = chain();
    layersOf(conv)[1] = { class_name: 'Conv2D', name: 'a', config: { name: 'a', filters: 3, kernel_size: 3 }, inbound_nodes: [[['in', 0, 0, {}]]] };
    throwsCode(() => parseModel(conv), 'MORPH_ERR_SHAPE', '"a"', 'rank 4');
  });

  it('refuses over-limit models (MORPH_ERR_LIMIT)', () => {
    throwsCode(() => parseModel(chain(), { maxLayers: 2 }), 'MORPH_ERR_LIMIT', '3 layers');
  });

  it('names the source in messages', () => {
    throwsCode(() => parseModel({ foo: 1 }, { source: 'my/model.json' }), 'MORPH_ERR_NOT_A_MODEL', 'my/model.json');
  });

  it('refuses a layer class neither we nor tfjs know, naming the layer and class, instead of guessing its shape', () => {
    const m = chain();
    layersOf(m).splice(2, 0, { class_name: 'MyNoise', name: 'noise', config: { name: 'noise', stddev: 0.1 }, inbound_nodes: [[['a', 0, 0, {}]]] });
    layersOf(m)[3].inbound_nodes = [[['noise', 0, 0, {}]]];
    assert.throws(
      () => parseModel(m),
      (e: unknown) => e instanceof MorphError && e.code === 'MORPH_ERR_UNSUPPORTED_LAYER' && /"noise"/.test(e.message) && /MyNoise/.test(e.message),
    );
  });

  it('a class tfjs knows but we do not model gets its shape and weights from tfjs, and is listed as not costed', () => {
    const m = chain();
    layersOf(m).splice(2, 0, { class_name: 'RepeatVector', name: 'rep', config: { name: 'rep', n: 5 }, inbound_nodes: [[['a', 0, 0, {}]]] });
    layersOf(m).splice(3, 0, { class_name: 'LSTM', name: 'lstm', config: { name: 'lstm', units: 7 }, inbound_nodes: [[['rep', 0, 0, {}]]] });
    layersOf(m)[4].inbound_nodes = [[['lstm', 0, 0, {}]]];
    const g = parseModel(m).graph;
    assert.deepEqual(layerByName(g, 'rep')!.calls[0].outputShape, [null, 5, 3]);
    const lstm = layerByName(g, 'lstm')!;
    assert.equal(lstm.kind, 'unknown');
    assert.deepEqual(lstm.calls[0].outputShape, [null, 7]);
    // Keras LSTM: kernel [in, 4u], recurrent kernel [u, 4u], bias [4u].
    assert.deepEqual(lstm.weights.map((w) => [w.kind, w.shape]), [['kernel', [3, 28]], ['recurrent_kernel', [7, 28]], ['bias', [28]]]);
    assert.match(g.warnings.join('\n'), /not costed.*rep \(RepeatVector\).*lstm \(LSTM\)/);
  });
});
