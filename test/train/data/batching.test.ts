import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openDataset, splitTrainVal, type Dataset } from '../../../src/train/data/index.ts';
import { collect, morphError, sampleIds, tempDir, writeIdxDir } from './helpers.ts';

const SAMPLE = 4 * 3; // writeIdxDir's default 4×3 images

async function idsOf(ds: Dataset, split: 'train' | 'val' | 'test', batchSize: number, opts = {}): Promise<number[]> {
  return (await collect(ds, split, batchSize, opts)).flatMap((b) => sampleIds(b, SAMPLE));
}

test('splitTrainVal: sizes, disjoint, covering the pool, same for the same seed, different for another', () => {
  const a = splitTrainVal(1000, { valFraction: 0.1, seed: 5 });
  assert.equal(a.train.length, 900);
  assert.equal(a.val.length, 100);
  const all = new Set([...a.train, ...a.val]);
  assert.equal(all.size, 1000);
  assert.deepEqual(splitTrainVal(1000, { valFraction: 0.1, seed: 5 }), a);
  assert.notDeepEqual(Array.from(splitTrainVal(1000, { valFraction: 0.1, seed: 6 }).val), Array.from(a.val));
  const limited = splitTrainVal(1000, { valFraction: 0.25, seed: 5, limit: 40 });
  assert.equal(limited.train.length, 30);
  assert.equal(limited.val.length, 10);
  assert.equal(splitTrainVal(10, { valFraction: 0 }).val.length, 0);
  assert.throws(() => splitTrainVal(10, { valFraction: 1 }), morphError('MORPH_ERR_BAD_ARGUMENT', /valFraction/));
  assert.throws(() => splitTrainVal(10, { limit: 0 }), morphError('MORPH_ERR_BAD_ARGUMENT', /limit\.train/));
  assert.throws(() => splitTrainVal(1, { valFraction: 0.6 }), morphError('MORPH_ERR_DATASET', /too few/));
});

test('train and val do not overlap and together cover the training file (default valFraction 0.1)', async (t) => {
  const dir = await tempDir(t);
  await writeIdxDir(dir, { train: 300, test: 30 });
  const ds = await openDataset(`idx:${dir}`, { seed: 11 });
  assert.equal(ds.trainSize, 270);
  assert.equal(ds.valSize, 30);
  const train = await idsOf(ds, 'train', 64);
  const val = await idsOf(ds, 'val', 64);
  assert.equal(train.length, 270);
  assert.equal(val.length, 30);
  const overlap = train.filter((i) => val.includes(i));
  assert.deepEqual(overlap, []);
  assert.deepEqual([...train, ...val].sort((x, y) => x - y), Array.from({ length: 300 }, (_, i) => i));
  const again = await openDataset(`idx:${dir}`, { seed: 11 });
  assert.deepEqual(await idsOf(again, 'val', 64), val);
  const other = await openDataset(`idx:${dir}`, { seed: 12 });
  assert.notDeepEqual(await idsOf(other, 'val', 64), val);
});

test('each sample appears exactly once per epoch, shuffled or not, with a short last batch', async (t) => {
  const dir = await tempDir(t);
  await writeIdxDir(dir, { train: 257 });
  const ds = await openDataset(`idx:${dir}`, { valFraction: 0 });
  for (const shuffle of [false, true]) {
    const batches = await collect(ds, 'train', 50, { shuffle, seed: 1, epoch: 3 });
    assert.deepEqual(batches.map((b) => b.n), [50, 50, 50, 50, 50, 7]);
    for (const b of batches) {
      assert.equal(b.x.length, b.n * SAMPLE);
      assert.equal(b.y.length, b.n);
    }
    const ids = batches.flatMap((b) => sampleIds(b, SAMPLE));
    assert.deepEqual([...ids].sort((x, y) => x - y), Array.from({ length: 257 }, (_, i) => i));
    // Labels travel with their images.
    assert.deepEqual(batches.flatMap((b) => Array.from(b.y)), ids.map((i) => i % 3));
  }
});

test('shuffle order differs by epoch and by seed, and repeats for the same seed and epoch', async (t) => {
  const dir = await tempDir(t);
  await writeIdxDir(dir, { train: 200 });
  const ds = await openDataset(`idx:${dir}`, { valFraction: 0 });
  const plain = await idsOf(ds, 'train', 32);
  assert.deepEqual(plain, Array.from({ length: 200 }, (_, i) => i));
  const e0 = await idsOf(ds, 'train', 32, { shuffle: true, seed: 7, epoch: 0 });
  const e1 = await idsOf(ds, 'train', 32, { shuffle: true, seed: 7, epoch: 1 });
  const e0again = await idsOf(ds, 'train', 32, { shuffle: true, seed: 7, epoch: 0 });
  const s8 = await idsOf(ds, 'train', 32, { shuffle: true, seed: 8, epoch: 0 });
  assert.notDeepEqual(e0, plain);
  assert.notDeepEqual(e0, e1);
  assert.notDeepEqual(e0, s8);
  assert.deepEqual(e0, e0again);
  // Batch size does not change the order, only how it is cut.
  assert.deepEqual(await idsOf(ds, 'train', 7, { shuffle: true, seed: 7, epoch: 0 }), e0);
});

test('limits cap the training pool and the test set', async (t) => {
  const dir = await tempDir(t);
  await writeIdxDir(dir, { train: 100, test: 50 });
  const ds = await openDataset(`idx:${dir}`, { limit: { train: 20, test: 10 }, valFraction: 0.5, seed: 2 });
  assert.equal(ds.trainSize, 10);
  assert.equal(ds.valSize, 10);
  assert.equal(ds.testSize, 10);
  const test = await idsOf(ds, 'test', 4);
  assert.equal(new Set(test).size, 10);
  assert.deepEqual(test, [...test].sort((x, y) => x - y));
});

test('batches rejects a bad batch size and an unknown split up front', async () => {
  const ds = await openDataset('synthetic:train=10,test=5');
  assert.throws(() => ds.batches('train', 0), morphError('MORPH_ERR_BAD_ARGUMENT', /batchSize must be a positive integer; got 0/));
  assert.throws(() => ds.batches('train', 2.5), morphError('MORPH_ERR_BAD_ARGUMENT', /batchSize/));
  assert.throws(() => ds.batches('nope' as 'train', 2), morphError('MORPH_ERR_BAD_ARGUMENT', /no split "nope"/));
});
