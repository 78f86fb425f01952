/**
 * `morphnet search --local --server URL --device D`: the search trains in the CLI's process with
 * a device's measured latency as its cost, and the server only profiles, measures and hands over
 * the table. A real server and a real Node agent (tfjs-wasm) on 127.0.0.1, a small model on
 * synthetic data, 1 + 1 epochs, the quick protocol.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startServer, type RunningServer } from '../../server/app.ts';
import { FunctionalBuilder } from '../../src/seeds/builder.ts';
import { assertClosedLoop } from '../helpers/closed-loop.ts';

const TOKEN = 'local-latency-token-1';
const BIN = new URL('../../cli/bin.js', import.meta.url).pathname;
const DEVICE = 'local-latency-dev';

/**
 * Compute must outweigh the fixed per-op costs: with only two small convs (32 and 64 channels)
 * the network at 8 channels per group still cost 70% of the seed on a busy machine, so a 50%
 * target was out of reach and the test failed for the machine's sake, not the code's.
 */
function smallModel(): object {
  const b = new FunctionalBuilder('small_local_latency');
  let x = b.input('input', [32, 32, 3]);
  x = b.relu('c1_relu', b.batchNorm('c1_bn', b.conv2d('c1', x, { filters: 32, kernelSize: 3, padding: 'same', useBias: false }), { momentum: 0.9 }));
  x = b.relu('c2_relu', b.batchNorm('c2_bn', b.conv2d('c2', x, { filters: 96, kernelSize: 3, strides: 2, padding: 'same', useBias: false }), { momentum: 0.9 }));
  x = b.relu('c3_relu', b.batchNorm('c3_bn', b.conv2d('c3', x, { filters: 96, kernelSize: 3, padding: 'same', useBias: false }), { momentum: 0.9 }));
  x = b.globalAveragePooling2d('gap', x);
  x = b.dense('predictions', x, { units: 3, activation: 'softmax' });
  return { format: 'layers-model', modelTopology: b.build([x]) };
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the bin, killed after `timeoutMs`: a bound only (beside a CPU-bound process the search outlasted 300 s, issue 18). */
function morphnet(args: string[], timeoutMs = 1_500_000): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('offline latency search (--local) with a server-side device table', () => {
  let dir: string;
  let server: RunningServer;
  let agent: ChildProcess;
  let modelPath: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'morphnet-locallat-'));
    modelPath = join(dir, 'model.json');
    await writeFile(modelPath, JSON.stringify(smallModel()));
    server = await startServer({ port: 0, dataDir: join(dir, 'server'), agentToken: TOKEN, localAgent: false, log: () => undefined });
    agent = spawn(process.execPath, [BIN, 'agent', '--server', server.wsUrl, '--runtime', 'tfjs-wasm', '--name', DEVICE, '--device-key', 'local-latency-device'], {
      env: { ...process.env, MORPHNET_AGENT_TOKEN: TOKEN },
      stdio: 'ignore',
    });
    for (const end = Date.now() + 600_000; Date.now() < end; ) {
      const { devices } = (await (await fetch(`${server.url}/api/devices`)).json()) as { devices: { online: boolean }[] };
      if (devices.some((d) => d.online)) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error('the agent did not come online');
  });
  after(async () => {
    if (agent.exitCode === null && agent.signalCode === null) agent.kill('SIGKILL');
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses incomplete or contradictory flags before training', async () => {
    const noDevice = await morphnet(['search', '--local', '--server', server.url, '--model', modelPath]);
    assert.equal(noDevice.code, 2);
    assert.match(noDevice.stderr, /--local needs --device D/);
    const unknown = await morphnet(['search', '--local', '--server', server.url, '--device', 'no-such-device', '--model', modelPath, '--data', 'synthetic:h=32,w=32,c=3,classes=3', '--out', join(dir, 'x')]);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /no device "no-such-device".*known: .*local-latency-dev/);
    const flops = await morphnet(['search', '--local', '--server', server.url, '--device', DEVICE, '--cost', 'flops', '--model', modelPath]);
    assert.equal(flops.code, 2);
    assert.match(flops.stderr, /--local searches on latency/);
    const absolute = await morphnet(['search', '--local', '--server', server.url, '--device', DEVICE, '--target', '2', '--model', modelPath]);
    assert.equal(absolute.code, 2);
    assert.match(absolute.stderr, /--target-ms/);
  });

  it('trains here at the device latency target, measured on the device in closed loop', { timeout: 1_800_000 }, async (t) => {
    const out = join(dir, 'out');
    const run = await morphnet([
      'search', '--local', '--server', server.url, '--device', DEVICE, '--runtime', 'tfjs-wasm', '--model', modelPath,
      '--data', 'synthetic:h=32,w=32,c=3,classes=3,noise=0.2', '--train-limit', '96', '--test-limit', '32',
      '--shrink-epochs', '1', '--final-epochs', '1', '--batch-size', '32', '--divisor', '8', '--strength', '30', '--lr', '0.1',
      '--backend', 'wasm', '--seed-value', '1', '--profile-grid', '3', '--quick-measure', '--target', '0.5x', '--baseline', '--out', out, '--json',
    ]);
    assert.equal(run.code, 0, run.stderr.slice(-3000));
    const report = JSON.parse(await readFile(join(out, 'report.json'), 'utf8'));
    const target = report.latency.targetMs;
    assert.ok(Math.abs(target / (0.5 * report.latency.seedMeasuredMs) - 1) < 1e-9, 'target = 50% of the seed measured on the device');
    assert.ok(report.latency.profiledPoints > 0, 'the server profiled the points the table lacked');
    assert.equal(report.costModel.name, 'latency');
    const learned = report.learned;
    t.diagnostic(`target ${target.toFixed(3)} ms, predicted ${learned.cost.toFixed(3)} ms, measured ${learned.measured.toFixed(3)} ms (${learned.verifyStop}, ${learned.verify.length} candidate(s))`);
    // Measured on the device in closed loop, stopped for a valid reason that its steps bear out.
    // How close the device's figure lands depends on the machine's load (a table profiled on a
    // busy machine predicted 4.7 ms for a network that measured 0.43 ms, issue 18): the closing
    // itself is tested on a simulated device (test/morph/closed-loop.test.ts), the closeness on
    // real devices is test/bench/latency-search.ts.
    assertClosedLoop('learned', learned, target);
    assert.ok(report.baseline, 'the uniform baseline is in the report');
    assertClosedLoop('uniform', report.baseline, target);
    // The server's table now holds the points the search priced: a second run profiles nothing.
    const q = new URLSearchParams({ deviceId: report.latency.deviceId, runtime: 'tfjs-wasm' });
    const tables = (await (await fetch(`${server.url}/api/tables?${q}`)).json()) as { tables: { points: unknown[] }[] };
    assert.ok(tables.tables.reduce((n, tb) => n + tb.points.length, 0) >= report.latency.profiledPoints);
    const structure = JSON.parse(await readFile(join(out, 'structure.json'), 'utf8'));
    assert.ok(structure.c1 <= 32 && structure.c2 <= 96 && structure.c3 <= 96, JSON.stringify(structure));
  });
});
