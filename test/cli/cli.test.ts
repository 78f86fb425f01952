/**
 * The `morphnet` CLI as users run it: the real bin in a child process, real files in a temp dir.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { mobilenetV1, residualNet } from '../fixtures/reference-models.ts';
import { loadLayersModelDir, saveLayersModel, writeJson } from '../helpers/tfjs-io.ts';

const BIN = new URL('../../cli/bin.js', import.meta.url).pathname;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function morphnet(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'morphnet-cli-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('morphnet inspect', () => {
  it('counts MobileNet v1 (224) within 0.5% of its hand count and params exactly as countParams', async () => {
    const ref = mobilenetV1();
    const path = await writeJson(join(dir, 'mobilenet', 'model.json'), ref.modelJson);
    const r = await morphnet('inspect', path, '--json');
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.layers, ref.model.layers.length);
    assert.ok(Math.abs(out.macs - ref.handMacs) / ref.handMacs < 0.005, `macs ${out.macs} vs hand ${ref.handMacs}`);
    assert.ok(Math.abs(out.macs - 569e6) / 569e6 < 0.005);
    assert.equal(out.flops, 2 * out.macs);
    assert.equal(out.params, ref.model.countParams());
    assert.ok(Array.isArray(out.groups));
    for (const g of out.groups) {
      assert.equal(typeof g.id, 'number');
      assert.ok(Array.isArray(g.layers));
      assert.equal(typeof g.channels, 'number');
      assert.equal(typeof g.regularized, 'boolean');
    }
    const input = out.groups.find((g: { layers: string[] }) => g.layers.includes(ref.model.inputs[0].sourceLayer.name));
    assert.equal(input.regularized, false);
  });

  it('prints a readable per-layer table without --json', async () => {
    const r = await morphnet('inspect', '--seed', 'resnet');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^layer\s+class\s+output\s+MACs\s+params\s+group/m);
    assert.match(r.stdout, /stage1_block1_add\s+Add\s+\[\?,28,28,16\]/);
    assert.match(r.stdout, /total: .* MACs/);
  });

  it('answers --help for every command with exit 0', async () => {
    for (const c of ['inspect', 'resize', 'prune']) {
      const r = await morphnet(c, '--help');
      assert.equal(r.code, 0);
      assert.match(r.stdout, new RegExp(`Usage: morphnet ${c}`));
    }
    const top = await morphnet('--help');
    assert.equal(top.code, 0);
    assert.match(top.stdout, /inspect/);
  });
});

describe('morphnet bad input', () => {
  const cases: [string, () => Promise<string[]>, RegExp][] = [
    ['a missing file', async () => ['inspect', join(dir, 'nope.json')], /MORPH_ERR_NOT_FOUND/],
    ['not JSON', async () => ['inspect', await writeText('bad.json', '{not json')], /is not JSON.*MORPH_ERR_NOT_JSON/],
    ['JSON that is not a model', async () => ['inspect', await writeText('nomodel.json', '{"foo": 1}')], /MORPH_ERR_NOT_A_MODEL/],
    ['an unknown flag', async () => ['inspect', '--seed', 'vgg', '--frobnicate'], /--frobnicate.*MORPH_ERR_BAD_ARGUMENT/],
    ['an unknown seed', async () => ['inspect', '--seed', 'alexnet'], /mobilenet, resnet, vgg/],
    ['resize without --out', async () => ['resize', '--seed-model', 'vgg', '--multiplier', '0.5'], /--out is required/],
    ['resize with a negative multiplier', async () => ['resize', '--seed-model', 'vgg', '--multiplier=-1', '--out', join(dir, 'x')], /--multiplier "-1" is not a positive number/],
    ['resize with a zero multiplier', async () => ['resize', '--seed-model', 'vgg', '--multiplier', '0', '--out', join(dir, 'x')], /--multiplier "0" is not a positive number/],
    ['resize with both --multiplier and --structure', async () => ['resize', '--seed-model', 'vgg', '--multiplier', '0.5', '--structure', 's.json', '--out', join(dir, 'x')], /exactly one/],
    ['prune without weights', async () => ['prune', await writeText('topo.json', JSON.stringify(residualNet().modelJson)), '--threshold', '0.01', '--out', join(dir, 'x')], /no weightsManifest.*MORPH_ERR_WEIGHTS_MISSING/],
  ];
  for (const [what, args, message] of cases) {
    it(`exits 2 with one clear message for ${what}`, async () => {
      const r = await morphnet(...(await args()));
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, message);
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
      assert.equal(existsSync(join(dir, 'x')), false, 'no partial output directory');
    });
  }

  it('prints {"error": {code, message}} with --json', async () => {
    const r = await morphnet('inspect', join(dir, 'nope.json'), '--json');
    assert.equal(r.code, 2);
    const out = JSON.parse(r.stdout);
    assert.equal(out.error.code, 'MORPH_ERR_NOT_FOUND');
    assert.match(out.error.message, /nope\.json/);
  });

  async function writeText(name: string, text: string): Promise<string> {
    const path = join(dir, name);
    await writeFile(path, text);
    return path;
  }
});

describe('morphnet resize and prune', () => {
  it('resize --multiplier writes a model that tfjs loads and runs with the same input/output shapes', async () => {
    const out = join(dir, 'resnet-half');
    const r = await morphnet('resize', '--seed-model', 'resnet', '--multiplier', '0.5', '--out', out, '--json');
    assert.equal(r.code, 0, r.stderr);
    const summary = JSON.parse(r.stdout);
    assert.ok(summary.after.macs < summary.before.macs / 3);
    assert.deepEqual((await readdir(out)).sort(), ['model.json', 'structure.json', 'weights.bin']);
    const model = await loadLayersModelDir(out);
    const y = model.predict(tf.randomNormal([2, 28, 28, 1])) as tf.Tensor;
    assert.deepEqual(y.shape, [2, 10]);
    const structure = JSON.parse(await readFile(join(out, 'structure.json'), 'utf8'));
    assert.equal(structure.stem_conv, 8);
    assert.equal(structure.predictions, 10);
  });

  it('resize --structure applies the widths and refuses conflicts in one group, naming both layers', async () => {
    const good = join(dir, 'good.json');
    await writeFile(good, JSON.stringify({ stem_conv: 12, stage2_block1_conv1: 7 }));
    const out = join(dir, 'resnet-structured');
    const r = await morphnet('resize', '--seed-model', 'resnet', '--structure', good, '--out', out);
    assert.equal(r.code, 0, r.stderr);
    const model = await loadLayersModelDir(out);
    assert.equal((model.getLayer('stage1_block1_conv2').getConfig() as { filters: number }).filters, 12);
    assert.equal((model.getLayer('stage2_block1_conv1').getConfig() as { filters: number }).filters, 7);

    const conflict = join(dir, 'conflict.json');
    await writeFile(conflict, JSON.stringify({ stem_conv: 12, stage1_block1_conv2: 8 }));
    const bad = await morphnet('resize', '--seed-model', 'resnet', '--structure', conflict, '--out', join(dir, 'never'));
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /"stem_conv" \(12\) and "stage1_block1_conv2" \(8\)/);
    assert.equal(existsSync(join(dir, 'never')), false);
  });

  it('prune removes channels with gamma = beta = 0 and keeps the outputs', async () => {
    const ref = residualNet();
    const bn = ref.model.getLayer('res1_conv1_bn');
    const [gamma, beta, mean, variance] = bn.getWeights();
    const dead = tf.tensor1d(Array.from({ length: gamma.shape[0] }, (_, i) => (i % 2 === 0 ? 0 : 1)));
    bn.setWeights([gamma.mul(dead), beta.mul(dead), mean, variance]);
    const src = await saveLayersModel(ref.model, join(dir, 'res-src'));
    const out = join(dir, 'res-pruned');
    const r = await morphnet('prune', src.modelJsonPath, '--threshold', '0.001', '--out', out, '--json');
    assert.equal(r.code, 0, r.stderr);
    const summary = JSON.parse(r.stdout);
    const group = summary.alive.find((g: { layers: string[] }) => g.layers.includes('res1_conv1'));
    assert.equal(group.alive, group.channels / 2);
    const pruned = await loadLayersModelDir(out);
    const x = tf.randomNormal([3, ...ref.model.inputs[0].shape.slice(1)] as number[]);
    const diff = (ref.model.predict(x) as tf.Tensor).sub(pruned.predict(x) as tf.Tensor).abs().max().dataSync()[0];
    assert.ok(diff < 1e-4, `max abs diff ${diff}`);
  });

  it('refuses a non-empty output directory and leaves it untouched', async () => {
    const out = join(dir, 'occupied');
    await writeJson(join(out, 'keep.txt'), 'mine');
    const r = await morphnet('resize', '--seed-model', 'vgg', '--multiplier', '0.5', '--out', out);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /MORPH_ERR_OUTPUT_EXISTS/);
    assert.deepEqual(await readdir(out), ['keep.txt']);
  });
});
