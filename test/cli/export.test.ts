/** `morphnet export` as users run it: the real bin in a child process, real files. */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { parseModel } from '../../src/graph/parse.ts';
import { randomArray, seededRandom } from '../../src/ops/spec-weights.ts';
import { loadTfliteModel } from '../../device-agent/node/tflite-runtime.ts';
import { seedModel } from '../../src/seeds/index.ts';
import { buildTfModel } from '../../src/train/tf-model.ts';
import { saveLayersModel, writeJson } from '../helpers/tfjs-io.ts';

const BIN = new URL('../../cli/bin.js', import.meta.url).pathname;

function morphnet(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

let dir: string;
before(async () => {
  await tf.setBackend('cpu');
  dir = await mkdtemp(join(tmpdir(), 'morphnet-export-cli-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('morphnet export', () => {
  it('prints --help', async () => {
    const r = await morphnet('export', '--help');
    assert.equal(r.code, 0);
    assert.match(r.stdout, /--tflite OUT/);
    assert.match(r.stdout, /--random-weights/);
  });

  it('exports a trained-looking resnet whose .tflite matches tfjs', async () => {
    const model = await buildTfModel(parseModel(seedModel('resnet')).modelConfig, null);
    const rand = seededRandom(11);
    for (const layer of model.layers) {
      for (const w of layer.weights) {
        if (!/gamma|beta|moving_mean|moving_variance/.test(w.originalName)) continue;
        const n = (w.shape as number[]).reduce((a, b) => a * b, 1);
        const v = randomArray(n, 0.5, rand);
        if (/gamma|moving_variance/.test(w.originalName)) v.forEach((x, i) => (v[i] = 1 + x));
        w.write(tf.tensor(v, w.shape as number[]));
      }
    }
    const saved = await saveLayersModel(model, join(dir, 'resnet'));
    const out = join(dir, 'resnet.tflite');
    const r = await morphnet('export', saved.modelJsonPath, '--tflite', out, '--json');
    assert.equal(r.code, 0, r.stderr);
    const summary = JSON.parse(r.stdout);
    assert.equal(summary.randomWeights, false);
    // stem + 6 blocks × 2 + 2 projections
    assert.equal(summary.foldedBatchNorms, 15);
    const tflite = await loadTfliteModel(new Uint8Array(await readFile(out)));
    const x = randomArray(28 * 28, 1, seededRandom(5));
    const [got] = tflite.run([x]);
    const input = tf.tensor(x, [1, 28, 28, 1]);
    const want = (model.predict(input) as tf.Tensor).dataSync();
    let diff = 0;
    for (let i = 0; i < want.length; i++) diff = Math.max(diff, Math.abs(got[i] - want[i]));
    assert.ok(diff < 1e-4, `max abs diff ${diff}`);
    tflite.dispose();
    model.dispose();
    // Atomic write: no temp file left behind.
    assert.deepEqual((await readdir(dir)).filter((f) => f.endsWith('.tmp')), []);
  });

  it('refuses a model without weights unless --random-weights is given', async () => {
    const path = await writeJson(join(dir, 'topology', 'model.json'), seedModel('mobilenet'));
    const out = join(dir, 'mobilenet.tflite');
    const refused = await morphnet('export', path, '--tflite', out, '--json');
    assert.equal(refused.code, 2);
    assert.equal(JSON.parse(refused.stdout).error.code, 'MORPH_ERR_EXPORT');
    assert.match(refused.stderr, /give a model\.json saved with its weights, or pass --random-weights/);
    await assert.rejects(readFile(out));
    const ok = await morphnet('export', path, '--tflite', out);
    assert.equal(ok.code, 2);
    const random = await morphnet('export', path, '--tflite', out, '--random-weights');
    assert.equal(random.code, 0, random.stderr);
    assert.match(random.stdout, /wrote .*mobilenet\.tflite: .* 15 batch norms folded, 15 activations fused \(random weights\)/);
    const bytes = await readFile(out);
    assert.equal(bytes.subarray(4, 8).toString(), 'TFL3');
  });

  it('names a missing --tflite flag and a missing output folder', async () => {
    const path = await writeJson(join(dir, 'topology2', 'model.json'), seedModel('vgg'));
    const noFlag = await morphnet('export', path);
    assert.equal(noFlag.code, 2);
    assert.match(noFlag.stderr, /--tflite is required/);
    const noDir = await morphnet('export', path, '--tflite', join(dir, 'nope', 'x.tflite'), '--random-weights');
    assert.equal(noDir.code, 2);
    assert.match(noDir.stderr, /does not exist/);
  });
});
