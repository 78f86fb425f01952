/** The one-op tfjs-layers model agents time computes the same function as the fused tfjs op. */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { makeSpec, outputShape, specKey } from '../../src/ops/op-spec.ts';
import { specInputs } from '../../src/ops/spec-weights.ts';
import { buildLayersOp } from '../../src/ops/tfjs-layers-op.ts';
import { buildTfjsOp } from '../../src/ops/tfjs-op.ts';
import { CASES } from './op-cases.ts';

before(async () => {
  await tf.setBackend('cpu');
});

describe('tfjs-layers op vs fused tfjs op', () => {
  for (const input of CASES) {
    const spec = makeSpec(input);
    it(specKey(spec), () => {
      const a = buildLayersOp(spec);
      const b = buildTfjsOp(spec);
      const xs = specInputs(spec).map((x, i) => tf.tensor(x, [...a.inputShapes[i]]));
      const ya = a.run(xs);
      const yb = b.run(xs);
      assert.deepEqual(ya.shape, outputShape(spec));
      const da = ya.dataSync();
      const db = yb.dataSync();
      let diff = 0;
      for (let i = 0; i < da.length; i++) diff = Math.max(diff, Math.abs(da[i] - db[i]));
      assert.ok(diff < 1e-5, `max abs diff ${diff}`);
      tf.dispose([ya, yb, ...xs]);
      a.dispose();
      b.dispose();
      assert.throws(() => a.run(xs));
    });
  }
});
