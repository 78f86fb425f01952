import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { MorphError } from '../../src/errors.ts';
import { encodeWeights, writeTfjsModel } from '../../src/export/tfjs-model.ts';
import { analyzeChannels } from '../../src/graph/channel-groups.ts';
import { parseModel } from '../../src/graph/parse.ts';
import { rebuild, type RebuiltModel } from '../../src/graph/rebuild.ts';
import { identitySelection } from '../../src/graph/widths.ts';
import { seedModel } from '../../src/seeds/index.ts';
import { loadLayersModelDir } from '../helpers/tfjs-io.ts';

let root: string;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'morphnet-export-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

function mobilenet(): RebuiltModel {
  const parsed = parseModel(seedModel('mobilenet'));
  const analysis = analyzeChannels(parsed.graph);
  return rebuild(parsed.graph, analysis, identitySelection(analysis), null);
}

const model = mobilenet();

describe('encodeWeights', () => {
  it('concatenates float32 little-endian in manifest order', () => {
    const m: RebuiltModel = {
      modelTopology: model.modelTopology,
      weights: [
        { name: 'a/kernel', shape: [2], data: Float32Array.from([1.5, -2]) },
        { name: 'b/bias', shape: [1], data: Float32Array.from([3]) },
      ],
    };
    const bytes = encodeWeights(m);
    assert.equal(bytes.byteLength, 12);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    assert.deepEqual([view.getFloat32(0, true), view.getFloat32(4, true), view.getFloat32(8, true)], [1.5, -2, 3]);
  });
});

describe('writeTfjsModel', () => {
  it('writes model.json + weights.bin that tfjs loads, sized as the manifest says', async () => {
    const dir = await writeTfjsModel(join(root, 'nested', 'out'), model);
    assert.deepEqual((await readdir(dir)).sort(), ['model.json', 'weights.bin']);
    const json = JSON.parse(await readFile(join(dir, 'model.json'), 'utf8'));
    assert.equal(json.format, 'layers-model');
    const expectedBytes = json.weightsManifest[0].weights.reduce((a: number, w: { shape: number[] }) => a + 4 * w.shape.reduce((x, y) => x * y, 1), 0);
    assert.equal((await readFile(join(dir, 'weights.bin'))).byteLength, expectedBytes);
    const m = await loadLayersModelDir(dir);
    try {
      const x = tf.zeros([1, 28, 28, 1]);
      const y = m.predict(x) as tf.Tensor;
      assert.deepEqual(y.shape, [1, 10]);
      tf.dispose([x, y]);
    } finally {
      m.dispose();
    }
    // No temporary directory is left beside the output.
    assert.deepEqual(await readdir(join(root, 'nested')), ['out']);
  });

  it('writes into an existing empty directory', async () => {
    const dir = join(root, 'empty');
    await mkdir(dir);
    await writeTfjsModel(dir, model);
    assert.deepEqual((await readdir(dir)).sort(), ['model.json', 'weights.bin']);
  });

  it('refuses a non-empty directory (MORPH_ERR_OUTPUT_EXISTS) and leaves it untouched', async () => {
    const dir = join(root, 'busy');
    await mkdir(dir);
    await writeFile(join(dir, 'keep.txt'), 'mine');
    await assert.rejects(writeTfjsModel(dir, model), (e: unknown) => e instanceof MorphError && e.code === 'MORPH_ERR_OUTPUT_EXISTS' && e.message.includes(dir));
    assert.deepEqual(await readdir(dir), ['keep.txt']);
    assert.deepEqual((await readdir(root)).filter((n) => n.startsWith('.')), []);
  });

  it('replaces a non-empty directory with overwrite, and writes extra files', async () => {
    const dir = join(root, 'replace');
    await mkdir(dir);
    await writeFile(join(dir, 'old.txt'), 'old');
    await writeTfjsModel(dir, model, { overwrite: true, extraFiles: { 'structure.json': { conv1: 16 } } });
    assert.deepEqual((await readdir(dir)).sort(), ['model.json', 'structure.json', 'weights.bin']);
    assert.deepEqual(JSON.parse(await readFile(join(dir, 'structure.json'), 'utf8')), { conv1: 16 });
  });
});
