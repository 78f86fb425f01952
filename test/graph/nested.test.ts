/**
 * Nested models inlined into one graph (src/graph/scope.ts): Keras ≥ 2.4's node numbering from 1,
 * shared nested models, several outputs, name collisions, nested Sequentials without an input
 * shape; and layers we do not model counted from Keras 3's recorded shapes and the manifest.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { networkCost } from '../../src/cost/counts.ts';
import { MorphError } from '../../src/errors.ts';
import { analyzeChannels, layoutOf } from '../../src/graph/channel-groups.ts';
import { layerByName } from '../../src/graph/graph.ts';
import type { LayerJson, ModelConfigJson } from '../../src/graph/keras-json.ts';
import { loadModelFile } from '../../src/graph/load.ts';
import { parseModel } from '../../src/graph/parse.ts';
import { rebuild } from '../../src/graph/rebuild.ts';
import { identitySelection, uniformSelection } from '../../src/graph/widths.ts';

const ref = (layer: string, node = 0, tensor = 0): [string, number, number, Record<string, never>] => [layer, node, tensor, {}];
const input = (name: string, shape: number[]): LayerJson => ({ class_name: 'InputLayer', name, config: { name, batch_input_shape: [null, ...shape] }, inbound_nodes: [] });
const dense = (name: string, units: number, ...calls: ReturnType<typeof ref>[][]): LayerJson => ({ class_name: 'Dense', name, config: { name, units }, inbound_nodes: calls });
const functional = (name: string, layers: LayerJson[], inputs: ReturnType<typeof ref>[], outputs: ReturnType<typeof ref>[], calls: ReturnType<typeof ref>[][] = []): LayerJson =>
  ({ class_name: 'Functional', name, config: { name, layers, input_layers: inputs.map((r) => r.slice(0, 3)), output_layers: outputs.map((r) => r.slice(0, 3)) }, inbound_nodes: calls }) as unknown as LayerJson;
const model = (layer: LayerJson): ModelConfigJson => ({ class_name: layer.class_name, config: layer.config }) as unknown as ModelConfigJson;

describe('nested models', () => {
  it('inlines a Functional called at node index 1 (Keras ≥ 2.4), keeping the inner names', () => {
    const base = functional('base', [input('base_in', [4]), dense('d1', 3, [ref('base_in')])], [ref('base_in')], [ref('d1')], [[ref('x')]]);
    const m = model(functional('outer', [input('x', [4]), base, dense('head', 2, [ref('base', 1)])], [ref('x')], [ref('head')]));
    const { graph } = parseModel(m);
    assert.deepEqual(graph.layers.map((l) => l.name), ['x', 'd1', 'head']);
    assert.deepEqual(layerByName(graph, 'd1')!.calls[0].inputs, [{ layer: 'x', nodeIndex: 0, tensorIndex: 0 }]);
    assert.deepEqual(layerByName(graph, 'd1')!.scope, ['base']);
    assert.deepEqual(graph.inlinedModels, ['base']);
    assert.equal(graph.modelClass, 'Model');
    assert.equal(networkCost(graph).params, 4 * 3 + 3 + 3 * 2 + 2);
    // The base's output group meets the head across the boundary: resizable.
    assert.equal(analyzeChannels(graph).groups.find((g) => g.layers.includes('d1'))!.resizable, true);
  });

  it('a nested model shared by two inputs (siamese): one set of weights, two calls, tied channels', async () => {
    // Built by tfjs itself, and written as tfjs writes it.
    const tin = tf.input({ shape: [6], name: 'tower_in' });
    const tout = tf.layers.dense({ units: 5, name: 'tower_dense' }).apply(tin) as tf.SymbolicTensor;
    const tower = tf.model({ inputs: tin, outputs: tout, name: 'tower' });
    const a = tf.input({ shape: [6], name: 'a' });
    const b = tf.input({ shape: [6], name: 'b' });
    const joined = tf.layers.concatenate({ name: 'cat' }).apply([tower.apply(a) as tf.SymbolicTensor, tower.apply(b) as tf.SymbolicTensor]) as tf.SymbolicTensor;
    const out = tf.layers.dense({ units: 1, name: 'score' }).apply(joined) as tf.SymbolicTensor;
    const siamese = tf.model({ inputs: [a, b], outputs: out, name: 'siamese' });
    const json = { format: 'layers-model', modelTopology: siamese.toJSON(null, false) };
    const { graph } = parseModel(json);
    assert.equal(networkCost(graph).params, siamese.countParams());
    const t = layerByName(graph, 'tower_dense')!;
    assert.deepEqual(t.calls.map((c) => c.inputs[0].layer), ['a', 'b']);
    const analysis = analyzeChannels(graph);
    const cat = layoutOf(analysis, { layer: 'cat', nodeIndex: 0, tensorIndex: 0 });
    assert.equal(cat.segments[0].group, cat.segments[1].group, 'both calls write the same group');
    // Resized and written flat, tfjs loads it and counts what we count.
    const half = rebuild(graph, analysis, uniformSelection(analysis, 0.6), null);
    const loaded = await tf.models.modelFromJSON({ modelTopology: half.modelTopology } as unknown as tf.io.ModelJSON);
    assert.equal(loaded.countParams(), networkCost(parseModel({ format: 'layers-model', modelTopology: half.modelTopology }).graph).params);
    loaded.dispose();
    siamese.dispose();
  });

  it('the same, numbered from 1 as Keras ≥ 2.4 writes a shared nested model', () => {
    const tower = functional('tower', [input('t_in', [6]), dense('t_d', 5, [ref('t_in')])], [ref('t_in')], [ref('t_d')], [[ref('a')], [ref('b')]]);
    const cat = { class_name: 'Concatenate', name: 'cat', config: { name: 'cat' }, inbound_nodes: [[ref('tower', 1), ref('tower', 2)]] } as unknown as LayerJson;
    const m = model(functional('siamese', [input('a', [6]), input('b', [6]), tower, cat], [ref('a'), ref('b')], [ref('cat')]));
    const { graph } = parseModel(m);
    assert.deepEqual(layerByName(graph, 't_d')!.calls.map((c) => c.inputs[0].layer), ['a', 'b']);
    assert.deepEqual(layerByName(graph, 'cat')!.calls[0].inputs.map((r) => [r.layer, r.nodeIndex]), [['t_d', 0], ['t_d', 1]]);
  });

  it('a nested model with two outputs, and an inner name that collides with an outer one', async () => {
    const inner = functional('trunk', [input('t_in', [4]), dense('dense', 3, [ref('t_in')]), dense('side', 2, [ref('t_in')])], [ref('t_in')], [ref('dense'), ref('side')], [[ref('x')]]);
    const cat = { class_name: 'Concatenate', name: 'cat', config: { name: 'cat' }, inbound_nodes: [[ref('trunk', 1, 0), ref('trunk', 1, 1)]] } as unknown as LayerJson;
    const m = model(functional('outer', [input('x', [4]), inner, cat, dense('dense', 2, [ref('cat')])], [ref('x')], [ref('dense')]));
    const { graph } = parseModel(m);
    assert.deepEqual(graph.layers.map((l) => l.name).sort(), ['cat', 'dense', 'side', 'trunk/dense', 'x']);
    assert.deepEqual(layerByName(graph, 'cat')!.calls[0].outputShape, [null, 5]);
    const analysis = analyzeChannels(graph);
    const flat = rebuild(graph, analysis, identitySelection(analysis), null);
    const loaded = await tf.models.modelFromJSON({ modelTopology: flat.modelTopology } as unknown as tf.io.ModelJSON);
    assert.equal(loaded.countParams(), networkCost(graph).params);
    assert.ok(loaded.layers.some((l) => l.name === 'trunk/dense'));
    loaded.dispose();
  });

  it('a nested Sequential needs no input shape of its own; the outer one takes its first layer\'s', () => {
    const head = { class_name: 'Sequential', config: { name: 'head', layers: [{ class_name: 'Dense', config: { name: 'h1', units: 3 } }] } } as unknown as LayerJson;
    const base = { class_name: 'Sequential', config: { name: 'base', layers: [{ class_name: 'Dense', config: { name: 'b1', units: 5, batch_input_shape: [null, 7] } }] } } as unknown as LayerJson;
    const { graph } = parseModel({ class_name: 'Sequential', config: { name: 'outer', layers: [base, head] } });
    assert.deepEqual(graph.layers.map((l) => l.name), ['base_input', 'b1', 'h1']);
    assert.deepEqual(layerByName(graph, 'h1')!.calls[0].outputShape, [null, 3]);
  });

  it('refuses a nested model called with the wrong number of inputs, or at a call it does not have', () => {
    const base = functional('base', [input('base_in', [4]), dense('d1', 3, [ref('base_in')])], [ref('base_in')], [ref('d1')], [[ref('x'), ref('x')]]);
    const m = model(functional('outer', [input('x', [4]), base], [ref('x')], [ref('base', 1)]));
    assert.throws(() => parseModel(m), (e: unknown) => e instanceof MorphError && e.code === 'MORPH_ERR_BAD_TOPOLOGY' && /"base" has 1 input\(s\) but call 0 gives it 2/.test(e.message));
    const once = functional('base', [input('base_in', [4]), dense('d1', 3, [ref('base_in')])], [ref('base_in')], [ref('d1')], [[ref('x')]]);
    const m2 = model(functional('outer', [input('x', [4]), once, dense('h', 1, [ref('base', 0)]), dense('h2', 1, [ref('base', 3)])], [ref('x')], [ref('h')]));
    assert.throws(() => parseModel(m2), (e: unknown) => e instanceof MorphError && e.code === 'MORPH_ERR_BAD_TOPOLOGY' && /called 1 time/.test(e.message));
  });
});

describe('layers only Keras knows', () => {
  const keras3 = (withManifest: boolean): unknown => {
    const t = (layer: string, shape: (number | null)[]) => ({ class_name: '__keras_tensor__', config: { shape, dtype: 'float32', keras_history: [layer, 0, 0] } });
    const topology = {
      class_name: 'Functional',
      config: {
        name: 'k3',
        layers: [
          { class_name: 'InputLayer', name: 'in', config: { name: 'in', batch_shape: [null, 8] }, inbound_nodes: [] },
          { class_name: 'MyScale', name: 'scale', config: { name: 'scale' }, inbound_nodes: [{ args: [t('in', [null, 8])], kwargs: {} }] },
          { class_name: 'Dense', name: 'out', config: { name: 'out', units: 2 }, inbound_nodes: [{ args: [t('scale', [null, 8])], kwargs: {} }] },
        ],
        input_layers: ['in', 0, 0],
        output_layers: ['out', 0, 0],
      },
    };
    const weights = [{ name: 'scale/factors', shape: [8], dtype: 'float32' }, { name: 'out/kernel', shape: [8, 2], dtype: 'float32' }, { name: 'out/bias', shape: [2], dtype: 'float32' }];
    return withManifest ? { format: 'layers-model', modelTopology: topology, weightsManifest: [{ paths: ['w.bin'], weights }] } : topology;
  };

  it('counts a class nobody models from the shape Keras 3 recorded and the weights manifest', () => {
    const { graph } = parseModel(keras3(true));
    const scale = layerByName(graph, 'scale')!;
    assert.equal(scale.kind, 'unknown');
    assert.deepEqual(scale.calls[0].outputShape, [null, 8]);
    assert.equal(networkCost(graph).params, 8 + 16 + 2);
    assert.deepEqual(networkCost(graph).notCosted, ['scale']);
  });

  it('refuses it by name when nothing gives its parameters', () => {
    assert.throws(() => parseModel(keras3(false)), (e: unknown) => e instanceof MorphError && e.code === 'MORPH_ERR_UNSUPPORTED_LAYER' && /"scale" has class MyScale/.test(e.message) && /weightsManifest/.test(e.message));
  });
});

describe('a model.json without its weight files', () => {
  let dir: string;
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('is read as topology only with a one-line note when asked for weights if present, refused otherwise', async () => {
    dir = await mkdtemp(join(tmpdir(), 'morphnet-noshards-'));
    const path = join(dir, 'model.json');
    const topology = { class_name: 'Sequential', config: { name: 's', layers: [{ class_name: 'Dense', config: { name: 'd', units: 2, batch_input_shape: [null, 3] } }] } };
    await writeFile(path, JSON.stringify({ format: 'layers-model', modelTopology: topology, weightsManifest: [{ paths: ['group1-shard1of1.bin'], weights: [{ name: 'd/kernel', shape: [3, 2], dtype: 'float32' }, { name: 'd/bias', shape: [2], dtype: 'float32' }] }] }));
    const m = await loadModelFile(path, { weights: 'if-present' });
    assert.equal(m.weights, null);
    assert.match(m.graph.warnings[0], /group1-shard1of1\.bin not beside .*topology only/);
    assert.equal(networkCost(m.graph).params, 8);
    await assert.rejects(loadModelFile(path), (e: unknown) => e instanceof MorphError && e.code === 'MORPH_ERR_WEIGHTS_MISSING');
  });
});

describe('nested models: limits', () => {
  it('refuses nested models called so often that the calls would explode (MORPH_ERR_LIMIT)', () => {
    // Each level calls the one below 12 times: 12^6 ≈ 3M calls of the innermost Dense.
    let inner = functional('m0', [input('m0_in', [2]), dense('d', 2, [ref('m0_in')])], [ref('m0_in')], [ref('d')]);
    for (let level = 1; level <= 6; level++) {
      const name = `m${level}`;
      const below = inner.name as string;
      const calls = Array.from({ length: 12 }, (_, i) => [ref(i === 0 ? `${name}_in` : below, i === 0 ? 0 : i)]);
      inner = functional(name, [input(`${name}_in`, [2]), { ...inner, inbound_nodes: calls }], [ref(`${name}_in`)], [ref(below, 12)]);
    }
    assert.throws(() => parseModel(model(inner)), (e: unknown) => e instanceof MorphError && e.code === 'MORPH_ERR_LIMIT');
  });
});

describe('--input-shape', () => {
  const free = (): ModelConfigJson => model(functional('det', [input('img', [2, 2, 3]), { class_name: 'Conv2D', name: 'c', config: { name: 'c', filters: 4, kernel_size: 3, padding: 'same' }, inbound_nodes: [[ref('img')]] } as unknown as LayerJson], [ref('img')], [ref('c')]));

  it('replaces a declared input shape, and refuses one of another rank naming both', () => {
    const m = free();
    const { graph } = parseModel(m, { inputShape: [8, 6, 3] });
    assert.deepEqual(layerByName(graph, 'c')!.calls[0].outputShape, [null, 8, 6, 4]);
    assert.throws(() => parseModel(m, { inputShape: [8, 6] }), (e: unknown) => e instanceof MorphError && e.code === 'MORPH_ERR_BAD_ARGUMENT' && /has 2 dimension\(s\) but the model's input .* has 3/.test(e.message));
  });
});
