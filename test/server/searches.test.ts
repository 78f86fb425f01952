/**
 * Searches as a service through the REST API on 127.0.0.1: a tiny search run end to end in the
 * worker thread and followed over SSE, every artifact downloaded (the .tflite run in the TFLite
 * runtime), bad requests refused with nothing created, cancel (queued and running, with the host
 * device paused meanwhile), and a server restart that leaves a running search `interrupted` and
 * resumable. Tiny model, synthetic data, 1 + 1 epochs: seconds each.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startServer, type RunningServer } from '../../server/app.ts';
import { loadTfliteModel } from '../../device-agent/node/tflite-runtime.ts';
import { FakeAgent } from '../helpers/fake-agent.ts';
import { tinyTopology } from '../train/tiny-model.ts';

const TOKEN = 'test-agent-token-searches';
const quiet = (): void => undefined;
const DATA = { dataset: 'synthetic:h=12,w=12,c=1,classes=3,noise=0.2', trainLimit: 96, testLimit: 32 };
/** 1 + 1 epochs of 3 steps each: the whole search takes seconds. */
const QUICK = { shrinkEpochs: 1, finalEpochs: 1, batchSize: 32, divisor: 2, strength: 30, threshold: 0.05, learningRate: 0.1, backend: 'wasm', seed: 1 };
const MODEL_JSON = { format: 'layers-model', modelTopology: tinyTopology([12, 12, 1], 3) };

async function api(server: RunningServer, method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(`${server.url}${path}`, {
    method,
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, json: await res.json() };
}

async function download(server: RunningServer, path: string): Promise<{ status: number; type: string | null; bytes: Uint8Array }> {
  const res = await fetch(`${server.url}${path}`);
  return { status: res.status, type: res.headers.get('content-type'), bytes: new Uint8Array(await res.arrayBuffer()) };
}

interface SseEvent {
  id: string | null;
  event: string;
  data: any;
}

/**
 * Reads a search's SSE stream until it closes (the search ended) or `stop` says so; fails after
 * `timeoutMs`.
 */
// Every timeout here only bounds a wait: beside a CPU-bound process a search that takes seconds
// on an idle machine ran past 120 s (issue 18).
async function readEvents(server: RunningServer, id: string, opts: { timeoutMs: number; stop?: (e: SseEvent) => boolean; headers?: Record<string, string> }): Promise<SseEvent[]> {
  const abort = new AbortController();
  let timedOut = false;
  let stopped = false;
  const timer = setTimeout(() => {
    timedOut = true;
    abort.abort();
  }, opts.timeoutMs);
  const events: SseEvent[] = [];
  try {
    const res = await fetch(`${server.url}/api/searches/${id}/events`, { signal: abort.signal, headers: opts.headers });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
    const decoder = new TextDecoder();
    let text = '';
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      text += decoder.decode(chunk, { stream: true });
      let cut: number;
      while ((cut = text.indexOf('\n\n')) >= 0) {
        const block = text.slice(0, cut);
        text = text.slice(cut + 2);
        let eventId: string | null = null;
        let event = 'message';
        const data: string[] = [];
        for (const line of block.split('\n')) {
          if (line.startsWith('id: ')) eventId = line.slice(4);
          else if (line.startsWith('event: ')) event = line.slice(7);
          else if (line.startsWith('data: ')) data.push(line.slice(6));
        }
        if (data.length === 0) continue; // retry: and heartbeat comments
        const e = { id: eventId, event, data: JSON.parse(data.join('\n')) };
        events.push(e);
        if (opts.stop?.(e)) {
          stopped = true;
          abort.abort();
          return events;
        }
      }
    }
    return events;
  } catch (err) {
    if (stopped) return events;
    if (timedOut) throw new Error(`search ${id}: stream not finished after ${opts.timeoutMs} ms; events: ${events.map((e) => e.event).join(', ')}`);
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

async function waitState(server: RunningServer, id: string, states: string[], timeoutMs: number): Promise<any> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const { json } = await api(server, 'GET', `/api/searches/${id}`);
    if (states.includes(json.state)) return json;
    if (Date.now() > end) throw new Error(`search ${id} still ${json.state} after ${timeoutMs} ms (waiting for ${states.join('|')})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function searchCount(server: RunningServer): Promise<number> {
  return (await api(server, 'GET', '/api/searches')).json.searches.length;
}

describe('searches through the REST API', () => {
  let dir: string;
  let server: RunningServer;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'morphnet-searches-'));
    server = await startServer({ port: 0, dataDir: dir, agentToken: TOKEN, localAgent: false, log: quiet });
  });
  after(async () => {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('uploads a model once by content hash and lists it', async () => {
    const first = await api(server, 'POST', '/api/models', MODEL_JSON);
    assert.equal(first.status, 201, JSON.stringify(first.json));
    assert.match(first.json.id, /^m-[0-9a-f]{16}$/);
    assert.equal(first.json.name, 'tiny');
    assert.equal(first.json.layers, 12);
    assert.ok(first.json.params > 0 && first.json.macs > 0);
    assert.deepEqual(first.json.inputShape, [12, 12, 1]);
    assert.equal(first.json.outputs, 3);
    const again = await api(server, 'POST', '/api/models', MODEL_JSON);
    assert.equal(again.status, 200);
    assert.equal(again.json.id, first.json.id);
    assert.deepEqual((await api(server, 'GET', '/api/models')).json.models.map((m: { id: string }) => m.id), [first.json.id]);
    assert.equal((await api(server, 'GET', `/api/models/${first.json.id}`)).json.macs, first.json.macs);
    assert.equal((await api(server, 'GET', '/api/models/m-0000000000000000')).status, 404);
    const refused = await api(server, 'POST', '/api/models', { format: 'layers-model', modelTopology: { class_name: 'Nonsense', config: {} } });
    assert.ok(refused.status >= 400 && refused.status < 500, JSON.stringify(refused.json));
    assert.match(refused.json.error.code, /^MORPH_ERR_/);
    assert.equal((await api(server, 'GET', '/api/models')).json.models.length, 1);
  });

  it('runs a flops search end to end: SSE to the end, every artifact, a .tflite that runs, learned and baseline in the report', async () => {
    const modelId = (await api(server, 'POST', '/api/models', MODEL_JSON)).json.id;
    const created = await api(server, 'POST', '/api/searches', { modelId, data: DATA, cost: 'flops', target: { fraction: 0.5 }, options: { ...QUICK, baseline: true } });
    assert.equal(created.status, 201, JSON.stringify(created.json));
    const id = created.json.id as string;
    assert.match(id, /^s-[0-9a-f]{12}$/);
    assert.ok(['queued', 'preparing'].includes(created.json.state));
    assert.equal(created.json.config.resolvedTarget.value, created.json.config.resolvedTarget.seedCost / 2);

    const events = await readEvents(server, id, { timeoutMs: 900_000 });
    const types = events.map((e) => e.event);
    assert.equal(types[types.length - 1], 'end', types.join(','));
    assert.equal(events[events.length - 1].data.state, 'done', JSON.stringify(events.slice(-3)));
    const states = events.filter((e) => e.event === 'state').map((e) => e.data.data.state);
    assert.deepEqual(states, ['queued', 'preparing', 'running', 'done']);
    for (const t of ['ready', 'groups', 'phase', 'epoch', 'shrink-epoch', 'evaluated', 'export']) assert.ok(types.includes(t), `no ${t} event: ${types.join(',')}`);
    // Stored events carry increasing ids; live step events carry none.
    const ids = events.filter((e) => e.id !== null).map((e) => Number(e.id));
    assert.deepEqual(ids, [...ids].sort((a, b) => a - b));
    assert.ok(events.filter((e) => e.event === 'step').every((e) => e.id === null));

    const view = (await api(server, 'GET', `/api/searches/${id}`)).json;
    assert.equal(view.state, 'done');
    assert.equal(view.progress.fraction, 1);
    assert.equal(view.progress.curves.shrink.length, 1);
    assert.equal(view.progress.curves.final.length, 1);
    assert.equal(view.progress.curves.baseline.length, 1);
    assert.equal(view.progress.shrink.length, 1);
    assert.equal(view.progress.shrink[0].alive.length, view.progress.groups.length);
    // engine auto: torch where a Python with torch is found (CI installs it), else tfjs on wasm.
    assert.match(view.progress.backend, /^(torch engine, PyTorch|tfjs engine, backend wasm)/);
    assert.equal(view.config.options.engine, 'auto');
    for (const net of [view.result.learned, view.result.baseline]) assert.equal(net.engine, view.progress.backend);
    const target = view.config.resolvedTarget.value;
    assert.ok(view.result.learned.flops <= target, `learned ${view.result.learned.flops} > target ${target}`);
    assert.ok(view.result.baseline.flops <= target);
    assert.equal(view.result.exports.learned.tflite.ok, true);
    assert.equal(view.resume.available, false);

    const listed = (await api(server, 'GET', `/api/searches/${id}/artifacts`)).json.artifacts.map((a: { name: string }) => a.name).sort();
    assert.deepEqual(listed, ['baseline-structure.json', 'baseline.tflite', 'baseline.zip', 'model.json', 'model.tflite', 'model.zip', 'report.json', 'structure.json', 'weights.bin']);
    for (const name of listed) {
      const d = await download(server, `/api/searches/${id}/artifacts/${name}`);
      assert.equal(d.status, 200, name);
      assert.ok(d.bytes.length > 0, name);
      if (name.endsWith('.zip')) {
        assert.deepEqual([...d.bytes.subarray(0, 4)], [0x50, 0x4b, 0x03, 0x04], name);
        const text = Buffer.from(d.bytes).toString('latin1');
        assert.ok(text.includes('model.json') && text.includes('weights.bin'), name);
      }
    }
    const structure = JSON.parse(Buffer.from((await download(server, `/api/searches/${id}/artifacts/structure.json`)).bytes).toString());
    assert.equal(structure.predictions, 3);
    assert.deepEqual(structure, view.result.learned.structure);
    const report = JSON.parse(Buffer.from((await download(server, `/api/searches/${id}/artifacts/report.json`)).bytes).toString());
    assert.ok(report.learned && report.baseline, 'report lacks learned or baseline');
    assert.equal(report.search.id, id);
    assert.equal(report.learned.flops, view.result.learned.flops);
    const modelJson = JSON.parse(Buffer.from((await download(server, `/api/searches/${id}/artifacts/model.json`)).bytes).toString());
    assert.equal(modelJson.weightsManifest[0].paths[0], 'weights.bin');

    for (const name of ['model.tflite', 'baseline.tflite']) {
      const bytes = (await download(server, `/api/searches/${id}/artifacts/${name}`)).bytes;
      const m = await loadTfliteModel(bytes);
      try {
        assert.deepEqual(m.inputs[0].shape, [1, 12, 12, 1], name);
        assert.deepEqual(m.outputs[0].shape, [1, 3], name);
        const [out] = m.run([new Float32Array(144).fill(0.5)]);
        assert.equal(out.length, 3);
        assert.ok(Math.abs(out.reduce((a, b) => a + b, 0) - 1) < 1e-4, `${name}: softmax sums to ${out.reduce((a, b) => a + b, 0)}`);
      } finally {
        m.dispose();
      }
    }

    // A finished search's stream replays everything and ends at once; Last-Event-ID skips what was seen.
    const replay = await readEvents(server, id, { timeoutMs: 120_000 });
    assert.deepEqual(replay.filter((e) => e.id !== null).map((e) => e.id), events.filter((e) => e.id !== null).map((e) => e.id));
    assert.equal(replay[replay.length - 1].event, 'end');
    const tail = await readEvents(server, id, { timeoutMs: 120_000, headers: { 'last-event-id': String(ids[ids.length - 2]) } });
    assert.deepEqual(tail.map((e) => e.event), ['state', 'end']);

    const list = (await api(server, 'GET', '/api/searches?state=done')).json.searches;
    assert.ok(list.some((s: { id: string; progress: { fraction: number } }) => s.id === id && s.progress.fraction === 1));
  });

  it('ends a search whose worker fails as failed, with the error, and resumable', async (t) => {
    // The worker fails to select tfjs-node (engine tfjs) where it is not installed (it is not, here).
    if (await import('@tensorflow/tfjs-node' as string).then(() => true, () => false)) {
      t.skip('tfjs-node is installed here');
      return;
    }
    const created = (await api(server, 'POST', '/api/searches', { model: MODEL_JSON, data: DATA, options: { ...QUICK, engine: 'tfjs', backend: 'tfjs-node' } })).json;
    const events = await readEvents(server, created.id, { timeoutMs: 600_000 });
    assert.deepEqual(events[events.length - 1].data, { state: 'failed' });
    const view = (await api(server, 'GET', `/api/searches/${created.id}`)).json;
    assert.equal(view.state, 'failed');
    assert.equal(view.error.code, 'MORPH_ERR_BACKEND');
    assert.match(view.error.message, /tfjs-node/);
    assert.equal(view.resume.available, true);
    const resumed = await api(server, 'POST', `/api/searches/${created.id}/resume`);
    assert.equal(resumed.status, 202);
    assert.equal((await waitState(server, created.id, ['failed'], 600_000)).attempt, 2);
  });

  it('refuses bad searches with a 4xx and creates nothing', async () => {
    const agent = await FakeAgent.connect({ url: server.wsUrl, token: TOKEN, deviceKey: 'searches-device-key-1', runtimes: ['tfjs-wasm'] });
    try {
      const deviceId = agent.deviceId as string;
      const before = await searchCount(server);
      const ok = { model: MODEL_JSON, data: DATA, cost: 'flops', target: { fraction: 0.5 }, options: QUICK };
      const cases: [string, unknown, number, string][] = [
        ['no model', { ...ok, model: undefined }, 400, 'MORPH_ERR_BAD_ARGUMENT'],
        ['model and seed', { ...ok, seed: 'mobilenet' }, 400, 'MORPH_ERR_BAD_ARGUMENT'],
        ['unknown seed', { ...ok, model: undefined, seed: 'alexnet' }, 400, 'MORPH_ERR_BAD_ARGUMENT'],
        ['unknown modelId', { ...ok, model: undefined, modelId: 'm-0123456789abcdef' }, 404, 'MORPH_ERR_NOT_FOUND'],
        ['refused model', { ...ok, model: { format: 'layers-model', modelTopology: { class_name: 'Nonsense', config: {} } } }, 400, 'MORPH_ERR_NOT_A_MODEL'],
        ['unknown device', { ...ok, deviceId: 'd-000000000000' }, 404, 'MORPH_ERR_NOT_FOUND'],
        ['runtime the device lacks', { ...ok, deviceId, runtime: 'tflite' }, 400, 'MORPH_ERR_BAD_ARGUMENT'],
        ['unknown runtime', { ...ok, deviceId, runtime: 'onnx' }, 400, 'MORPH_ERR_BAD_ARGUMENT'],
        ['runtime without device', { ...ok, runtime: 'tfjs-wasm' }, 400, 'MORPH_ERR_BAD_ARGUMENT'],
        ['classes differ', { ...ok, data: { dataset: 'synthetic:h=12,w=12,c=1,classes=4' } }, 400, 'MORPH_ERR_DATASET_MISMATCH'],
        ['image size differs', { ...ok, data: { dataset: 'mnist' } }, 400, 'MORPH_ERR_DATASET_MISMATCH'],
        ['a path dataset', { ...ok, data: { dataset: 'folder:/etc' } }, 400, 'MORPH_ERR_BAD_ARGUMENT'],
        ['bad synthetic parameter', { ...ok, data: { dataset: 'synthetic:zz=1' } }, 400, 'MORPH_ERR_BAD_ARGUMENT'],
        ['target below the minimum', { ...ok, target: { value: 10 } }, 400, 'MORPH_ERR_TARGET'],
        ['target above the seed', { ...ok, target: { value: 1e12 } }, 400, 'MORPH_ERR_TARGET'],
        ['fraction of 1', { ...ok, target: { fraction: 1 } }, 400, 'MORPH_ERR_BAD_ARGUMENT'],
        ['targetMs with flops', { ...ok, targetMs: 5 }, 400, 'MORPH_ERR_BAD_ARGUMENT'],
        ['latency without a device', { ...ok, cost: 'latency', target: undefined, targetMs: 5 }, 400, 'MORPH_ERR_BAD_ARGUMENT'],
        ['unknown option', { ...ok, options: { ...QUICK, epochs: 3 } }, 400, 'MORPH_ERR_BAD_ARGUMENT'],
        ['zero epochs', { ...ok, options: { ...QUICK, finalEpochs: 0 } }, 400, 'MORPH_ERR_BAD_ARGUMENT'],
        ['not JSON', '{"model": ', 400, 'MORPH_ERR_NOT_JSON'],
      ];
      for (const [what, body, status, code] of cases) {
        const r = await api(server, 'POST', '/api/searches', body);
        assert.equal(r.status, status, `${what}: ${JSON.stringify(r.json)}`);
        assert.equal(r.json.error.code, code, `${what}: ${JSON.stringify(r.json)}`);
        assert.ok(r.json.error.message.length > 20, what);
      }
      assert.equal(await searchCount(server), before);

      assert.equal((await api(server, 'GET', '/api/searches/s-000000000000')).status, 404);
      assert.equal((await api(server, 'DELETE', '/api/searches/s-000000000000')).status, 404);
      assert.equal((await api(server, 'GET', '/api/searches/..%2F..%2Fetc/artifacts')).status, 404);
      assert.equal((await api(server, 'GET', '/api/searches?state=sleeping')).status, 400);
      const done = (await api(server, 'GET', '/api/searches?state=done')).json.searches[0];
      if (done) {
        const resume = await api(server, 'POST', `/api/searches/${done.id}/resume`);
        assert.equal(resume.status, 400);
        assert.match(resume.json.error.message, /only interrupted, failed, cancelled/);
        assert.equal((await api(server, 'GET', `/api/searches/${done.id}/artifacts/..%2Fmorphnet.db`)).status, 404);
        assert.equal((await api(server, 'GET', `/api/searches/${done.id}/artifacts/__proto__`)).status, 404);
      }
    } finally {
      agent.ws.close();
    }
  });
});

describe('cancelling searches', () => {
  let dir: string;
  let server: RunningServer;
  const calls: string[] = [];
  let agent: FakeAgent;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'morphnet-searches-cancel-'));
    server = await startServer({ port: 0, dataDir: dir, agentToken: TOKEN, localAgent: false, log: quiet, searches: { heartbeatMs: 100 } });
    // A device named like the built-in local agent: the default resolver finds it.
    agent = await FakeAgent.connect({ url: server.wsUrl, token: TOKEN, deviceKey: 'searches-host-key-01', name: 'this host (local)' });
    const fleet = server.fleet;
    const pause = fleet.pause.bind(fleet);
    const resume = fleet.resume.bind(fleet);
    fleet.pause = (deviceId: string, reason: string) => {
      calls.push(`pause ${deviceId} ${reason}`);
      pause(deviceId, reason);
    };
    fleet.resume = (deviceId: string) => {
      calls.push(`resume ${deviceId}`);
      resume(deviceId);
    };
  });
  after(async () => {
    agent.ws.close();
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('cancels a queued search and a running one (terminating its worker); the host device is paused meanwhile', async () => {
    const long = { model: MODEL_JSON, data: { ...DATA, trainLimit: 400 }, cost: 'params', target: { fraction: 0.5 }, options: { ...QUICK, shrinkEpochs: 20, finalEpochs: 20 } };
    const first = (await api(server, 'POST', '/api/searches', long)).json;
    const second = (await api(server, 'POST', '/api/searches', long)).json;
    assert.equal(second.state, 'queued');
    assert.match(second.waiting, /queued behind/);
    // The stream of a queued search stays open and sends heartbeats.
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), 30_000); // bounds the wait for a 100 ms heartbeat
    const res = await fetch(`${server.url}/api/searches/${second.id}/events`, { signal: abort.signal });
    let raw = '';
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      raw += Buffer.from(chunk).toString();
      if (raw.includes(': heartbeat')) break;
    }
    clearTimeout(timer);
    abort.abort();
    assert.match(raw, /event: state\n/);
    assert.match(raw, /: heartbeat /);
    await waitState(server, first.id, ['running'], 600_000);
    assert.deepEqual(calls, [`pause ${agent.deviceId} a search is training on this host`]);

    const cancelledQueued = await api(server, 'DELETE', `/api/searches/${second.id}`);
    assert.equal(cancelledQueued.status, 200);
    assert.equal(cancelledQueued.json.state, 'cancelled');

    // Follow the running one until its first epoch, then cancel it while it trains.
    await readEvents(server, first.id, { timeoutMs: 600_000, stop: (e) => e.event === 'step' });
    const stream = readEvents(server, first.id, { timeoutMs: 300_000 });
    const cancelled = await api(server, 'DELETE', `/api/searches/${first.id}`);
    assert.equal(cancelled.status, 200);
    assert.equal(cancelled.json.state, 'cancelled');
    assert.equal(cancelled.json.interruption.reason, 'cancelled by DELETE /api/searches/:id');
    assert.ok(cancelled.json.progress.fraction < 1);
    assert.equal(cancelled.json.resume.available, true);
    const events = await stream;
    assert.deepEqual(events[events.length - 1].data, { state: 'cancelled' });
    assert.deepEqual(calls, [`pause ${agent.deviceId} a search is training on this host`, `resume ${agent.deviceId}`]);
    // Cancelling again changes nothing.
    assert.equal((await api(server, 'DELETE', `/api/searches/${first.id}`)).json.state, 'cancelled');
    assert.equal((await api(server, 'GET', `/api/searches/${first.id}/artifacts`)).json.artifacts.length, 0);
    // The training engine's scratch directory goes with the terminated worker.
    const scratch = join(dir, 'searches', `${first.id}.scratch`);
    for (const end = Date.now() + 30_000; existsSync(scratch) && Date.now() < end; ) await new Promise((r) => setTimeout(r, 100));
    assert.equal(existsSync(scratch), false, 'no scratch directory left behind');
  });
});

describe('a server restart during a search', () => {
  let dir: string;
  let server: RunningServer | null = null;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'morphnet-searches-restart-'));
  });
  after(async () => {
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('leaves the running search interrupted, with a resume that runs it to the end', async () => {
    server = await startServer({ port: 0, dataDir: dir, agentToken: TOKEN, localAgent: false, log: quiet });
    const created = (await api(server, 'POST', '/api/searches', { model: MODEL_JSON, data: { ...DATA, trainLimit: 256 }, cost: 'flops', target: { fraction: 0.5 }, options: QUICK })).json;
    // Stop the server while the search trains (its first step event has come).
    await readEvents(server, created.id, { timeoutMs: 600_000, stop: (e) => e.event === 'step' });
    await server.close();

    server = await startServer({ port: 0, dataDir: dir, agentToken: TOKEN, localAgent: false, log: quiet });
    const view = (await api(server, 'GET', `/api/searches/${created.id}`)).json;
    assert.equal(view.state, 'interrupted');
    assert.match(view.interruption.reason, /server stopped/);
    assert.deepEqual(view.resume, {
      available: true,
      mode: 'from-start',
      action: `POST /api/searches/${created.id}/resume`,
      note: view.resume.note,
    });
    // Nothing was left running: the new server's queue is idle.
    assert.equal((await api(server, 'GET', '/api/searches?state=running')).json.searches.length, 0);

    const resumed = await api(server, 'POST', `/api/searches/${created.id}/resume`);
    assert.equal(resumed.status, 202, JSON.stringify(resumed.json));
    assert.equal(resumed.json.attempt, 2);
    const events = await readEvents(server, created.id, { timeoutMs: 900_000 });
    assert.deepEqual(events[events.length - 1].data, { state: 'done' });
    const states = events.filter((e) => e.event === 'state').map((e) => e.data.data.state);
    assert.deepEqual(states, ['queued', 'preparing', 'running', 'interrupted', 'queued', 'preparing', 'running', 'done']);
    const done = (await api(server, 'GET', `/api/searches/${created.id}`)).json;
    assert.equal(done.state, 'done');
    assert.ok(done.result.learned.flops <= done.config.resolvedTarget.value);
    assert.ok((await api(server, 'GET', `/api/searches/${created.id}/artifacts`)).json.artifacts.some((a: { name: string }) => a.name === 'model.tflite'));
  });

  it('marks a search interrupted when the server process was killed (no clean shutdown)', async () => {
    await server?.close();
    server = null;
    const killedDir = await mkdtemp(join(tmpdir(), 'morphnet-searches-killed-'));
    const bin = fileURLToPath(new URL('../../cli/bin.js', import.meta.url));
    const child = spawn(process.execPath, [bin, 'serve', '--port', '0', '--data-dir', killedDir, '--no-local-agent', '--json'], {
      env: { ...process.env, MORPHNET_AGENT_TOKEN: TOKEN },
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    try {
      const kill = setTimeout(() => child.kill('SIGKILL'), 900_000);
      let out = '';
      child.stdout.on('data', (c: Buffer) => (out += c.toString()));
      while (!out.includes('\n')) {
        if (child.exitCode !== null) throw new Error(`morphnet serve exited: ${out}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      const url = (JSON.parse(out.split('\n')[0]) as { url: string }).url;
      const remote = { url } as RunningServer;
      const created = (await api(remote, 'POST', '/api/searches', { model: MODEL_JSON, data: { ...DATA, trainLimit: 256 }, cost: 'flops', target: { fraction: 0.5 }, options: QUICK })).json;
      assert.ok(created.id, JSON.stringify(created));
      await readEvents(remote, created.id, { timeoutMs: 600_000, stop: (e) => e.event === 'step' });
      child.kill('SIGKILL');
      await once(child, 'exit');
      clearTimeout(kill);

      server = await startServer({ port: 0, dataDir: killedDir, agentToken: TOKEN, localAgent: false, log: quiet });
      assert.deepEqual(server.interruptedSearches, [created.id]);
      const view = (await api(server, 'GET', `/api/searches/${created.id}`)).json;
      assert.equal(view.state, 'interrupted');
      assert.equal(view.resume.available, true);
      const replay = await readEvents(server, created.id, { timeoutMs: 120_000 });
      assert.deepEqual(replay[replay.length - 1].data, { state: 'interrupted' });
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await server?.close();
      server = null;
      await rm(killedDir, { recursive: true, force: true });
    }
  });
});
