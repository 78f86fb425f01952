/** The bridge between our weights and live tfjs models: by name, complete, all or nothing. */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { MorphError } from '../../src/errors.ts';
import type { ModelConfigJson } from '../../src/graph/keras-json.ts';
import { seedModel } from '../../src/seeds/index.ts';
import { selectBackend } from '../../src/train/backend.ts';
import { assignWeights, buildTfModel, namedWeights, readWeights } from '../../src/train/tf-model.ts';

before(async () => {
  await selectBackend({ backend: 'wasm' });
});

function predict(model: tf.LayersModel, x: tf.Tensor): Float32Array {
  return tf.tidy(() => (model.predict(x) as tf.Tensor).dataSync() as Float32Array);
}

describe('buildTfModel / readWeights', () => {
  for (const seed of ['mobilenet', 'resnet', 'vgg'] as const) {
    it(`round-trips the ${seed} seed: same predictions from the read weights`, async () => {
      const topology = seedModel(seed).modelTopology as ModelConfigJson;
      const a = await buildTfModel(topology, null);
      // Move the batch-norm statistics off their defaults so the test sees them travel too.
      for (const layer of a.layers) {
        for (const w of layer.weights) {
          if (w.originalName.endsWith('moving_mean') || w.originalName.endsWith('moving_variance')) {
            const v = tf.randomUniform(w.shape as number[], 0.5, 1.5, 'float32', 3);
            w.write(v);
            v.dispose();
          }
        }
      }
      const weights = readWeights(a);
      const bn = [...weights.keys()].find((k) => k.endsWith('_bn'))!;
      assert.deepEqual([...weights.get(bn)!.keys()], ['gamma', 'beta', 'moving_mean', 'moving_variance']);
      const b = await buildTfModel(topology, weights);
      const c = await buildTfModel(topology, namedWeights(a));
      const x = tf.randomUniform([2, 28, 28, 1], 0, 1, 'float32', 11);
      const pa = predict(a, x);
      assert.deepEqual(predict(b, x), pa);
      assert.deepEqual(predict(c, x), pa);
      // Copies, not views: training (or disposing) `a` does not change what was read.
      const before = weights.get(bn)!.get('gamma')!.data.slice();
      a.dispose();
      assert.deepEqual(weights.get(bn)!.get('gamma')!.data, before);
      tf.dispose([x]);
      b.dispose();
      c.dispose();
    });
  }

  it('names every missing, extra and wrongly shaped weight, and changes nothing', async () => {
    const topology = seedModel('mobilenet').modelTopology as ModelConfigJson;
    const model = await buildTfModel(topology, null);
    const good = readWeights(model);
    const bad = new Map([...good].map(([layer, kinds]) => [layer, new Map(kinds)]));
    bad.get('conv1_bn')!.delete('gamma');
    bad.get('predictions')!.set('kernel', { shape: [3, 3], data: new Float32Array(9) });
    bad.set('ghost', new Map([['kernel', { shape: [1], data: new Float32Array(1) }]]));
    const before = model.getWeights().map((t) => t.dataSync().slice());
    assert.throws(
      () => assignWeights(model, bad),
      (e: unknown) =>
        e instanceof MorphError &&
        e.code === 'MORPH_ERR_WEIGHTS_MISMATCH' &&
        /missing conv1_bn\/gamma/.test(e.message) &&
        /not in the model: ghost\/kernel/.test(e.message) &&
        /predictions\/kernel is \[3,3\]/.test(e.message),
    );
    model.getWeights().forEach((t, i) => assert.deepEqual(t.dataSync(), before[i]));
    await assert.rejects(buildTfModel(topology, bad), (e: unknown) => e instanceof MorphError && e.code === 'MORPH_ERR_WEIGHTS_MISMATCH');
    model.dispose();
  });

  it('refuses a topology tfjs cannot build (MORPH_ERR_BAD_TOPOLOGY)', async () => {
    const broken = { class_name: 'Model', config: { name: 'x', layers: [{ class_name: 'NoSuchLayer', name: 'a', config: { name: 'a' }, inbound_nodes: [] }], input_layers: [], output_layers: [] } };
    await assert.rejects(buildTfModel(broken as ModelConfigJson, null), (e: unknown) => e instanceof MorphError && e.code === 'MORPH_ERR_BAD_TOPOLOGY');
  });
});
