/**
 * `morphnet search` on models users bring: a nested Teachable-Machine-style Sequential and an
 * SE network, with synthetic data that follows the model (32×32×3, 4 classes: no h/w/c given).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { squeezeExcitationNet, teachableMachineStyle } from '../fixtures/byom-models.ts';

const BIN = new URL('../../cli/bin.js', import.meta.url).pathname;

function morphnet(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { timeout: 300_000, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'morphnet-byom-'));
  await writeFile(join(dir, 'tm.json'), JSON.stringify(teachableMachineStyle()));
  await writeFile(join(dir, 'se.json'), JSON.stringify(squeezeExcitationNet()));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function search(model: string, out: string): Promise<{ report: Record<string, any>; stderr: string }> {
  const r = await morphnet('search', '--model', join(dir, model), '--data', 'synthetic:train=160,test=40', '--target', '0.5x', '--strength', '20', '--shrink-epochs', '1', '--final-epochs', '1', '--max-steps', '3', '--batch-size', '16', '--out', join(dir, out), '--json');
  assert.equal(r.code, 0, r.stderr);
  return { report: JSON.parse(r.stdout), stderr: r.stderr };
}

describe('search on the models users bring (FLOP target, synthetic data following the model)', () => {
  it('a nested Teachable-Machine-style model: inlined, searched, written flat and readable', async () => {
    const { report, stderr } = await search('tm.json', 'tm');
    assert.match(stderr, /synthetic:h=32,w=32,c=3,classes=4/);
    assert.ok(report.learned.flops <= report.target.value, `${report.learned.flops} > ${report.target.value}`);
    // The base's groups are searched across the nesting boundary.
    assert.ok(report.learned.structure.Conv1 < 16 || report.learned.structure.pw1 < 32, JSON.stringify(report.learned.structure));
    const written = JSON.parse(await readFile(join(dir, 'tm', 'model.json'), 'utf8'));
    assert.equal(written.modelTopology.class_name, 'Model');
    const inspect = await morphnet('inspect', join(dir, 'tm', 'model.json'), '--json');
    assert.equal(inspect.code, 0, inspect.stderr);
    assert.equal(JSON.parse(inspect.stdout).flops, report.learned.flops);
  });

  it('an SE network: the SE squeeze and excite widths follow their block', async () => {
    const { report } = await search('se.json', 'se');
    assert.ok(report.learned.flops <= report.target.value);
    const s = report.learned.structure as Record<string, number>;
    // The excite conv and the Multiply share the expanded block's channels.
    assert.equal(s.block2_se_expand, s.block2_expand);
    assert.equal(s.block3_se_expand, s.block3_expand);
    assert.ok(s.block3_expand < 96);
  });
});
