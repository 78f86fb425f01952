import assert from 'node:assert/strict';
import { writeFile, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { loadIdxDataset, openDataset, parseIdx, readIdxFile } from '../../../src/train/data/index.ts';
import { collect, idxBytes, indexedImages, morphError, sampleIds, tempDir, writeIdxDir } from './helpers.ts';

test('parseIdx reads dims and data of a ubyte file', () => {
  const arr = parseIdx(idxBytes([2, 2, 3], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]), 'x');
  assert.deepEqual(arr.dims, [2, 2, 3]);
  assert.deepEqual(Array.from(arr.data), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
});

test('parseIdx rejects a wrong magic number, other types, truncation and trailing bytes, naming the file', () => {
  const good = idxBytes([2, 2, 2], [0, 1, 2, 3, 4, 5, 6, 7]);
  const badMagic = Buffer.from(good);
  badMagic[0] = 0x1a;
  assert.throws(() => parseIdx(badMagic, 'f.idx'), morphError('MORPH_ERR_DATASET', /f\.idx/, /wrong magic number 0x1a000803/));
  const floatType = Buffer.from(good);
  floatType[2] = 0x0d;
  assert.throws(() => parseIdx(floatType, 'f.idx'), morphError('MORPH_ERR_DATASET', /f\.idx/, /type 0x0d \(float\)/));
  assert.throws(() => parseIdx(good.subarray(0, 3), 'f.idx'), morphError('MORPH_ERR_DATASET', /truncated/));
  assert.throws(() => parseIdx(good.subarray(0, 10), 'f.idx'), morphError('MORPH_ERR_DATASET', /truncated.*16-byte header/));
  assert.throws(() => parseIdx(good.subarray(0, good.length - 1), 'f.idx'), morphError('MORPH_ERR_DATASET', /f\.idx is truncated: .*2×2×2 = 8 bytes .* only 7/));
  assert.throws(() => parseIdx(Buffer.concat([good, Buffer.from([0])]), 'f.idx'), morphError('MORPH_ERR_DATASET', /1 bytes after/));
});

test('readIdxFile reads plain and gzipped files the same, and reports a truncated gzip', async (t) => {
  const dir = await tempDir(t);
  const bytes = idxBytes([3], [0, 1, 2]);
  await writeFile(join(dir, 'a'), bytes);
  await writeFile(join(dir, 'a.gz'), gzipSync(bytes));
  const plain = await readIdxFile(join(dir, 'a'));
  const gz = await readIdxFile(join(dir, 'a.gz'));
  assert.deepEqual(gz.dims, plain.dims);
  assert.deepEqual(Array.from(gz.data), Array.from(plain.data));
  const z = gzipSync(idxBytes([1000], new Uint8Array(1000).map((_, i) => i % 7)));
  await writeFile(join(dir, 'cut.gz'), z.subarray(0, z.length - 12));
  await assert.rejects(readIdxFile(join(dir, 'cut.gz')), morphError('MORPH_ERR_DATASET', /cut\.gz/, /gzip/));
  await assert.rejects(readIdxFile(join(dir, 'missing')), morphError('MORPH_ERR_NOT_FOUND', /missing/));
});

test('readIdxFile enforces maxBytes on the file and on the gunzipped data', async (t) => {
  const dir = await tempDir(t);
  const bytes = idxBytes([4000], new Uint8Array(4000));
  await writeFile(join(dir, 'big'), bytes);
  await writeFile(join(dir, 'big.gz'), gzipSync(bytes));
  await assert.rejects(readIdxFile(join(dir, 'big'), { maxBytes: 1000 }), morphError('MORPH_ERR_LIMIT', /big/, /1000 bytes/));
  await assert.rejects(readIdxFile(join(dir, 'big.gz'), { maxBytes: 1000 }), morphError('MORPH_ERR_LIMIT', /decompresses/));
});

for (const gzip of [false, true]) {
  test(`idx:DIR loads ${gzip ? 'gzipped' : 'plain'} train and test files`, async (t) => {
    const dir = await tempDir(t);
    await writeIdxDir(dir, { train: 50, test: 20, rows: 4, cols: 3, classes: 3, gzip });
    const ds = await openDataset(`idx:${dir}`, { valFraction: 0.2, seed: 3 });
    assert.deepEqual(ds.imageShape, [4, 3, 1]);
    assert.equal(ds.numClasses, 3);
    assert.equal(ds.trainSize, 40);
    assert.equal(ds.valSize, 10);
    assert.equal(ds.testSize, 20);
    const batches = await collect(ds, 'test', 8);
    assert.deepEqual(batches.map((b) => b.n), [8, 8, 4]);
    const ids = batches.flatMap((b) => sampleIds(b, 12));
    assert.deepEqual(ids, Array.from({ length: 20 }, (_, i) => i));
    assert.deepEqual(batches.flatMap((b) => Array.from(b.y)), ids.map((i) => i % 3));
    for (const b of batches) for (const v of b.x) assert.ok(v >= 0 && v <= 1);
  });
}

test('idx:DIR without test files has no test split', async (t) => {
  const dir = await tempDir(t);
  await writeIdxDir(dir, { train: 10 });
  const ds = await openDataset(`idx:${dir}`);
  assert.equal(ds.testSize, undefined);
  assert.throws(() => ds.batches('test', 4), morphError('MORPH_ERR_BAD_ARGUMENT', /no test set/));
});

test('idx:DIR reports an image/label count mismatch naming both files', async (t) => {
  const dir = await tempDir(t);
  await writeIdxDir(dir, { train: 10 });
  await writeFile(join(dir, 'train-labels-idx1-ubyte'), idxBytes([9], new Uint8Array(9)));
  await assert.rejects(
    loadIdxDataset(dir),
    morphError('MORPH_ERR_DATASET', /count mismatch/, /train-images-idx3-ubyte holds 10 images/, /train-labels-idx1-ubyte holds 9 labels/),
  );
});

test('idx:DIR reports a truncated images file', async (t) => {
  const dir = await tempDir(t);
  await writeIdxDir(dir, { train: 10 });
  await truncate(join(dir, 'train-images-idx3-ubyte'), 16 + 50);
  await assert.rejects(loadIdxDataset(dir), morphError('MORPH_ERR_DATASET', /train-images-idx3-ubyte is truncated/, /120 bytes of data but only 50/));
});

test('idx:DIR reports a wrong magic number and swapped files', async (t) => {
  const dir = await tempDir(t);
  await writeIdxDir(dir, { train: 10 });
  await writeFile(join(dir, 'train-images-idx3-ubyte'), Buffer.from('not an idx file at all'));
  await assert.rejects(loadIdxDataset(dir), morphError('MORPH_ERR_DATASET', /train-images-idx3-ubyte/, /wrong magic number/));
  const { images, labels } = indexedImages(10, 4, 3, 3);
  await writeFile(join(dir, 'train-images-idx3-ubyte'), labels);
  await writeFile(join(dir, 'train-labels-idx1-ubyte'), images);
  await assert.rejects(loadIdxDataset(dir), morphError('MORPH_ERR_DATASET', /train-images-idx3-ubyte has 1 dimensions/));
});

test('idx:DIR reports labels out of range, for a given class count and for test labels beyond training ones', async (t) => {
  const dir = await tempDir(t);
  await writeIdxDir(dir, { train: 10, test: 4, classes: 3 });
  await assert.rejects(
    openDataset(`idx:${dir}`, { numClasses: 2 }),
    morphError('MORPH_ERR_DATASET', /train-labels-idx1-ubyte has label 2 at index 2, out of range \[0, 1\]/),
  );
  await writeFile(join(dir, 't10k-labels-idx1-ubyte'), idxBytes([4], [0, 1, 7, 2]));
  await assert.rejects(
    loadIdxDataset(dir),
    morphError('MORPH_ERR_DATASET', /t10k-labels-idx1-ubyte has label 7 at index 2, out of range \[0, 2\]/),
  );
});

test('idx:DIR reports a missing directory, missing training files and a lone test file', async (t) => {
  const dir = await tempDir(t);
  await assert.rejects(openDataset(`idx:${join(dir, 'nope')}`), morphError('MORPH_ERR_NOT_FOUND', /nope does not exist/));
  await assert.rejects(loadIdxDataset(dir), morphError('MORPH_ERR_NOT_FOUND', /lacks train-images-idx3-ubyte/, /train-labels-idx1-ubyte/));
  await writeIdxDir(dir, { train: 10 });
  await writeFile(join(dir, 't10k-images-idx3-ubyte'), indexedImages(2, 4, 3, 3).images);
  await assert.rejects(loadIdxDataset(dir), morphError('MORPH_ERR_DATASET', /t10k-images-idx3-ubyte but not its partner t10k-labels-idx1-ubyte/));
});

test('fashion-mnist reports a missing directory with the apt package to install', async (t) => {
  const dir = await tempDir(t);
  await assert.rejects(
    openDataset('fashion-mnist', { fashionMnistDir: join(dir, 'absent') }),
    morphError('MORPH_ERR_NOT_FOUND', /absent/, /apt-get install dataset-fashion-mnist/),
  );
});
