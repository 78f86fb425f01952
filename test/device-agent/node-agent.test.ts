/**
 * The Node agent end to end against a fake hub on loopback: real adapters (tfjs wasm and the
 * TFLite runtime), real ops and networks, the hello it says, and its environment report.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { availableAdapters } from '../../device-agent/node/adapters.ts';
import { defaultDeviceKey, hostFacts, nodeAgentEnv } from '../../device-agent/node/env.ts';
import { runNodeAgent } from '../../device-agent/node/run.ts';
import type { AgentExit } from '../../device-agent/core.ts';
import { writeNetworkTflite } from '../../src/export/tflite/network.ts';
import { parseModel } from '../../src/graph/parse.ts';
import { makeSpec } from '../../src/ops/op-spec.ts';
import { agentEnvSchema, helloSchema, itemFailedSchema, resultSchema, type HelloMessage } from '../../src/protocol/agent-protocol.ts';
import { buildTfModel, readWeights } from '../../src/train/tf-model.ts';
import { tinyTopology } from '../train/tiny-model.ts';
import { FakeServer, type FakeConnection } from './fake-server.ts';

const OPS = [
  makeSpec({ kind: 'conv2d', inH: 8, inW: 8, cIn: 8, cOut: 16, kernel: 3, activation: 'relu' }),
  makeSpec({ kind: 'depthwise', inH: 8, inW: 8, cIn: 8, kernel: 3, stride: 2 }),
  makeSpec({ kind: 'dense', cIn: 32, cOut: 16 }),
  makeSpec({ kind: 'add', inH: 8, inW: 8, cIn: 8 }),
];
const opItems = OPS.map((spec, itemId) => ({ itemId, kind: 'op' as const, spec }));

/**
 * A real timing, checked for what holds however fast or busy the machine is: finite positive
 * figures, p10 ≤ median ≤ p90, and samples that fit in the measurement's wall time (at least half
 * the kept samples last a median or more, each `runsPerSample` runs long).
 */
function assertMeasurement(m: ReturnType<typeof resultSchema.parse>['measurement'], what: string): void {
  const detail = `${what}: ${JSON.stringify(m)}`;
  for (const x of [m.medianMs, m.p10Ms, m.p90Ms, m.meanMs, m.totalMs]) assert.ok(Number.isFinite(x) && x > 0, detail);
  assert.ok(m.p10Ms <= m.medianMs && m.medianMs <= m.p90Ms, detail);
  assert.ok(Number.isInteger(m.n) && m.n >= 1 && Number.isInteger(m.runsPerSample) && m.runsPerSample >= 1 && m.attempts >= 1, detail);
  assert.ok(m.medianMs * m.runsPerSample * Math.ceil(m.n / 2) <= m.totalMs * (1 + 1e-9), detail);
}

let server: FakeServer;
let conn: FakeConnection;
let hello: HelloMessage;
let lines: string[];
let stopper: AbortController;
let exit: Promise<AgentExit>;
let tfliteBase64: string;

before(async () => {
  const parsed = parseModel(tinyTopology());
  const model = await buildTfModel(parsed.modelConfig, null);
  tfliteBase64 = Buffer.from(writeNetworkTflite(parsed.graph, readWeights(model)).bytes).toString('base64');
  model.dispose();

  server = await FakeServer.start();
  lines = [];
  stopper = new AbortController();
  exit = runNodeAgent({
    url: server.url,
    token: 'secret-token',
    name: 'node test agent',
    json: true,
    handleSignals: false,
    signal: stopper.signal,
    out: (line) => lines.push(line),
    err: () => {},
  });
  conn = await server.nextConnection(30_000);
  hello = helloSchema.parse(await conn.next('hello'));
  conn.welcome();
});

after(async () => {
  stopper.abort();
  await exit;
  await server.close();
});

describe('Node agent', () => {
  it('says a valid hello: token, name, the default device key, the environment and its runtimes', () => {
    assert.equal(hello.token, 'secret-token');
    assert.equal(hello.name, 'node test agent');
    assert.equal(hello.deviceKey, defaultDeviceKey());
    assert.match(hello.deviceKey, /^[0-9a-f]{32}$/);
    assert.equal(hello.env.platform, 'node');
    assert.equal(hello.env.nodeVersion, process.version);
    const names = hello.runtimes.map((r) => r.name);
    assert.ok(names.includes('tfjs-wasm') && names.includes('tflite') && names.includes('tfjs-cpu'), names.join(','));
    const wasm = hello.runtimes.find((r) => r.name === 'tfjs-wasm')!;
    assert.match(wasm.version, /@tensorflow\/tfjs \d/);
    assert.equal(wasm.threads, 1);
    assert.equal(typeof wasm.simd, 'boolean');
    assert.match(hello.runtimes.find((r) => r.name === 'tflite')!.version, /@tensorflow\/tfjs-tflite /);
  });

  it('prints JSON lines: what it reports, then connecting and welcome', async () => {
    const events = lines.map((l) => JSON.parse(l) as { type: string });
    assert.equal(events[0].type, 'agent');
    assert.ok(events.some((e) => e.type === 'connecting'));
    // Bounds the wait only: the welcome was sent in before().
    const deadline = Date.now() + 30_000;
    while (!lines.some((l) => JSON.parse(l).type === 'welcome') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.ok(lines.some((l) => JSON.parse(l).type === 'welcome'));
  });

  for (const runtime of ['tfjs-wasm', 'tflite'] as const) {
    it(`measures conv2d, depthwise, dense and add on ${runtime} with valid results`, async () => {
      conn.work(`ops-${runtime}`, runtime, opItems);
      const answers = await conn.answers(`ops-${runtime}`, OPS.length);
      for (let i = 0; i < OPS.length; i++) {
        const m = resultSchema.parse(answers.get(i)).measurement;
        assertMeasurement(m, OPS[i].kind);
      }
    });
  }

  it('measures a whole network on tfjs-wasm (Keras topology) and on tflite (.tflite bytes)', async () => {
    conn.work('net-wasm', 'tfjs-wasm', [{ itemId: 0, kind: 'network', name: 'tiny', modelTopology: tinyTopology() }]);
    assertMeasurement(resultSchema.parse((await conn.answers('net-wasm', 1)).get(0)).measurement, 'tiny on tfjs-wasm');
    conn.work('net-tflite', 'tflite', [{ itemId: 0, kind: 'network', name: 'tiny', tfliteBase64 }]);
    assertMeasurement(resultSchema.parse((await conn.answers('net-tflite', 1)).get(0)).measurement, 'tiny on tflite');
  });

  it('sends item-failed for a network the runtime cannot build, and measures the next item', async () => {
    const broken = { class_name: 'Model', config: { name: 'x', layers: [{ class_name: 'NoSuchLayer', name: 'a', config: { name: 'a' }, inbound_nodes: [] }], input_layers: [['a', 0, 0]], output_layers: [['a', 0, 0]] } };
    conn.work('bad-wasm', 'tfjs-wasm', [
      { itemId: 0, kind: 'network', name: 'broken', modelTopology: broken },
      { itemId: 1, kind: 'network', name: 'tflite only', tfliteBase64 },
      { ...opItems[0], itemId: 2 },
    ]);
    const wasm = await conn.answers('bad-wasm', 3);
    const f0 = itemFailedSchema.parse(wasm.get(0));
    assert.equal(f0.error.code, 'MORPH_ERR_BAD_TOPOLOGY');
    assert.match(f0.error.message, /NoSuchLayer/);
    assert.match(itemFailedSchema.parse(wasm.get(1)).error.message, /needs modelTopology/);
    resultSchema.parse(wasm.get(2));
  });

  it('sends item-failed for bytes the TFLite runtime rejects, and the runtime keeps working', async () => {
    const junk = Buffer.from('this is not a flatbuffer '.repeat(8)).toString('base64');
    conn.work('bad-tflite', 'tflite', [
      { itemId: 0, kind: 'network', name: 'junk', tfliteBase64: junk },
      { itemId: 1, kind: 'op', spec: OPS[0] },
    ]);
    const answers = await conn.answers('bad-tflite', 2);
    const f = itemFailedSchema.parse(answers.get(0));
    assert.equal(f.error.code, 'MORPH_ERR_BAD_ARGUMENT');
    assert.match(f.error.message, /TFLite runtime rejected the model/);
    resultSchema.parse(answers.get(1));
  });
});

describe('Node environment and adapters', () => {
  it('reports a valid AgentEnv and a device key that depends on the host facts only', () => {
    const facts = hostFacts();
    agentEnvSchema.parse(nodeAgentEnv(facts));
    assert.equal(defaultDeviceKey(facts), defaultDeviceKey({ ...facts }));
    assert.notEqual(defaultDeviceKey(facts), defaultDeviceKey({ ...facts, memoryMb: facts.memoryMb + 1 }));
  });

  it('lists tfjs-node and tfjs-webgl as unavailable with a reason instead of failing', async () => {
    const { adapters, unavailable } = await availableAdapters(['tfjs-cpu', 'tfjs-node', 'tfjs-webgl']);
    assert.deepEqual(adapters.map((a) => a.name), ['tfjs-cpu']);
    assert.ok(unavailable.some((u) => u.name === 'tfjs-webgl' && /browser/.test(u.reason)));
    // tfjs-node cannot install here; where it does, it loads instead.
    const node = unavailable.find((u) => u.name === 'tfjs-node');
    if (node) assert.match(node.reason, /tfjs-node/);
  });
});
