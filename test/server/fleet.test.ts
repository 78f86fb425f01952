/**
 * The server's hub, fleet and REST API against simulated agents on 127.0.0.1: leasing, storing
 * once, re-queueing on a dropped agent or a restart, prediction from the stored tables, and
 * every kind of bad message answered without storing anything.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { resolveModel } from '../../server/models.ts';
import { startServer, type RunningServer } from '../../server/app.ts';
import { CLOSE_CODES } from '../../src/protocol/agent-protocol.ts';
import { signature } from '../../src/ops/op-spec.ts';
import { FakeAgent } from '../helpers/fake-agent.ts';
import { randomCnn } from '../bench/random-cnns.ts';

const TOKEN = 'test-agent-token-1234';
const quiet = (): void => undefined;

async function api(server: RunningServer, method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(`${server.url}${path}`, { method, headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body) });
  return { status: res.status, json: await res.json() };
}

/** Polls the job until it ends; `timeoutMs` only bounds the wait (beside a CPU-bound process 20 s was too short, issue 18). */
async function waitJob(server: RunningServer, id: string, timeoutMs = 300_000): Promise<any> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const { json } = await api(server, 'GET', `/api/jobs/${id}`);
    if (['done', 'failed', 'cancelled'].includes(json.state)) return json;
    if (Date.now() > end) throw new Error(`job ${id} still ${json.state} after ${timeoutMs} ms: ${JSON.stringify(json.progress)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function pointCount(server: RunningServer, deviceId: string, runtime = 'tfjs-wasm'): Promise<number> {
  const { json } = await api(server, 'GET', `/api/tables?deviceId=${deviceId}&runtime=${runtime}`);
  return json.tables.reduce((s: number, t: { points: unknown[] }) => s + t.points.length, 0);
}

const SMALL_GRID = { maxPerAxis: 2 };

describe('server with simulated agents', () => {
  let dir: string;
  let server: RunningServer;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'morphnet-fleet-'));
    server = await startServer({ port: 0, dataDir: dir, agentToken: TOKEN, localAgent: false, log: quiet });
  });
  after(async () => {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses a wrong token with close code 4401 and stores no device', async () => {
    const a = new FakeAgent({ url: server.wsUrl, token: 'wrong-token-000', deviceKey: 'intruder-key-0001' });
    await new Promise((r) => a.ws.once('open', r));
    a.send(a.hello());
    await a.until(() => a.closeCode !== null);
    assert.equal(a.closeCode, CLOSE_CODES.unauthorized);
    assert.equal(a.errors[0]?.type === 'error' && a.errors[0].code, 'MORPH_ERR_UNAUTHORIZED');
    const { json } = await api(server, 'GET', '/api/devices');
    assert.equal(json.devices.length, 0);
  });

  it('closes with 4400 when the first message is not a valid hello', async () => {
    for (const first of ['not json', JSON.stringify({ v: 3, type: 'result' }), JSON.stringify({ v: 99, type: 'hello' })]) {
      const a = new FakeAgent({ url: server.wsUrl, token: TOKEN });
      await new Promise((r) => a.ws.once('open', r));
      a.send(first);
      await a.until(() => a.closeCode !== null);
      assert.equal(a.closeCode, CLOSE_CODES.badHello, first);
    }
    assert.equal((await api(server, 'GET', '/api/devices')).json.devices.length, 0);
  });

  it('profiles a model: every grid point leased, stored once, then predicted from the table', async () => {
    const agent = await FakeAgent.connect({ url: server.wsUrl, token: TOKEN, deviceKey: 'device-profile-01' });
    const deviceId = agent.deviceId as string;
    const before409 = await api(server, 'POST', '/api/predict', { deviceId, runtime: 'tfjs-wasm', model: 'resnet' });
    assert.equal(before409.status, 409);
    assert.equal(before409.json.error.code, 'MORPH_ERR_MISSING_OPS');
    assert.ok(before409.json.error.details.missing.length > 0);

    const created = await api(server, 'POST', '/api/profile', { deviceId, runtime: 'tfjs-wasm', model: 'resnet', grid: SMALL_GRID, refine: false });
    assert.equal(created.status, 202);
    const job = await waitJob(server, created.json.id);
    assert.equal(job.state, 'done');
    assert.equal(job.progress.done, job.progress.total);
    assert.equal(await pointCount(server, deviceId), job.progress.total);
    // Every item went out in exactly one lease and was acknowledged as stored exactly once.
    const leased = agent.leases.flatMap((l) => l.items.map((i) => i.itemId));
    assert.equal(new Set(leased).size, leased.length);
    assert.equal(agent.acks.filter((a) => a.status === 'stored').length, job.progress.total);

    // The prediction is the sum of the (fake) table points at the seed's own channel counts.
    const model = resolveModel('resnet');
    const tables = (await api(server, 'GET', `/api/tables?deviceId=${deviceId}&runtime=tfjs-wasm`)).json.tables as { signature: string; points: { cIn: number; cOut: number; medianMs: number }[] }[];
    let expected = 0;
    const byKey = new Map(model.specs.specs.map((s) => [s.key, s.spec]));
    for (const occ of model.specs.occurrences) {
      const spec = byKey.get(occ.key)!;
      const t = tables.find((x) => x.signature === signature(spec))!;
      expected += t.points.find((p) => p.cIn === spec.cIn && p.cOut === spec.cOut)!.medianMs;
    }
    const predicted = await api(server, 'POST', '/api/predict', { deviceId, runtime: 'tfjs-wasm', model: 'resnet' });
    assert.equal(predicted.status, 200);
    assert.ok(Math.abs(predicted.json.predictedMs - expected) < 1e-9 * expected, `${predicted.json.predictedMs} vs ${expected}`);
    assert.equal(predicted.json.calibration.fitted, false);
    const layerSum = predicted.json.layers.reduce((s: number, l: { predictedMs: number }) => s + l.predictedMs, 0);
    assert.ok(Math.abs(layerSum - expected) < 1e-9 * expected);
    assert.ok(predicted.json.layers.every((l: { measuredMs: number | null }) => l.measuredMs !== null));

    // A second profile of the same model has nothing left to measure.
    const again = await api(server, 'POST', '/api/profile', { deviceId, runtime: 'tfjs-wasm', model: 'resnet', grid: SMALL_GRID, refine: false });
    assert.equal(again.json.state, 'done');
    assert.equal(again.json.progress.total, 0);

    // An end-to-end measurement calibrates the prediction: with one network, a = measured / Σ ops.
    const measured = await api(server, 'POST', '/api/measure', { deviceId, runtime: 'tfjs-wasm', model: 'resnet' });
    assert.equal(measured.status, 202);
    const mjob = await waitJob(server, measured.json.id);
    assert.equal(mjob.state, 'done');
    assert.ok(mjob.result.medianMs > 0);
    const network = agent.leases.at(-1)!.items[0];
    assert.equal(network.kind, 'network');
    assert.ok('modelTopology' in network && network.modelTopology);
    const calibrated = await api(server, 'POST', '/api/predict', { deviceId, runtime: 'tfjs-wasm', model: 'resnet' });
    assert.equal(calibrated.json.calibration.fitted, true);
    assert.ok(Math.abs(calibrated.json.predictedMs - mjob.result.medianMs) < 1e-6 * mjob.result.medianMs);
    agent.close();
  });

  it('predicts every model whose ops were profiled, when several models share a table', async () => {
    const agent = await FakeAgent.connect({ url: server.wsUrl, token: TOKEN, deviceKey: 'device-shared-01' });
    const deviceId = agent.deviceId as string;
    const models = [0, 1, 2, 3].map((s) => randomCnn(s));
    for (const model of models) {
      const job = await waitJob(server, (await api(server, 'POST', '/api/profile', { deviceId, runtime: 'tfjs-wasm', model, grid: { seedOnly: true } })).json.id);
      assert.equal(job.state, 'done');
    }
    const tables = (await api(server, 'GET', `/api/tables?deviceId=${deviceId}&runtime=tfjs-wasm`)).json.tables;
    assert.ok(tables.some((t: { points: unknown[] }) => t.points.length > 1), 'some table is shared');
    assert.ok(tables.every((t: { problem: string | null }) => t.problem === null));
    for (const model of models) {
      const p = await api(server, 'POST', '/api/predict', { deviceId, runtime: 'tfjs-wasm', model });
      assert.equal(p.status, 200, JSON.stringify(p.json));
      // Each op sits on a measured point, so the layer's prediction is its measurement.
      for (const l of p.json.layers) assert.ok(Math.abs(l.predictedMs - l.measuredMs) < 1e-9, l.name);
    }
    agent.close();
  });

  it('refines a table where its interpolation is poor: a follow-up job measures the midpoints', async () => {
    // Latency with a step at 48 input channels (a SIMD/cache edge): linear interpolation across it fails.
    const kinked = (cIn: number, cOut: number): number => 0.01 * cIn * cOut * (cIn > 48 ? 2 : 1) + 0.5;
    const agent = await FakeAgent.connect({
      url: server.wsUrl,
      token: TOKEN,
      deviceKey: 'device-refine-01',
      medianOf: (item) => (item.kind === 'op' ? kinked(item.spec.cIn, item.spec.cOut) : 1),
    });
    const deviceId = agent.deviceId as string;
    const created = await api(server, 'POST', '/api/profile', { deviceId, runtime: 'tfjs-wasm', model: 'vgg', grid: { maxPerAxis: 4 } });
    assert.equal((await waitJob(server, created.json.id)).state, 'done');
    const follow = await (async () => {
      for (let i = 0; i < 100; i++) {
        const jobs = (await api(server, 'GET', `/api/jobs?deviceId=${deviceId}`)).json.jobs;
        const r = jobs.find((j: { options: { refinementOf?: string } }) => j.options.refinementOf === created.json.id);
        if (r) return r;
        await new Promise((res) => setTimeout(res, 50));
      }
      return undefined;
    })();
    assert.ok(follow, 'a refinement job was created');
    const done = await waitJob(server, follow.id);
    assert.equal(done.state, 'done');
    assert.ok(done.progress.total > 0);
    // The new points lie around the step, and the tables are still full grids.
    const tables = (await api(server, 'GET', `/api/tables?deviceId=${deviceId}&runtime=tfjs-wasm`)).json.tables;
    assert.ok(tables.every((t: { problem: string | null }) => t.problem === null));
    agent.close();
  });

  it('sends tflite agents the network as a .tflite', async () => {
    const agent = await FakeAgent.connect({ url: server.wsUrl, token: TOKEN, deviceKey: 'device-tflite-01', runtimes: ['tflite'] });
    const created = await api(server, 'POST', '/api/measure', { deviceId: agent.deviceId, runtime: 'tflite', model: 'mobilenet' });
    const job = await waitJob(server, created.json.id);
    assert.equal(job.state, 'done');
    const item = agent.leases[0].items[0];
    assert.ok('tfliteBase64' in item && typeof item.tfliteBase64 === 'string');
    const bytes = Buffer.from(item.tfliteBase64, 'base64');
    assert.equal(bytes.subarray(4, 8).toString('latin1'), 'TFL3');
    agent.close();
  });

  it('answers duplicates, unknown items and forged or malformed results without storing them', async () => {
    const agent = await FakeAgent.connect({ url: server.wsUrl, token: TOKEN, deviceKey: 'device-forgery-01', silent: true });
    const deviceId = agent.deviceId as string;
    const created = await api(server, 'POST', '/api/profile', { deviceId, runtime: 'tfjs-wasm', model: 'mobilenet', grid: SMALL_GRID, refine: false, measure: { maxMs: 100 } });
    await agent.until(() => agent.leases.length > 0);
    const lease = agent.leases[0];
    const first = lease.items[0].itemId;
    const m = { medianMs: 1, p10Ms: 0.9, p90Ms: 1.1, meanMs: 1, cv: 0.05, n: 20, runsPerSample: 1, stable: true, attempts: 1, totalMs: 100 };
    const bad: unknown[] = [
      'not json at all',
      JSON.stringify([1, 2, 3]),
      { v: 3, type: 'result', leaseId: lease.leaseId, itemId: first, measurement: { ...m, medianMs: -1 } },
      { v: 3, type: 'result', leaseId: lease.leaseId, itemId: first, measurement: { ...m, medianMs: 'fast' } },
      `{"v":3,"type":"result","leaseId":"${lease.leaseId}","itemId":${first},"measurement":${JSON.stringify(m).replace('"medianMs":1', '"medianMs":1e999')}}`,
      { v: 3, type: 'result', leaseId: lease.leaseId, itemId: first, measurement: { ...m, p10Ms: 5 } },
      { v: 3, type: 'result', leaseId: lease.leaseId, itemId: first, measurement: m, extra: true },
      { v: 9, type: 'result', leaseId: lease.leaseId, itemId: first, measurement: m },
      { v: 3, type: 'teleport' },
      { v: 3, type: 'hello', token: TOKEN },
      { v: 3, type: 'result', leaseId: 'l-000000000000', itemId: first, measurement: m },
      { v: 3, type: 'result', leaseId: lease.leaseId, itemId: 999_999, measurement: m },
      { v: 3, type: 'item-failed', leaseId: 'l-forged', itemId: first, error: { code: 'X', message: 'y' } },
    ];
    for (const b of bad) agent.send(b);
    await agent.until(() => agent.errors.length >= bad.length);
    assert.equal(agent.errors.length, bad.length);
    assert.equal(await pointCount(server, deviceId), 0);
    assert.equal(agent.closeCode, null, 'the connection stays open');

    // The real result is stored; a replay of it is acknowledged as a duplicate and changes nothing.
    agent.sendResult(lease.leaseId, first, 2.5);
    agent.sendResult(lease.leaseId, first, 7.5);
    await agent.until(() => agent.acks.length >= 2);
    assert.deepEqual(
      agent.acks.map((a) => a.status),
      ['stored', 'duplicate'],
    );
    const tables = (await api(server, 'GET', `/api/tables?deviceId=${deviceId}&runtime=tfjs-wasm`)).json.tables;
    const points = tables.flatMap((t: { points: { medianMs: number }[] }) => t.points);
    assert.equal(points.length, 1);
    assert.equal(points[0].medianMs, 2.5);

    // Another device cannot post results for this device's lease.
    const other = await FakeAgent.connect({ url: server.wsUrl, token: TOKEN, deviceKey: 'device-forgery-02', silent: true });
    other.sendResult(lease.leaseId, lease.items[1].itemId);
    await other.until(() => other.errors.length > 0);
    assert.equal(other.errors[0].type === 'error' && other.errors[0].code, 'MORPH_ERR_UNKNOWN_ITEM');
    assert.equal(await pointCount(server, deviceId), 1);

    // An oversized frame closes the connection (ws 1009) and stores nothing.
    other.send({ v: 3, type: 'result', leaseId: lease.leaseId, itemId: first, measurement: m, pad: 'x'.repeat(300 * 1024) });
    await other.until(() => other.closeCode !== null);
    assert.equal(other.closeCode, 1009);
    await api(server, 'DELETE', `/api/jobs/${created.json.id}`);
    agent.close();
  });

  it('re-queues a dropped agent\'s lease: the job finishes on another agent of the device, each item once', async () => {
    const key = 'device-failover-01';
    const silent = await FakeAgent.connect({ url: server.wsUrl, token: TOKEN, deviceKey: key, silent: true });
    const deviceId = silent.deviceId as string;
    const created = await api(server, 'POST', '/api/profile', { deviceId, runtime: 'tfjs-wasm', model: 'vgg', grid: SMALL_GRID, refine: false });
    await silent.until(() => silent.leases.length > 0);
    // Answer part of the lease, then drop the connection without a close handshake.
    const lease = silent.leases[0];
    silent.sendResult(lease.leaseId, lease.items[0].itemId);
    await silent.until(() => silent.acks.length === 1);
    silent.destroy();
    const backup = await FakeAgent.connect({ url: server.wsUrl, token: TOKEN, deviceKey: key });
    assert.equal(backup.deviceId, deviceId);
    const job = await waitJob(server, created.json.id);
    assert.equal(job.state, 'done');
    assert.equal(await pointCount(server, deviceId), job.progress.total);
    const byBackup = backup.acks.filter((a) => a.status === 'stored').length;
    assert.equal(byBackup + 1, job.progress.total, 'the backup stored every item but the one already stored');
    assert.ok(!backup.leases.some((l) => l.items.some((i) => i.itemId === lease.items[0].itemId)), 'a stored item is not leased again');
    backup.close();
  });

  it('validates REST input: unknown device and runtime, bad model, bad grid, not JSON', async () => {
    const agent = await FakeAgent.connect({ url: server.wsUrl, token: TOKEN, deviceKey: 'device-rest-0001', runtimes: ['tfjs-wasm'] });
    const deviceId = agent.deviceId;
    const cases: [unknown, number, string][] = [
      [{ deviceId: 'd-nope', runtime: 'tfjs-wasm', model: 'resnet' }, 404, 'MORPH_ERR_NOT_FOUND'],
      [{ deviceId, runtime: 'tflite', model: 'resnet' }, 400, 'MORPH_ERR_BAD_ARGUMENT'],
      [{ deviceId, runtime: 'quantum', model: 'resnet' }, 400, 'MORPH_ERR_BAD_ARGUMENT'],
      [{ deviceId, runtime: 'tfjs-wasm', model: 'alexnet' }, 400, 'MORPH_ERR_BAD_ARGUMENT'],
      [{ deviceId, runtime: 'tfjs-wasm', model: { hello: 'world' } }, 400, 'MORPH_ERR_NOT_A_MODEL'],
      [{ deviceId, runtime: 'tfjs-wasm', model: 'resnet', grid: { maxPerAxis: 1e9 } }, 400, 'MORPH_ERR_BAD_ARGUMENT'],
      [{ deviceId, runtime: 'tfjs-wasm', model: 'resnet', measure: { maxMs: -5 } }, 400, 'MORPH_ERR_BAD_ARGUMENT'],
      ['{"deviceId": ', 400, 'MORPH_ERR_NOT_JSON'],
    ];
    for (const [body, status, code] of cases) {
      const r = await api(server, 'POST', '/api/profile', body);
      assert.equal(r.status, status, JSON.stringify(body));
      assert.equal(r.json.error.code, code, JSON.stringify(r.json));
      assert.ok(r.json.error.message.length > 10);
    }
    const big = await api(server, 'POST', '/api/predict', JSON.stringify({ deviceId, runtime: 'tfjs-wasm', model: { pad: 'x'.repeat(9 * 1024 * 1024) } }));
    assert.equal(big.status, 413);
    assert.equal((await api(server, 'GET', '/api/jobs/j-nope')).status, 404);
    assert.equal((await api(server, 'GET', `/api/tables?deviceId=${deviceId}`)).status, 400);
    const jobs = (await api(server, 'GET', `/api/jobs?deviceId=${deviceId}`)).json.jobs;
    assert.equal(jobs.length, 0, 'no bad request created a job');
    agent.close();
  });
});

describe('server restart with jobs in flight', () => {
  it('puts leased items back in the queue and finishes the job after the restart, each item once', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'morphnet-restart-'));
    try {
      let server = await startServer({ port: 0, dataDir: dir, agentToken: TOKEN, localAgent: false, log: quiet });
      const key = 'device-restart-01';
      const silent = await FakeAgent.connect({ url: server.wsUrl, token: TOKEN, deviceKey: key, silent: true });
      const deviceId = silent.deviceId as string;
      const created = await api(server, 'POST', '/api/profile', { deviceId, runtime: 'tfjs-wasm', model: 'mobilenet', grid: SMALL_GRID, refine: false });
      await silent.until(() => silent.leases.length > 0);
      silent.sendResult(silent.leases[0].leaseId, silent.leases[0].items[0].itemId);
      await silent.until(() => silent.acks.length === 1);
      await server.close();
      await silent.until(() => silent.closeCode !== null);
      assert.equal(silent.closeCode, CLOSE_CODES.shuttingDown);

      server = await startServer({ port: 0, dataDir: dir, agentToken: TOKEN, localAgent: false, log: quiet });
      const pending = await api(server, 'GET', `/api/jobs/${created.json.id}`);
      assert.equal(pending.json.progress.leased, 0);
      assert.equal(pending.json.progress.done, 1);
      assert.match(pending.json.waiting, /offline/);
      const agent = await FakeAgent.connect({ url: server.wsUrl, token: TOKEN, deviceKey: key });
      const job = await waitJob(server, created.json.id);
      assert.equal(job.state, 'done');
      assert.equal(await pointCount(server, deviceId), job.progress.total);
      assert.equal(agent.acks.filter((a) => a.status === 'stored').length, job.progress.total - 1);
      agent.close();
      await server.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

