import assert from 'node:assert/strict';
import { test } from 'node:test';
import { convertChannels, resizeImage } from '../../../src/train/data/image-ops.ts';

test('resizeImage: nearest picks source pixels, bilinear interpolates with half-pixel centres', () => {
  const src = Float32Array.from([0, 1, 2, 3]); // 2×2×1
  const near = new Float32Array(16);
  resizeImage(src, 2, 2, 1, 4, 4, 'nearest', near);
  assert.deepEqual(Array.from(near), [0, 0, 1, 1, 0, 0, 1, 1, 2, 2, 3, 3, 2, 2, 3, 3]);
  const bil = new Float32Array(16);
  resizeImage(src, 2, 2, 1, 4, 4, 'bilinear', bil);
  assert.deepEqual(Array.from(bil.subarray(0, 4)), [0, 0.25, 0.75, 1]);
  const down = new Float32Array(1);
  resizeImage(src, 2, 2, 1, 1, 1, 'bilinear', down);
  assert.equal(down[0], 1.5);
});

test('convertChannels: grey to RGB replicates, RGB to grey uses luma, RGBA drops alpha', () => {
  const rgb = new Float32Array(6);
  convertChannels([0.5, 1], 2, 1, 3, rgb);
  assert.deepEqual(Array.from(rgb), [0.5, 0.5, 0.5, 1, 1, 1]);
  const grey = new Float32Array(1);
  convertChannels([255, 255, 255, 0], 1, 4, 1, grey, 1 / 255);
  assert.ok(Math.abs(grey[0] - 1) < 1e-6);
  const three = new Float32Array(3);
  convertChannels([255, 0, 255, 7], 1, 4, 3, three, 1 / 255);
  assert.deepEqual(Array.from(three), [1, 0, 1]);
});
