/**
 * The agent's protocol loop (`device-agent/core.ts`) against a fake hub on loopback, with fake
 * runtime adapters whose runs spin for a fixed time, so the loop's behaviour is tested apart
 * from tfjs: hello, results, failures, queueing, cancel, reconnect, fatal closes, stop.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { MorphError } from '../../src/errors.ts';
import { makeSpec } from '../../src/ops/op-spec.ts';
import { CLOSE_CODES, helloSchema, itemFailedSchema, PROTOCOL_VERSION, resultSchema, type RuntimeName } from '../../src/protocol/agent-protocol.ts';
import { DeviceAgent, reconnectDelay, socketFromWebSocket, type AgentEvent, type AgentIdentity, type AgentStatus, type DeviceAgentOptions, type SocketLike } from '../../device-agent/core.ts';
import type { RuntimeAdapter } from '../../device-agent/runtime.ts';
import { FakeServer, type FakeConnection } from './fake-server.ts';

const IDENTITY: AgentIdentity = {
  token: 'secret-token',
  deviceKey: 'abcdef0123456789',
  name: 'test device',
  agentVersion: '0.1.0',
  env: { platform: 'node', os: 'linux', arch: 'x64', cpuModel: 'Test CPU', cores: 4, memoryMb: 1024, nodeVersion: process.version },
};

function spin(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    // busy: a stand-in for an op
  }
}

/** An op spec's cIn picks the behaviour: 1 → prepare throws a MorphError, 2 → a plain Error, 3 → run throws. */
function fakeAdapter(name: RuntimeName, runMs = 0.05): RuntimeAdapter & { prepared: number; disposed: number; networks: string[] } {
  const adapter = {
    name,
    prepared: 0,
    disposed: 0,
    info: () => ({ name, version: 'fake 1.0', threads: 1 }),
    async prepareOp(spec: { cIn: number }) {
      if (spec.cIn === 1) throw new MorphError('MORPH_ERR_BAD_OP_SPEC', 'this fake cannot build cIn 1');
      if (spec.cIn === 2) throw new Error('boom');
      adapter.prepared++;
      return {
        run: () => {
          if (spec.cIn === 3) throw new Error('run failed');
          spin(runMs);
        },
        dispose: () => {
          adapter.disposed++;
        },
      };
    },
    networks: [] as string[],
    async prepareNetwork(network: { name: string }) {
      adapter.networks.push(network.name);
      adapter.prepared++;
      return { run: () => spin(runMs), dispose: () => void adapter.disposed++ };
    },
  };
  return adapter;
}

const op = (itemId: number, cIn = 8) => ({ itemId, kind: 'op' as const, spec: makeSpec({ kind: 'conv2d', inH: 4, inW: 4, cIn, cOut: 4, kernel: 1 }) });

let server: FakeServer;
before(async () => {
  server = await FakeServer.start();
});
after(async () => {
  await server.close();
});

interface Started {
  agent: DeviceAgent;
  events: AgentEvent[];
  statuses: AgentStatus[];
  conn: FakeConnection;
}

/** Starts an agent, takes its connection and answers its hello with a welcome. */
async function startAgent(extra: Partial<DeviceAgentOptions> = {}, t?: { after(fn: () => unknown): void }): Promise<Started> {
  const events: AgentEvent[] = [];
  const statuses: AgentStatus[] = [];
  const agent = new DeviceAgent({
    url: server.url,
    connect: (url) => socketFromWebSocket(new WebSocket(url)),
    identity: IDENTITY,
    adapters: [fakeAdapter('tfjs-wasm'), fakeAdapter('tflite')],
    reconnect: { initialMs: 20, maxMs: 100 },
    onEvent: (e) => events.push(e),
    onStatus: (s) => statuses.push(s),
    ...extra,
  });
  t?.after(() => agent.stop());
  void agent.start();
  const conn = await server.nextConnection();
  await conn.next('hello');
  conn.welcome();
  return { agent, events, statuses, conn };
}

/** Polls `check`; `ms` only bounds the wait (generous: the machine may be busy). */
async function until(check: () => boolean, what = 'a condition', ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('reconnectDelay', () => {
  it('doubles from 0.5 s to 30 s with ±50% jitter', () => {
    const at = (attempt: number, r: number) => reconnectDelay(attempt, { random: () => r });
    assert.equal(at(0, 0.5), 500);
    assert.equal(at(1, 0.5), 1000);
    assert.equal(at(3, 0.5), 4000);
    assert.equal(at(20, 0.5), 30_000);
    assert.equal(at(0, 0), 250);
    assert.equal(at(20, 0.999_999), 45_000);
  });
});

describe('DeviceAgent', () => {
  it('refuses an identity that would make an invalid hello, naming the field', () => {
    assert.throws(
      () => new DeviceAgent({ url: server.url, connect: () => ({}) as SocketLike, identity: { ...IDENTITY, deviceKey: 'bad key!' }, adapters: [fakeAdapter('tflite')] }),
      (err: unknown) => err instanceof MorphError && err.code === 'MORPH_ERR_BAD_ARGUMENT' && /deviceKey/.test(err.message),
    );
    assert.throws(
      () => new DeviceAgent({ url: server.url, connect: () => ({}) as SocketLike, identity: IDENTITY, adapters: [] }),
      (err: unknown) => err instanceof MorphError && /runtimes/.test(err.message),
    );
  });

  it('says a valid hello with its identity and the runtimes of its adapters, then reports connected', async (t) => {
    const events: AgentEvent[] = [];
    const agent = new DeviceAgent({ url: server.url, connect: (url) => socketFromWebSocket(new WebSocket(url)), identity: IDENTITY, adapters: [fakeAdapter('tfjs-wasm'), fakeAdapter('tflite')], onEvent: (e) => events.push(e) });
    t.after(() => agent.stop());
    void agent.start();
    const conn = await server.nextConnection();
    const hello = await conn.next('hello');
    const parsed = helloSchema.parse(hello);
    assert.equal(parsed.token, IDENTITY.token);
    assert.equal(parsed.deviceKey, IDENTITY.deviceKey);
    assert.deepEqual(parsed.runtimes.map((r) => r.name), ['tfjs-wasm', 'tflite']);
    assert.equal(agent.status.connection, 'connecting');
    conn.welcome('dev-9', 'agent-9');
    await until(() => agent.status.connection === 'connected', 'connected');
    assert.equal(agent.status.deviceId, 'dev-9');
    assert.equal(agent.status.agentId, 'agent-9');
    assert.ok(events.some((e) => e.type === 'welcome' && e.deviceId === 'dev-9'));
  });

  it('sends a valid result per item, on the adapter the lease names, and disposes what it prepared', async (t) => {
    const wasm = fakeAdapter('tfjs-wasm');
    const tflite = fakeAdapter('tflite');
    const { conn, agent, events } = await startAgent({ adapters: [wasm, tflite] }, t);
    conn.work('L1', 'tflite', [op(0), op(1, 16), { itemId: 2, kind: 'network', name: 'net', tfliteBase64: 'AAAA' }]);
    const answers = await conn.answers('L1', 3);
    for (const [, frame] of answers) {
      const r = resultSchema.parse(frame);
      assert.ok(r.measurement.medianMs > 0 && r.measurement.n >= 3, JSON.stringify(r.measurement));
    }
    assert.equal(tflite.prepared, 3);
    assert.equal(tflite.disposed, 3);
    assert.equal(wasm.prepared, 0);
    await until(() => events.some((e) => e.type === 'lease-end'), 'lease-end');
    const end = events.find((e) => e.type === 'lease-end');
    assert.deepEqual(end && { done: end.done, failed: end.failed, skipped: end.skipped, cancelled: end.cancelled }, { done: 3, failed: 0, skipped: 0, cancelled: false });
    assert.equal(agent.status.itemsDone, 3);
    assert.equal(agent.status.activity, 'idle');
  });

  it('times a network with a reference interleaved with it and sends the reference figures', async (t) => {
    const tflite = fakeAdapter('tflite');
    const { conn } = await startAgent({ adapters: [tflite] }, t);
    conn.work('LR', 'tflite', [{ itemId: 0, kind: 'network', name: 'candidate', tfliteBase64: 'AAAA', reference: { name: 'seed', tfliteBase64: 'BBBB' } }]);
    const r = resultSchema.parse((await conn.answers('LR', 1)).get(0));
    const ref = r.measurement.reference;
    assert.ok(ref, JSON.stringify(r.measurement));
    assert.ok(ref.medianMs > 0 && ref.ratioP10 <= ref.ratio && ref.ratio <= ref.ratioP90 && ref.rounds >= 1, JSON.stringify(ref));
    assert.deepEqual(tflite.networks, ['candidate', 'seed']);
    assert.equal(tflite.disposed, 2, 'both networks are freed');
  });

  it('times an op with a reference op interleaved with it and sends the reference figures', async (t) => {
    const tflite = fakeAdapter('tflite');
    const { conn } = await startAgent({ adapters: [tflite] }, t);
    conn.work('LO', 'tflite', [{ ...op(0), reference: makeSpec({ kind: 'conv2d', inH: 4, inW: 4, cIn: 16, cOut: 4, kernel: 1 }) }, op(1)]);
    const answers = await conn.answers('LO', 2);
    const paired = resultSchema.parse(answers.get(0)).measurement.reference;
    assert.ok(paired && paired.medianMs > 0 && paired.ratioP10 <= paired.ratio && paired.ratio <= paired.ratioP90, JSON.stringify(paired));
    assert.equal(resultSchema.parse(answers.get(1)).measurement.reference, undefined, 'an op without a reference is timed alone');
    assert.equal(tflite.prepared, 3, 'the op, its reference, the second op');
    await until(() => tflite.disposed === 3, 'the reference freed at the lease end');
  });

  it('prepares a lease\'s reference op once for all its items and frees it when the lease ends', async (t) => {
    const tflite = fakeAdapter('tflite');
    const { conn, events } = await startAgent({ adapters: [tflite] }, t);
    const reference = makeSpec({ kind: 'conv2d', inH: 4, inW: 4, cIn: 16, cOut: 4, kernel: 1 });
    conn.work('LP', 'tflite', [0, 1, 2].map((i) => ({ ...op(i, 8 + 4 * i), reference })));
    const answers = await conn.answers('LP', 3);
    for (const [, frame] of answers) assert.ok(resultSchema.parse(frame).measurement.reference, 'every op timed against the reference');
    await until(() => events.some((e) => e.type === 'lease-end'), 'lease-end');
    assert.equal(tflite.prepared, 4, 'three ops and one reference');
    assert.equal(tflite.disposed, 4, 'all freed, the reference at the lease end');
  });

  it('sends item-failed with the MorphError code (or MORPH_ERR_INTERNAL) and goes on with the next item', async (t) => {
    const { conn, agent } = await startAgent({}, t);
    conn.work('L2', 'tfjs-wasm', [op(0, 1), op(1, 2), op(2, 3), op(3)]);
    const answers = await conn.answers('L2', 4);
    const f0 = itemFailedSchema.parse(answers.get(0));
    assert.equal(f0.error.code, 'MORPH_ERR_BAD_OP_SPEC');
    assert.match(f0.error.message, /cannot build cIn 1/);
    assert.equal(itemFailedSchema.parse(answers.get(1)).error.code, 'MORPH_ERR_INTERNAL');
    assert.match(itemFailedSchema.parse(answers.get(2)).error.message, /run failed/);
    resultSchema.parse(answers.get(3));
    assert.equal(agent.status.itemsFailed, 3);
    assert.match(agent.status.lastError ?? '', /run failed/);
  });

  it('fails every item of a lease for a runtime it does not serve, with MORPH_ERR_BACKEND', async (t) => {
    const { conn } = await startAgent({ adapters: [fakeAdapter('tflite')] }, t);
    conn.work('L3', 'tfjs-webgl', [op(0), op(1)]);
    const answers = await conn.answers('L3', 2);
    for (const [, frame] of answers) {
      const f = itemFailedSchema.parse(frame);
      assert.equal(f.error.code, 'MORPH_ERR_BACKEND');
      assert.match(f.error.message, /does not serve runtime tfjs-webgl; it serves tflite/);
    }
  });

  it('queues a second lease that arrives while busy and runs it after the first', async (t) => {
    const { conn } = await startAgent({ adapters: [fakeAdapter('tfjs-wasm', 1)] }, t);
    conn.work('A', 'tfjs-wasm', [op(0), op(1), op(2)]);
    conn.work('B', 'tfjs-wasm', [op(0), op(1)]);
    const order: string[] = [];
    for (let i = 0; i < 5; i++) {
      const f = await conn.next('result');
      order.push(`${f.leaseId}/${f.itemId}`);
    }
    assert.deepEqual(order, ['A/0', 'A/1', 'A/2', 'B/0', 'B/1']);
  });

  it('skips the rest of a lease on cancel, and drops a queued lease that is cancelled', async (t) => {
    const { conn, events } = await startAgent({ adapters: [fakeAdapter('tfjs-wasm', 2)] }, t);
    const items = Array.from({ length: 30 }, (_, i) => op(i));
    conn.work('C', 'tfjs-wasm', items);
    conn.work('Q', 'tfjs-wasm', [op(0)]);
    await conn.next('result');
    conn.send({ v: PROTOCOL_VERSION, type: 'cancel', leaseId: 'C', reason: 'job cancelled' });
    conn.send({ v: PROTOCOL_VERSION, type: 'cancel', leaseId: 'Q', reason: 'job cancelled' });
    await until(() => events.some((e) => e.type === 'lease-end' && e.leaseId === 'C'), 'lease C to end');
    const end = events.find((e) => e.type === 'lease-end' && e.leaseId === 'C');
    assert.ok(end && end.type === 'lease-end' && end.cancelled && end.skipped > 0 && end.done < 30, JSON.stringify(end));
    await new Promise((r) => setTimeout(r, 100));
    const results = [...conn.pending].filter((f) => f.type === 'result');
    assert.ok(results.every((f) => f.leaseId === 'C'), 'nothing of the cancelled queued lease Q runs');
    assert.ok(results.length < 29, `${results.length + 1} of 30 items were sent`);
    assert.ok(events.some((e) => e.type === 'cancel' && e.leaseId === 'Q' && e.known));
  });

  it('ignores invalid frames (not JSON, bad fields, binary, bad op spec) and keeps working', async (t) => {
    const { conn, events } = await startAgent({}, t);
    conn.send('not json');
    conn.send({ v: 99, type: 'welcome' });
    conn.send({ v: PROTOCOL_VERSION, type: 'work', leaseId: 'bad' });
    conn.ws.send(Buffer.from([1, 2, 3]));
    conn.work('BADSPEC', 'tfjs-wasm', [{ itemId: 0, kind: 'op', spec: { ...makeSpec({ kind: 'add', inH: 4, inW: 4, cIn: 4 }), cOut: 5 } }]);
    conn.work('OK', 'tfjs-wasm', [op(0)]);
    const f = await conn.next('result');
    assert.equal(f.leaseId, 'OK');
    const invalid = events.filter((e) => e.type === 'invalid-message');
    assert.equal(invalid.length, 5, JSON.stringify(invalid));
    assert.equal(conn.pending.filter((p) => p.leaseId === 'bad' || p.leaseId === 'BADSPEC').length, 0);
  });

  it('reconnects with a new hello after the server closes the connection, and after an abrupt drop', async (t) => {
    const { conn, agent, events } = await startAgent({}, t);
    conn.ws.close(CLOSE_CODES.shuttingDown, 'restarting');
    const second = await server.nextConnection();
    helloSchema.parse(await second.next('hello'));
    second.welcome();
    second.ws.terminate();
    const third = await server.nextConnection();
    helloSchema.parse(await third.next('hello'));
    third.welcome();
    await until(() => agent.status.connection === 'connected', 'connected again');
    assert.equal(agent.status.reconnects, 2);
    const drops = events.filter((e) => e.type === 'disconnected');
    assert.equal(drops.length, 2);
    assert.ok(drops.every((d) => d.type === 'disconnected' && d.retryInMs !== null));
    // And work still flows on the new connection.
    third.work('R', 'tflite', [op(0)]);
    resultSchema.parse(await third.next('result'));
  });

  it('keeps retrying while the server is unreachable', async (t) => {
    const events: AgentEvent[] = [];
    const agent = new DeviceAgent({
      url: 'ws://127.0.0.1:1/agents',
      connect: (url) => socketFromWebSocket(new WebSocket(url)),
      identity: IDENTITY,
      adapters: [fakeAdapter('tflite')],
      reconnect: { initialMs: 10, maxMs: 20 },
      onEvent: (e) => events.push(e),
    });
    t.after(() => agent.stop());
    void agent.start();
    await until(() => events.filter((e) => e.type === 'connecting').length >= 3, 'three attempts');
    assert.equal(agent.status.connection === 'connecting' || agent.status.connection === 'disconnected', true);
    assert.equal((await agent.stop()).reason, 'stopped');
  });

  it('stops without reconnecting when the server refuses the token (4401)', async () => {
    const events: AgentEvent[] = [];
    const agent = new DeviceAgent({
      url: server.url,
      connect: (url) => socketFromWebSocket(new WebSocket(url)),
      identity: { ...IDENTITY, token: 'wrong' },
      adapters: [fakeAdapter('tflite')],
      reconnect: { initialMs: 10, maxMs: 20 },
      onEvent: (e) => events.push(e),
    });
    const finished = agent.start();
    const conn = await server.nextConnection();
    await conn.next('hello');
    conn.ws.close(CLOSE_CODES.unauthorized, 'bad token');
    const exit = await finished;
    assert.equal(exit.reason, 'unauthorized');
    assert.equal(exit.closeCode, 4401);
    assert.match(exit.message, /refused the agent token.*bad token/);
    const before = server.connections.length;
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(server.connections.length, before, 'no new connection after 4401');
    assert.equal(agent.status.connection, 'stopped');
  });

  it('stops on 4400 (hello refused) too', async () => {
    const agent = new DeviceAgent({ url: server.url, connect: (url) => socketFromWebSocket(new WebSocket(url)), identity: IDENTITY, adapters: [fakeAdapter('tflite')], reconnect: { initialMs: 10 } });
    const finished = agent.start();
    const conn = await server.nextConnection();
    await conn.next('hello');
    conn.ws.close(CLOSE_CODES.badHello, 'invalid hello');
    const exit = await finished;
    assert.equal(exit.reason, 'bad-hello');
    assert.match(exit.message, /refused the hello/);
  });

  it('stop() closes the socket with 1000, never reconnects, and is safe to call twice', async () => {
    const { agent, conn } = await startAgent();
    const count = server.connections.length;
    const [a, b] = await Promise.all([agent.stop(), agent.stop()]);
    assert.equal(a.reason, 'stopped');
    assert.equal(b, a);
    assert.equal((await conn.closed).code, 1000);
    await new Promise((r) => setTimeout(r, 150));
    assert.equal(server.connections.length, count);
    assert.equal(agent.status.connection, 'stopped');
    assert.equal((await agent.stop()).reason, 'stopped');
  });

  it('stop() during a lease ends after the item in progress and sends nothing more', async () => {
    const { agent, conn, events } = await startAgent({ adapters: [fakeAdapter('tfjs-wasm', 2)] });
    conn.work('S', 'tfjs-wasm', Array.from({ length: 50 }, (_, i) => op(i)));
    await conn.next('result');
    const exit = await agent.stop();
    assert.equal(exit.reason, 'stopped');
    assert.equal(agent.status.activity, 'idle');
    const end = events.find((e) => e.type === 'lease-end');
    assert.ok(end && end.type === 'lease-end' && end.skipped > 0);
    await conn.closed;
    const sent = conn.raw.filter((r) => JSON.parse(r).type === 'result').length;
    assert.equal(sent, end.done, 'every result sent was counted, none after the stop');
  });

  it('ends with connect-failed when the socket factory refuses the URL', async () => {
    const agent = new DeviceAgent({
      url: 'nonsense',
      connect: (url) => socketFromWebSocket(new WebSocket(url)),
      identity: IDENTITY,
      adapters: [fakeAdapter('tflite')],
    });
    const exit = await agent.start();
    assert.equal(exit.reason, 'connect-failed');
    assert.match(exit.message, /cannot open a WebSocket to nonsense/);
  });

  it('accepts the browser WebSocket type as well as ws', () => {
    // Type-level: both classes fit socketFromWebSocket without a cast.
    const forBrowser: (ws: InstanceType<typeof globalThis.WebSocket>) => SocketLike = socketFromWebSocket;
    const forWs: (ws: WebSocket) => SocketLike = socketFromWebSocket;
    assert.equal(typeof forBrowser, 'function');
    assert.equal(typeof forWs, 'function');
  });
});
