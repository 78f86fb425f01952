import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { writeTfjsModel } from '../../src/export/tfjs-model.ts';
import { analyzeChannels, expandLayout, layoutOf, type ChannelAnalysis } from '../../src/graph/channel-groups.ts';
import type { Graph } from '../../src/graph/graph.ts';
import type { ModelConfigJson } from '../../src/graph/keras-json.ts';
import { loadModelFile } from '../../src/graph/load.ts';
import { parseModel } from '../../src/graph/parse.ts';
import { gatherAxes, mapLayout, rebuild, toModelJson } from '../../src/graph/rebuild.ts';
import { aliveSelection, identitySelection, structureSelection, uniformSelection, widthOf, type Selection } from '../../src/graph/widths.ts';
import { MorphError } from '../../src/errors.ts';
import { seedModel } from '../../src/seeds/index.ts';
import { concatNet, depthwiseNet, residualNet } from '../fixtures/reference-models.ts';
import { loadLayersModelDir, maxAbsDiff, randomInput, saveLayersModel } from '../helpers/tfjs-io.ts';

type TfModelConfig = Parameters<typeof tf.models.modelFromJSON>[0];

let root: string;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'morphnet-rebuild-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

let dirCount = 0;
const freshDir = (label: string): string => join(root, `${label}-${dirCount++}`);

/** Deterministic uniform floats in [0, 1). */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

/** Weight kind (`gamma`, `kernel`, ...) of a tfjs layer weight. */
const kindOf = (w: tf.LayerVariable): string => w.originalName.slice(w.originalName.lastIndexOf('/') + 1);

/** Gives every batch norm non-trivial parameters and moving statistics so inference is not identity. */
function randomizeBatchNorms(model: tf.LayersModel, seed = 3): void {
  const rand = rng(seed);
  for (const layer of model.layers) {
    if (layer.getClassName() !== 'BatchNormalization') continue;
    const values = layer.weights.map((w) => {
      const n = w.shape[0] as number;
      const k = kindOf(w);
      const gen = k === 'gamma' ? () => 0.5 + rand() : k === 'moving_variance' ? () => 0.25 + rand() : () => rand() - 0.5;
      return tf.tensor1d(Float32Array.from({ length: n }, gen));
    });
    layer.setWeights(values);
    tf.dispose(values);
  }
}

/**
 * Sets gamma = beta = 0 at `zeros.get(group)` channels on every batch norm that covers that group
 * (a BN on a concat covers each input group on its slice).
 */
function zeroChannels(model: tf.LayersModel, graph: Graph, analysis: ChannelAnalysis, zeros: ReadonlyMap<number, readonly number[]>): void {
  for (const l of graph.layers) {
    if (l.kind !== 'batchnorm') continue;
    const positions = expandLayout(layoutOf(analysis, { layer: l.name, nodeIndex: 0, tensorIndex: 0 }), (g) => analysis.groups[g].channels);
    const layer = model.getLayer(l.name);
    const values = layer.getWeights().map((t, i) => {
      const data = t.dataSync().slice();
      const k = kindOf(layer.weights[i]);
      if (k === 'gamma' || k === 'beta') positions.forEach(({ group, channel }, j) => zeros.get(group)?.includes(channel) && (data[j] = 0));
      return tf.tensor1d(data);
    });
    layer.setWeights(values);
    tf.dispose(values);
  }
}

/** Output channels of every Conv2D, SeparableConv2D, Dense and BatchNormalization of a tfjs model. */
function widthsInTfjs(model: tf.LayersModel): Map<string, number> {
  const out = new Map<string, number>();
  for (const layer of model.layers) {
    const cls = layer.getClassName();
    if (cls === 'Conv2D' || cls === 'Dense' || cls === 'SeparableConv2D' || cls === 'BatchNormalization') {
      const shape = layer.outputShape as number[];
      out.set(layer.name, shape[shape.length - 1]);
    }
  }
  return out;
}

/** Width each layer of `graph` should have under `selection`, for layers whose output is one group. */
function expectedWidths(graph: Graph, analysis: ChannelAnalysis, selection: Selection): Map<string, number> {
  const out = new Map<string, number>();
  for (const l of graph.layers) {
    if (!['conv2d', 'dense', 'separable', 'batchnorm'].includes(l.kind)) continue;
    const layout = layoutOf(analysis, { layer: l.name, nodeIndex: 0, tensorIndex: 0 });
    const width = layout.segments.reduce((a, s) => a + widthOf(selection[s.group]) * s.repeat, 0) * layout.tile;
    out.set(l.name, width);
  }
  return out;
}

type T = tf.SymbolicTensor;

/**
 * 8×8×3 → conv 3×3 (6) + BN + ReLU → DepthwiseConv2D ×2 (12, with bias) + BN + ReLU → conv 1×1 (8)
 * + BN + ReLU → GAP → Dense(10). The depthwise BN covers the first conv's group twice over.
 */
function depthMultiplierNet(): tf.LayersModel {
  const input = tf.input({ shape: [8, 8, 3], name: 'input' });
  let x = tf.layers.conv2d({ filters: 6, kernelSize: 3, padding: 'same', useBias: false, name: 'c1' }).apply(input) as T;
  x = tf.layers.reLU({ name: 'c1_relu' }).apply(tf.layers.batchNormalization({ name: 'c1_bn' }).apply(x)) as T;
  x = tf.layers.depthwiseConv2d({ kernelSize: 3, depthMultiplier: 2, padding: 'same', name: 'dw' }).apply(x) as T;
  x = tf.layers.reLU({ name: 'dw_relu' }).apply(tf.layers.batchNormalization({ name: 'dw_bn' }).apply(x)) as T;
  x = tf.layers.conv2d({ filters: 8, kernelSize: 1, useBias: false, name: 'pw' }).apply(x) as T;
  x = tf.layers.reLU({ name: 'pw_relu' }).apply(tf.layers.batchNormalization({ name: 'pw_bn' }).apply(x)) as T;
  x = tf.layers.globalAveragePooling2d({ name: 'gap' }).apply(x) as T;
  x = tf.layers.dense({ units: 10, name: 'predictions' }).apply(x) as T;
  return tf.model({ inputs: input, outputs: x, name: 'depth_multiplier_net' });
}

/**
 * A layer called twice: 8×8×3 → c1 (5) → `shared` 3×3 (5) → BN → `shared` again → GAP → Dense(2).
 * The second call consumes a layer that comes after `shared` in first-call order.
 */
function sharedLayerNet(): tf.LayersModel {
  const input = tf.input({ shape: [8, 8, 3], name: 'input' });
  const shared = tf.layers.conv2d({ filters: 5, kernelSize: 3, padding: 'same', name: 'shared' });
  let x = tf.layers.conv2d({ filters: 5, kernelSize: 3, padding: 'same', name: 'c1' }).apply(input) as T;
  x = shared.apply(x) as T;
  x = tf.layers.batchNormalization({ name: 'bn' }).apply(x) as T;
  x = shared.apply(x) as T;
  x = tf.layers.globalAveragePooling2d({ name: 'gap' }).apply(x) as T;
  x = tf.layers.dense({ units: 2, name: 'predictions' }).apply(x) as T;
  return tf.model({ inputs: input, outputs: x, name: 'shared_layer_net' });
}

interface Case {
  name: string;
  make: () => tf.LayersModel;
}

const CASES: Case[] = [
  { name: 'residual_net', make: () => residualNet().model },
  { name: 'concat_net', make: () => concatNet().model },
  { name: 'depthwise_net', make: () => depthwiseNet().model },
  { name: 'depth-multiplier net', make: depthMultiplierNet },
  { name: 'vgg seed (flatten)', make: () => tf.models.modelFromJSON(seedModel('vgg').modelTopology as unknown as TfModelConfig) as unknown as tf.LayersModel },
];

async function build(c: Case): Promise<tf.LayersModel> {
  const m = c.make() as unknown as tf.LayersModel | Promise<tf.LayersModel>;
  return await m;
}

describe('rebuild: resized models load in tfjs and run', () => {
  for (const c of CASES) {
    it(`${c.name}: multiplier 0.5 keeps input/output shapes and halves resizable groups`, async () => {
      const model = await build(c);
      try {
        const saved = await saveLayersModel(model, freshDir('src'));
        const loaded = await loadModelFile(saved.modelJsonPath);
        assert.ok(loaded.weights);
        const analysis = analyzeChannels(loaded.graph);
        const sel = uniformSelection(analysis, 0.5);
        const outDir = await writeTfjsModel(freshDir('half'), rebuild(loaded.graph, analysis, sel, loaded.weights));
        const half = await loadLayersModelDir(outDir);
        try {
          assert.deepEqual(half.inputs[0].shape, model.inputs[0].shape);
          assert.deepEqual(half.outputs[0].shape, model.outputs[0].shape);
          const expected = expectedWidths(loaded.graph, analysis, sel);
          assert.deepEqual(widthsInTfjs(half), expected);
          for (const g of analysis.groups) assert.equal(widthOf(sel[g.id]), g.resizable ? Math.round(g.channels / 2) : g.channels);
          const inShape = [3, ...(model.inputs[0].shape.slice(1) as number[])];
          const x = randomInput(inShape);
          const y = half.predict(x) as tf.Tensor;
          assert.deepEqual(y.shape, [3, 10]);
          assert.ok(y.dataSync().every(Number.isFinite));
          tf.dispose([x, y]);
          // Our own loader reads what we wrote, with the new widths.
          const again = await loadModelFile(join(outDir, 'model.json'));
          const a2 = analyzeChannels(again.graph);
          assert.deepEqual(a2.groups.map((g) => g.channels), analysis.groups.map((g) => widthOf(sel[g.id])));
        } finally {
          half.dispose();
        }
      } finally {
        model.dispose();
      }
    });
  }

  it('residual_net: an explicit structure gives exactly the asked widths, shrinking and growing', async () => {
    const model = residualNet().model;
    try {
      const saved = await saveLayersModel(model, freshDir('src'));
      const loaded = await loadModelFile(saved.modelJsonPath);
      const analysis = analyzeChannels(loaded.graph);
      const structure = { stem: 24, res1_conv1: 5, res2_proj: 20, res3_conv1_bn: 7 };
      const sel = structureSelection(loaded.graph, analysis, structure);
      const outDir = await writeTfjsModel(freshDir('struct'), rebuild(loaded.graph, analysis, sel, loaded.weights, { seed: 9 }));
      const m = await loadLayersModelDir(outDir);
      try {
        const w = widthsInTfjs(m);
        for (const name of ['stem', 'stem_bn', 'res1_conv2', 'res1_conv2_bn']) assert.equal(w.get(name), 24, name);
        assert.equal(w.get('res1_conv1'), 5);
        for (const name of ['res2_conv2', 'res2_proj', 'res2_proj_bn', 'res3_conv2']) assert.equal(w.get(name), 20, name);
        assert.equal(w.get('res3_conv1'), 7);
        assert.equal(w.get('res2_conv1'), 32);
        assert.deepEqual(m.getLayer('res1_conv1').getWeights()[0].shape, [3, 3, 24, 5]);
        assert.deepEqual(m.getLayer('res2_proj').getWeights()[0].shape, [1, 1, 24, 20]);
        assert.deepEqual(m.getLayer('predictions').getWeights()[0].shape, [20, 10]);
        // Kept channels keep their exact weights: stem kernel channel 0..15 unchanged, 16..23 fresh.
        const oldK = model.getLayer('res1_conv1').getWeights()[0];
        const newK = m.getLayer('res1_conv1').getWeights()[0];
        const kept = tf.tidy(() => maxAbsDiff(oldK.slice([0, 0, 0, 0], [3, 3, 16, 5]), newK.slice([0, 0, 0, 0], [3, 3, 16, 5])));
        assert.equal(kept, 0);
        const x = randomInput([2, 32, 32, 3]);
        const y = m.predict(x) as tf.Tensor;
        assert.deepEqual(y.shape, [2, 10]);
        tf.dispose([x, y]);
      } finally {
        m.dispose();
      }
    } finally {
      model.dispose();
    }
  });

  it('the identity selection reproduces the original outputs exactly', async () => {
    const model = concatNet().model;
    try {
      randomizeBatchNorms(model);
      const saved = await saveLayersModel(model, freshDir('src'));
      const loaded = await loadModelFile(saved.modelJsonPath);
      const analysis = analyzeChannels(loaded.graph);
      const outDir = await writeTfjsModel(freshDir('same'), rebuild(loaded.graph, analysis, identitySelection(analysis), loaded.weights));
      const m = await loadLayersModelDir(outDir);
      try {
        const x = randomInput([2, 32, 32, 3]);
        const [a, b] = [model.predict(x) as tf.Tensor, m.predict(x) as tf.Tensor];
        assert.ok(maxAbsDiff(a, b) < 1e-6);
        tf.dispose([x, a, b]);
      } finally {
        m.dispose();
      }
    } finally {
      model.dispose();
    }
  });

  it('a topology-only model (no weights) resizes with fresh weights and loads', async () => {
    const seed = seedModel('resnet');
    const parsed = parseModel(seed);
    const analysis = analyzeChannels(parsed.graph);
    const outDir = await writeTfjsModel(freshDir('topo'), rebuild(parsed.graph, analysis, uniformSelection(analysis, 0.5, 4), null));
    const m = await loadLayersModelDir(outDir);
    try {
      assert.equal((m.getLayer('stem_conv').outputShape as number[])[3], 8);
      const x = randomInput([1, 28, 28, 1]);
      const y = m.predict(x) as tf.Tensor;
      assert.deepEqual(y.shape, [1, 10]);
      tf.dispose([x, y]);
    } finally {
      m.dispose();
    }
  });

  it('a Sequential model without InputLayer is written back as Sequential and loads', async () => {
    const model = tf.sequential({
      name: 'seq',
      layers: [
        tf.layers.conv2d({ inputShape: [8, 8, 1], filters: 6, kernelSize: 3, useBias: false, name: 'c1' }),
        tf.layers.batchNormalization({ name: 'c1_bn' }),
        tf.layers.reLU({ name: 'c1_relu' }),
        tf.layers.flatten({ name: 'flat' }),
        tf.layers.dense({ units: 3, name: 'out' }),
      ],
    });
    try {
      const saved = await saveLayersModel(model, freshDir('seq'));
      const loaded = await loadModelFile(saved.modelJsonPath);
      const analysis = analyzeChannels(loaded.graph);
      const sel = structureSelection(loaded.graph, analysis, { c1: 4 });
      const rebuilt = rebuild(loaded.graph, analysis, sel, loaded.weights);
      assert.equal(rebuilt.modelTopology.class_name, 'Sequential');
      const outDir = await writeTfjsModel(freshDir('seq-out'), rebuilt);
      const m = await loadLayersModelDir(outDir);
      try {
        assert.deepEqual(m.getLayer('out').getWeights()[0].shape, [6 * 6 * 4, 3]);
        assert.deepEqual(m.inputs[0].shape, [null, 8, 8, 1]);
      } finally {
        m.dispose();
      }
    } finally {
      model.dispose();
    }
  });

  it('a Keras 3 config is written in a form tfjs loads', async () => {
    const keras3 = JSON.parse(await readFile(new URL('../fixtures/keras3-small.json', import.meta.url), 'utf8')) as ModelConfigJson;
    const parsed = parseModel(keras3);
    const analysis = analyzeChannels(parsed.graph);
    const sel = structureSelection(parsed.graph, analysis, { conv1: 6, conv3: 2 });
    const outDir = await writeTfjsModel(freshDir('k3'), rebuild(parsed.graph, analysis, sel, null));
    const m = await loadLayersModelDir(outDir);
    try {
      assert.deepEqual(m.getLayer('concat').outputShape, [null, 16, 16, 8]);
      const x = randomInput([1, 16, 16, 3]);
      const y = m.predict(x) as tf.Tensor;
      assert.deepEqual(y.shape, [1, 10]);
      tf.dispose([x, y]);
    } finally {
      m.dispose();
    }
  });

  it('a shared layer (called twice) resizes with all its calls and loads', async () => {
    const model = sharedLayerNet();
    try {
      const saved = await saveLayersModel(model, freshDir('shared'));
      const loaded = await loadModelFile(saved.modelJsonPath);
      const analysis = analyzeChannels(loaded.graph);
      const sel = structureSelection(loaded.graph, analysis, { shared: 3 });
      const outDir = await writeTfjsModel(freshDir('shared-out'), rebuild(loaded.graph, analysis, sel, loaded.weights));
      const m = await loadLayersModelDir(outDir);
      try {
        assert.deepEqual(m.getLayer('shared').getWeights()[0].shape, [3, 3, 3, 3]);
        assert.deepEqual(m.getLayer('c1').getWeights()[0].shape, [3, 3, 3, 3]);
        const x = randomInput([2, 8, 8, 3]);
        const y = m.predict(x) as tf.Tensor;
        assert.deepEqual(y.shape, [2, 2]);
        tf.dispose([x, y]);
      } finally {
        m.dispose();
      }
    } finally {
      model.dispose();
    }
  });

  it('refuses a selection that leaves a group with no channels (MORPH_ERR_BAD_STRUCTURE)', () => {
    const parsed = parseModel(seedModel('resnet'));
    const analysis = analyzeChannels(parsed.graph);
    const sel = identitySelection(analysis).map((s, i) => (i === 1 ? { keep: [], add: 0 } : s));
    assert.throws(() => rebuild(parsed.graph, analysis, sel, null), (e: unknown) => e instanceof MorphError && e.code === 'MORPH_ERR_BAD_STRUCTURE');
  });
});

describe('rebuild: pruning channels with gamma = beta = 0 leaves outputs unchanged', () => {
  for (const c of CASES) {
    it(c.name, async () => {
      const model = await build(c);
      try {
        const graph = parseModel({ modelTopology: model.toJSON(null, false) }).graph;
        const analysis = analyzeChannels(graph);
        randomizeBatchNorms(model);
        // In the k-th regularized group, zero channels c with (c + k) % 3 === 0 (channel 0 included
        // in some, so index shifts are exercised).
        const zeros = new Map<number, number[]>();
        analysis.groups
          .filter((g) => g.regularized)
          .forEach((g, k) => zeros.set(g.id, Array.from({ length: g.channels }, (_, ch) => ch).filter((ch) => (ch + k) % 3 === 0)));
        assert.ok(zeros.size >= 2, `${c.name} has regularized groups`);
        zeroChannels(model, graph, analysis, zeros);

        const saved = await saveLayersModel(model, freshDir('dead'));
        const loaded = await loadModelFile(saved.modelJsonPath);
        const a = analyzeChannels(loaded.graph);
        const alive = aliveSelection(loaded.graph, a, loaded.weights!, 1e-3);
        assert.deepEqual(alive.warnings, []);
        for (const g of a.groups) {
          const dropped = zeros.get(g.id)?.length ?? 0;
          assert.equal(alive.alive[g.id].alive, g.channels - dropped, `group ${g.id} (${g.layers[0]})`);
          assert.deepEqual(alive.selection[g.id].keep, Array.from({ length: g.channels }, (_, ch) => ch).filter((ch) => !zeros.get(g.id)?.includes(ch)));
        }
        const outDir = await writeTfjsModel(freshDir('pruned'), rebuild(loaded.graph, a, alive.selection, loaded.weights));
        const pruned = await loadLayersModelDir(outDir);
        try {
          assert.deepEqual(widthsInTfjs(pruned), expectedWidths(loaded.graph, a, alive.selection));
          assert.deepEqual(pruned.inputs[0].shape, model.inputs[0].shape);
          assert.deepEqual(pruned.outputs[0].shape, model.outputs[0].shape);
          assert.ok(pruned.countParams() < model.countParams());
          const x = randomInput([4, ...(model.inputs[0].shape.slice(1) as number[])], 11);
          const [y0, y1] = [model.predict(x) as tf.Tensor, pruned.predict(x) as tf.Tensor];
          const diff = maxAbsDiff(y0, y1);
          assert.ok(diff < 1e-4, `max abs diff ${diff}`);
          tf.dispose([x, y0, y1]);
        } finally {
          pruned.dispose();
        }
      } finally {
        model.dispose();
      }
    });
  }

  it('the check is sensitive: pruning channels whose beta is not zero changes the outputs', async () => {
    const model = residualNet().model;
    try {
      const graph = parseModel({ modelTopology: model.toJSON(null, false) }).graph;
      const analysis = analyzeChannels(graph);
      randomizeBatchNorms(model);
      // Zero gamma only (beta stays) on res1_conv1_bn channels 0..7: the channel is constant, not zero.
      const bn = model.getLayer('res1_conv1_bn');
      const vals = bn.getWeights().map((t, i) => {
        const d = t.dataSync().slice();
        if (kindOf(bn.weights[i]) === 'gamma') d.fill(0, 0, 8);
        return tf.tensor1d(d);
      });
      bn.setWeights(vals);
      tf.dispose(vals);
      const saved = await saveLayersModel(model, freshDir('live'));
      const loaded = await loadModelFile(saved.modelJsonPath);
      const alive = aliveSelection(loaded.graph, analysis, loaded.weights!, 1e-3);
      const g = analysis.groups[layoutOf(analysis, { layer: 'res1_conv1', nodeIndex: 0, tensorIndex: 0 }).segments[0].group];
      assert.equal(alive.alive[g.id].alive, 8);
      const outDir = await writeTfjsModel(freshDir('wrong'), rebuild(loaded.graph, analysis, alive.selection, loaded.weights));
      const pruned = await loadLayersModelDir(outDir);
      try {
        const x = randomInput([4, 32, 32, 3], 5);
        const [y0, y1] = [model.predict(x) as tf.Tensor, pruned.predict(x) as tf.Tensor];
        assert.ok(maxAbsDiff(y0, y1) > 1e-4);
        tf.dispose([x, y0, y1]);
      } finally {
        pruned.dispose();
      }
    } finally {
      model.dispose();
    }
  });
});

describe('mapLayout and gatherAxes', () => {
  it('maps concat slices and tiles to old indices, fresh channels to -1', () => {
    const analysis = {
      groups: [
        { id: 0, channels: 3, layers: [], resizable: true, regularized: true, fixedReasons: [], gammaLayers: [] },
        { id: 1, channels: 2, layers: [], resizable: true, regularized: true, fixedReasons: [], gammaLayers: [] },
      ],
      layouts: new Map(),
    } as ChannelAnalysis;
    const sel: Selection = [
      { keep: [0, 2], add: 0 },
      { keep: [1], add: 1 },
    ];
    const layout = { tile: 2, segments: [{ group: 0, repeat: 1 }, { group: 1, repeat: 1 }] };
    // Old block: g0 = 0,1,2; g1 = 3,4 (width 5). New block: 0, 2, 4, fresh.
    assert.deepEqual([...mapLayout(layout, analysis, sel)], [0, 2, 4, -1, 5, 7, 9, -1]);
    const rep = { tile: 1, segments: [{ group: 0, repeat: 2 }] };
    assert.deepEqual([...mapLayout(rep, analysis, sel)], [0, 1, 4, 5]);
  });

  it('gathers along several axes and fills fresh positions', () => {
    const old = { shape: [2, 3], data: Float32Array.from([0, 1, 2, 10, 11, 12]) };
    const t = gatherAxes(old, [2, 3], [Int32Array.from([1, -1]), Int32Array.from([2, 0])], () => 7);
    assert.deepEqual(t.shape, [2, 2]);
    assert.deepEqual([...t.data], [12, 10, 7, 7]);
  });

  it('toModelJson lists every weight once in a single weights.bin group', () => {
    const parsed = parseModel(seedModel('mobilenet'));
    const analysis = analyzeChannels(parsed.graph);
    const json = toModelJson(rebuild(parsed.graph, analysis, identitySelection(analysis), null));
    assert.equal(json.format, 'layers-model');
    assert.equal(json.weightsManifest!.length, 1);
    assert.deepEqual(json.weightsManifest![0].paths, ['weights.bin']);
    const names = json.weightsManifest![0].weights.map((w) => w.name);
    assert.equal(new Set(names).size, names.length);
    assert.ok(names.includes('conv1/kernel') && names.includes('conv1_bn/moving_variance'));
  });
});
