import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { networkCost } from '../../src/cost/counts.ts';
import { parseModel } from '../../src/graph/parse.ts';
import { seedModel, VALID_SEEDS } from '../../src/seeds/index.ts';
import { concatNet, depthwiseNet, mobilenetV1, residualNet, vgg16, type ReferenceModel } from '../fixtures/reference-models.ts';

type TfModelConfig = Parameters<typeof tf.models.modelFromJSON>[0];

function relErr(a: number, b: number): number {
  return Math.abs(a - b) / b;
}

const built: ReferenceModel[] = [];
after(() => {
  for (const r of built) r.model.dispose();
});

describe('networkCost on tfjs Layers-API reference models', () => {
  // VGG16 allocates ~550 MB of weights and takes seconds: build each fixture once.
  for (const make of [() => mobilenetV1(), () => vgg16(), residualNet, concatNet, depthwiseNet]) {
    const r = make();
    built.push(r);
    describe(r.name, () => {
      const cost = networkCost(parseModel(r.modelJson).graph);

      it(`counts MACs within 0.5% of the hand count (${r.handMacs})`, () => {
        assert.ok(relErr(cost.macs, r.handMacs) < 0.005, `macs ${cost.macs} vs hand ${r.handMacs}`);
        assert.equal(cost.macs, r.handMacs);
      });

      it(`params equal tfjs countParams() exactly (${r.handParams})`, () => {
        assert.equal(cost.params, r.handParams);
      });

      it('flops are 2·MACs, in total and per layer', () => {
        assert.equal(cost.flops, 2 * cost.macs);
        for (const l of cost.layers) assert.equal(l.flops, 2 * l.macs, l.layer);
        assert.equal(cost.layers.reduce((a, l) => a + l.macs, 0), cost.macs);
      });
    });
  }

  it('MobileNet v1 at 224 is ~569M MACs', () => {
    const mb = built.find((r) => r.name === 'mobilenet_1_224')!;
    const macs = networkCost(parseModel(mb.modelJson).graph).macs;
    assert.ok(relErr(macs, 569e6) < 0.005, `macs ${macs}`);
  });

  it('per-layer activation bytes are float32 outputs at batch 1', () => {
    const res = built.find((r) => r.name === 'residual_net')!;
    const cost = networkCost(parseModel(res.modelJson).graph);
    const stem = cost.layers.find((l) => l.layer === 'stem')!;
    assert.equal(stem.activationBytes, 32 * 32 * 16 * 4);
    assert.equal(cost.layers.find((l) => l.layer === 'input')!.activationBytes, 0);
    assert.equal(cost.layers.find((l) => l.layer === 'predictions')!.activationBytes, 10 * 4);
  });
});

describe('networkCost on the seed models', () => {
  for (const name of VALID_SEEDS) {
    it(`${name}: params equal tfjs countParams() and flops = 2·MACs`, async () => {
      const seed = seedModel(name);
      const model = await tf.models.modelFromJSON(seed.modelTopology as unknown as TfModelConfig);
      try {
        const cost = networkCost(parseModel(seed).graph);
        assert.equal(cost.params, model.countParams());
        assert.equal(cost.flops, 2 * cost.macs);
        // Same count read off the live tfjs layers: |kernel|·H_out·W_out for convs, |kernel| for dense.
        let macs = 0;
        for (const layer of model.layers) {
          const out = layer.outputShape as (number | null)[];
          const hw = out.length === 4 ? (out[1] as number) * (out[2] as number) : 1;
          for (const w of layer.weights) {
            if (/kernel$/.test(w.originalName)) macs += w.shape.reduce((a, b) => (a as number) * (b as number), 1) as number * (layer.getClassName() === 'Dense' ? 1 : hw);
          }
        }
        assert.equal(cost.macs, macs);
      } finally {
        model.dispose();
      }
    });
  }
});
