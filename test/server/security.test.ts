/**
 * Security of the daemon (docs/security.md), against real servers on 127.0.0.1: the refusal to
 * listen beyond loopback without an admin token (startServer and the CLI), the admin token on
 * the API and UI (bearer, login page and session cookie, wrong-token limiting that never refuses
 * the right token), the Host and Origin checks (HTTP and WebSocket), pairing links for browser
 * agents (expiry, one device per link, revocation), the caps and quotas on jobs, items, pairings,
 * agent connections (pending ones per address too) and JSON depth, the 404 and error answers
 * outside the routers, and that no secret reaches the log.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import sqlite3 from 'sqlite3';
import WebSocket from 'ws';
import { startServer, type RunningServer } from '../../server/app.ts';
import { MAX_PENDING_PER_ADDRESS } from '../../server/hub.ts';
import { MAX_MODEL_UPLOADS } from '../../server/model-store.ts';
import { PAIRING_CODE_PATTERN, Pairings } from '../../server/pairings.ts';
import { isMorphError } from '../../src/errors.ts';
import { CLOSE_CODES } from '../../src/protocol/agent-protocol.ts';
import { FakeAgent } from '../helpers/fake-agent.ts';
import { tinyTopology } from '../train/tiny-model.ts';

const BIN = new URL('../../cli/bin.js', import.meta.url).pathname;
const AGENT_TOKEN = 'security-agent-token-0001';
const ADMIN_TOKEN = 'security-admin-token-0123456789';

/** The environment of a child `morphnet`, without any token the developer may have exported. */
function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = { ...process.env, ...extra };
  if (!('MORPHNET_ADMIN_TOKEN' in extra)) delete env.MORPHNET_ADMIN_TOKEN;
  if (!('MORPHNET_AGENT_TOKEN' in extra)) delete env.MORPHNET_AGENT_TOKEN;
  return env;
}

interface Reply {
  status: number;
  headers: Headers;
  text: string;
  json: any;
}

async function call(base: string, method: string, path: string, options: { headers?: Record<string, string>; body?: string } = {}): Promise<Reply> {
  const res = await fetch(`${base}${path}`, { method, headers: options.headers, body: options.body, redirect: 'manual' });
  const text = await res.text();
  let json: unknown = null;
  try {
    json = JSON.parse(text);
  } catch {
    // HTML or text
  }
  return { status: res.status, headers: res.headers, text, json };
}

/** A raw request, to send a Host header fetch would not let through. */
function rawRequest(port: number, method: string, path: string, headers: Record<string, string>, body?: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });
const basic = (user: string, password: string): Record<string, string> => ({ authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` });

/** Opens a WebSocket to `url` and says nothing: 101, or the HTTP status and body of a refused upgrade. */
function upgrade(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string; ws: WebSocket }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { headers });
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, body, ws });
        ws.terminate();
      });
    });
    ws.on('open', () => resolve({ status: 101, body: '', ws }));
    ws.on('error', () => undefined);
  });
}

/**
 * A stack trace line as V8 prints it (`\n    at fn (file.ts:12:34)`), also HTML-escaped as in
 * express's default error page (`<br> &nbsp; &nbsp;at decodeParam (…/layer.js:332:12)`).
 */
const STACK_LINE = /(?:\n\s*|&nbsp;|<br>\s*)at .+?:\d+:\d+/;

describe('refusing an unsafe configuration', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'morphnet-sec-cfg-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('startServer refuses a non-loopback host without an admin token, before touching the data dir', async () => {
    for (const host of ['0.0.0.0', '::', '192.168.1.10', 'me.localhost']) {
      const dataDir = join(dir, `never-${host.replace(/[^a-z0-9]/gi, '_')}`);
      await assert.rejects(
        startServer({ host, port: 0, dataDir, adminToken: null, agentToken: AGENT_TOKEN, localAgent: false, log: () => undefined }),
        (err: unknown) => {
          assert.ok(isMorphError(err));
          assert.equal(err.code, 'MORPH_ERR_CONFIG');
          assert.match(err.message, new RegExp(`--host ${host.replace(/\./g, '\\.')}`));
          assert.match(err.message, /MORPHNET_ADMIN_TOKEN=/);
          assert.match(err.message, /--admin-token-file/);
          return true;
        },
      );
      assert.equal(existsSync(dataDir), false, 'nothing was created');
    }
  });

  it('refuses a short admin token and an admin token equal to the agent token', async () => {
    const base = { port: 0, dataDir: join(dir, 'cfg'), localAgent: false, log: () => undefined } as const;
    await assert.rejects(startServer({ ...base, adminToken: 'short-token', agentToken: AGENT_TOKEN }), /at least 16/);
    await assert.rejects(startServer({ ...base, adminToken: AGENT_TOKEN, agentToken: AGENT_TOKEN }), (err: unknown) => {
      assert.ok(isMorphError(err));
      assert.equal(err.code, 'MORPH_ERR_CONFIG');
      assert.match(err.message, /same secret/);
      return true;
    });
  });

  it('morphnet serve --host 0.0.0.0 without a token exits 2 saying how to set one', async () => {
    const dataDir = join(dir, 'cli-never');
    const run = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, [BIN, 'serve', '--host', '0.0.0.0', '--port', '0', '--data-dir', dataDir, '--no-local-agent'], { timeout: 60_000, env: childEnv() }, (err, stdout, stderr) => {
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
      });
    });
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, /^morphnet serve: --host 0\.0\.0\.0 makes the API and UI reachable from the network/m);
    assert.match(run.stderr, /export MORPHNET_ADMIN_TOKEN=/);
    assert.match(run.stderr, /--admin-token-file FILE/);
    assert.match(run.stderr, /\[MORPH_ERR_CONFIG\]/);
    assert.equal(existsSync(dataDir), false);
  });

  it('morphnet serve --admin-token-file: the token from the file guards the API; --json names its source, never its value', async () => {
    const file = join(dir, 'admin-token');
    await writeFile(file, `${ADMIN_TOKEN}\n`, { mode: 0o600 });
    const child = spawn(process.execPath, [BIN, 'serve', '--port', '0', '--data-dir', join(dir, 'cli-data'), '--no-local-agent', '--json', '--admin-token-file', file], {
      env: childEnv({ MORPHNET_AGENT_TOKEN: AGENT_TOKEN }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (c: string) => (out += c));
    try {
      const facts = await new Promise<{ url: string; adminToken: string }>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no listening line: ${out}`)), 60_000);
        child.stdout.on('data', (c: string) => {
          out += c;
          const line = out.split('\n').find((l) => l.includes('"event":"listening"'));
          if (line) {
            clearTimeout(timer);
            resolve(JSON.parse(line));
          }
        });
        child.once('exit', (code) => reject(new Error(`serve exited ${code}: ${out}`)));
      });
      assert.equal(facts.adminToken, 'file');
      assert.equal((await call(facts.url, 'GET', '/api/devices')).status, 401);
      assert.equal((await call(facts.url, 'GET', '/api/devices', { headers: bearer(ADMIN_TOKEN) })).status, 200);
    } finally {
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await new Promise((r) => (child.exitCode !== null ? r(null) : child.once('exit', r)));
      clearTimeout(killer);
    }
    assert.ok(!out.includes(ADMIN_TOKEN), 'the admin token is never printed');
    assert.ok(!out.includes(AGENT_TOKEN), 'a token from the environment is never printed');
  });
});

describe('the admin token on the API and UI', () => {
  let dir: string;
  let server: RunningServer;
  const logs: string[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'morphnet-sec-auth-'));
    server = await startServer({ port: 0, dataDir: dir, agentToken: AGENT_TOKEN, adminToken: ADMIN_TOKEN, localAgent: false, log: (l) => logs.push(l) });
  });
  after(async () => {
    await server.close();
    await rm(dir, { recursive: true, force: true });
    const all = logs.join('\n');
    assert.ok(!all.includes(ADMIN_TOKEN) && !all.includes(AGENT_TOKEN), 'no token in the log');
  });

  it('answers 401 without the token or with a wrong one, 200 with the bearer', async () => {
    for (const headers of [{}, bearer('not-the-admin-token-000'), basic('admin', ADMIN_TOKEN), bearer(AGENT_TOKEN)]) {
      const r = await call(server.url, 'GET', '/api/devices', { headers });
      assert.equal(r.status, 401, JSON.stringify(headers));
      assert.equal(r.json.error.code, 'MORPH_ERR_UNAUTHORIZED');
      assert.match(r.json.error.message, /Authorization: Bearer|log in at \/login/);
      assert.equal(r.headers.get('www-authenticate'), 'Bearer realm="morphnet"');
    }
    // Writes are refused before their body is even looked at: nothing is created.
    const post = await call(server.url, 'POST', '/api/pairings', { body: '{}' });
    assert.equal(post.status, 401);
    const query = await call(server.url, 'GET', '/api/devices?debug=1', { headers: bearer(ADMIN_TOKEN) });
    assert.equal(query.status, 400, 'an endpoint without query parameters refuses them');
    assert.match(query.json.error.message, /takes no query parameters, got "debug"/);
    const ok = await call(server.url, 'GET', '/api/devices', { headers: bearer(ADMIN_TOKEN) });
    assert.equal(ok.status, 200);
    assert.deepEqual(ok.json, { devices: [] });
    assert.equal((await call(server.url, 'GET', '/api/pairings', { headers: bearer(ADMIN_TOKEN) })).json.pairings.length, 0);
  });

  it('keeps /api/health open but says only {ok, version} without the token', async () => {
    const open = await call(server.url, 'GET', '/api/health');
    assert.equal(open.status, 200);
    assert.deepEqual(Object.keys(open.json).sort(), ['ok', 'version']);
    const full = await call(server.url, 'GET', '/api/health', { headers: bearer(ADMIN_TOKEN) });
    assert.equal(full.status, 200);
    assert.equal(typeof full.json.devices, 'number');
    assert.equal(typeof full.json.hub.connected, 'number');
    // Another scheme than Bearer (a proxy's own Basic auth, say) is not a token: the open path stays open.
    const withBasic = await call(server.url, 'GET', '/api/health', { headers: basic('monitor', 'whatever') });
    assert.equal(withBasic.status, 200);
    assert.deepEqual(Object.keys(withBasic.json).sort(), ['ok', 'version']);
    assert.equal(withBasic.headers.get('www-authenticate'), null);
  });

  it('answers unknown paths and undecodable ones with a 404/400: JSON under /api, short text elsewhere, never a stack', async () => {
    const cases: [string, Record<string, string>, number][] = [
      ['/agent/assets/tflite/%ZZ', {}, 400], // an open path: no token needed to reach the router
      ['/agent/assets/tfjs-wasm/%E0%A4%A', {}, 400],
      ['/agent/assets/tflite/nope.wasm', {}, 404],
      ['/no/such/page', bearer(ADMIN_TOKEN), 404],
      ['/%ZZ', bearer(ADMIN_TOKEN), 404],
      ['/api/jobs/%ZZ', bearer(ADMIN_TOKEN), 400],
      ['/api/no/such/endpoint', bearer(ADMIN_TOKEN), 404],
    ];
    for (const [path, headers, status] of cases) {
      const r = await call(server.url, 'GET', path, { headers });
      assert.equal(r.status, status, path);
      assert.ok(!STACK_LINE.test(r.text) && !/URIError|decodeParam|node_modules/.test(r.text), `${path}: ${r.text}`);
      if (path.startsWith('/api/')) {
        assert.match(r.headers.get('content-type') ?? '', /^application\/json/, path);
        assert.match(r.json.error.code, status === 404 ? /^MORPH_ERR_NOT_FOUND$/ : /^MORPH_ERR_BAD_ARGUMENT$/, path);
      } else if (path !== '/agent/assets/tflite/nope.wasm') {
        assert.match(r.headers.get('content-type') ?? '', /^text\/plain/, path);
        assert.match(r.text, status === 404 ? /^no such page; .*\[MORPH_ERR_NOT_FOUND\]\n$/ : /^Failed to decode param .*\[MORPH_ERR_BAD_ARGUMENT\]\n$/, path);
      }
    }
    assert.ok(!logs.some((l) => /%ZZ|URIError/.test(l)), 'a 4xx is not logged');
  });

  it('sends a browser to the login page; the form sets a session cookie that opens the API and UI', async () => {
    const ui = await call(server.url, 'GET', '/', { headers: { accept: 'text/html' } });
    assert.equal(ui.status, 303);
    assert.equal(ui.headers.get('location'), '/login?next=%2F');
    const page = await call(server.url, 'GET', '/login?next=%2Fsearches');
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /text\/html/);
    assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'none'.*form-action 'self'/);
    assert.match(page.text, /<form method="post" action="\/login">/);
    assert.match(page.text, /name="next" value="\/searches"/);

    const form = { 'content-type': 'application/x-www-form-urlencoded' };
    const wrong = await call(server.url, 'POST', '/login', { headers: form, body: new URLSearchParams({ token: 'wrong-admin-token-0000', next: '/searches' }).toString() });
    assert.equal(wrong.status, 401);
    assert.match(wrong.text, /wrong admin token/);
    assert.equal(wrong.headers.get('set-cookie'), null);

    const good = await call(server.url, 'POST', '/login', { headers: form, body: new URLSearchParams({ token: ADMIN_TOKEN, next: '/searches' }).toString() });
    assert.equal(good.status, 303);
    assert.equal(good.headers.get('location'), '/searches');
    const setCookie = good.headers.get('set-cookie') ?? '';
    assert.match(setCookie, /^morphnet_session=[A-Za-z0-9_-]{43}; Max-Age=43200; Path=\/; Expires=[A-Za-z]{3}, \d\d [A-Za-z]{3} \d{4} \d\d:\d\d:\d\d GMT; HttpOnly; SameSite=Strict$/);
    assert.ok(!setCookie.includes(ADMIN_TOKEN), 'the cookie is a session id, not the token');
    const cookie = { cookie: setCookie.split(';')[0] };
    assert.equal((await call(server.url, 'GET', '/api/devices', { headers: cookie })).status, 200);
    // Every morphnet_session cookie is tried, not just the first (a stale or malformed one may come first).
    for (const stale of ['morphnet_session=garbage', `morphnet_session=${'A'.repeat(43)}`, 'morphnet_session="%ZZ"', 'other=1; morphnet_session=']) {
      const both = await call(server.url, 'GET', '/api/devices', { headers: { cookie: `${stale}; ${cookie.cookie}` } });
      assert.equal(both.status, 200, stale);
      assert.equal((await call(server.url, 'GET', '/api/devices', { headers: { cookie: stale } })).status, 401, stale);
    }
    // The session is looked at first: a Basic or wrong Bearer header beside it neither hides it nor counts.
    assert.equal((await call(server.url, 'GET', '/api/devices', { headers: { ...cookie, ...basic('admin', 'x') } })).status, 200);
    assert.equal((await call(server.url, 'GET', '/api/devices', { headers: { ...cookie, ...bearer('wrong-token-beside-session') } })).status, 200);
    assert.equal((await call(server.url, 'GET', '/api/health', { headers: cookie })).json.hub !== undefined, true);
    // Logged in: the login page sends the browser on.
    assert.equal((await call(server.url, 'GET', '/login?next=%2Fdevices', { headers: cookie })).headers.get('location'), '/devices');
    // An open redirect is not possible through next.
    const evil = await call(server.url, 'POST', '/login', { headers: form, body: new URLSearchParams({ token: ADMIN_TOKEN, next: '//evil.example/x' }).toString() });
    assert.equal(evil.headers.get('location'), '/');

    // With the cookie, a cross-origin write is refused (403); a same-origin one reaches the API (here: a 400).
    const body = JSON.stringify({ deviceId: 'd-000000000000', runtime: 'onnx', model: 'vgg' });
    const cross = await call(server.url, 'POST', '/api/profile', { headers: { ...cookie, origin: 'http://evil.example', 'content-type': 'text/plain' }, body });
    assert.equal(cross.status, 403);
    assert.equal(cross.json.error.code, 'MORPH_ERR_FORBIDDEN');
    const sameSite = await call(server.url, 'POST', '/api/profile', { headers: { ...cookie, 'sec-fetch-site': 'same-site' }, body });
    assert.equal(sameSite.status, 403);
    const same = await call(server.url, 'POST', '/api/profile', { headers: { ...cookie, origin: server.url, 'content-type': 'application/json' }, body });
    assert.equal(same.status, 400);
    assert.equal(same.json.error.code, 'MORPH_ERR_BAD_ARGUMENT');

    // Behind a TLS proxy on this machine the cookie is Secure; an oversized login body is a 413.
    const viaProxy = await call(server.url, 'POST', '/login', { headers: { ...form, 'x-forwarded-proto': 'https' }, body: new URLSearchParams({ token: ADMIN_TOKEN }).toString() });
    assert.match(viaProxy.headers.get('set-cookie') ?? '', /; HttpOnly; Secure; SameSite=Strict$/);
    const huge = await call(server.url, 'POST', '/login', { headers: form, body: `token=${'x'.repeat(5000)}` });
    assert.equal(huge.status, 413);
    assert.match(huge.headers.get('content-type') ?? '', /^text\/html/, 'a form gets the login page back');
    assert.match(huge.text, /the login request was refused: the request body is larger than 4096 bytes/);

    // A JSON login that is not JSON, too large or of the wrong shape is answered in JSON, like the API.
    const jsonHeaders = { 'content-type': 'application/json' };
    for (const [body, status, code] of [
      ['{"token": ', 400, 'MORPH_ERR_NOT_JSON'],
      [JSON.stringify({ token: 'x'.repeat(5000) }), 413, 'MORPH_ERR_LIMIT'],
      [JSON.stringify({ token: ADMIN_TOKEN, extra: 1 }), 400, 'MORPH_ERR_BAD_ARGUMENT'],
      [JSON.stringify({ token: 'wrong-admin-token-1111' }), 401, 'MORPH_ERR_UNAUTHORIZED'],
    ] as const) {
      const r = await call(server.url, 'POST', '/login', { headers: jsonHeaders, body });
      assert.equal(r.status, status, body.slice(0, 40));
      assert.match(r.headers.get('content-type') ?? '', /^application\/json/, body.slice(0, 40));
      assert.equal(r.json.error.code, code);
      assert.equal(typeof r.json.error.message, 'string');
    }
    const jsonWrongBearer = await call(server.url, 'POST', '/login', { headers: { ...jsonHeaders, ...bearer('wrong-admin-token-2222') }, body: JSON.stringify({ token: ADMIN_TOKEN }) });
    assert.equal(jsonWrongBearer.status, 401);
    assert.equal(jsonWrongBearer.json.error.code, 'MORPH_ERR_UNAUTHORIZED');

    // JSON login works too; logout ends the session.
    const jsonLogin = await call(server.url, 'POST', '/login', { headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: ADMIN_TOKEN }) });
    assert.equal(jsonLogin.status, 200);
    assert.equal(jsonLogin.json.ok, true);
    const out = await call(server.url, 'POST', '/logout', { headers: cookie });
    assert.equal(out.status, 303);
    assert.match(out.headers.get('set-cookie') ?? '', /^morphnet_session=; Path=\/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; SameSite=Strict$/);
    assert.equal((await call(server.url, 'GET', '/api/devices', { headers: cookie })).status, 401);
  });

  it('leaves the browser agent page open (its WebSocket needs the agent token or a pairing code)', async () => {
    const page = await call(server.url, 'GET', '/agent');
    assert.equal(page.status, 200);
    assert.match(page.text, /MorphNet Edge device agent/);
    // A path that only looks like the agent page is not open.
    assert.equal((await rawRequest(server.port, 'GET', '/agent/../api/devices', { host: `127.0.0.1:${server.port}`, accept: 'application/json' })).status, 401);
    assert.equal((await rawRequest(server.port, 'GET', '/agent/assets/x/../../api/devices', { host: `127.0.0.1:${server.port}`, accept: 'application/json' })).status, 401);
  });

  it('keeps the agent token working on the WebSocket, and refuses the admin token there', async () => {
    const agent = await FakeAgent.connect({ url: server.wsUrl, token: AGENT_TOKEN, deviceKey: 'security-agent-0001' });
    assert.ok(agent.deviceId);
    agent.close();
    const admin = await FakeAgent.connect({ url: server.wsUrl, token: ADMIN_TOKEN, deviceKey: 'security-agent-0002' });
    assert.equal(admin.closeCode, CLOSE_CODES.unauthorized);
  });
});

describe('failed-token limiting', () => {
  it('answers wrong tokens 429 / 4429 once an address has failed too often, but always accepts the right one', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'morphnet-sec-limit-'));
    const server = await startServer({ port: 0, dataDir: dir, agentToken: AGENT_TOKEN, adminToken: ADMIN_TOKEN, localAgent: false, authLimits: { maxFailures: 3, windowMs: 60_000 }, log: () => undefined });
    try {
      // Other schemes and missing tokens are not counted.
      for (let i = 0; i < 5; i++) assert.equal((await call(server.url, 'GET', '/api/jobs', { headers: basic('admin', `guess-${i}`) })).status, 401);
      for (let i = 0; i < 3; i++) assert.equal((await call(server.url, 'GET', '/api/jobs', { headers: bearer(`wrong-token-number-${i}`) })).status, 401);
      const limited = await call(server.url, 'GET', '/api/jobs', { headers: bearer('wrong-token-number-3') });
      assert.equal(limited.status, 429);
      assert.equal(limited.json.error.code, 'MORPH_ERR_RATE_LIMITED');
      assert.match(limited.json.error.message, /too many wrong tokens from this address; try again in \d+ s/);
      assert.ok(Number(limited.headers.get('retry-after')) > 0);
      const wrongLogin = await call(server.url, 'POST', '/login', { headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: 'wrong-login-token-0000' }) });
      assert.equal(wrongLogin.status, 429);
      assert.equal(wrongLogin.json.error.code, 'MORPH_ERR_RATE_LIMITED');

      // The same address, blocked, still gets in with the right token: bearer, login, session.
      assert.equal((await call(server.url, 'GET', '/api/jobs', { headers: bearer(ADMIN_TOKEN) })).status, 200);
      const login = await call(server.url, 'POST', '/login', { headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: ADMIN_TOKEN }) });
      assert.equal(login.status, 200);
      const cookie = { cookie: (login.headers.get('set-cookie') ?? '').split(';')[0] };
      assert.equal((await call(server.url, 'GET', '/api/devices', { headers: cookie })).status, 200);

      // Agents: wrong tokens and codes 4401, then 4429; the agent token and a live pairing code still pass.
      const pairing = await call(server.url, 'POST', '/api/pairings', { headers: bearer(ADMIN_TOKEN) });
      assert.equal(pairing.status, 201);
      for (let i = 0; i < 3; i++) {
        const a = await FakeAgent.connect({ url: server.wsUrl, token: i === 0 ? `pair-${'A'.repeat(22)}` : `wrong-agent-token-${i}`, deviceKey: 'limited-device-0001' });
        assert.equal(a.closeCode, CLOSE_CODES.unauthorized);
      }
      const blocked = await FakeAgent.connect({ url: server.wsUrl, token: 'wrong-agent-token-3', deviceKey: 'limited-device-0001' });
      assert.equal(blocked.closeCode, CLOSE_CODES.tooManyErrors);
      assert.equal(blocked.errors[0]?.type === 'error' && blocked.errors[0].code, 'MORPH_ERR_RATE_LIMITED');
      const agent = await FakeAgent.connect({ url: server.wsUrl, token: AGENT_TOKEN, deviceKey: 'limited-device-0001' });
      assert.ok(agent.deviceId, `the agent token is accepted while blocked: ${JSON.stringify(agent.errors)}`);
      const phone = await FakeAgent.connect({ url: server.wsUrl, token: pairing.json.code, deviceKey: 'limited-phone-0001' });
      assert.ok(phone.deviceId, `a live pairing code is accepted while blocked: ${JSON.stringify(phone.errors)}`);
      agent.close();
      phone.close();
      // The two counts are apart: the agents' failures did not touch the API's, which is still blocked for wrong tokens only.
      assert.equal((await call(server.url, 'GET', '/api/devices', { headers: bearer('wrong-token-number-4') })).status, 429);
      assert.equal((await call(server.url, 'GET', '/api/devices', { headers: bearer(ADMIN_TOKEN) })).status, 200);
    } finally {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('WebSocket upgrades', () => {
  let dir: string;
  let server: RunningServer;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'morphnet-sec-ws-'));
    server = await startServer({ port: 0, dataDir: dir, agentToken: AGENT_TOKEN, adminToken: ADMIN_TOKEN, localAgent: false, limits: { maxPendingAgentsPerAddress: 3, maxAgentConnections: 5 }, log: () => undefined });
  });
  after(async () => {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses a page of another origin with HTTP 403; its own origin and Node agents (no Origin) are let in', async () => {
    for (const origin of ['http://evil.example', `http://localhost:${server.port}`, 'null', 'not a url']) {
      const r = await upgrade(server.wsUrl, { origin });
      assert.equal(r.status, 403, origin);
      assert.match(r.body, /a WebSocket from a page of another origin is refused; .*\[MORPH_ERR_FORBIDDEN\]/, origin);
    }
    const same = await upgrade(server.wsUrl, { origin: server.url });
    assert.equal(same.status, 101);
    // Behind a proxy on this machine, the origin is compared with the forwarded host.
    const proxied = await upgrade(server.wsUrl, { origin: 'https://morph.example.com', 'x-forwarded-host': 'morph.example.com' });
    assert.equal(proxied.status, 101);
    const none = await FakeAgent.connect({ url: server.wsUrl, token: AGENT_TOKEN, deviceKey: 'origin-test-device-1' });
    assert.ok(none.deviceId);
    await Promise.all([same.ws, proxied.ws, none.ws].map((ws) => new Promise((r) => (ws.once('close', r), ws.close()))));
    await new Promise((r) => setTimeout(r, 100));
  });

  it('caps sockets without a hello per address (HTTP 429) and counts them toward the connection cap (HTTP 503)', async () => {
    assert.equal(MAX_PENDING_PER_ADDRESS, 20);
    const pending: WebSocket[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await upgrade(server.wsUrl);
      assert.equal(r.status, 101);
      pending.push(r.ws);
    }
    const fourth = await upgrade(server.wsUrl);
    assert.equal(fourth.status, 429);
    assert.match(fourth.body, /3 connections from this address have not said hello yet/);
    // A socket stops counting as pending once its hello is accepted...
    assert.equal((await upgrade(server.wsUrl)).status, 429, 'still 3 pending');
    const sayHello = async (ws: WebSocket, deviceKey: string): Promise<void> => {
      const hello = { v: 3, type: 'hello', token: AGENT_TOKEN, deviceKey, name: 'pending', agentVersion: 'test', env: { platform: 'node', os: 'linux', arch: 'x64', cpuModel: 'fake', cores: 2 }, runtimes: [{ name: 'tfjs-wasm', version: '1' }] };
      ws.send(JSON.stringify(hello));
      const welcome = await new Promise<string>((r) => ws.once('message', (d) => r(d.toString())));
      assert.equal(JSON.parse(welcome).type, 'welcome');
    };
    await sayHello(pending[0], 'pending-test-device-1');
    const next = await upgrade(server.wsUrl);
    assert.equal(next.status, 101, 'one pending slot was freed by the hello');
    pending.push(next.ws);
    // ...or once it closes (the server sees the close a moment after the client does).
    await new Promise((r) => (pending[1].once('close', r), pending[1].close()));
    let after = await upgrade(server.wsUrl);
    for (let i = 0; i < 20 && after.status === 429; i++) {
      await new Promise((r) => setTimeout(r, 50));
      after = await upgrade(server.wsUrl);
    }
    assert.equal(after.status, 101, 'one pending slot was freed by the close');
    pending.push(after.ws);
    // Open now: 2 accepted + 2 pending = 4 of 5; one more fits, then the cap answers 503 whoever asks.
    await sayHello(pending[2], 'pending-test-device-2');
    const agent2 = await FakeAgent.connect({ url: server.wsUrl, token: AGENT_TOKEN, deviceKey: 'pending-test-device-3' });
    assert.ok(agent2.deviceId);
    const full = await upgrade(server.wsUrl);
    assert.equal(full.status, 503);
    assert.match(full.body, /5 agent connections, its limit/);
    for (const ws of pending) ws.close();
    agent2.close();
  });
});

describe('a loopback server without an admin token', () => {
  let dir: string;
  let server: RunningServer;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'morphnet-sec-open-'));
    server = await startServer({ port: 0, dataDir: dir, agentToken: AGENT_TOKEN, adminToken: null, localAgent: false, log: () => undefined });
  });
  after(async () => {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('answers loopback Host names only (no DNS rebinding) and refuses cross-origin writes', async () => {
    for (const host of [`127.0.0.1:${server.port}`, `localhost:${server.port}`, `[::1]:${server.port}`]) {
      assert.equal((await rawRequest(server.port, 'GET', '/api/devices', { host })).status, 200, host);
    }
    const rebound = await rawRequest(server.port, 'GET', '/api/devices', { host: `attacker.example:${server.port}` });
    assert.equal(rebound.status, 403);
    assert.equal(JSON.parse(rebound.text).error.code, 'MORPH_ERR_FORBIDDEN');
    assert.match(JSON.parse(rebound.text).error.message, /MORPHNET_ADMIN_TOKEN/);
    const proxied = await rawRequest(server.port, 'GET', '/api/devices', { host: `127.0.0.1:${server.port}`, 'x-forwarded-host': 'morph.example.com' });
    assert.equal(proxied.status, 403, 'a proxy exposing a token-less server is refused');
    const cross = await call(server.url, 'POST', '/api/pairings', { headers: { origin: 'https://evil.example', 'content-type': 'text/plain' }, body: '{}' });
    assert.equal(cross.status, 403);
    assert.equal((await call(server.url, 'GET', '/api/pairings')).json.pairings.length, 0, 'no pairing was made');
    // No token configured: /login has nothing to do.
    assert.equal((await call(server.url, 'GET', '/login')).status, 303);
  });

  it('refuses unknown query parameters on the web UI views like every other endpoint', async () => {
    for (const path of ['/api/seeds', '/api/datasets', '/api/models/mobilenet/inspect', '/api/models/mobilenet/model.json']) {
      assert.equal((await call(server.url, 'GET', path)).status, 200, path);
      const q = await call(server.url, 'GET', `${path}?limit=1`);
      assert.equal(q.status, 400, `${path}?limit=1`);
      assert.equal(q.json.error.code, 'MORPH_ERR_BAD_ARGUMENT');
    }
  });

  it('refuses a WebSocket upgrade for another Host too (a rebinding page is same-origin with itself)', async () => {
    const evil = `attacker.example:${server.port}`;
    const rebound = await upgrade(server.wsUrl, { host: evil, origin: `http://${evil}` });
    assert.equal(rebound.status, 403);
    assert.match(rebound.body, /has no admin token, so it answers only connections for localhost.*\[MORPH_ERR_FORBIDDEN\]/);
    const node = await upgrade(server.wsUrl, { host: evil });
    assert.equal(node.status, 403, 'without an Origin too');
    const proxied = await upgrade(server.wsUrl, { 'x-forwarded-host': 'morph.example.com' });
    assert.equal(proxied.status, 403, 'a proxy exposing a token-less server is refused');
    assert.match(proxied.body, /a proxy forwards connections for another host name/);
    const local = await upgrade(server.wsUrl, { host: `localhost:${server.port}`, origin: `http://localhost:${server.port}` });
    assert.equal(local.status, 101);
    await new Promise((r) => (local.ws.once('close', r), local.ws.close()));
  });
});

describe('pairing links for browser agents', () => {
  let dir: string;
  let server: RunningServer;
  const logs: string[] = [];
  const TTL_MS = 1500;
  // Expiry goes by a fake clock, moved on by hand: a real 1.5 s lifetime ran out before a busy
  // machine had paired the device (issue 18).
  let clock = Date.parse('2026-01-01T00:00:00Z');

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'morphnet-sec-pair-'));
    server = await startServer({ port: 0, dataDir: dir, agentToken: AGENT_TOKEN, adminToken: ADMIN_TOKEN, pairingTtlMs: TTL_MS, pairingClock: () => clock, localAgent: false, log: (l) => logs.push(l) });
  });
  after(async () => {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  const pair = async (body = '{}'): Promise<Reply> => call(server.url, 'POST', '/api/pairings', { headers: { ...bearer(ADMIN_TOKEN), 'content-type': 'application/json' }, body });

  it('gives an expiring link whose code pairs exactly one device, which may reconnect', async () => {
    const p = await pair();
    assert.equal(p.status, 201, p.text);
    assert.match(p.json.code, PAIRING_CODE_PATTERN);
    assert.equal(p.json.path, `/agent?pair=${p.json.code}`);
    assert.equal(p.json.url, `${server.url}/agent?pair=${p.json.code}`);
    assert.equal(Date.parse(p.json.expiresAt), clock + TTL_MS);
    assert.equal((await call(server.url, 'GET', p.json.path)).status, 200, 'the page opens without the admin token');

    const phone = await FakeAgent.connect({ url: server.wsUrl, token: p.json.code, deviceKey: 'phone-key-000001', name: 'phone' });
    assert.ok(phone.deviceId, `welcomed: ${JSON.stringify(phone.errors)}`);
    const listed = (await call(server.url, 'GET', '/api/pairings', { headers: bearer(ADMIN_TOKEN) })).json.pairings;
    assert.deepEqual(
      listed.map((x: { id: string; state: string; deviceId: string }) => [x.id, x.state, x.deviceId]),
      [[p.json.id, 'paired', phone.deviceId]],
    );
    assert.ok(!JSON.stringify(listed).includes(p.json.code), 'codes are not shown again');

    // Another device cannot use the same link.
    const thief = await FakeAgent.connect({ url: server.wsUrl, token: p.json.code, deviceKey: 'thief-key-000001' });
    assert.equal(thief.closeCode, CLOSE_CODES.unauthorized);
    assert.match(thief.errors[0]?.type === 'error' ? thief.errors[0].message : '', /already used by another device/);

    // The paired phone reconnects with the same link after it expired.
    phone.close();
    clock += TTL_MS + 100;
    const again = await FakeAgent.connect({ url: server.wsUrl, token: p.json.code, deviceKey: 'phone-key-000001', name: 'phone' });
    assert.equal(again.deviceId, phone.deviceId);

    // Revoking the pairing disconnects it and refuses the link from then on.
    const revoked = await call(server.url, 'DELETE', `/api/pairings/${p.json.id}`, { headers: bearer(ADMIN_TOKEN) });
    assert.equal(revoked.status, 200);
    assert.equal(revoked.json.revoked, true);
    await again.until(() => again.closeCode !== null);
    assert.equal(again.closeCode, CLOSE_CODES.unauthorized);
    const after = await FakeAgent.connect({ url: server.wsUrl, token: p.json.code, deviceKey: 'phone-key-000001' });
    assert.equal(after.closeCode, CLOSE_CODES.unauthorized);
    assert.equal((await call(server.url, 'DELETE', `/api/pairings/${p.json.id}`, { headers: bearer(ADMIN_TOKEN) })).status, 404);
  });

  it('refuses an expired link with close 4401 and a message saying to ask for a new one', async () => {
    const p = await pair();
    clock += TTL_MS - 1;
    assert.equal((await call(server.url, 'GET', '/api/pairings', { headers: bearer(ADMIN_TOKEN) })).json.pairings.find((x: { id: string }) => x.id === p.json.id).state, 'waiting', 'live until its last millisecond');
    clock += 1;
    const late = new FakeAgent({ url: server.wsUrl, token: p.json.code, deviceKey: 'late-phone-0001' });
    const closed = new Promise<{ code: number; reason: string }>((resolve) => late.ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
    await new Promise((r) => late.ws.once('open', r));
    late.send(late.hello());
    const { code, reason } = await closed;
    assert.equal(code, CLOSE_CODES.unauthorized);
    assert.equal(reason, 'pairing link expired');
    const err = late.errors[0];
    assert.ok(err?.type === 'error');
    assert.equal(err.code, 'MORPH_ERR_UNAUTHORIZED');
    assert.match(err.message, /expired at .*ask for a new pairing link/);
    const listed = (await call(server.url, 'GET', '/api/pairings', { headers: bearer(ADMIN_TOKEN) })).json.pairings;
    assert.equal(listed.find((x: { id: string }) => x.id === p.json.id).state, 'expired');
  });

  it('validates the pairing request and never logs a code', async () => {
    for (const body of ['{"expiresInS": 5}', '{"expiresInS": "soon"}', '{"expiresInS": 1e999}', '{"ttl": 60}', '[1]', '"x"']) {
      const r = await pair(body);
      assert.ok(r.status === 400, `${body} → ${r.status}`);
    }
    const long = await pair('{"expiresInS": 3600}');
    assert.equal(long.status, 201);
    assert.equal(long.json.expiresInS, 3600);
    // Behind a proxy on this machine, the link names the address the admin used.
    const proxied = await call(server.url, 'POST', '/api/pairings', { headers: { ...bearer(ADMIN_TOKEN), 'x-forwarded-host': 'morph.example.com', 'x-forwarded-proto': 'https' } });
    assert.equal(proxied.json.url, `https://morph.example.com/agent?pair=${proxied.json.code}`);
    const all = logs.join('\n');
    assert.match(all, /pairing p-[0-9a-f]{12} created/);
    assert.ok(!/pair-[A-Za-z0-9_-]{22}/.test(all), 'no pairing code in the log');
  });
});

describe('limits', () => {
  let dir: string;
  let server: RunningServer;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'morphnet-sec-limits-'));
    server = await startServer({
      port: 0,
      dataDir: dir,
      agentToken: AGENT_TOKEN,
      adminToken: null,
      localAgent: false,
      limits: { maxOpenJobsPerDevice: 2, maxJobItems: 5, maxAgentConnections: 2 },
      log: () => undefined,
    });
  });
  after(async () => {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  const post = (path: string, body: unknown): Promise<Reply> => call(server.url, 'POST', path, { headers: { 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body) });

  it('caps open jobs per device, items per job and agent connections', async () => {
    const agent = await FakeAgent.connect({ url: server.wsUrl, token: AGENT_TOKEN, deviceKey: 'limits-device-01', silent: true });
    const deviceId = agent.deviceId;
    const tooBig = await post('/api/profile', { deviceId, runtime: 'tfjs-wasm', model: 'resnet' });
    assert.equal(tooBig.status, 413);
    assert.equal(tooBig.json.error.code, 'MORPH_ERR_LIMIT');
    assert.match(tooBig.json.error.message, /over the limit of 5/);
    assert.equal((await post('/api/measure', { deviceId, runtime: 'tfjs-wasm', model: 'vgg' })).status, 202);
    assert.equal((await post('/api/measure', { deviceId, runtime: 'tfjs-wasm', model: 'resnet' })).status, 202);
    const third = await post('/api/measure', { deviceId, runtime: 'tfjs-wasm', model: 'mobilenet' });
    assert.equal(third.status, 409);
    assert.equal(third.json.error.code, 'MORPH_ERR_QUOTA');
    assert.match(third.json.error.message, /2 queued or running jobs already/);
    assert.equal((await call(server.url, 'GET', `/api/jobs?deviceId=${deviceId}`)).json.jobs.length, 2);

    const second = await FakeAgent.connect({ url: server.wsUrl, token: AGENT_TOKEN, deviceKey: 'limits-device-02' });
    assert.ok(second.deviceId);
    const status = await new Promise<number>((resolve) => {
      const ws = new WebSocket(server.wsUrl);
      ws.on('unexpected-response', (_req, res) => {
        resolve(res.statusCode ?? 0);
        ws.terminate();
      });
      ws.on('open', () => resolve(101));
      ws.on('error', () => undefined);
    });
    assert.equal(status, 503);
    agent.close();
    second.close();
  });

  it('answers a full store of uploaded models with 409 MORPH_ERR_QUOTA, not the size limit', async () => {
    // Fill the store to its limit behind the server's back (SQLite WAL: a second writer waits its turn).
    const db = new sqlite3.Database(join(dir, 'morphnet.db'));
    await new Promise<void>((resolve, reject) =>
      db.run(
        `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
         INSERT INTO model_uploads (id, name, layers, params, macs, input_shape_json, outputs, uploaded_at)
         SELECT printf('m-%016x', i), 'filler', 1, 1, 1, '[1]', 1, '2026-01-01T00:00:00.000Z' FROM n`,
        [MAX_MODEL_UPLOADS],
        (err) => (err ? reject(err) : resolve()),
      ),
    );
    await new Promise((r) => db.close(r));
    const r = await post('/api/models', { format: 'layers-model', modelTopology: tinyTopology([12, 12, 1], 3) });
    assert.equal(r.status, 409);
    assert.equal(r.json.error.code, 'MORPH_ERR_QUOTA');
    assert.match(r.json.error.message, /already stores 1000 uploaded models \(the limit\)/);
    assert.equal(r.json.error.details.limit, MAX_MODEL_UPLOADS);
  });

  it('refuses a declared body over the limit at once, without waiting for its bytes (413)', async () => {
    const head = (payload: string): Promise<string> =>
      new Promise((resolve, reject) => {
        const socket = connect(server.port, '127.0.0.1');
        let data = '';
        // A server that waited for the body would never answer; 30 s only bounds the wait.
        const timer = setTimeout(() => reject(new Error(`no answer in 30 s: ${JSON.stringify(data)}`)), 30_000);
        socket.setEncoding('latin1');
        socket.on('data', (c: string) => {
          data += c;
          if (data.includes('\r\n\r\n')) {
            clearTimeout(timer);
            socket.destroy();
            resolve(data);
          }
        });
        socket.on('error', reject);
        socket.write(payload);
      });
    for (const [path, limit] of [['/api/profile', 8 * 1024 * 1024], ['/api/pairings', 16 * 1024], ['/login', 4096]] as const) {
      const answer = await head(`POST ${path} HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\nContent-Type: application/json\r\nContent-Length: 99999999999\r\n\r\n`);
      assert.match(answer, /^HTTP\/1\.1 413 /, path);
      if (path !== '/login') assert.match(answer, new RegExp(`larger than ${limit} bytes`), path);
    }
  });

  it('refuses JSON nested deeper than 64 levels (413) and non-UTF-8 charsets (415) before parsing', async () => {
    const deep = `{"deviceId":"d-x","runtime":"tfjs-wasm","model":{"a":${'['.repeat(5000)}${']'.repeat(5000)}}}`;
    for (const path of ['/api/predict', '/api/models', '/api/searches', '/api/pairings']) {
      const r = await post(path, deep);
      assert.equal(r.status, 413, path);
      assert.equal(r.json.error.code, 'MORPH_ERR_LIMIT');
      assert.match(r.json.error.message, /deeper than 64 levels/);
    }
    // Brackets inside strings do not count.
    const inString = await post('/api/predict', { deviceId: 'd-x', runtime: 'tfjs-wasm', model: `${'['.repeat(90)}` });
    assert.equal(inString.status, 404, 'parsed, then refused for its unknown device');
    const utf16 = await call(server.url, 'POST', '/api/predict', { headers: { 'content-type': 'application/json; charset=utf-16' }, body: '{}' });
    assert.equal(utf16.status, 415);
  });
});

describe('pairing quota', () => {
  it('keeps at most maxPairings (MORPH_ERR_QUOTA, 409); a full store drops unused expired codes at once', () => {
    let now = 1_000_000;
    const pairings = new Pairings({ maxPairings: 2, ttlMs: 1000, now: () => now });
    pairings.create();
    pairings.create();
    assert.throws(
      () => pairings.create(),
      (err: unknown) => {
        assert.ok(isMorphError(err));
        assert.equal(err.code, 'MORPH_ERR_QUOTA');
        assert.equal(err.status, 409);
        assert.match(err.message, /2 pairings are kept already \(the limit\); revoke some/);
        return true;
      },
    );
    now += 1001; // both expired, within their grace: listed as expired until the store needs room
    assert.deepEqual(pairings.list().map((p) => p.state), ['expired', 'expired']);
    pairings.create();
    assert.deepEqual(pairings.list().map((p) => p.state), ['waiting']);
  });
});
