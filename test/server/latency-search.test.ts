/**
 * A latency-targeted search end to end through the REST API with a real Node agent on 127.0.0.1:
 * the server profiles what the device's table lacks, measures the seed, shrinks with the
 * measured-latency regularizer, expands in closed loop (each candidate measured on the device),
 * trains the result and both baselines (uniform multiplier, FLOP-MorphNet) at the same target,
 * and serves every artifact. Small model, synthetic data, 1 + 1 epochs, the quick protocol.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startServer, type RunningServer } from '../../server/app.ts';
import { loadTfliteModel } from '../../device-agent/node/tflite-runtime.ts';
import { FunctionalBuilder } from '../../src/seeds/builder.ts';

const TOKEN = 'latency-search-token-1';
const BIN = new URL('../../cli/bin.js', import.meta.url).pathname;
/** Within this of the target; the closed loop aims at ±3%, the quick protocol on shared cores is noisier. */
const TOLERANCE = 0.15;

function smallModel(): object {
  const b = new FunctionalBuilder('small_latency');
  let x = b.input('input', [32, 32, 3]);
  x = b.relu('c1_relu', b.batchNorm('c1_bn', b.conv2d('c1', x, { filters: 32, kernelSize: 3, padding: 'same', useBias: false }), { momentum: 0.9 }));
  x = b.relu('c2_relu', b.batchNorm('c2_bn', b.conv2d('c2', x, { filters: 64, kernelSize: 3, strides: 2, padding: 'same', useBias: false }), { momentum: 0.9 }));
  x = b.relu('c3_relu', b.batchNorm('c3_bn', b.conv2d('c3', x, { filters: 64, kernelSize: 3, padding: 'same', useBias: false }), { momentum: 0.9 }));
  x = b.globalAveragePooling2d('gap', x);
  x = b.dense('predictions', x, { units: 3, activation: 'softmax' });
  return { format: 'layers-model', modelTopology: b.build([x]) };
}

async function api(server: RunningServer, method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(`${server.url}${path}`, { method, headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: res.status, json: await res.json() };
}

describe('latency-targeted search through the API with a real agent', () => {
  let dir: string;
  let server: RunningServer;
  let agent: ChildProcess;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'morphnet-latsearch-'));
    server = await startServer({ port: 0, dataDir: dir, agentToken: TOKEN, localAgent: false, log: () => undefined });
    agent = spawn(process.execPath, [BIN, 'agent', '--server', server.wsUrl, '--runtime', 'tfjs-wasm', '--device-key', 'latency-search-device'], {
      env: { ...process.env, MORPHNET_AGENT_TOKEN: TOKEN },
      stdio: 'ignore',
    });
  });
  after(async () => {
    if (agent.exitCode === null && agent.signalCode === null) agent.kill('SIGKILL');
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('finds a network at the target latency measured on the device, with both baselines', { timeout: 400_000 }, async (t) => {
    let deviceId: string | undefined;
    for (let i = 0; i < 300 && !deviceId; i++) {
      deviceId = (await api(server, 'GET', '/api/devices')).json.devices.find((d: { online: boolean }) => d.online)?.id;
      if (!deviceId) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(deviceId, 'the agent came online');

    // Refused before anything is stored: a target above the seed's latency, once the table knows it.
    const created = await api(server, 'POST', '/api/searches', {
      model: smallModel(),
      data: { dataset: 'synthetic:h=32,w=32,c=3,classes=3,noise=0.2', trainLimit: 96, testLimit: 32 },
      cost: 'latency',
      deviceId,
      runtime: 'tfjs-wasm',
      target: { fraction: 0.5 },
      options: { shrinkEpochs: 1, finalEpochs: 1, batchSize: 32, divisor: 8, strength: 30, learningRate: 0.1, backend: 'wasm', seed: 1, baseline: true, profileGrid: 3, measureProtocol: 'quick' },
    });
    assert.equal(created.status, 201, JSON.stringify(created.json));
    const id = created.json.id;
    let search: any;
    for (let i = 0; i < 1500; i++) {
      search = (await api(server, 'GET', `/api/searches/${id}`)).json;
      if (['done', 'failed', 'cancelled'].includes(search.state)) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal(search.state, 'done', JSON.stringify(search.error ?? search.progress));

    const report = await (await fetch(`${server.url}/api/searches/${id}/artifacts/report.json`)).json();
    const target = report.latency.targetMs;
    assert.ok(Math.abs(target / (0.5 * report.latency.seedMeasuredMs) - 1) < 1e-9, 'target = 50% of the seed measured on the device');
    for (const [name, net] of [['learned', report.learned], ['uniform', report.baseline], ['FLOP-MorphNet', report.flopSearch]] as const) {
      assert.ok(net, `${name} is in the report`);
      assert.ok(net.measured > 0 && net.verify.length >= 1, `${name} was measured on the device`);
      const within = Math.abs(net.measured / target - 1) <= TOLERANCE;
      t.diagnostic(`${name}: target ${target.toFixed(3)} ms, predicted ${net.cost.toFixed(3)} ms, measured ${net.measured.toFixed(3)} ms after ${net.verify.length} candidate(s) (${net.verifyStop}), accuracy ${net.accuracy.toFixed(3)}`);
      const detail = `${name}: measured ${net.measured} ms vs target ${target} ms; stop ${net.verifyStop}; steps ${JSON.stringify(net.verify)}`;
      // Within the tolerance, or stopped for a stated reason: on a busy machine one network's runs
      // spread ±40% (issue 18), so what holds whatever the load is that the loop ends and says why.
      assert.ok(within || ['same-network', 'unreachable', 'tries'].includes(net.verifyStop), detail);
      assert.ok(net.accuracy >= 0 && net.accuracy <= 1 && net.macs > 0 && net.params > 0);
    }
    assert.equal(report.costModel.name, 'latency');
    // The FLOP-MorphNet run's curves and accuracy are its own, never the search's.
    assert.equal(search.progress.accuracy.final, report.learned.accuracy);
    assert.equal(search.progress.accuracy.baseline, report.baseline.accuracy);
    assert.equal(search.progress.flop.accuracy, report.flopSearch.accuracy);
    assert.equal(search.progress.curves.shrink.length, 1);
    assert.equal(search.progress.flop.curves.shrink.length, 1);
    assert.equal(search.progress.flop.curves.final.length, 1);

    for (const name of ['structure.json', 'report.json', 'model.zip', 'model.tflite', 'baseline.tflite', 'flop.tflite', 'flop-structure.json']) {
      const res = await fetch(`${server.url}/api/searches/${id}/artifacts/${name}`);
      assert.equal(res.status, 200, name);
      const bytes = new Uint8Array(await res.arrayBuffer());
      assert.ok(bytes.length > 0, name);
      if (name.endsWith('.tflite')) {
        const m = await loadTfliteModel(bytes);
        const [y] = m.run([new Float32Array(32 * 32 * 3).fill(0.1)]);
        assert.equal(y.length, 3);
        assert.ok(Math.abs(y.reduce((a, b) => a + b, 0) - 1) < 1e-4, `${name}: softmax sums to 1`);
        m.dispose();
      }
    }
  });

  it('moves a default target below the smallest reachable latency up to a reachable one (clampTarget), and refuses it otherwise', { timeout: 400_000 }, async () => {
    let deviceId: string | undefined;
    for (let i = 0; i < 300 && !deviceId; i++) {
      deviceId = (await api(server, 'GET', '/api/devices')).json.devices.find((d: { online: boolean }) => d.online)?.id;
      if (!deviceId) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(deviceId, 'the agent came online');
    const body = {
      model: smallModel(),
      data: { dataset: 'synthetic:h=32,w=32,c=3,classes=3,noise=0.2', trainLimit: 96, testLimit: 32 },
      cost: 'latency',
      deviceId,
      runtime: 'tfjs-wasm',
      // 1 ns: below what any width reaches, whatever the table and the calibration predict.
      targetMs: 1e-6,
      options: { shrinkEpochs: 1, finalEpochs: 1, batchSize: 32, divisor: 8, strength: 30, backend: 'wasm', seed: 1, profileGrid: 3, measureProtocol: 'quick' },
    };
    const ended = async (id: string): Promise<any> => {
      let search: any;
      for (let i = 0; i < 1500; i++) {
        search = (await api(server, 'GET', `/api/searches/${id}`)).json;
        if (['done', 'failed', 'cancelled'].includes(search.state)) return search;
        await new Promise((r) => setTimeout(r, 200));
      }
      return search;
    };
    // Without clampTarget: refused once the seed and the smallest network are measured (the
    // search fails), never searched; at once where the target is not below the seed.
    const refused = await api(server, 'POST', '/api/searches', body);
    if (refused.status === 201) {
      const failed = await ended(refused.json.id);
      assert.equal(failed.state, 'failed', JSON.stringify(failed.progress));
      assert.equal(failed.error.code, 'MORPH_ERR_TARGET');
    } else {
      assert.equal(refused.status, 400, JSON.stringify(refused.json));
      assert.equal(refused.json.error.code, 'MORPH_ERR_TARGET');
    }
    const created = await api(server, 'POST', '/api/searches', { ...body, clampTarget: true });
    assert.equal(created.status, 201, JSON.stringify(created.json));
    const search = await ended(created.json.id);
    assert.equal(search.state, 'done', JSON.stringify(search.error ?? search.progress));
    const report = await (await fetch(`${server.url}/api/searches/${created.json.id}/artifacts/report.json`)).json();
    const l = report.latency;
    assert.ok(l.minimumMs > 0, 'the smallest reachable network is measured, not extrapolated');
    assert.equal(l.requestedTargetMs, 1e-6, 'the requested target is kept in the report');
    assert.ok(Math.abs(l.targetMs - (l.minimumMs + 0.1 * (l.seedMeasuredMs - l.minimumMs))) < 1e-9, 'moved 10% of the way from the smallest reachable to the seed, both measured');
    assert.ok(l.targetMs > l.minimumMs && l.targetMs < l.seedMeasuredMs);
  });
});
