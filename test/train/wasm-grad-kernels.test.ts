/**
 * Our wasm gradient kernels against the reference `cpu` kernels on random shapes (odd sizes,
 * strides 1 and 2, same/valid/explicit padding, several channel counts and depth multipliers),
 * a one-batch `model.fit` on wasm against cpu, and backend selection.
 */

import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { isMorphError } from '../../src/errors.ts';
import { probeBackends, selectBackend, type BackendInfo } from '../../src/train/backend.ts';
import { registerWasmGradKernels, WASM_GRAD_KERNELS } from '../../src/train/kernels/register-wasm-grads.ts';

const TOLERANCE = 1e-4;

type Pad = 'same' | 'valid' | [[0, 0], [number, number], [number, number], [0, 0]];

interface ConvCase {
  batch: number;
  height: number;
  width: number;
  inChannels: number;
  /** Output channels (conv2d) or depth multiplier (depthwise). */
  outOrMultiplier: number;
  kernel: [number, number];
  stride: number;
  pad: Pad;
}

/** Deterministic data, so a failure reproduces. */
function random(seed: number, size: number): Float32Array {
  let state = seed >>> 0;
  const out = new Float32Array(size);
  for (let i = 0; i < size; i++) {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = ((t ^ (t >>> 14)) >>> 0) / 4294967296 * 2 - 1;
  }
  return out;
}

function size(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function cases(): ConvCase[] {
  const shapes = [
    { height: 7, width: 9, inChannels: 3, outOrMultiplier: 5, kernel: [3, 3] as [number, number] },
    { height: 9, width: 7, inChannels: 5, outOrMultiplier: 2, kernel: [3, 3] as [number, number] },
    { height: 8, width: 6, inChannels: 3, outOrMultiplier: 1, kernel: [5, 3] as [number, number] },
    { height: 6, width: 10, inChannels: 5, outOrMultiplier: 3, kernel: [2, 2] as [number, number] },
    { height: 5, width: 5, inChannels: 3, outOrMultiplier: 2, kernel: [1, 1] as [number, number] },
  ];
  const out: ConvCase[] = [];
  for (const shape of shapes) {
    for (const batch of [1, 2]) {
      for (const stride of [1, 2]) {
        for (const pad of ['same', 'valid'] as const) out.push({ ...shape, batch, stride, pad });
      }
    }
  }
  out.push({ height: 7, width: 9, inChannels: 3, outOrMultiplier: 2, kernel: [3, 3], batch: 2, stride: 2, pad: [[0, 0], [1, 0], [2, 1], [0, 0]] });
  out.push({ height: 28, width: 28, inChannels: 8, outOrMultiplier: 2, kernel: [3, 3], batch: 4, stride: 2, pad: 'same' });
  return out;
}

function label(c: ConvCase): string {
  return `N${c.batch} ${c.height}x${c.width}x${c.inChannels} k${c.kernel.join('x')} out/mult ${c.outOrMultiplier} stride ${c.stride} pad ${JSON.stringify(c.pad)}`;
}

/**
 * Runs `grad` on cpu and on wasm with the same inputs and returns both results. Inputs are built on
 * each backend from plain arrays so nothing is shared between the two runs.
 */
async function onBothBackends(
  shapes: number[][],
  grad: (inputs: tf.Tensor[]) => tf.Tensor,
  seed: number,
): Promise<{ cpu: Float32Array; wasm: Float32Array; shape: number[] }> {
  const data = shapes.map((shape, i) => random(seed * 31 + i, size(shape)));
  const results: Record<string, { values: Float32Array; shape: number[] }> = {};
  for (const backend of ['cpu', 'wasm']) {
    assert.equal(await tf.setBackend(backend), true);
    const before = tf.memory().numTensors;
    const result = tf.tidy(() => {
      const out = grad(shapes.map((shape, i) => tf.tensor(data[i]!, shape)));
      return { values: out.dataSync() as Float32Array, shape: out.shape };
    });
    assert.equal(tf.memory().numTensors, before, `${backend}: gradient leaked tensors`);
    results[backend] = result;
  }
  assert.deepEqual(results.wasm!.shape, results.cpu!.shape);
  return { cpu: results.cpu!.values, wasm: results.wasm!.values, shape: results.cpu!.shape };
}

function assertClose(actual: Float32Array, expected: Float32Array, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let maxRef = 0;
  let maxDiff = 0;
  for (let i = 0; i < expected.length; i++) {
    maxRef = Math.max(maxRef, Math.abs(expected[i]!));
    maxDiff = Math.max(maxDiff, Math.abs(actual[i]! - expected[i]!));
  }
  assert.ok(maxRef > 0, `${what}: reference gradient is all zeros, the case tests nothing`);
  const rel = maxDiff / maxRef;
  assert.ok(rel < TOLERANCE, `${what}: max relative error ${rel.toExponential(2)} ≥ ${TOLERANCE}`);
}

function outShape(c: ConvCase, channels: number, depthwise: boolean): number[] {
  const info = tf.backend_util.computeConv2DInfo(
    [c.batch, c.height, c.width, c.inChannels],
    [c.kernel[0], c.kernel[1], c.inChannels, c.outOrMultiplier],
    c.stride,
    1,
    c.pad,
    undefined,
    depthwise,
  );
  return [c.batch, info.outHeight, info.outWidth, channels];
}

describe('wasm gradient kernels match cpu', () => {
  before(async () => {
    await selectBackend({ backend: 'wasm' });
  });

  it('wasm 4.22 lacks exactly these three and has Conv2DBackpropInput', () => {
    assert.ok(tf.getKernel('Conv2DBackpropInput', 'wasm'), 'wasm should ship Conv2DBackpropInput');
    assert.deepEqual(
      WASM_GRAD_KERNELS.map((k) => k.kernelName),
      ['Conv2DBackpropFilter', 'DepthwiseConv2dNativeBackpropFilter', 'DepthwiseConv2dNativeBackpropInput'],
    );
  });

  cases().forEach((c, n) => {
    it(`Conv2DBackpropFilter ${label(c)}`, async () => {
      const x = [c.batch, c.height, c.width, c.inChannels];
      const f = [c.kernel[0], c.kernel[1], c.inChannels, c.outOrMultiplier];
      const dy = outShape(c, c.outOrMultiplier, false);
      const r = await onBothBackends([x, f, dy], ([xt, ft, dyt]) =>
        tf.grad((filter: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(xt as tf.Tensor4D, filter as tf.Tensor4D, c.stride, c.pad), dyt!)))(ft!),
        100 + n,
      );
      assert.deepEqual(r.shape, f);
      assertClose(r.wasm, r.cpu, label(c));
    });

    it(`DepthwiseConv2dNativeBackpropFilter ${label(c)}`, async () => {
      const x = [c.batch, c.height, c.width, c.inChannels];
      const f = [c.kernel[0], c.kernel[1], c.inChannels, c.outOrMultiplier];
      const dy = outShape(c, c.inChannels * c.outOrMultiplier, true);
      const r = await onBothBackends([x, f, dy], ([xt, ft, dyt]) =>
        tf.grad((filter: tf.Tensor) =>
          tf.sum(tf.mul(tf.depthwiseConv2d(xt as tf.Tensor4D, filter as tf.Tensor4D, c.stride, c.pad), dyt!)),
        )(ft!),
        200 + n,
      );
      assert.deepEqual(r.shape, f);
      assertClose(r.wasm, r.cpu, label(c));
    });

    it(`DepthwiseConv2dNativeBackpropInput ${label(c)}`, async () => {
      const x = [c.batch, c.height, c.width, c.inChannels];
      const f = [c.kernel[0], c.kernel[1], c.inChannels, c.outOrMultiplier];
      const dy = outShape(c, c.inChannels * c.outOrMultiplier, true);
      const r = await onBothBackends([x, f, dy], ([xt, ft, dyt]) =>
        tf.grad((input: tf.Tensor) =>
          tf.sum(tf.mul(tf.depthwiseConv2d(input as tf.Tensor4D, ft as tf.Tensor4D, c.stride, c.pad), dyt!)),
        )(xt!),
        300 + n,
      );
      assert.deepEqual(r.shape, x);
      assertClose(r.wasm, r.cpu, label(c));
    });
  });
});

describe('training on wasm', () => {
  before(async () => {
    await selectBackend({ backend: 'wasm' });
  });

  function tinyCnn(): tf.Sequential {
    const model = tf.sequential();
    model.add(tf.layers.conv2d({ inputShape: [9, 7, 3], filters: 4, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu' }));
    model.add(tf.layers.depthwiseConv2d({ kernelSize: 3, depthMultiplier: 2, padding: 'same' }));
    model.add(tf.layers.separableConv2d({ filters: 6, kernelSize: 3, padding: 'valid' }));
    model.add(tf.layers.batchNormalization());
    model.add(tf.layers.flatten());
    model.add(tf.layers.dense({ units: 3, activation: 'softmax' }));
    model.compile({ optimizer: tf.train.sgd(0.1), loss: 'categoricalCrossentropy' });
    return model;
  }

  it('model.fit runs one batch on wasm with the loss and updated weights of cpu', async () => {
    await tf.setBackend('cpu');
    const initial = tf.tidy(() => tinyCnn().getWeights().map((w) => ({ shape: w.shape, data: w.dataSync().slice() })));
    const xs = random(7, 4 * 9 * 7 * 3);
    const labels = new Int32Array([0, 2, 1, 2]);

    const outcome: Record<string, { loss: number; weights: Float32Array[] }> = {};
    for (const backend of ['cpu', 'wasm']) {
      assert.equal(await tf.setBackend(backend), true);
      const model = tinyCnn();
      model.setWeights(initial.map((w) => tf.tensor(w.data, w.shape)));
      const x = tf.tensor4d(xs, [4, 9, 7, 3]);
      const y = tf.oneHot(tf.tensor1d(labels, 'int32'), 3);
      const history = await model.fit(x, y, { batchSize: 4, epochs: 1, shuffle: false, verbose: 0 });
      const loss = history.history.loss![0] as number;
      assert.ok(Number.isFinite(loss), `${backend}: loss ${loss}`);
      outcome[backend] = { loss, weights: model.getWeights().map((w) => w.dataSync() as Float32Array) };
      tf.dispose([x, y]);
      model.dispose();
    }
    const { cpu, wasm } = outcome as Record<'cpu' | 'wasm', { loss: number; weights: Float32Array[] }>;
    assert.ok(Math.abs(wasm.loss - cpu.loss) <= 1e-4 * Math.max(1, Math.abs(cpu.loss)), `loss wasm ${wasm.loss} vs cpu ${cpu.loss}`);
    // Compare the updates, on one scale for the whole model: some gradients are exactly zero in
    // theory (a bias followed by batch norm), so their per-weight relative error is pure noise.
    const deltas = (weights: Float32Array[]): Float32Array[] =>
      weights.map((w, i) => w.map((v, j) => v - initial[i]!.data[j]!));
    const cpuDelta = deltas(cpu.weights);
    const wasmDelta = deltas(wasm.weights);
    const scale = Math.max(...cpuDelta.map((d) => d.reduce((m, v) => Math.max(m, Math.abs(v)), 0)));
    assert.ok(scale > 1e-3, `one SGD step barely moved the weights (max update ${scale})`);
    cpuDelta.forEach((d, i) => {
      const diff = d.reduce((m, v, j) => Math.max(m, Math.abs(v - wasmDelta[i]![j]!)), 0);
      assert.ok(diff / scale < 1e-3, `weight ${i} (${initial[i]!.shape}): update differs by ${diff} (max update ${scale})`);
    });
    // Every convolution filter must move, or its gradient kernel was not applied.
    for (const i of [0, 2, 4, 5]) {
      assert.ok(cpuDelta[i]!.some((v) => v !== 0) && wasmDelta[i]!.some((v) => v !== 0), `filter ${i} did not change`);
    }
  });
});

describe('selectBackend', () => {
  it("'auto' picks tfjs-node where it loads, otherwise wasm, and says what it fell back from", async () => {
    const report = await probeBackends();
    const info: BackendInfo = await selectBackend({ backend: 'auto' });
    assert.equal(tf.getBackend(), info.tfjsBackend);
    if (report.tfjsNode.available) {
      assert.equal(info.name, 'tfjs-node');
      return;
    }
    assert.equal(info.name, 'wasm');
    assert.equal(info.tfjsVersion, tf.version.tfjs);
    assert.equal(typeof info.simd, 'boolean');
    assert.equal(info.threads, false, 'wasm threads are off in Node');
    assert.deepEqual(info.registeredGradKernels, [
      ...WASM_GRAD_KERNELS.map((k) => k.kernelName),
      'Conv2DBackpropInput (fast path)',
      'Sum (fast path)',
      'Mean (fast path)',
      'FusedBatchNorm gradient',
    ]);
    assert.equal(info.fellBackFrom?.[0]?.backend, 'tfjs-node');
    assert.match(info.fellBackFrom?.[0]?.reason ?? '', /tfjs-node/);
  });

  it("an explicit 'tfjs-node' that cannot load throws MORPH_ERR_BACKEND naming the alternative", async (t) => {
    if ((await probeBackends()).tfjsNode.available) {
      t.skip('tfjs-node is installed here');
      return;
    }
    await assert.rejects(selectBackend({ backend: 'tfjs-node' }), (err: unknown) => {
      assert.ok(isMorphError(err));
      assert.equal(err.code, 'MORPH_ERR_BACKEND');
      assert.match(err.message, /tfjs-node/);
      assert.match(err.message, /--backend wasm/);
      return true;
    });
  });

  it("'cpu' gives the cpu backend with no wasm flags", async () => {
    const info = await selectBackend({ backend: 'cpu' });
    assert.equal(info.name, 'cpu');
    assert.equal(info.simd, null);
    assert.equal(info.threads, null);
    assert.deepEqual(info.registeredGradKernels, []);
    assert.equal(info.fellBackFrom, undefined);
  });

  it('an unknown backend is a bad argument', async () => {
    await assert.rejects(selectBackend({ backend: 'gpu' as 'cpu' }), (err: unknown) => isMorphError(err) && err.code === 'MORPH_ERR_BAD_ARGUMENT');
  });

  it('registering the kernels twice is a no-op', () => {
    const again = registerWasmGradKernels();
    assert.deepEqual(again.registered, []);
    assert.deepEqual(again.alreadyPresent, WASM_GRAD_KERNELS.map((k) => k.kernelName));
  });

  it('probeBackends reports without switching the active backend', async () => {
    await tf.setBackend('cpu');
    const report = await probeBackends();
    assert.equal(tf.getBackend(), 'cpu');
    assert.equal(report.active, 'cpu');
    assert.equal(report.wasm.available, true);
    assert.deepEqual(report.wasm.missingGradKernels, []);
    assert.equal(report.cpu.available, true);
  });
});
