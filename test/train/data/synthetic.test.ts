import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openDataset, parseSyntheticParams } from '../../../src/train/data/index.ts';
import { collect, morphError } from './helpers.ts';

async function allX(spec: string, seed: number, split: 'train' | 'test' = 'train'): Promise<number[]> {
  const ds = await openDataset(spec, { seed });
  return (await collect(ds, split, 64)).flatMap((b) => Array.from(b.x));
}

test('synthetic is configurable by spec', async () => {
  const ds = await openDataset('synthetic:h=6,w=5,c=3,classes=5,train=100,test=30,noise=0.1');
  assert.deepEqual(ds.imageShape, [6, 5, 3]);
  assert.equal(ds.numClasses, 5);
  assert.equal(ds.trainSize + ds.valSize, 100);
  assert.equal(ds.testSize, 30);
  const batches = await collect(ds, 'test', 16);
  assert.equal(batches[0].x.length, 16 * 6 * 5 * 3);
  for (const b of batches) for (const v of b.x) assert.ok(v >= 0 && v <= 1);
  const labels = batches.flatMap((b) => Array.from(b.y));
  for (let k = 0; k < 5; k++) assert.equal(labels.filter((l) => l === k).length, 6, 'balanced classes');
});

test('synthetic is deterministic by seed, and the seed in the spec wins over the option', async () => {
  const spec = 'synthetic:h=8,w=8,train=40,test=10';
  assert.deepEqual(await allX(spec, 1), await allX(spec, 1));
  assert.notDeepEqual(await allX(spec, 1), await allX(spec, 2));
  // The option seed still drives the train/val split, so compare the (unsplit) test set.
  assert.deepEqual(await allX(`${spec},seed=9`, 1, 'test'), await allX(`${spec},seed=9`, 2, 'test'));
});

test('synthetic is learnable: nearest class mean on train classifies test well', async () => {
  const ds = await openDataset('synthetic:h=8,w=8,c=1,classes=4,train=400,test=100,noise=0.3', { seed: 4 });
  const len = 64;
  const sums = Array.from({ length: 4 }, () => new Float64Array(len));
  const counts = [0, 0, 0, 0];
  for await (const b of ds.batches('train', 50)) {
    for (let k = 0; k < b.n; k++) {
      counts[b.y[k]]++;
      for (let p = 0; p < len; p++) sums[b.y[k]][p] += b.x[k * len + p];
    }
  }
  const means = sums.map((s, c) => s.map((v) => v / counts[c]));
  let right = 0;
  let total = 0;
  for await (const b of ds.batches('test', 50)) {
    for (let k = 0; k < b.n; k++) {
      let best = -1;
      let bestD = Infinity;
      means.forEach((m, c) => {
        let d = 0;
        for (let p = 0; p < len; p++) d += (b.x[k * len + p] - m[p]) ** 2;
        if (d < bestD) [bestD, best] = [d, c];
      });
      if (best === b.y[k]) right++;
      total++;
    }
  }
  assert.ok(right / total > 0.9, `accuracy ${right / total}`);
});

test('synthetic rejects unknown keys and bad values, listing the accepted keys', async () => {
  assert.throws(() => parseSyntheticParams('size=3'), morphError('MORPH_ERR_BAD_ARGUMENT', /"size"/, /h=…, w=…, c=…, classes=…/));
  assert.throws(() => parseSyntheticParams('h=big'), morphError('MORPH_ERR_BAD_ARGUMENT', /h needs a number/));
  await assert.rejects(openDataset('synthetic:classes=1'), morphError('MORPH_ERR_BAD_ARGUMENT', /classes must be an integer ≥ 2/));
  await assert.rejects(openDataset('synthetic:c=2'), morphError('MORPH_ERR_BAD_ARGUMENT', /1 or 3 channels/));
});
