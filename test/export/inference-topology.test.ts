import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { inferenceTopology } from '../../src/export/inference-topology.ts';
import { parseModel } from '../../src/graph/parse.ts';
import { graphSpecs } from '../../src/ops/graph-specs.ts';
import { seedModel, VALID_SEEDS } from '../../src/seeds/index.ts';
import { buildTfModel } from '../../src/train/tf-model.ts';

const keys = (specs: ReturnType<typeof graphSpecs>): string[] => specs.occurrences.map((o) => `${o.layer}:${o.key}`);

describe('inference topology (batch norms folded, activations fused)', () => {
  for (const name of VALID_SEEDS) {
    it(`${name}: runs the same ops as the OpSpecs, with fewer layers, and builds in tfjs`, async () => {
      await tf.setBackend('cpu');
      const parsed = parseModel(seedModel(name));
      const { modelConfig, removed } = inferenceTopology(parsed.graph, parsed.modelConfig);
      assert.ok(removed.length > 0);
      const folded = parseModel({ modelTopology: modelConfig, format: 'layers-model' });
      assert.equal(folded.graph.layers.length, parsed.graph.layers.length - removed.length);
      assert.ok(!folded.graph.layers.some((l) => l.kind === 'batchnorm'), 'every batch norm folded');
      // The folded network has exactly the original's op occurrences.
      assert.deepEqual(keys(graphSpecs(folded.graph)), keys(graphSpecs(parsed.graph)));
      const model = await buildTfModel(modelConfig, null);
      const x = tf.zeros([1, ...(model.inputs[0].shape.slice(1) as number[])]);
      const y = model.predict(x) as tf.Tensor;
      assert.deepEqual(y.shape, [1, 10]);
      tf.dispose([x, y]);
      model.dispose();
    });
  }

  it('folds a Sequential model and rewires nothing else', () => {
    const config = {
      class_name: 'Sequential',
      config: {
        name: 'seq',
        layers: [
          { class_name: 'Conv2D', config: { name: 'c1', filters: 8, kernel_size: [3, 3], strides: [1, 1], padding: 'same', activation: 'linear', use_bias: false, batch_input_shape: [null, 8, 8, 3], dilation_rate: [1, 1], data_format: 'channels_last' } },
          { class_name: 'BatchNormalization', config: { name: 'bn1', axis: -1, epsilon: 0.001, momentum: 0.99, center: true, scale: true } },
          { class_name: 'ReLU', config: { name: 'r1', max_value: 6 } },
          { class_name: 'GlobalAveragePooling2D', config: { name: 'gap', data_format: 'channels_last' } },
          { class_name: 'Dense', config: { name: 'fc', units: 4, activation: 'softmax', use_bias: true } },
        ],
      },
    };
    const parsed = parseModel(config);
    const { modelConfig, removed } = inferenceTopology(parsed.graph, parsed.modelConfig);
    assert.deepEqual([...removed].sort(), ['bn1', 'r1']);
    const layers = (modelConfig.config as unknown as { layers: { config: { name: string; activation?: string; use_bias?: boolean } }[] }).layers;
    assert.deepEqual(layers.map((l) => l.config.name), ['c1', 'gap', 'fc']);
    assert.equal(layers[0].config.activation, 'relu6');
    assert.equal(layers[0].config.use_bias, true);
  });
});
