/**
 * A real server and real Node agents (child processes running `morphnet agent`) on 127.0.0.1:
 * profile a seed model, kill the agent holding the lease with SIGKILL mid-job and see the job
 * finish on the other agent of the device with every item stored once; then measure and
 * predict, on tfjs-wasm and on tflite.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startServer, type RunningServer } from '../../server/app.ts';

const TOKEN = 'real-agents-token-5678';
const QUICK = { warmupRuns: 1, warmupMs: 0, minSamples: 5, minWindowMs: 10, maxMs: 800 };
const BIN = new URL('../../cli/bin.js', import.meta.url).pathname;

interface Agent {
  readonly child: ChildProcess;
  readonly name: string;
  agentId: string | null;
  output: string;
}

function startAgent(server: RunningServer, name: string, runtimes: string[]): Agent {
  const child = spawn(process.execPath, [BIN, 'agent', '--server', server.wsUrl, '--name', name, '--device-key', 'real-agents-device-01', ...runtimes.flatMap((r) => ['--runtime', r])], {
    env: { ...process.env, MORPHNET_AGENT_TOKEN: TOKEN },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const agent: Agent = { child, name, agentId: null, output: '' };
  const onData = (d: Buffer): void => {
    agent.output += d.toString();
    agent.agentId ??= /agent (a-[0-9a-f]+)/.exec(agent.output)?.[1] ?? null;
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  return agent;
}

async function api(server: RunningServer, method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(`${server.url}${path}`, { method, headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: res.status, json: await res.json() };
}

async function until<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 60_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const finished = (server: RunningServer, id: string) => () =>
  api(server, 'GET', `/api/jobs/${id}`).then((r) => (['done', 'failed', 'cancelled'].includes(r.json.state) ? r.json : undefined));

describe('real server and real Node agents', () => {
  let dir: string;
  let server: RunningServer;
  const agents: Agent[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'morphnet-real-'));
    server = await startServer({ port: 0, dataDir: dir, agentToken: TOKEN, localAgent: false, leaseItems: 3, log: () => undefined });
  });
  after(async () => {
    for (const a of agents) if (a.child.exitCode === null && a.child.signalCode === null) a.child.kill('SIGKILL');
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('finishes a profile job on the second agent after the first is killed mid-job, each item stored once', async () => {
    agents.push(startAgent(server, 'agent A', ['tfjs-wasm', 'tflite']), startAgent(server, 'agent B', ['tfjs-wasm', 'tflite']));
    const device = await until('both agents online', async () => {
      const d = (await api(server, 'GET', '/api/devices')).json.devices[0];
      return d?.agents.length === 2 && agents.every((a) => a.agentId) ? d : undefined;
    });
    assert.deepEqual(new Set(device.runtimes.map((r: { name: string }) => r.name)), new Set(['tfjs-wasm', 'tflite']));
    assert.equal(device.env.platform, 'node');
    assert.ok(device.env.cores >= 1 && device.env.cpuModel.length > 0);

    const created = await api(server, 'POST', '/api/profile', { deviceId: device.id, runtime: 'tfjs-wasm', model: 'mobilenet', grid: { maxPerAxis: 2 }, refine: false, measure: QUICK });
    assert.equal(created.status, 202);
    const total = created.json.progress.total;
    assert.ok(total > 20, `${total} items`);
    // Wait until part of the job is stored, then kill whichever agent holds the lease.
    const busy = await until('a few items done with a lease out', async () => {
      const job = (await api(server, 'GET', `/api/jobs/${created.json.id}`)).json;
      if (job.progress.done < 4) return undefined;
      const d = (await api(server, 'GET', `/api/devices/${device.id}`)).json;
      return d.agents.find((a: { busy: boolean }) => a.busy)?.id as string | undefined;
    });
    const victim = agents.find((a) => a.agentId === busy)!;
    const survivor = agents.find((a) => a !== victim)!;
    victim.child.kill('SIGKILL');
    const job = await until('the job to finish', finished(server, created.json.id), 120_000);
    assert.equal(job.state, 'done', JSON.stringify(job.error));
    assert.equal(job.progress.done, total);
    assert.equal(job.progress.failed, 0);
    const tables = (await api(server, 'GET', `/api/tables?deviceId=${device.id}&runtime=tfjs-wasm`)).json.tables;
    const points = tables.flatMap((t: { points: { medianMs: number; n: number }[] }) => t.points);
    assert.equal(points.length, total, 'one table point per item');
    assert.ok(points.every((p: { medianMs: number; n: number }) => p.medianMs > 0 && p.n >= 1));
    // Every op was timed against the reference op (the default) and is read at one scale: the
    // reference's settled latency, the same for all points of the device and runtime.
    assert.ok(points.every((p: { ratio: number | null; timedMs: number }) => p.ratio !== null && p.ratio > 0 && p.timedMs > 0), JSON.stringify(points[0]));
    const scales = points.map((p: { medianMs: number; ratio: number }) => p.medianMs / p.ratio);
    assert.ok(scales.every((s: number) => Math.abs(s / scales[0] - 1) < 1e-9), `one settled reference latency: ${scales.slice(0, 5).join(', ')}`);
    assert.ok(tables.every((t: { problem: string | null }) => t.problem === null), 'every table forms a full grid');
    const after = (await api(server, 'GET', `/api/devices/${device.id}`)).json;
    assert.deepEqual(
      after.agents.map((a: { id: string }) => a.id),
      [survivor.agentId],
    );
    assert.ok(after.agents[0].itemsDone > 0, 'the survivor measured items');
  });

  it('measures the model end to end and predicts it from the table, calibrated', async () => {
    const device = (await api(server, 'GET', '/api/devices')).json.devices[0];
    const created = await api(server, 'POST', '/api/measure', { deviceId: device.id, runtime: 'tfjs-wasm', model: 'mobilenet', measure: QUICK });
    const job = await until('the measure job', finished(server, created.json.id), 60_000);
    assert.equal(job.state, 'done');
    assert.ok(job.result.medianMs > 0 && job.result.p10Ms <= job.result.medianMs && job.result.medianMs <= job.result.p90Ms);
    assert.equal(job.result.reference, undefined, 'no reference asked, none given');
    // Against a reference: one job, the two networks timed interleaved, the ratio reported.
    const paired = await api(server, 'POST', '/api/measure', { deviceId: device.id, runtime: 'tfjs-wasm', model: 'mobilenet', reference: 'resnet', measure: QUICK });
    assert.equal(paired.status, 202, JSON.stringify(paired.json));
    const pjob = await until('the paired measure job', finished(server, paired.json.id), 60_000);
    assert.equal(pjob.state, 'done', JSON.stringify(pjob.error));
    const ref = pjob.result.reference;
    assert.ok(ref && ref.medianMs > 0 && ref.ratioP10 <= ref.ratio && ref.ratio <= ref.ratioP90 && ref.rounds >= 1, JSON.stringify(pjob.result));
    const bad = await api(server, 'POST', '/api/measure', { deviceId: device.id, runtime: 'tfjs-wasm', model: 'mobilenet', reference: 'no-such-seed' });
    assert.equal(bad.status, 400, JSON.stringify(bad.json));
    assert.match(bad.json.error.message, /reference/);
    const p = await api(server, 'POST', '/api/predict', { deviceId: device.id, runtime: 'tfjs-wasm', model: 'mobilenet' });
    assert.equal(p.status, 200);
    assert.equal(p.json.calibration.fitted, true);
    assert.ok(p.json.predictedMs > 0);
    assert.ok(p.json.layers.length >= 10);
  });

  it('profiles and measures on the tflite runtime too', async () => {
    const device = (await api(server, 'GET', '/api/devices')).json.devices[0];
    const created = await api(server, 'POST', '/api/profile', { deviceId: device.id, runtime: 'tflite', model: 'resnet', grid: { maxPerAxis: 2 }, refine: false, measure: QUICK });
    const job = await until('the tflite profile', finished(server, created.json.id), 120_000);
    assert.equal(job.state, 'done', JSON.stringify(job.error));
    const m = await api(server, 'POST', '/api/measure', { deviceId: device.id, runtime: 'tflite', model: 'resnet', measure: QUICK });
    const mjob = await until('the tflite measure', finished(server, m.json.id), 60_000);
    assert.equal(mjob.state, 'done', JSON.stringify(mjob.error));
    const p = await api(server, 'POST', '/api/predict', { deviceId: device.id, runtime: 'tflite', model: 'resnet' });
    assert.equal(p.status, 200);
    assert.ok(Math.abs(p.json.predictedMs - mjob.result.medianMs) / mjob.result.medianMs < 1e-6, 'one network: the calibration fits it');
    assert.equal(p.json.calibration.outOfSample, null, 'one network: nothing to leave out');
    // Interleaved with a reference on tflite too (the .tflite of both travels in the item).
    const paired = await api(server, 'POST', '/api/measure', { deviceId: device.id, runtime: 'tflite', model: 'mobilenet', reference: 'resnet', measure: QUICK });
    const pjob = await until('the paired tflite measure', finished(server, paired.json.id), 60_000);
    assert.equal(pjob.state, 'done', JSON.stringify(pjob.error));
    assert.ok(pjob.result.reference && pjob.result.reference.ratio > 0, JSON.stringify(pjob.result));
  });

  it('the profile CLI prints per-layer predicted and measured latency and the network error', async () => {
    const device = (await api(server, 'GET', '/api/devices')).json.devices[0];
    const out = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [BIN, 'profile', '--server', server.url, '--device', device.id, '--runtime', 'tfjs-wasm', '--seed', 'mobilenet', '--grid-max', '2', '--quick', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      child.on('exit', (code) => resolve({ code, stdout, stderr }));
    });
    assert.equal(out.code, 0, out.stderr);
    const r = JSON.parse(out.stdout);
    assert.equal(r.deviceId, device.id);
    assert.ok(r.measured.medianMs > 0);
    assert.ok(r.layers.every((l: { predictedMs: number; measuredMs: number | null }) => l.predictedMs > 0 && l.measuredMs !== null && l.measuredMs > 0));
    assert.ok(Number.isFinite(r.errorPct));

    // --compare: the seed on every device-runtime that has it (here the one device, on tfjs-wasm and tflite).
    const cmp = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [BIN, 'profile', '--server', server.url, '--seed', 'mobilenet', '--compare', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      child.on('exit', (code) => resolve({ code, stdout, stderr }));
    });
    assert.equal(cmp.code, 0, cmp.stderr);
    const c = JSON.parse(cmp.stdout);
    const wasm = c.columns.find((col: { deviceId: string; runtime: string }) => col.deviceId === device.id && col.runtime === 'tfjs-wasm');
    assert.ok(wasm, JSON.stringify(c.columns.map((col: { runtime: string }) => col.runtime)));
    assert.deepEqual(wasm.total, { ms: r.measured.medianMs, source: 'measured' }, 'the end-to-end measurement the profile command just took');
    assert.equal(wasm.layers.length, c.layers.length);
    assert.equal(wasm.slowest.length, 3);
    // The same as a table: a column per device-runtime, the total first, predicted figures marked p, the slowest *.
    const text = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
      const child = spawn(process.execPath, [BIN, 'profile', '--server', server.url, '--seed', 'mobilenet', '--compare'], { stdio: ['ignore', 'pipe', 'ignore'] });
      let stdout = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.on('exit', (code) => resolve({ code, stdout }));
    });
    assert.equal(text.code, 0);
    const lines = text.stdout.split('\n');
    assert.match(lines[0], new RegExp(`^mobilenet_seed on ${c.columns.length} device-runtime\\(s\\), fastest first$`));
    assert.match(lines[1], /^layer\s.*tfjs-wasm/);
    assert.match(lines[3], /^total\s/);
    assert.equal(lines.filter((l) => c.layers.some((name: string) => l.startsWith(`${name} `))).length, c.layers.length);
    assert.ok((text.stdout.match(/\*/g) ?? []).length >= 3, text.stdout);

    for (const body of [{ model: 'no-such-seed' }, { model: 'mobilenet', slowest: -1 }, { model: 'mobilenet', device: device.id }]) {
      const bad = await api(server, 'POST', '/api/compare', body);
      assert.equal(bad.status, 400, JSON.stringify(bad.json));
    }
  });
});
