/** `morphnet doctor` as users run it: the real bin in a child process. */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { describe, it } from 'node:test';

const BIN = new URL('../../cli/bin.js', import.meta.url).pathname;

function morphnet(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

describe('morphnet doctor', () => {
  it('--json reports the backend, kernels, versions, runtimes, datasets, node and CPU', async () => {
    const r = await morphnet('doctor', '--json');
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.ok(['tfjs-node', 'wasm', 'cpu'].includes(out.backend.name));
    assert.equal(typeof out.backend.description, 'string');
    assert.ok(Array.isArray(out.backend.fellBackFrom));
    if (out.backend.name === 'wasm') {
      assert.equal(out.backend.simd, true);
      assert.equal(out.backend.threads, false);
      assert.deepEqual(out.gradKernels.registered.sort(), [
        'Conv2DBackpropFilter',
        'Conv2DBackpropInput (fast path)',
        'DepthwiseConv2dNativeBackpropFilter',
        'DepthwiseConv2dNativeBackpropInput',
        'FusedBatchNorm gradient',
        'Mean (fast path)',
        'Sum (fast path)',
      ]);
    }
    assert.deepEqual(out.gradKernels.missing, []);
    assert.match(out.versions['@tensorflow/tfjs'], /^\d+\.\d+\.\d+/);
    assert.match(out.versions['@tensorflow/tfjs-core'], /^\d+\.\d+\.\d+/);
    assert.match(out.versions['@tensorflow/tfjs-backend-wasm'], /^\d+\.\d+\.\d+/);
    assert.ok('@tensorflow/tfjs-tflite' in out.versions && '@tensorflow/tfjs-node' in out.versions);
    assert.equal(typeof out.tfjsNode.available, 'boolean');
    if (!out.tfjsNode.available) assert.match(out.tfjsNode.reason, /tfjs-node/);
    assert.equal(out.tflite.available, out.versions['@tensorflow/tfjs-tflite'] !== null);
    for (const name of ['fashion-mnist', 'mnist']) {
      const d = out.datasets[name];
      assert.equal(typeof d.available, 'boolean', name);
      if (!d.available) assert.equal(typeof d.reason, 'string', name);
    }
    assert.equal(out.node, process.version);
    assert.ok(out.cpu.cores >= 1 && typeof out.cpu.model === 'string');
  });

  it('prints a checklist without --json, and has --help', async () => {
    const r = await morphnet('doctor');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^\[(ok|--)\] backend /m);
    assert.match(r.stdout, /tfjs-node/);
    assert.match(r.stdout, /dataset fashion-mnist/);
    const help = await morphnet('doctor', '--help');
    assert.equal(help.code, 0);
    assert.match(help.stdout, /Usage: morphnet doctor/);
  });

  it('refuses an unknown backend with MORPH_ERR_BAD_ARGUMENT', async () => {
    const r = await morphnet('doctor', '--json', '--backend', 'gpu');
    assert.equal(r.code, 2);
    assert.equal(JSON.parse(r.stdout).error.code, 'MORPH_ERR_BAD_ARGUMENT');
  });
});
