/**
 * `morphnet agent` as users run it: the real bin in a child process, against a fake hub on
 * loopback; and its `--server` URL rules.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { MorphError } from '../../src/errors.ts';
import { CLOSE_CODES } from '../../src/protocol/agent-protocol.ts';
import { agentServerUrl, parseRuntimes } from '../../cli/commands/agent.ts';
import { FakeServer } from './fake-server.ts';

const BIN = new URL('../../cli/bin.js', import.meta.url).pathname;

/** The environment without an agent token, so only the flags count. */
function env(): NodeJS.ProcessEnv {
  const e = { ...process.env };
  delete e.MORPHNET_AGENT_TOKEN;
  return e;
}

/**
 * Bounds a CLI run or a wait for its connection, nothing more: beside a CPU-bound process,
 * `morphnet agent --help` took over 60 s to start (issue 18).
 */
const CLI_MS = 600_000;

function morphnet(args: string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { timeout: CLI_MS, env: { ...env(), ...extraEnv } }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

let server: FakeServer;
before(async () => {
  server = await FakeServer.start();
});
after(async () => {
  await server.close();
});

describe('agentServerUrl', () => {
  it('turns http(s) into ws(s) with /agents and adds /agents to a ws URL without a path', () => {
    assert.equal(agentServerUrl('ws://10.0.0.2:8080'), 'ws://10.0.0.2:8080/agents');
    assert.equal(agentServerUrl('ws://10.0.0.2:8080/'), 'ws://10.0.0.2:8080/agents');
    assert.equal(agentServerUrl('ws://host:1/custom/path'), 'ws://host:1/custom/path');
    assert.equal(agentServerUrl('http://host:8080'), 'ws://host:8080/agents');
    assert.equal(agentServerUrl('https://morph.example.org/'), 'wss://morph.example.org/agents');
    assert.equal(agentServerUrl('http://example.org/morphnet/'), 'ws://example.org/morphnet/agents');
    assert.equal(agentServerUrl('http://example.org/agents'), 'ws://example.org/agents');
    assert.equal(agentServerUrl('localhost:8080'), 'ws://localhost:8080/agents');
  });

  it('refuses other schemes and non-URLs with MORPH_ERR_BAD_ARGUMENT', () => {
    for (const bad of ['ftp://host/', 'http://', '', 'ws://a b']) {
      assert.throws(() => agentServerUrl(bad), (err: unknown) => err instanceof MorphError && err.code === 'MORPH_ERR_BAD_ARGUMENT' && /--server/.test(err.message), bad);
    }
  });

  it('parses repeated and comma-separated --runtime, refusing unknown names', () => {
    assert.deepEqual(parseRuntimes(['tflite', 'tfjs-wasm,tflite']), ['tflite', 'tfjs-wasm']);
    assert.equal(parseRuntimes([]), undefined);
    assert.throws(() => parseRuntimes(['tfjs-gpu']), /unknown --runtime "tfjs-gpu"; expected one of tfjs-wasm/);
  });
});

describe('morphnet agent', () => {
  it('--help prints the usage and exits 0', async () => {
    const r = await morphnet(['agent', '--help']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Usage: morphnet agent --server/);
    assert.match(r.stdout, /MORPHNET_AGENT_TOKEN/);
  });

  it('without a token exits 2 saying to pass --token or set MORPHNET_AGENT_TOKEN', async () => {
    const r = await morphnet(['agent', '--server', server.url]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /no agent token; pass --token T or set MORPHNET_AGENT_TOKEN.*\[MORPH_ERR_BAD_ARGUMENT\]/);
    assert.equal(server.connections.length, 0);
  });

  it('without --server, with a bad URL or an unknown runtime exits 2 with what to do', async () => {
    const noServer = await morphnet(['agent', '--token', 't']);
    assert.equal(noServer.code, 2);
    assert.match(noServer.stderr, /--server is required/);
    const badUrl = await morphnet(['agent', '--server', 'ftp://x', '--token', 't']);
    assert.equal(badUrl.code, 2);
    assert.match(badUrl.stderr, /give the server as ws:\/\/HOST:PORT/);
    const runtime = await morphnet(['agent', '--server', server.url, '--token', 't', '--runtime', 'gpu', '--json']);
    assert.equal(runtime.code, 2);
    assert.equal(JSON.parse(runtime.stdout).error.code, 'MORPH_ERR_BAD_ARGUMENT');
    const webgl = await morphnet(['agent', '--server', server.url, '--token', 't', '--runtime', 'tfjs-webgl']);
    assert.equal(webgl.code, 2);
    assert.match(webgl.stderr, /runs only in a browser/);
  });

  it('exits 2 saying the token is wrong when the server closes with 4401 (token from the environment)', async () => {
    const run = morphnet(['agent', '--server', `http://127.0.0.1:${server.port}`, '--runtime', 'tfjs-cpu'], { MORPHNET_AGENT_TOKEN: 'wrong-token' });
    const conn = await server.nextConnection(CLI_MS);
    const hello = await conn.next('hello', CLI_MS);
    assert.equal(hello.token, 'wrong-token');
    conn.ws.close(CLOSE_CODES.unauthorized, 'bad token');
    const r = await run;
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /refused the agent token.*pass the server's agent token with --token or MORPHNET_AGENT_TOKEN \[MORPH_ERR_UNAUTHORIZED\]/);
  });

  it('prints its state, and on SIGTERM closes the socket (1000) and exits 0', async () => {
    const child = spawn(process.execPath, [BIN, 'agent', '--server', server.url, '--token', 'good', '--name', 'cli agent', '--runtime', 'tfjs-cpu,tflite'], { env: env(), stdio: ['ignore', 'pipe', 'pipe'] });
    const killer = setTimeout(() => child.kill('SIGKILL'), CLI_MS);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      const conn = await server.nextConnection(CLI_MS);
      const hello = await conn.next('hello', CLI_MS);
      assert.equal(hello.name, 'cli agent');
      assert.deepEqual((hello.runtimes as { name: string }[]).map((r) => r.name), ['tfjs-cpu', 'tflite']);
      conn.welcome('dev-cli', 'agent-cli');
      const end = Date.now() + CLI_MS;
      while (!stdout.includes('connected: device dev-cli') && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
      child.kill('SIGTERM');
      assert.equal(await exited, 0, stderr);
      assert.equal((await conn.closed).code, 1000);
      assert.match(stdout, /runtimes: tfjs-cpu \(@tensorflow\/tfjs [\d.]+\), tflite/);
      assert.match(stdout, /connecting to ws:\/\/127\.0\.0\.1:\d+\/agents/);
      assert.match(stdout, /connected: device dev-cli, agent agent-cli/);
      assert.match(stdout, /stopped/);
    } finally {
      clearTimeout(killer);
      child.kill('SIGKILL');
    }
  });
});
