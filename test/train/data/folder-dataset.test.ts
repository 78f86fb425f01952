import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { encode as encodeJpeg } from 'jpeg-js';
import { PNG } from 'pngjs';
import { decodeImage, openDataset } from '../../../src/train/data/index.ts';
import { collect, morphError, tempDir } from './helpers.ts';

/** A w×h PNG filled with one RGB colour. */
function png(w: number, h: number, rgb: readonly [number, number, number]): Buffer {
  const img = new PNG({ width: w, height: h });
  for (let i = 0; i < w * h; i++) img.data.set([rgb[0], rgb[1], rgb[2], 255], 4 * i);
  return PNG.sync.write(img);
}

function jpeg(w: number, h: number, grey: number): Buffer {
  const data = Buffer.alloc(w * h * 4, grey);
  return encodeJpeg({ width: w, height: h, data }, 95).data;
}

/** Classes "b_red" (2 PNGs), "a_grey" (a PNG and a JPEG), "c_blue" (1 PNG), all 4×4. */
async function writeFolder(root: string): Promise<void> {
  await mkdir(join(root, 'b_red'), { recursive: true });
  await mkdir(join(root, 'a_grey'));
  await mkdir(join(root, 'c_blue'));
  await mkdir(join(root, '.hidden'));
  await writeFile(join(root, 'b_red', '1.png'), png(4, 4, [255, 0, 0]));
  await writeFile(join(root, 'b_red', '2.PNG'), png(4, 4, [255, 0, 0]));
  await writeFile(join(root, 'b_red', 'notes.txt'), 'ignored');
  await writeFile(join(root, 'a_grey', 'x.png'), png(4, 4, [128, 128, 128]));
  await writeFile(join(root, 'a_grey', 'y.jpg'), jpeg(4, 4, 128));
  await writeFile(join(root, 'c_blue', 'z.png'), png(4, 4, [0, 0, 255]));
}

test('folder:DIR labels classes alphabetically and decodes PNG and JPEG as RGB by default', async (t) => {
  const root = await tempDir(t);
  await writeFolder(root);
  const ds = await openDataset(`folder:${root}`, { valFraction: 0 });
  assert.deepEqual(ds.classNames, ['a_grey', 'b_red', 'c_blue']);
  assert.equal(ds.numClasses, 3);
  assert.deepEqual(ds.imageShape, [4, 4, 3]);
  assert.equal(ds.trainSize, 5);
  assert.equal(ds.testSize, undefined);
  const [b] = await collect(ds, 'train', 10);
  assert.deepEqual(Array.from(b.y), [0, 0, 1, 1, 2]);
  const px = (k: number): number[] => Array.from(b.x.subarray(k * 48, k * 48 + 3));
  assert.deepEqual(px(0), [128 / 255, 128 / 255, 128 / 255].map(Math.fround));
  for (const v of px(1)) assert.ok(Math.abs(v - 128 / 255) < 0.03, `jpeg grey ${v}`);
  assert.deepEqual(px(2), [1, 0, 0]);
  assert.deepEqual(px(4), [0, 0, 1]);
});

test('folder:DIR converts to grey and resizes to a requested shape', async (t) => {
  const root = await tempDir(t);
  await writeFolder(root);
  await writeFile(join(root, 'c_blue', 'big.png'), png(9, 7, [0, 0, 255]));
  const ds = await openDataset(`folder:${root}`, { valFraction: 0, imageShape: [2, 3, 1], resize: 'nearest' });
  assert.deepEqual(ds.imageShape, [2, 3, 1]);
  const [b] = await collect(ds, 'train', 10);
  assert.equal(b.n, 6);
  assert.equal(b.x.length, 6 * 6);
  // Red through BT.601 luma is 0.299.
  assert.ok(Math.abs(b.x[2 * 6] - 0.299) < 1e-6);
  const grey = await openDataset(`folder:${root}`, { valFraction: 0, channels: 1, imageShape: undefined });
  assert.deepEqual(grey.imageShape, [4, 4, 1]);
});

test('folder:DIR without imageShape needs all images the same size, and says how to fix it', async (t) => {
  const root = await tempDir(t);
  await writeFolder(root);
  await writeFile(join(root, 'c_blue', 'odd.png'), png(5, 4, [0, 0, 255]));
  const ds = await openDataset(`folder:${root}`, { valFraction: 0 });
  await assert.rejects(collect(ds, 'train', 10), morphError('MORPH_ERR_DATASET', /odd\.png is 5×4/, /pass imageShape/));
});

test('an unreadable image gives an error naming the file', async (t) => {
  const root = await tempDir(t);
  await writeFolder(root);
  await writeFile(join(root, 'c_blue', 'broken.png'), Buffer.concat([png(4, 4, [0, 0, 255]).subarray(0, 40)]));
  await writeFile(join(root, 'a_grey', 'fake.jpg'), 'this is text');
  const ds = await openDataset(`folder:${root}`, { valFraction: 0, imageShape: [4, 4, 3] });
  await assert.rejects(collect(ds, 'train', 100), morphError('MORPH_ERR_DATASET', /Cannot decode image .*(broken\.png|fake\.jpg)/));
  assert.throws(() => decodeImage(Buffer.from('this is text'), 'fake.jpg'), morphError('MORPH_ERR_DATASET', /fake\.jpg: it is neither a PNG nor a JPEG/));
  const truncatedPng = png(4, 4, [0, 0, 255]);
  assert.throws(() => decodeImage(truncatedPng.subarray(0, 40), 'broken.png'), morphError('MORPH_ERR_DATASET', /broken\.png: PNG/));
  const truncatedJpeg = jpeg(8, 8, 10);
  assert.throws(() => decodeImage(truncatedJpeg.subarray(0, 30), 'cut.jpg'), morphError('MORPH_ERR_DATASET', /cut\.jpg: JPEG/));
});

test('a huge PNG is refused before decoding', () => {
  const header = png(4, 4, [0, 0, 0]);
  header.writeUInt32BE(100_000, 16);
  header.writeUInt32BE(100_000, 20);
  assert.throws(() => decodeImage(header, 'huge.png'), morphError('MORPH_ERR_LIMIT', /huge\.png is 100000×100000/));
});

test('folder:DIR layout errors: missing folder, one class, empty class', async (t) => {
  const root = await tempDir(t);
  await assert.rejects(openDataset(`folder:${join(root, 'nope')}`), morphError('MORPH_ERR_NOT_FOUND', /nope/));
  await mkdir(join(root, 'only'));
  await writeFile(join(root, 'only', 'a.png'), png(2, 2, [0, 0, 0]));
  await assert.rejects(openDataset(`folder:${root}`), morphError('MORPH_ERR_DATASET', /1 class subfolder/, /at least 2/));
  await mkdir(join(root, 'empty'));
  await assert.rejects(openDataset(`folder:${root}`), morphError('MORPH_ERR_DATASET', /empty has no \.png\/\.jpg\/\.jpeg images/));
});
