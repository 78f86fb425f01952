import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { MorphError } from '../../src/errors.ts';
import type { FunctionalConfigJson, LayerJson, ModelConfigJson } from '../../src/graph/keras-json.ts';
import { FunctionalBuilder } from '../../src/seeds/builder.ts';
import { SEED_GENERATED_BY, seedModel, VALID_SEEDS } from '../../src/seeds/index.ts';

type TfModelConfig = Parameters<typeof tf.models.modelFromJSON>[0];

function topologyOf(name: (typeof VALID_SEEDS)[number], opts?: Parameters<typeof seedModel>[1]): ModelConfigJson {
  return seedModel(name, opts).modelTopology as ModelConfigJson;
}

function layersOf(topology: unknown): LayerJson[] {
  return ((topology as ModelConfigJson).config as FunctionalConfigJson).layers;
}

async function load(topology: ModelConfigJson): Promise<tf.LayersModel> {
  return tf.models.modelFromJSON(topology as unknown as TfModelConfig);
}

/** Output widths of every Conv2D, keyed by layer name. */
function convWidths(topology: ModelConfigJson): Map<string, number> {
  return new Map(layersOf(topology).filter((l) => l.class_name === 'Conv2D').map((l) => [l.config['name'] as string, l.config['filters'] as number]));
}

const PARAM_RANGE = [100_000, 800_000] as const;

describe('seedModel', () => {
  for (const name of VALID_SEEDS) {
    describe(name, () => {
      it('is a layers-model model.json without weights', () => {
        const seed = seedModel(name);
        assert.equal(seed.format, 'layers-model');
        assert.equal(seed.generatedBy, SEED_GENERATED_BY);
        assert.equal(seed.convertedBy, null);
        assert.equal(seed.weightsManifest, undefined);
        const t = seed.modelTopology as ModelConfigJson;
        assert.equal(t.class_name, 'Model');
        assert.equal(t.keras_version, 'tfjs-layers 4.22.0');
        assert.equal(t.backend, 'tensor_flow.js');
      });

      it('loads in tfjs and predicts a softmax over 10 classes', async () => {
        const model = await load(topologyOf(name));
        const x = tf.randomNormal([2, 28, 28, 1]);
        const y = model.predict(x) as tf.Tensor;
        assert.deepEqual(y.shape, [2, 10]);
        const sums = (await y.sum(1).array()) as number[];
        for (const s of sums) assert.ok(Math.abs(s - 1) < 1e-5, `row sums to ${s}`);
        tf.dispose([x, y]);
        model.dispose();
      });

      it('re-serializes through tfjs to the same layers and configs', async () => {
        const topology = topologyOf(name);
        const model = await load(topology);
        const again = model.toJSON(null, false) as unknown as ModelConfigJson;
        model.dispose();
        const ours = new Map(layersOf(topology).map((l) => [l.name, l]));
        const theirs = layersOf(again);
        assert.equal(theirs.length, ours.size);
        for (const l of theirs) {
          const mine = ours.get(l.name);
          assert.ok(mine, `tfjs wrote a layer "${l.name}" we did not`);
          assert.equal(l.class_name, mine.class_name);
          // Every config key tfjs writes, in the same order, with the same values.
          assert.equal(JSON.stringify(l.config), JSON.stringify(mine.config), `config of ${l.name}`);
          assert.deepEqual(l.inbound_nodes, mine.inbound_nodes, `inbound_nodes of ${l.name}`);
        }
        const cfg = again.config as FunctionalConfigJson;
        const ourCfg = topology.config as FunctionalConfigJson;
        assert.deepEqual(cfg.input_layers, ourCfg.input_layers);
        assert.deepEqual(cfg.output_layers, ourCfg.output_layers);
      });

      it('follows every conv and depthwise conv by BatchNormalization then ReLU', () => {
        const layers = layersOf(topologyOf(name));
        const consumers = (n: string): LayerJson[] =>
          layers.filter((l) => JSON.stringify(l.inbound_nodes ?? []).includes(JSON.stringify([n, 0, 0, {}])));
        for (const l of layers.filter((x) => x.class_name === 'Conv2D' || x.class_name === 'DepthwiseConv2D')) {
          const after = consumers(l.name!);
          assert.equal(after.length, 1, `${l.name} has one consumer`);
          assert.equal(after[0].class_name, 'BatchNormalization', `${l.name} is followed by BN`);
          assert.equal(l.config['use_bias'], false, `${l.name} has no bias`);
          // The BN feeds a ReLU directly, or (resnet's second conv and projection) an Add then a ReLU;
          // mobilenetv2's projections are linear (an inverted residual's bottleneck): the BN feeds the
          // next block or its Add.
          const next = consumers(after[0].name!);
          if (/_project$/.test(l.name!)) continue;
          assert.equal(next.length, 1);
          const relu = next[0].class_name === 'Add' ? consumers(next[0].name!)[0] : next[0];
          assert.equal(relu.class_name, 'ReLU', `${l.name}'s BN leads to a ReLU`);
        }
      });

      it(`has between ${PARAM_RANGE[0]} and ${PARAM_RANGE[1]} parameters`, async () => {
        const model = await load(topologyOf(name));
        const n = model.countParams();
        model.dispose();
        assert.ok(n >= PARAM_RANGE[0] && n <= PARAM_RANGE[1], `${name} has ${n} parameters`);
      });

      it('halves every conv width with widthMultiplier 0.5', async () => {
        const full = convWidths(topologyOf(name));
        const half = convWidths(topologyOf(name, { widthMultiplier: 0.5 }));
        assert.ok(full.size > 0);
        assert.deepEqual([...half.keys()], [...full.keys()]);
        for (const [layer, w] of full) assert.equal(half.get(layer), w / 2, layer);
        const model = await load(topologyOf(name, { widthMultiplier: 0.5 }));
        const y = model.predict(tf.zeros([1, 28, 28, 1])) as tf.Tensor;
        assert.deepEqual(y.shape, [1, 10]);
        model.dispose();
      });

      it('takes another input shape and class count', async () => {
        const model = await load(topologyOf(name, { inputShape: [32, 32, 3], numClasses: 5 }));
        const y = model.predict(tf.zeros([1, 32, 32, 3])) as tf.Tensor;
        assert.deepEqual(y.shape, [1, 5]);
        model.dispose();
      });

      it('has unique layer names', () => {
        const names = layersOf(topologyOf(name)).map((l) => l.name);
        assert.equal(new Set(names).size, names.length);
      });
    });
  }

  it('rejects unknown names and bad options with MORPH_ERR_BAD_ARGUMENT', () => {
    const bad = (fn: () => unknown): void => {
      assert.throws(fn, (e: unknown) => e instanceof MorphError && e.code === 'MORPH_ERR_BAD_ARGUMENT');
    };
    bad(() => seedModel('alexnet' as 'vgg'));
    bad(() => seedModel('vgg', { widthMultiplier: 0 }));
    bad(() => seedModel('vgg', { numClasses: 1.5 }));
    bad(() => seedModel('vgg', { inputShape: [4, 4, 1] }));
    bad(() => seedModel('resnet', { inputShape: [28, 28, 0] }));
  });
});

describe('FunctionalBuilder', () => {
  it('rejects duplicate names and unknown inputs', () => {
    const b = new FunctionalBuilder('m');
    const x = b.input('in', [4, 4, 1]);
    b.flatten('f', x);
    assert.throws(() => b.flatten('f', x), /duplicate layer name "f"/);
    assert.throws(() => b.flatten('g', 'nope'), /consumes "nope"/);
    assert.throws(() => b.build(['nope']), /output "nope"/);
    assert.throws(() => new FunctionalBuilder('empty').build([]), /has no input/);
  });
});
