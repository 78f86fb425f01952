/**
 * The wasm fast paths and the leaner batch-norm gradient against tfjs's `cpu` kernels, on random
 * shapes: they must compute the same numbers, only faster.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../src/train/backend.ts';
import { registerWasmFastPaths } from '../../src/train/kernels/wasm-fast-paths.ts';

function onBackend<T extends tf.Tensor | tf.Tensor[]>(backend: string, f: () => T): Float32Array[] {
  tf.setBackend(backend);
  const out = tf.tidy(f);
  const list = Array.isArray(out) ? out : [out];
  const data = list.map((t) => t.dataSync() as Float32Array);
  tf.dispose(list);
  return data;
}

function relError(a: Float32Array, b: Float32Array): number {
  let diff = 0;
  let scale = 1e-12;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return diff / scale;
}

function random(shape: number[], seed: number): tf.Tensor {
  return tf.randomNormal(shape, 0, 1, 'float32', seed);
}

before(async () => {
  await selectBackend({ backend: 'wasm' });
  await tf.ready();
  assert.deepEqual(registerWasmFastPaths().sort(), ['Conv2DBackpropInput', 'Mean', 'Sum']);
});

describe('Conv2DBackpropInput on wasm', () => {
  const cases: [number[], number[], number, 'same' | 'valid'][] = [
    [[2, 7, 9, 5], [1, 1, 5, 6], 1, 'same'],
    [[2, 7, 9, 5], [1, 1, 5, 6], 2, 'valid'],
    [[1, 8, 8, 3], [3, 3, 3, 4], 1, 'same'],
    [[2, 9, 7, 3], [3, 3, 3, 5], 2, 'same'],
    [[2, 9, 7, 3], [3, 3, 3, 5], 2, 'valid'],
    [[1, 10, 6, 4], [5, 3, 4, 2], 1, 'valid'],
    [[3, 6, 10, 2], [2, 2, 2, 3], 2, 'same'],
  ];
  for (const [xShape, fShape, stride, pad] of cases) {
    it(`matches cpu for x ${xShape} filter ${fShape} stride ${stride} ${pad}`, () => {
      const grad = (): tf.Tensor => {
        const x = random(xShape, 1);
        const f = random(fShape, 2);
        const dyShape = tf.conv2d(x as tf.Tensor4D, f as tf.Tensor4D, stride, pad).shape;
        const dy = random(dyShape, 3);
        return tf.grad((xx: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(xx as tf.Tensor4D, f as tf.Tensor4D, stride, pad), dy)))(x);
      };
      const [wasm] = onBackend('wasm', grad);
      const [cpu] = onBackend('cpu', grad);
      assert.ok(relError(wasm, cpu) < 1e-4, `relative error ${relError(wasm, cpu)}`);
    });
  }
});

describe('Sum and Mean over all but the channel axis on wasm', () => {
  for (const [shape, keepDims] of [[[4, 5, 6, 7], false], [[3, 11], true], [[2, 3, 5], false]] as [number[], boolean][]) {
    it(`match cpu for ${shape} keepDims=${keepDims}`, () => {
      const axes = shape.slice(0, -1).map((_, i) => i);
      const f = (): tf.Tensor[] => {
        const x = random(shape, 4);
        return [tf.sum(x, axes, keepDims), tf.mean(x, axes, keepDims), tf.sum(x, [0]), tf.sum(x)];
      };
      const wasm = onBackend('wasm', f);
      const cpu = onBackend('cpu', f);
      wasm.forEach((w, i) => assert.ok(relError(w, cpu[i]) < 1e-5, `output ${i}: ${relError(w, cpu[i])}`));
    });
  }
});

describe('FusedBatchNorm gradient', () => {
  it('equals the gradient of batch norm written with elementary ops', () => {
    const eps = 1e-3;
    const inputs = (): tf.Tensor[] => [random([3, 4, 5, 6], 5), random([6], 6), tf.abs(random([6], 7)).add(0.5), random([6], 8), random([6], 9), random([3, 4, 5, 6], 10)];
    const fused = (): tf.Tensor[] => {
      const [x, mean, variance, beta, gamma, dy] = inputs();
      return tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor, d: tf.Tensor, e: tf.Tensor) =>
        tf.sum(tf.mul(tf.batchNorm(a, b as tf.Tensor1D, c as tf.Tensor1D, d as tf.Tensor1D, e as tf.Tensor1D, eps), dy)),
      )([x, mean, variance, beta, gamma]);
    };
    const elementary = (): tf.Tensor[] => {
      const [x, mean, variance, beta, gamma, dy] = inputs();
      return tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor, d: tf.Tensor, e: tf.Tensor) =>
        tf.sum(tf.mul(tf.add(tf.mul(tf.mul(tf.sub(a, b), tf.rsqrt(tf.add(c, eps))), e), d), dy)),
      )([x, mean, variance, beta, gamma]);
    };
    for (const backend of ['wasm', 'cpu']) {
      const ours = onBackend(backend, fused);
      const ref = onBackend('cpu', elementary);
      ours.forEach((g, i) => assert.ok(relError(g, ref[i]) < 1e-4, `${backend} input ${i}: ${relError(g, ref[i])}`));
    }
  });
});
