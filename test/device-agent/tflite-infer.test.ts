import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MorphError } from '../../src/errors.ts';
import { tfliteInferRunnable } from '../../device-agent/tfjs-common.ts';

/** A stand-in for `@tensorflow/tfjs-tflite`'s TFLiteModel: its runner's input buffers and infer count. */
function fakeModel(sizes: number[], opts: { dataType?: string; fail?: boolean } = {}) {
  const buffers = sizes.map((n) => new Float32Array(n));
  const calls = { getInputs: 0, infer: 0 };
  return {
    buffers,
    calls,
    model: {
      modelRunner: {
        getInputs: () => {
          calls.getInputs++;
          return buffers.map((b) => ({ dataType: opts.dataType ?? 'float32', data: () => b }));
        },
        infer: () => {
          calls.infer++;
          return !opts.fail;
        },
      },
    },
  };
}

describe('tfliteInferRunnable', () => {
  it('writes the inputs once and runs one infer() per run, asking the runtime for nothing else', () => {
    const f = fakeModel([3, 2]);
    let freed = 0;
    const r = tfliteInferRunnable(f.model, [Float32Array.of(1, 2, 3), Float32Array.of(4, 5)], () => freed++);
    assert.ok(r);
    assert.deepEqual([...f.buffers[0], ...f.buffers[1]], [1, 2, 3, 4, 5]);
    for (let i = 0; i < 5; i++) r.run();
    assert.deepEqual(f.calls, { getInputs: 1, infer: 5 });
    r.dispose();
    r.dispose();
    assert.equal(freed, 1);
  });

  it('fills inputs without data with values in [-1, 1)', () => {
    const f = fakeModel([1000]);
    tfliteInferRunnable(f.model, null, () => {});
    assert.ok(f.buffers[0].every((v) => v >= -1 && v < 1) && new Set(f.buffers[0]).size > 900);
  });

  it('refuses inputs of another size or type, and a failed inference', () => {
    assert.throws(() => tfliteInferRunnable(fakeModel([3]).model, [Float32Array.of(1, 2)], () => {}), (e: unknown) => e instanceof MorphError && e.code === 'MORPH_ERR_SHAPE');
    assert.throws(() => tfliteInferRunnable(fakeModel([3], { dataType: 'int8' }).model, null, () => {}), (e: unknown) => e instanceof MorphError && e.code === 'MORPH_ERR_BAD_ARGUMENT');
    const r = tfliteInferRunnable(fakeModel([1], { fail: true }).model, null, () => {});
    assert.throws(() => r!.run(), (e: unknown) => e instanceof MorphError && e.code === 'MORPH_ERR_MEASUREMENT');
  });

  it('gives null for a model without a reachable runner (the caller falls back to predict)', () => {
    assert.equal(tfliteInferRunnable({}, null, () => {}), null);
    assert.equal(tfliteInferRunnable(null, null, () => {}), null);
  });
});
