import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { writeSpecTflite } from '../../src/export/tflite/single-op.ts';
import { makeSpec, outputShape, specKey } from '../../src/ops/op-spec.ts';
import { CASES } from './op-cases.ts';
import { specInputs } from '../../src/ops/spec-weights.ts';
import { buildTfjsOp } from '../../src/ops/tfjs-op.ts';
import { loadTfliteModel, loadTfliteRuntime } from '../../device-agent/node/tflite-runtime.ts';

before(async () => {
  await tf.setBackend('cpu');
  await loadTfliteRuntime();
});


describe('single-op .tflite vs tfjs', () => {
  for (const input of CASES) {
    const spec = makeSpec(input);
    it(specKey(spec), async () => {
      const bytes = writeSpecTflite(spec);
      assert.equal(new TextDecoder().decode(bytes.slice(4, 8)), 'TFL3');
      const model = await loadTfliteModel(bytes);
      const op = buildTfjsOp(spec);
      try {
        assert.deepEqual(model.outputs[0].shape, outputShape(spec));
        assert.deepEqual(model.inputs.map((i) => i.shape), op.inputShapes);
        const xs = specInputs(spec);
        const [got] = model.run(xs);
        const ts = xs.map((x, i) => tf.tensor(x, [...op.inputShapes[i]]));
        const y = op.run(ts);
        assert.deepEqual(y.shape, outputShape(spec));
        const want = y.dataSync();
        ts.forEach((t) => t.dispose());
        y.dispose();
        assert.equal(got.length, want.length);
        let diff = 0;
        for (let i = 0; i < want.length; i++) diff = Math.max(diff, Math.abs(got[i] - want[i]));
        assert.ok(diff < 1e-4, `max abs diff ${diff}`);
        // The op is not trivial: some outputs are non-zero.
        assert.ok(want.some((v) => Math.abs(v) > 1e-3));
      } finally {
        model.dispose();
        op.dispose();
      }
    });
  }
});

describe('tfjs op', () => {
  it('uses the same weights for the same seed and other weights for another seed', () => {
    const spec = makeSpec({ kind: 'conv2d', inH: 5, inW: 5, cIn: 2, cOut: 3, kernel: 3 });
    const [x] = specInputs(spec);
    const run = (seed: number): Float32Array => {
      const op = buildTfjsOp(spec, { seed });
      const t = tf.tensor(x, [...op.inputShape]);
      const y = op.run(t);
      const out = y.dataSync() as Float32Array;
      t.dispose();
      y.dispose();
      op.dispose();
      op.dispose();
      return out;
    };
    assert.deepEqual(run(1), run(1));
    assert.notDeepEqual(run(1), run(2));
  });

  it('refuses to run after dispose', () => {
    const op = buildTfjsOp(makeSpec({ kind: 'dense', cIn: 3, cOut: 2 }));
    op.dispose();
    assert.throws(() => op.run(tf.zeros([1, 3])), /disposed/);
  });
});

describe('Node TFLite runtime', () => {
  it('reports the non-threaded wasm build from the package wasm folder', async () => {
    const info = await loadTfliteRuntime();
    assert.equal(info.threads, false);
    assert.match(info.wasmDir, /tfjs-tflite[\\/]wasm$/);
    // The shims are gone again: emscripten builds must not take Node for a web worker.
    assert.equal(typeof (globalThis as Record<string, unknown>).importScripts, 'undefined');
    assert.equal(typeof SharedArrayBuffer, 'function');
  });

  it('rejects bytes that are not a .tflite with a MorphError', async () => {
    await assert.rejects(loadTfliteModel(new Uint8Array(64)), (err: unknown) => err instanceof Error && (err as { code?: string }).code === 'MORPH_ERR_BAD_ARGUMENT');
  });
});
