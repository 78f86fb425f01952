/** `morphnet search` as users run it: the real bin, synthetic data, a handful of steps. */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

const BIN = new URL('../../cli/bin.js', import.meta.url).pathname;
const DATA = 'synthetic:h=28,w=28,c=1,classes=10,train=160,test=40';

function morphnet(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { timeout: 180_000, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'morphnet-search-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('morphnet search', () => {
  it('writes structure.json, the trained model, report.json, shrunk/ and baseline/', async () => {
    const out = join(dir, 'run');
    const r = await morphnet('search', '--seed', 'mobilenet', '--seed', '3', '--data', DATA, '--target', '0.5x', '--strength', '20', '--shrink-epochs', '1', '--final-epochs', '1', '--max-steps', '2', '--batch-size', '16', '--baseline', '--engine', 'tfjs', '--backend', 'wasm', '--out', out, '--json');
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual((await readdir(out)).sort(), ['baseline', 'model.json', 'report.json', 'shrunk', 'structure.json', 'weights.bin']);
    const report = JSON.parse(await readFile(join(out, 'report.json'), 'utf8'));
    assert.deepEqual(JSON.parse(r.stdout), report);
    assert.equal(report.options.seed, 3);
    assert.equal(report.engine.name, 'tfjs');
    assert.match(report.engine.description, /backend wasm/);
    for (const net of [report.learned, report.baseline]) assert.match(net.engine, /^tfjs engine, backend wasm/);
    assert.match(report.rounds[0].engine, /^tfjs engine/);
    assert.ok(report.learned.flops <= report.target.value);
    assert.ok(report.baseline.flops <= report.target.value);
    for (const net of [report.learned, report.baseline]) {
      assert.equal(typeof net.accuracy, 'number');
      assert.equal(typeof net.macs, 'number');
      assert.equal(typeof net.params, 'number');
      assert.equal(typeof net.trainSeconds, 'number');
    }
    const structure = JSON.parse(await readFile(join(out, 'structure.json'), 'utf8'));
    assert.equal(structure.predictions, 10);
    assert.deepEqual(structure, report.learned.structure);
    // Progress went to stderr as JSON lines (not a terminal).
    const events = r.stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
    assert.ok(events.some((e) => e.event === 'phase' && e.phase === 'expand'));
    assert.ok(events.some((e) => e.event === 'step'));
    // The result can be inspected like any model.
    const inspect = await morphnet('inspect', join(out, 'model.json'), '--json');
    assert.equal(JSON.parse(inspect.stdout).flops, report.learned.flops);
  });

  const bad: [string, string[], RegExp][] = [
    ['a target above the seed', ['--target', '1.5x'], /not below the seed's cost.*MORPH_ERR_TARGET/s],
    ['a target below the fixed cost', ['--target', '100'], /below the minimum reachable.*MORPH_ERR_TARGET/s],
    ['a dataset that does not fit the model', ['--data', 'synthetic:h=10,w=10,c=1,classes=10,train=20,test=5'], /MORPH_ERR_DATASET_MISMATCH/],
    ['an unknown cost', ['--cost', 'latency'], /--cost "latency" is not one of flops, params/],
    ['an unknown dataset', ['--data', 'cifar10'], /MORPH_ERR_BAD_ARGUMENT/],
  ];
  for (const [what, args, message] of bad) {
    it(`refuses ${what} with exit 2 and writes nothing`, async () => {
      const out = join(dir, 'never');
      const r = await morphnet('search', '--data', DATA, '--max-steps', '1', '--out', out, ...args);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, message);
      assert.equal(existsSync(out), false);
    });
  }
});
