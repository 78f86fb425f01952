import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { MorphError } from '../../src/errors.ts';
import { writeNetworkTflite } from '../../src/export/tflite/network.ts';
import type { FunctionalConfigJson, LayerJson, ModelConfigJson, TfjsModelJson } from '../../src/graph/keras-json.ts';
import { parseModel } from '../../src/graph/parse.ts';
import type { WeightMap } from '../../src/graph/weights.ts';
import { planFusion } from '../../src/ops/fusion.ts';
import { graphSpecs } from '../../src/ops/graph-specs.ts';
import { randomArray, seededRandom } from '../../src/ops/spec-weights.ts';
import { loadTfliteModel, loadTfliteRuntime } from '../../device-agent/node/tflite-runtime.ts';
import { assignWeights, buildTfModel, readWeights } from '../../src/train/tf-model.ts';
import { cnnMacs, generateRandomCnn, randomCnn, randomCnns, type RandomCnn } from './random-cnns.ts';

const SEEDS = Array.from({ length: 30 }, (_, i) => i);
/**
 * The seeds checked end to end against TFLite: together they have every block kind, both pool
 * kinds (and the stride-1 pool of a concat branch), depth multiplier 2, a biased conv with its
 * own activation, 'valid' convs, Flatten and Dropout (asserted below, so a generator change that
 * loses one shows up here).
 */
const TFLITE_SEEDS = [5, 10, 12, 14, 19, 20];
const MIN_MACS = 1e6;
const MAX_MACS = 2e8;

const cnns: RandomCnn[] = SEEDS.map((s) => generateRandomCnn(s));

/** The builder writes functional models: `modelTopology` is the model config itself. */
function configOf(model: TfjsModelJson): FunctionalConfigJson {
  return (model.modelTopology as ModelConfigJson).config as FunctionalConfigJson;
}

function layersOf(model: TfjsModelJson): LayerJson[] {
  return configOf(model).layers;
}

function cfg(layer: LayerJson): Record<string, unknown> {
  return layer.config as Record<string, unknown>;
}

before(async () => {
  await tf.setBackend('cpu');
  await loadTfliteRuntime();
});

describe('randomCnn', () => {
  it('is deterministic: same seed, same JSON; other seeds, other models', () => {
    for (const s of SEEDS) assert.equal(JSON.stringify(randomCnn(s)), JSON.stringify(cnns[s].model), `seed ${s}`);
    assert.equal(new Set(cnns.map((c) => JSON.stringify(c.model))).size, SEEDS.length);
    assert.deepEqual(
      randomCnns(3, 7).map((m) => JSON.stringify(m)),
      [7, 8, 9].map((s) => JSON.stringify(randomCnn(s))),
    );
    cnns.forEach((c, s) => assert.equal(configOf(c.model).name, `random-cnn-${s}`));
  });

  it('varies inputs, depth, widths, kernels, strides, padding, block kinds and heads', () => {
    const classes = new Set<string>();
    const kernels = new Set<number>();
    const strides = new Set<number>();
    const paddings = new Set<string>();
    const widths = new Set<number>();
    for (const c of cnns) {
      for (const l of layersOf(c.model)) {
        classes.add(l.class_name);
        const k = cfg(l)['kernel_size'] as number[] | undefined;
        if (k) {
          kernels.add(k[0]);
          strides.add((cfg(l)['strides'] as number[])[0]);
          if (k[0] > 1) paddings.add(cfg(l)['padding'] as string);
        }
        if (l.class_name === 'Conv2D') widths.add(cfg(l)['filters'] as number);
      }
    }
    for (const c of ['Add', 'Concatenate', 'DepthwiseConv2D', 'MaxPooling2D', 'AveragePooling2D', 'GlobalAveragePooling2D', 'Flatten']) {
      assert.ok(classes.has(c), `no ${c} in the set`);
    }
    assert.deepEqual([...kernels].sort(), [1, 3, 5, 7]);
    assert.deepEqual([...strides].sort(), [1, 2]);
    assert.deepEqual([...paddings].sort(), ['same', 'valid']);
    assert.ok([...widths].some((w) => w % 8 !== 0) && [...widths].some((w) => w % 8 === 0), 'widths both on and off multiples of 8');
    assert.ok(Math.min(...widths) >= 8 && Math.max(...widths) <= 160, `widths ${Math.min(...widths)}–${Math.max(...widths)}`);

    const kinds = new Set(cnns.flatMap((c) => c.blocks.map((b) => b.kind)));
    assert.equal(kinds.size, 7, `block kinds ${[...kinds].join(', ')}`);
    const depths = cnns.map((c) => c.depth);
    assert.ok(depths.every((d) => d >= 3 && d <= 14), `depths ${depths.join(' ')}`);
    assert.ok(Math.min(...depths) <= 4 && Math.max(...depths) >= 12, `depths ${Math.min(...depths)}–${Math.max(...depths)}`);
    const sizes = cnns.map((c) => c.inputShape[0]);
    assert.ok(sizes.every((s) => s >= 32 && s <= 128) && Math.min(...sizes) <= 40 && Math.max(...sizes) >= 100, `input sizes ${sizes.join(' ')}`);
    assert.deepEqual([...new Set(cnns.map((c) => c.inputShape[2]))].sort(), [1, 3]);
    assert.ok(cnns.some((c) => c.head.hidden === null) && cnns.some((c) => c.head.hidden !== null), 'with and without a hidden dense');
  });

  it('parses, with an OpSpec for every compute layer and nothing skipped', () => {
    for (const c of cnns) {
      const { graph } = parseModel(c.model);
      const specs = graphSpecs(graph);
      assert.deepEqual(specs.skipped, [], `seed ${c.seed}`);
      const plan = planFusion(graph);
      const timed = new Set(specs.occurrences.map((o) => o.layer));
      for (const layer of graph.layers) {
        if (['input', 'dropout', 'flatten'].includes(layer.kind)) continue;
        // Batch norms fold and ReLUs fuse into the op before them; everything else is an op.
        if (layer.kind === 'batchnorm' || layer.kind === 'activation') assert.ok(plan.absorbed.has(layer.name), `seed ${c.seed}: ${layer.name} runs on its own`);
        else assert.ok(timed.has(layer.name), `seed ${c.seed}: ${layer.name} (${layer.kind}) has no OpSpec`);
      }
    }
  });

  it(`keeps MACs within [${MIN_MACS}, ${MAX_MACS}]`, () => {
    for (const c of cnns) {
      assert.equal(cnnMacs(c.model), c.macs);
      assert.ok(c.macs >= MIN_MACS && c.macs <= MAX_MACS, `seed ${c.seed}: ${c.macs} MACs`);
    }
    const macs = cnns.map((c) => c.macs);
    assert.ok(Math.max(...macs) / Math.min(...macs) > 20, 'MACs span more than a factor of 20');
  });

  it('honours numClasses and a narrower MAC range', () => {
    const c = generateRandomCnn(3, { numClasses: 4, minMacs: 5e6, maxMacs: 1e7 });
    assert.ok(c.macs >= 5e6 && c.macs <= 1e7, `${c.macs}`);
    const logits = layersOf(c.model).at(-1)!;
    assert.equal(logits.name, 'logits');
    assert.equal(cfg(logits)['units'], 4);
  });

  it('refuses a non-integer seed, bad options and an unreachable MAC range', () => {
    const bad = (err: unknown): boolean => err instanceof MorphError && err.code === 'MORPH_ERR_BAD_ARGUMENT';
    assert.throws(() => randomCnn(1.5), bad);
    assert.throws(() => randomCnn(1, { numClasses: 0 }), bad);
    assert.throws(() => randomCnn(1, { minMacs: 2e6, maxMacs: 1e6 }), bad);
    assert.throws(() => randomCnn(1, { minMacs: 1, maxMacs: 2 }), bad);
    assert.throws(() => randomCnns(-1), bad);
  });
});

/**
 * Seeded weights (tfjs's own initialisation is unseeded) under which every activation is O(1),
 * so that a 1e-4 bound means something: Glorot kernels with identity batch norms shrink the
 * signal ~2× per ReLU (the logits of a 30-conv model come out near 1e-6). Kernels are uniform
 * with variance 1/fan-in, gamma, beta and biases are perturbed, then each batch norm's moving
 * statistics are set to those of its input over a random batch (training mode, as precise-BN
 * does), and the model gets the result.
 */
function calibratedWeights(model: tf.LayersModel, inputShape: readonly number[], seed: number): WeightMap {
  const rand = seededRandom(seed);
  const weights: WeightMap = new Map();
  for (const [layer, kinds] of readWeights(model)) {
    const next = new Map(kinds);
    for (const [kind, t] of kinds) {
      const n = t.data.length;
      if (kind === 'kernel' || kind === 'depthwise_kernel') {
        // HWIO conv and [in, out] dense: fan-in is every axis but the last; depthwise: kh·kw.
        const fanIn = kind === 'depthwise_kernel' ? t.shape[0] * t.shape[1] : n / t.shape[t.shape.length - 1];
        next.set(kind, { shape: t.shape, data: randomArray(n, Math.sqrt(3 / fanIn), rand) });
      } else if (kind === 'gamma') next.set(kind, { shape: t.shape, data: randomArray(n, 0.5, rand).map((v) => 1 + v) });
      else if (kind === 'beta' || kind === 'bias') next.set(kind, { shape: t.shape, data: randomArray(n, 0.2, rand) });
    }
    weights.set(layer, next);
  }
  assignWeights(model, weights);
  const bns = model.layers.filter((l) => l.getClassName() === 'BatchNormalization');
  const probe = tf.model({ inputs: model.inputs, outputs: bns.map((l) => l.input as tf.SymbolicTensor) });
  tf.tidy(() => {
    const x = tf.randomUniform([8, ...inputShape], -1, 1, 'float32', seed);
    const outs = probe.apply(x, { training: true }) as tf.Tensor | tf.Tensor[];
    (Array.isArray(outs) ? outs : [outs]).forEach((t, i) => {
      const { mean, variance } = tf.moments(t, t.shape.slice(0, -1).map((_, a) => a));
      const w = weights.get(bns[i].name)!;
      w.set('moving_mean', { shape: mean.shape, data: Float32Array.from(mean.dataSync()) });
      w.set('moving_variance', { shape: variance.shape, data: Float32Array.from(variance.dataSync()) });
    });
  });
  assignWeights(model, weights);
  return weights;
}

describe('random CNNs: .tflite vs tfjs', () => {
  it('the TFLite seeds cover every block kind and layer variant', () => {
    const picked = TFLITE_SEEDS.map((s) => cnns[s]);
    assert.equal(new Set(picked.flatMap((c) => c.blocks.map((b) => b.kind))).size, 7);
    const layers = picked.flatMap((c) => layersOf(c.model));
    const has = (pred: (l: LayerJson) => boolean): boolean => layers.some(pred);
    assert.ok(has((l) => l.class_name === 'DepthwiseConv2D' && cfg(l)['depth_multiplier'] === 2), 'depth multiplier 2');
    assert.ok(has((l) => l.class_name === 'MaxPooling2D' && (cfg(l)['strides'] as number[])[0] === 1), 'stride-1 pool');
    assert.ok(has((l) => l.class_name === 'Conv2D' && cfg(l)['use_bias'] === true), 'conv with bias');
    assert.ok(has((l) => l.class_name === 'Conv2D' && cfg(l)['padding'] === 'valid' && (cfg(l)['kernel_size'] as number[])[0] > 1), "'valid' conv");
    assert.ok(has((l) => l.class_name === 'Flatten'), 'Flatten');
    assert.ok(has((l) => l.class_name === 'Dropout'), 'Dropout');
  });

  for (const seed of TFLITE_SEEDS) {
    it(`random-cnn-${seed}: outputs match (< 1e-4)`, async () => {
      const c = cnns[seed];
      const parsed = parseModel(c.model);
      const model = await buildTfModel(parsed.modelConfig, null);
      try {
        const weights = calibratedWeights(model, c.inputShape, seed);
        const tflite = await loadTfliteModel(writeNetworkTflite(parsed.graph, weights).bytes);
        try {
          const shape = [1, ...c.inputShape];
          const x = randomArray(shape.reduce((a, b) => a * b, 1), 1, seededRandom(seed + 100));
          const [got] = tflite.run([x]);
          const want = tf.tidy(() => (model.predict(tf.tensor(x, shape)) as tf.Tensor).dataSync());
          assert.equal(got.length, 10);
          assert.equal(want.length, 10);
          let diff = 0;
          let scale = 0;
          for (let i = 0; i < want.length; i++) {
            diff = Math.max(diff, Math.abs(got[i] - want[i]));
            scale = Math.max(scale, Math.abs(want[i]));
          }
          assert.ok(diff < 1e-4, `max abs diff ${diff}`);
          // Guards the guard: logits near 0 would make any diff small.
          assert.ok(scale > 0.05, `logits too small to compare (max |logit| ${scale})`);
        } finally {
          tflite.dispose();
        }
      } finally {
        model.dispose();
      }
    });
  }
});
