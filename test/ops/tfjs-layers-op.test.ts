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

describe('a tfjs-layers op run', () => {
  it('computes the op and leaves only its output behind, an activation layer after it included', () => {
    const spec = makeSpec({ kind: 'add', inH: 6, inW: 5, cIn: 4, cOut: 4, numInputs: 2, activation: 'relu6' });
    const op = buildLayersOp(spec);
    const xs = specInputs(spec).map((x, i) => tf.tensor(x, [...op.inputShapes[i]]));
    const before = tf.memory().numTensors;
    const y = op.run(xs);
    assert.equal(tf.memory().numTensors, before + 1, 'the op output only: the add before the ReLU6 is freed');
    const [a, b] = xs.map((x) => x.dataSync());
    const want = Array.from(a, (v, i) => Math.min(6, Math.max(0, v + b[i])));
    assert.deepEqual(Array.from(y.dataSync()).map((v) => Math.round(v * 1e5)), want.map((v) => Math.round(v * 1e5)));
    tf.dispose([y, ...xs]);
    op.dispose();
  });
});
