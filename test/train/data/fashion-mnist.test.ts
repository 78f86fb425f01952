/**
 * Reads the real Fashion-MNIST from Debian's `dataset-fashion-mnist` package at its default
 * path. CI installs the package; without it this test fails and says what to install.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { FASHION_MNIST_APT_PACKAGE, FASHION_MNIST_DIR, openDataset } from '../../../src/train/data/index.ts';

test('fashion-mnist: 60000 train (54000 + 6000 val) and 10000 test 28×28×1 images, labels 0–9', async () => {
  assert.ok(
    existsSync(FASHION_MNIST_DIR),
    `Fashion-MNIST is missing at ${FASHION_MNIST_DIR}: install it with \`apt-get install -y ${FASHION_MNIST_APT_PACKAGE}\`.`,
  );
  const ds = await openDataset('fashion-mnist');
  assert.deepEqual(ds.imageShape, [28, 28, 1]);
  assert.equal(ds.numClasses, 10);
  assert.equal(ds.classNames?.[9], 'Ankle boot');
  assert.equal(ds.trainSize + ds.valSize, 60000);
  assert.equal(ds.valSize, 6000);
  assert.equal(ds.testSize, 10000);
  const counts = new Array<number>(10).fill(0);
  let seen = 0;
  let max = 0;
  for await (const b of ds.batches('test', 2000)) {
    for (const y of b.y) {
      assert.ok(y >= 0 && y < 10, `label ${y}`);
      counts[y]++;
    }
    for (const v of b.x) if (v > max) max = v;
    seen += b.n;
  }
  assert.equal(seen, 10000);
  // Fashion-MNIST's test set has exactly 1000 images per class.
  assert.deepEqual(counts, new Array(10).fill(1000));
  assert.equal(max, 1);
});
