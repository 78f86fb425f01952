/**
 * Bad input against the real daemon: `morphnet serve` in a child process (admin and agent tokens
 * from the environment, as deployed), fed more than 10 000 malformed REST requests and WebSocket
 * messages drawn from a seeded PRNG (FUZZ_SEED, default 20251107): wrong types, huge numbers,
 * NaN and Infinity, deep nesting, oversized bodies and frames, bad content types and encodings,
 * bad query strings and paths, wrong tokens, replayed and forged results, raw HTTP garbage.
 *
 * It asserts that every request gets a 4xx (never a 5xx, never a hang) with a Content-Type and no
 * stack trace in its body, JSON `{error: {code, message}}` under /api (and for a JSON login);
 * that wrong tokens get exactly 401 or 429; every WebSocket message an error reply, a duplicate
 * ack or a close code (4400, 4401, 4429, 1009); that the process is still up and healthy afterwards, that the database holds exactly what it held before (row
 * counts of every table, the stored points, item states and attempts), and that no token
 * reached the daemon's log.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import sqlite3 from 'sqlite3';
import { CLOSE_CODES, PROTOCOL_VERSION, type WorkMessage } from '../../src/protocol/agent-protocol.ts';
import { BodyFuzzer, Draw, gzipBomb, nested, prng, toText, weird } from '../helpers/fuzz-inputs.ts';
import { FakeAgent } from '../helpers/fake-agent.ts';

const SEED = Number(process.env.FUZZ_SEED ?? 20251107);
const BIN = new URL('../../cli/bin.js', import.meta.url).pathname;
const ADMIN_TOKEN = 'fuzz-admin-token-abcdefghijklmnop';
const AGENT_TOKEN = 'fuzz-agent-token-0123456789';
const TABLES = ['devices', 'models', 'jobs', 'job_items', 'points', 'networks', 'model_uploads', 'searches', 'search_events'] as const;
const REST_BODIES = 5200;
const REST_QUERIES = 1600;
const REST_OTHER = 700;
const REST_PAGES = 300; // paths outside /api, many with malformed percent-encoding
const WRONG_TOKEN_REQUESTS = 300;
const WS_BAD_CONNECTIONS = 60; // × 51 messages after a valid hello
const WS_FIRST_MESSAGES = 450; // one bad first message per connection
const WS_REPLAYS = 300;

interface Outcome {
  readonly what: string;
  readonly status: number | string;
}

// ───────────────────────────── the daemon ─────────────────────────────

interface Daemon {
  readonly child: ChildProcessWithoutNullStreams;
  readonly url: string;
  readonly wsUrl: string;
  readonly port: number;
  readonly log: () => string;
}

async function startDaemon(dataDir: string): Promise<Daemon> {
  const env = { ...process.env, MORPHNET_ADMIN_TOKEN: ADMIN_TOKEN, MORPHNET_AGENT_TOKEN: AGENT_TOKEN };
  const child = spawn(process.execPath, [BIN, 'serve', '--port', '0', '--data-dir', dataDir, '--no-local-agent', '--json'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  let log = '';
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (c: string) => (log += c));
  const facts = await new Promise<{ url: string; agents: string }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the daemon did not start: ${log}`)), 60_000);
    child.stdout.on('data', (c: string) => {
      log += c;
      const line = log.split('\n').find((l) => l.startsWith('{"event":"listening"'));
      if (line) {
        clearTimeout(timer);
        resolve(JSON.parse(line));
      }
    });
    child.once('exit', (code) => reject(new Error(`the daemon exited with ${code}: ${log}`)));
  });
  return { child, url: facts.url, wsUrl: facts.agents, port: Number(new URL(facts.url).port), log: () => log };
}

/** What the database holds: row counts, item states and a digest of the stored timings. */
async function snapshot(dbPath: string): Promise<Record<string, string | number>> {
  const db = new sqlite3.Database(dbPath, sqlite3.OPEN_READONLY);
  const all = (sql: string): Promise<Record<string, unknown>[]> => new Promise((resolve, reject) => db.all(sql, (err, rows) => (err ? reject(err) : resolve(rows as Record<string, unknown>[]))));
  try {
    const out: Record<string, string | number> = {};
    for (const t of TABLES) out[t] = Number((await all(`SELECT COUNT(*) AS n FROM ${t}`))[0].n);
    out.itemsDone = Number((await all("SELECT COUNT(*) AS n FROM job_items WHERE state = 'done'"))[0].n);
    out.itemsFailed = Number((await all("SELECT COUNT(*) AS n FROM job_items WHERE state = 'failed'"))[0].n);
    out.attempts = Number((await all('SELECT COALESCE(SUM(attempts), 0) AS n FROM job_items'))[0].n);
    const points = await all('SELECT device_id, runtime, signature, c_in, c_out, median_ms, p10_ms, p90_ms, n, job_id, item_id FROM points ORDER BY device_id, runtime, signature, c_in, c_out');
    out.points_digest = createHash('sha256').update(JSON.stringify(points)).digest('hex');
    const results = await all('SELECT id, result_json FROM job_items WHERE result_json IS NOT NULL ORDER BY id');
    out.results_digest = createHash('sha256').update(JSON.stringify(results)).digest('hex');
    return out;
  } finally {
    await new Promise((r) => db.close(r));
  }
}

// ───────────────────────────── REST ─────────────────────────────

interface HttpCase {
  readonly method: string;
  readonly path: string;
  readonly headers?: Record<string, string>;
  readonly body?: string | Buffer;
}

/**
 * A stack trace line as V8 prints it (`\n    at fn (file.ts:12:34)`), also HTML-escaped as in
 * express's default error page (`<br> &nbsp; &nbsp;at decodeParam (…/layer.js:332:12)`).
 */
const STACK_LINE = /(?:\n\s*|&nbsp;|<br>\s*)at .+?:\d+:\d+/;

/**
 * What is wrong with an answer's headers and body, or null: a body must never hold a stack trace,
 * must say its Content-Type, and under /api (or for a JSON login) must be the JSON error envelope.
 */
function badAnswer(c: HttpCase, status: number, type: string | null, text: string): string | null {
  if (STACK_LINE.test(text)) return `a stack trace in the body: ${text.slice(0, 300)}`;
  // Node's HTTP parser answers an oversized head itself, before express, with no body.
  if (status === 431) return text === '' ? null : `a 431 with a body: ${text.slice(0, 100)}`;
  if (!type) return 'no Content-Type';
  const path = c.path.split('?')[0];
  const jsonLogin = path === '/login' && /^application\/json/.test(c.headers?.['content-type'] ?? '');
  if (!/^\/api(?:\/|$)/.test(path) && !jsonLogin) return null;
  if (!/^application\/json/.test(type)) return `Content-Type ${type}, not JSON: ${text.slice(0, 100)}`;
  let body: { error?: { code?: unknown; message?: unknown } } | null;
  try {
    body = JSON.parse(text);
  } catch {
    return `a body that is not JSON: ${text.slice(0, 100)}`;
  }
  const e = body?.error;
  if (typeof e?.code !== 'string' || !/^MORPH_ERR_[A-Z_]+$/.test(e.code) || typeof e.message !== 'string' || e.message === '') return `not {error: {code, message}}: ${text.slice(0, 200)}`;
  return null;
}

/** Runs `cases` `concurrency` at a time; records every answer that is not a 4xx, or whose body is wrong (`badAnswer`). */
async function runHttp(base: string, cases: Iterable<HttpCase>, concurrency: number, bad: Outcome[], statuses: Map<number, number>, allowed = (s: number) => s >= 400 && s < 500): Promise<number> {
  const it = cases[Symbol.iterator]();
  let n = 0;
  const worker = async (): Promise<void> => {
    for (let next = it.next(); !next.done; next = it.next()) {
      const c = next.value;
      n++;
      let status: number | string;
      let wrong: string | null = null;
      try {
        const body = typeof c.body === 'string' || c.body === undefined ? c.body : new Uint8Array(c.body);
        const res = await fetch(`${base}${c.path}`, { method: c.method, headers: c.headers, body, redirect: 'manual', signal: AbortSignal.timeout(20_000) });
        const text = await res.text();
        status = res.status;
        wrong = badAnswer(c, status, res.headers.get('content-type'), text);
      } catch (err) {
        status = `no answer: ${(err as Error).name}: ${(err as Error).message}`;
      }
      if (typeof status === 'number') statuses.set(status, (statuses.get(status) ?? 0) + 1);
      if (typeof status !== 'number' || !allowed(status) || wrong !== null) {
        bad.push({ what: `${c.method} ${c.path.slice(0, 200)} ${c.headers ? JSON.stringify(c.headers).slice(0, 200) : ''} ${String(c.body ?? '').slice(0, 300)}${wrong ? ` → ${wrong}` : ''}`, status });
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return n;
}

const auth = { authorization: `Bearer ${ADMIN_TOKEN}` };
const CONTENT_TYPES = ['application/json', 'application/json', 'text/plain', 'application/x-www-form-urlencoded', 'application/xml', 'multipart/form-data; boundary=x', 'application/json; charset=utf-8', ''];

function* bodyCases(d: Draw, deviceId: string): Generator<HttpCase> {
  const fuzzer = new BodyFuzzer(d, deviceId);
  for (let i = 0; i < REST_BODIES; i++) {
    const c = fuzzer.next();
    const type = d.pick(CONTENT_TYPES);
    yield { method: c.method, path: c.path, headers: { ...auth, ...(type ? { 'content-type': type } : {}) }, body: c.body };
  }
}

const PATH_IDS = ['...', '%2e%2e%2f%2e%2e%2fetc%2fpasswd', '%ZZ', '%00', '%C0%AE%C0%AE', 'x'.repeat(2000), 's-000000000000', 'd-ffffffffffff', 'j-000000000000', 'p-000000000000', 'm-0000000000000000', '<script>', 'null', '-1'];

function* queryCases(d: Draw): Generator<HttpCase> {
  const badParams: Record<string, readonly string[]> = {
    limit: ['abc', '0', '1001', '1e999', '-1', '1.5', 'NaN', '', '10x', 'Infinity'],
    state: ['bogus', '', 'DONE', 'queued,done'],
    deviceId: ['d'.repeat(65)],
    runtime: ['bogus', '', 'TFJS-WASM'],
    signature: ['s'.repeat(301)],
  };
  const endpoints: Record<string, readonly string[]> = {
    '/api/jobs': ['limit', 'state', 'deviceId'],
    '/api/tables': ['runtime', 'signature', 'deviceId'],
    '/api/networks': ['runtime', 'deviceId'],
    '/api/searches': ['limit', 'state'],
    '/api/models': ['limit'],
  };
  const noQuery = ['/api/devices', '/api/devices/d-ffffffffffff', '/api/jobs/j-000000000000', '/api/pairings', '/api/models/m-0000000000000000', '/api/searches/s-000000000000', '/api/searches/s-000000000000/events', '/api/searches/s-000000000000/artifacts'];
  for (let i = 0; i < REST_QUERIES; i++) {
    if (d.chance(0.15)) {
      // Endpoints that take no query (events: only ?after=N).
      yield { method: 'GET', path: `${d.pick(noQuery)}?${d.pick(['x', 'after', 'limit', '__proto__', 'a'.repeat(300)])}=${encodeURIComponent(d.pick(['1', 'abc', '-1', '', d.text(10)]))}`.replace(/events\?after=1$/, 'events?after=1&x=1'), headers: auth };
      continue;
    }
    const path = d.pick(Object.keys(endpoints));
    const params: string[] = [];
    // One certain break: a bad value of a known parameter, an unknown one, or one given twice.
    const mode = d.int(0, 3);
    const known = endpoints[path];
    if (mode === 0) {
      const k = d.pick(known);
      params.push(`${k}=${encodeURIComponent(d.pick(badParams[k]))}`);
    } else if (mode === 1) {
      params.push(`${d.pick(['bogus', 'state[]', 'limit[]', '__proto__', 'constructor', '%ZZ', 'a'.repeat(500)])}=${encodeURIComponent(d.text(20))}`);
    } else if (mode === 2) {
      const k = d.pick(known);
      params.push(`${k}=1`, `${k}=2`);
    } else {
      params.push(`${d.pick(known)}=${d.pick(['%', '%E0%A4%A', '%ZZ', '%00'])}`, 'bogus=1');
    }
    // Plus noise: valid or not.
    for (let j = d.int(0, 2); j > 0; j--) params.push(`${d.pick(known)}=${encodeURIComponent(d.text(12))}`);
    if (path === '/api/tables' || path === '/api/networks') params.push('deviceId=d-ffffffffffff');
    yield { method: 'GET', path: `${path}?${params.join('&')}`, headers: auth };
  }
}

function* otherCases(d: Draw): Generator<HttpCase> {
  for (let i = 0; i < REST_OTHER; i++) {
    // Never "." or ".." as a whole segment: the client would resolve it to another (valid) path.
    const id = d.chance(0.6) ? d.pick(PATH_IDS) : encodeURIComponent(d.text(30)).replace(/^\.{1,2}$/, 'x.') || 'x';
    const kind = d.int(0, 9);
    if (kind <= 3) {
      const path = d.pick([`/api/devices/${id}`, `/api/jobs/${id}`, `/api/searches/${id}`, `/api/searches/${id}/events`, `/api/searches/${id}/artifacts`, `/api/searches/${id}/artifacts/${d.pick(['..%2F..%2Fmorphnet.db', 'model.json', '%2e%2e', id])}`, `/api/models/${id}`]);
      yield { method: 'GET', path, headers: auth };
    } else if (kind <= 5) {
      yield { method: 'DELETE', path: d.pick([`/api/jobs/${id}`, `/api/searches/${id}`, `/api/pairings/${id}`]), headers: auth };
    } else if (kind === 6) {
      yield { method: 'POST', path: `/api/searches/${id}/resume`, headers: auth, body: toText(weird(d)) };
    } else if (kind === 7) {
      // Wrong method or no such endpoint.
      yield { method: d.pick(['PUT', 'PATCH', 'DELETE', 'POST']), path: d.pick(['/api/profile', '/api/devices', '/api/health', '/api/nope', `/api/${id}`, '/api/tables']), headers: { ...auth, 'content-type': 'application/json' }, body: d.chance(0.5) ? '{}' : undefined };
    } else if (kind === 8) {
      // Encodings and charsets the parser refuses.
      const path = d.pick(['/api/profile', '/api/models', '/api/searches', '/api/predict', '/api/pairings']);
      const variant = d.int(0, 3);
      if (variant === 0) yield { method: 'POST', path, headers: { ...auth, 'content-encoding': 'gzip' }, body: Buffer.from(d.text(100) || 'x') };
      else if (variant === 1) yield { method: 'POST', path, headers: { ...auth, 'content-encoding': d.pick(['compress', 'x-bogus', 'gzip, br, zstd']) }, body: '{}' };
      else if (variant === 2) yield { method: 'POST', path, headers: { ...auth, 'content-type': `application/json; charset=${d.pick(['latin1', 'utf-16', 'utf-32', 'koi8-r', 'bogus'])}` }, body: '{"expiresInS": 1}' };
      else yield { method: 'POST', path, headers: { ...auth, 'content-type': 'application/json' }, body: `{"model": ${nested(d.int(65, 50_000), '{"a":', '}').replace(/}$/, '1}')}}` };
    } else {
      // A path longer than the header limit (431).
      yield { method: 'GET', path: `/api/jobs/${'x'.repeat(20_000)}`, headers: auth };
    }
  }
  // A few oversized bodies (413) and zip bombs (413 once inflated past the limit).
  for (let i = 0; i < 4; i++) yield { method: 'POST', path: d.pick(['/api/profile', '/api/models']), headers: { ...auth, 'content-type': 'application/json' }, body: `{"pad":"${'x'.repeat(9 * 1024 * 1024)}"}` };
  const bomb = gzipBomb(12 * 1024 * 1024);
  for (let i = 0; i < 4; i++) yield { method: 'POST', path: '/api/models', headers: { ...auth, 'content-encoding': 'gzip', 'content-type': 'application/json' }, body: bomb };
}

/** Percent-encodings a URI decoder refuses, and a few odd but valid ones. */
const BAD_ENCODINGS = ['%ZZ', '%', '%E0%A4%A', '%C0', '%%', '%u0041', '%ZZ%ZZ', 'x%', '%G1', '%00', '%C0%AE', '%FF%FE'];

/** Paths outside /api: the agent page's assets (open, no token) and other pages (with the token). */
function* pageCases(d: Draw): Generator<HttpCase> {
  for (let i = 0; i < REST_PAGES; i++) {
    const enc = d.chance(0.8) ? d.pick(BAD_ENCODINGS) : encodeURIComponent(d.text(20)).replace(/^\.{1,2}$/, 'x.') || 'x';
    if (d.chance(0.5)) {
      // Open paths: no token needed to reach the router and its decoding of `:file`.
      const path = d.pick([`/agent/assets/tflite/${enc}`, `/agent/assets/tfjs-wasm/${enc}`, `/agent/assets/${enc}/tflite_web_api_cc.wasm`, `/agent/assets/tflite/${enc}${enc}.wasm`]);
      yield { method: d.pick(['GET', 'GET', 'HEAD', 'POST']), path, headers: d.chance(0.5) ? { accept: 'text/html' } : {} };
    } else {
      const path = d.pick([`/${enc}`, `/ui/${enc}`, `/agent/${enc}`, `/agent/assets/${enc}`, `/${enc}/${enc}`, `/login/${enc}`, `/favicon.ico${d.chance(0.5) ? enc : ''}`]);
      yield { method: d.pick(['GET', 'POST', 'PUT', 'DELETE']), path, headers: { ...auth, ...(d.chance(0.5) ? { accept: 'text/html' } : {}) } };
    }
  }
}

function* wrongTokenCases(d: Draw, validProfile: string): Generator<HttpCase> {
  for (let i = 0; i < WRONG_TOKEN_REQUESTS; i++) {
    const authorization = d.pick([`Bearer ${d.text(30).replace(/[^\x21-\x7e]/g, 'x') || 'x'}`, `Bearer ${AGENT_TOKEN}`, `Basic ${Buffer.from(`admin:${ADMIN_TOKEN}`).toString('base64')}`, 'Bearer', `Bearer ${ADMIN_TOKEN}x`, `Bearer ${'a'.repeat(5000)}`, `bearer  ${ADMIN_TOKEN.slice(1)}`, '']);
    const headers: Record<string, string> = { 'content-type': 'application/json', ...(authorization ? { authorization } : {}) };
    // Valid bodies too: without the token even a good request must store nothing.
    yield d.pick<HttpCase>([
      { method: 'POST', path: '/api/profile', headers, body: validProfile },
      { method: 'POST', path: '/api/pairings', headers, body: '{}' },
      { method: 'GET', path: '/api/devices', headers },
      { method: 'GET', path: '/api/jobs?limit=5', headers },
      { method: 'POST', path: '/login', headers, body: JSON.stringify({ token: d.text(20) || 'x' }) },
    ]);
  }
}

/** Raw bytes an HTTP client library would not send; the answer's status line must be 4xx. */
async function rawHttp(port: number, payload: string): Promise<number | string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let data = '';
    const done = (v: number | string): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => done(`no answer in 10 s (${JSON.stringify(data.slice(0, 80))})`), 10_000);
    socket.setEncoding('latin1');
    socket.on('data', (c: string) => {
      data += c;
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(data);
      if (m) done(Number(m[1]));
    });
    socket.on('error', () => undefined);
    socket.on('close', () => done(/^HTTP\/1\.[01] (\d{3})/.exec(data)?.[1] ? Number(/^HTTP\/1\.[01] (\d{3})/.exec(data)![1]) : `closed without an answer (${JSON.stringify(data.slice(0, 80))})`));
    socket.write(payload, 'latin1');
  });
}

function rawCases(): string[] {
  const h = 'Host: 127.0.0.1\r\n';
  return [
    'GARBAGE\r\n\r\n',
    '\x00\x01\x02\x03\r\n\r\n',
    `GET /api/devices HTTP/1.1\r\n${h}Content-Length: -1\r\n\r\n`,
    `GET /api/devices HTTP/1.1\r\n${h}Content-Length: abc\r\n\r\n`,
    `POST /api/profile HTTP/1.1\r\n${h}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n`,
    `POST /api/profile HTTP/1.1\r\n${h}Authorization: Bearer ${ADMIN_TOKEN}\r\nContent-Length: 99999999999\r\n\r\n`,
    `POST /api/profile HTTP/1.1\r\n${h}Authorization: Bearer ${ADMIN_TOKEN}\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\nxx\r\n`,
    `GET /api/devices HTTP/1.1\r\n${h}X-Bad\x01Header: 1\r\n\r\n`,
    `GET /api/devices HTTP/1.1\r\n${h}X-Big: ${'y'.repeat(20_000)}\r\n\r\n`,
    'GET /api/devices HTTP/1.1\r\n\r\n',
    `GET /api/devices HTTP/1.1\r\n${h}${h}\r\n`,
    `GET http://evil.example/api/devices HTTP/1.1\r\nHost: evil.example\r\n\r\n`,
  ];
}

// ───────────────────────────── WebSocket ─────────────────────────────

type Frame = string | Buffer;

/** A message an agent of another device may send after its hello; each must get an error. */
function badAgentMessage(d: Draw, lease: WorkMessage, stored: string): Frame {
  const m = { medianMs: 1, p10Ms: 0.9, p90Ms: 1.1, meanMs: 1, cv: 0.05, n: 20, runsPerSample: 1, stable: true, attempts: 1, totalMs: 100 };
  const item = d.pick(lease.items).itemId;
  const result = (over: Record<string, unknown>): Record<string, unknown> => ({ v: PROTOCOL_VERSION, type: 'result', leaseId: lease.leaseId, itemId: item, measurement: m, ...over });
  switch (d.int(0, 13)) {
    case 0:
      return d.text(300) || '!';
    case 1:
      return d.pick(['{"v":3', '[]', '5', 'null', '"x"', '{}', '{"v":3,"type":"result"}', '\ufeff{}', '{"v":3,"type":"result","leaseId":"l-1","itemId":1,"measurement":{}}']);
    case 2:
      return toText(result({ v: d.pick([0, 1, '2', null, [2], 2.0000001]) }));
    case 3:
      return toText(result({ type: d.pick(['RESULT', 'results', '', 'ack', 'work', 'welcome', 5, null]) }));
    case 4: {
      const field = d.pick(Object.keys(m));
      const bad = d.pick<unknown>([-1, '1', null, [], {}, { raw: '1e999' }, { raw: 'NaN' }, 1e8, 1.5, 'yes', -0.5]);
      // Values that happen to be valid for the field are replaced by one that is not.
      const measurement = { ...m, [field]: bad };
      if (field === 'stable' && typeof bad === 'boolean') measurement.stable = 'yes' as never;
      if (field === 'cv' && bad === 1.5) measurement.cv = -1;
      if (field === 'totalMs' && bad === 1.5) measurement.totalMs = -1;
      return toText(result({ measurement }));
    }
    case 5:
      return toText(result({ measurement: { ...m, p10Ms: 5 } }));
    case 6:
      return toText(result({ measurement: d.chance(0.5) ? { ...m, extra: 1 } : (({ n: _n, ...rest }) => rest)(m) }));
    case 7:
      return toText(result({ leaseId: d.pick(['', 'x'.repeat(65), 'l-$$$', 5, null, 'l-../..']) }));
    case 8:
      return toText(result({ itemId: d.pick([-1, 1.5, '3', 1e10, null, { raw: '1e999' }]) }));
    case 9:
      // Forged: well formed, for a lease of another device, an unknown lease or item.
      return toText(result(d.pick([{}, { leaseId: `l-${d.int(0, 0xffffff).toString(16).padStart(12, '0')}` }, { itemId: 999_999_999 }])));
    case 10:
      // Replayed: the exact result the owning device stored.
      return stored;
    case 11:
      return toText({ v: 3, type: 'item-failed', leaseId: lease.leaseId, itemId: item, error: d.pick([{ code: 'X', message: 'forged' }, { code: 'x'.repeat(65), message: 'y' }, { code: 'X', message: 'y'.repeat(2001) }, null, 'oops']) });
    case 12:
      return `{"v":3,"type":"result","leaseId":"${lease.leaseId}","itemId":${item},"measurement":${nested(d.int(100, 60_000))}}`;
    default:
      return Buffer.from(d.text(50) || 'binary');
  }
}

/** A first message that is not a valid hello (or a hello that must be refused). */
function badFirstMessage(d: Draw, deviceKey: string): Frame {
  const hello = { v: 3, type: 'hello', token: AGENT_TOKEN, deviceKey, name: 'fuzz', agentVersion: 'fuzz', env: { platform: 'node', os: 'linux', arch: 'x64', cpuModel: 'fuzz', cores: 2 }, runtimes: [{ name: 'tfjs-wasm', version: '1' }] };
  switch (d.int(0, 7)) {
    case 0:
      return d.text(200) || '?';
    case 1: {
      // A field of a wrong type or length (a wrong token of the right type is step 7's business).
      const bad: Record<string, readonly unknown[]> = {
        token: [5, null, '', 'x'.repeat(257), [], { raw: 'NaN' }],
        deviceKey: [5, null, '', [], {}],
        name: ['', 'x'.repeat(101), 5, null, { raw: '1e999' }],
        env: [null, 'linux', [], {}, { raw: '1e999' }],
        runtimes: [null, 'tfjs-wasm', {}, [null]],
        v: [1, '2', null, 0, { raw: 'NaN' }],
        type: ['HELLO', 5, null, ''],
      };
      const field = d.pick(Object.keys(bad));
      return toText({ ...hello, [field]: d.pick(bad[field]) });
    }
    case 2:
      return toText({ ...hello, deviceKey: d.pick(['short', 'k'.repeat(129), 'bad key with spaces', '../../etc']) });
    case 3:
      return toText({ ...hello, runtimes: d.pick([[], [{ name: 'onnx', version: '1' }], Array.from({ length: 6 }, () => ({ name: 'tfjs-wasm', version: '1' })), [{ name: 'tfjs-wasm' }]]) });
    case 4:
      return toText({ ...hello, env: { ...hello.env, cores: d.pick([0, -1, 1e9, 1.5, 'two', { raw: 'NaN' }]) } });
    case 5:
      return toText({ v: 3, type: 'result', leaseId: 'l-000000000000', itemId: 1, measurement: { medianMs: 1, p10Ms: 1, p90Ms: 1, meanMs: 1, cv: 0, n: 1, runsPerSample: 1, stable: true, attempts: 1, totalMs: 1 } });
    case 6:
      return toText({ ...hello, extra: true });
    default:
      return `{"v":3,"type":"hello","env":${nested(d.int(100, 80_000))}}`;
  }
}

async function opened(a: FakeAgent): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    a.ws.once('open', () => resolve());
    a.ws.once('error', reject);
  });
}

function sendFrame(a: FakeAgent, f: Frame): void {
  if (typeof f === 'string') a.ws.send(f);
  else a.ws.send(f, { binary: true });
}

// ───────────────────────────── the test ─────────────────────────────

describe('fuzzing the daemon with malformed input', { timeout: 300_000 }, () => {
  let dir: string;
  let daemon: Daemon;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'morphnet-fuzz-'));
    daemon = await startDaemon(dir);
  });
  after(async () => {
    if (daemon && daemon.child.exitCode === null) {
      daemon.child.kill('SIGTERM');
      const killer = setTimeout(() => daemon.child.kill('SIGKILL'), 15_000);
      await new Promise((r) => (daemon.child.exitCode !== null ? r(null) : daemon.child.once('exit', r)));
      clearTimeout(killer);
    }
    await rm(dir, { recursive: true, force: true });
  });

  it(`answers ≥ 10 000 malformed requests and messages with 4xx or close codes, stays up and stores nothing (seed ${SEED})`, async (t) => {
    const d = new Draw(prng(SEED));
    const dbPath = join(dir, 'morphnet.db');

    // Two devices: A holds a lease with one stored result, B is the one whose agents misbehave.
    const owner = await FakeAgent.connect({ url: daemon.wsUrl, token: AGENT_TOKEN, deviceKey: 'fuzz-owner-device-01', silent: true });
    const other = await FakeAgent.connect({ url: daemon.wsUrl, token: AGENT_TOKEN, deviceKey: 'fuzz-other-device-01', silent: true });
    assert.ok(owner.deviceId && other.deviceId);
    const validProfile = JSON.stringify({ deviceId: owner.deviceId, runtime: 'tfjs-wasm', model: 'vgg', grid: { maxPerAxis: 2 }, refine: false, measure: { maxMs: 100 } });
    const created = await fetch(`${daemon.url}/api/profile`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: validProfile });
    assert.equal(created.status, 202);
    await owner.until(() => owner.leases.length > 0);
    const lease = owner.leases[0];
    owner.sendResult(lease.leaseId, lease.items[0].itemId, 1.25);
    await owner.until(() => owner.acks.length === 1);
    assert.equal(owner.acks[0].status, 'stored');
    const storedResult = JSON.stringify({
      v: 3,
      type: 'result',
      leaseId: lease.leaseId,
      itemId: lease.items[0].itemId,
      measurement: { medianMs: 1.25, p10Ms: 1.125, p90Ms: 1.375, meanMs: 1.25, cv: 0.05, n: 20, runsPerSample: 1, stable: true, attempts: 1, totalMs: 250 },
    });
    const before = await snapshot(dbPath);
    const started = performance.now();
    const bad: Outcome[] = [];
    const statuses = new Map<number, number>();
    const closeCodes = new Map<number, number>();
    const counted = (code: number | null): void => {
      if (code !== null) closeCodes.set(code, (closeCodes.get(code) ?? 0) + 1);
    };

    // 1. REST with the admin token: malformed bodies, queries, paths, encodings, sizes.
    let rest = 0;
    rest += await runHttp(daemon.url, bodyCases(d, other.deviceId as string), 6, bad, statuses);
    rest += await runHttp(daemon.url, queryCases(d), 6, bad, statuses);
    rest += await runHttp(daemon.url, otherCases(d), 4, bad, statuses);
    rest += await runHttp(daemon.url, pageCases(d), 4, bad, statuses);
    const restMs = performance.now() - started;

    // 2. WebSocket, after a valid hello (device B): 50 bad messages, each answered with an error,
    //    then a 51st, answered and closed with 4429.
    let ws = 0;
    for (let c = 0; c < WS_BAD_CONNECTIONS; c += 6) {
      await Promise.all(
        Array.from({ length: Math.min(6, WS_BAD_CONNECTIONS - c) }, async () => {
          const a = await FakeAgent.connect({ url: daemon.wsUrl, token: AGENT_TOKEN, deviceKey: 'fuzz-other-device-01', silent: true });
          if (!a.deviceId) return bad.push({ what: 'hello of device B', status: `refused: ${a.closeCode}` });
          const frames = Array.from({ length: 51 }, () => badAgentMessage(d, lease, storedResult));
          for (const f of frames.slice(0, 50)) sendFrame(a, f);
          await a.until(() => a.errors.length + a.acks.length >= 50 || a.closeCode !== null, 20_000).catch(() => undefined);
          if (a.errors.length !== 50 || a.acks.length !== 0 || a.closeCode !== null) {
            bad.push({ what: `50 bad messages after hello: ${a.errors.length} errors, ${a.acks.length} acks`, status: String(a.closeCode) });
          }
          sendFrame(a, frames[50]);
          await a.until(() => a.closeCode !== null, 20_000).catch(() => undefined);
          if (a.closeCode !== CLOSE_CODES.tooManyErrors || a.errors.length !== 51) bad.push({ what: `the 51st bad message: ${a.errors.length} errors`, status: String(a.closeCode) });
          counted(a.closeCode);
          ws += 51;
        }),
      );
    }

    // 3. Replays of the stored result by its own device: acknowledged as duplicates, nothing changes.
    for (let i = 0; i < WS_REPLAYS; i++) owner.send(storedResult);
    await owner.until(() => owner.acks.length >= 1 + WS_REPLAYS, 30_000).catch(() => undefined);
    const replayAcks = owner.acks.slice(1);
    if (replayAcks.length !== WS_REPLAYS || replayAcks.some((a) => a.status !== 'duplicate') || owner.errors.length > 0) {
      bad.push({ what: `${WS_REPLAYS} replays: ${replayAcks.length} acks (${[...new Set(replayAcks.map((a) => a.status))].join(',')}), ${owner.errors.length} errors`, status: 'replay' });
    }
    ws += WS_REPLAYS;

    // 4. A bad first message per connection: an error and 4400 (a binary frame: an error, the connection stays).
    // 10 at a time: with the sockets of the batch before still closing on the server's side, at
    // most 20 from this address are without a hello at once (the hub's per-address cap).
    for (let c = 0; c < WS_FIRST_MESSAGES; c += 10) {
      await Promise.all(
        Array.from({ length: Math.min(10, WS_FIRST_MESSAGES - c) }, async () => {
          const first = d.chance(0.05) ? Buffer.from('binary hello') : badFirstMessage(d, 'fuzz-other-device-01');
          const a = new FakeAgent({ url: daemon.wsUrl, token: AGENT_TOKEN });
          await opened(a);
          sendFrame(a, first);
          await a.until(() => a.closeCode !== null || (typeof first !== 'string' && a.errors.length > 0), 15_000).catch(() => undefined);
          const ok = typeof first === 'string' ? a.closeCode === CLOSE_CODES.badHello && a.errors.length === 1 : a.errors.length === 1;
          if (!ok) bad.push({ what: `first message ${String(first).slice(0, 200)}: ${a.errors.length} errors`, status: String(a.closeCode) });
          counted(a.closeCode);
          if (a.closeCode === null) a.close();
          ws++;
        }),
      );
    }

    // 5. Oversized frames, before and after the hello: close 1009.
    for (let i = 0; i < 20; i++) {
      const a = i % 2 === 0 ? await FakeAgent.connect({ url: daemon.wsUrl, token: AGENT_TOKEN, deviceKey: 'fuzz-other-device-01', silent: true }) : new FakeAgent({ url: daemon.wsUrl, token: AGENT_TOKEN });
      if (i % 2 === 1) await opened(a);
      a.send(d.chance(0.5) ? `{"v":3,"pad":"${'z'.repeat(300 * 1024)}"}` : storedResult.replace('"v":3', `"pad":"${'z'.repeat(257 * 1024)}","v":3`));
      await a.until(() => a.closeCode !== null, 15_000).catch(() => undefined);
      if (a.closeCode !== 1009) bad.push({ what: 'oversized frame', status: String(a.closeCode) });
      counted(a.closeCode);
      ws++;
    }

    // 6. Wrong tokens on the API: 401, then 429 once this address has failed too often; nothing else.
    const wrongStatuses = new Map<number, number>();
    rest += await runHttp(daemon.url, wrongTokenCases(d, validProfile), 4, bad, wrongStatuses, (s) => s === 401 || s === 429);
    for (const [s, n] of wrongStatuses) statuses.set(s, (statuses.get(s) ?? 0) + n);
    if (!wrongStatuses.has(429)) bad.push({ what: `${WRONG_TOKEN_REQUESTS} wrong tokens never reached the limit: ${JSON.stringify(Object.fromEntries(wrongStatuses))}`, status: 'no 429' });
    // The right token still opens the API from this (blocked) address.
    const stillOpen = await fetch(`${daemon.url}/api/devices`, { headers: auth });
    if (stillOpen.status !== 200) bad.push({ what: 'the right token after the wrong ones', status: stillOpen.status });
    await stillOpen.arrayBuffer();

    // 7. Wrong tokens and unknown pairing codes on the WebSocket: 4401, then 4429.
    for (let i = 0; i < 40; i++) {
      const token = d.pick([d.text(40).replace(/[^\x21-\x7e]/g, 'x') || 'x', ADMIN_TOKEN, `${AGENT_TOKEN}x`, `pair-${'A'.repeat(22)}`, `pair-${Buffer.from(d.text(16)).toString('base64url').padEnd(22, 'x').slice(0, 22)}`]);
      const a = await FakeAgent.connect({ url: daemon.wsUrl, token, deviceKey: `fuzz-intruder-${String(i).padStart(4, '0')}` });
      if (a.closeCode !== CLOSE_CODES.unauthorized && a.closeCode !== CLOSE_CODES.tooManyErrors) bad.push({ what: `hello with a wrong token ${token.slice(0, 40)}`, status: String(a.closeCode) });
      counted(a.closeCode);
      ws++;
    }

    // 8. Raw HTTP garbage.
    for (const payload of rawCases()) {
      const status = await rawHttp(daemon.port, payload);
      if (typeof status !== 'number' || status < 400 || status >= 500) bad.push({ what: `raw ${JSON.stringify(payload.slice(0, 120))}`, status });
      else statuses.set(status, (statuses.get(status) ?? 0) + 1);
      rest++;
    }
    const elapsedMs = performance.now() - started;

    // The daemon is up and answers; the database holds what it held.
    assert.equal(daemon.child.exitCode, null, 'the daemon is still running');
    const health = await fetch(`${daemon.url}/api/health`);
    assert.equal(health.status, 200);
    assert.equal(((await health.json()) as { ok: boolean }).ok, true);
    const afterSnap = await snapshot(dbPath);
    const log = daemon.log();

    const total = rest + ws;
    t.diagnostic(`seed ${SEED}: ${total} inputs (${rest} HTTP, ${ws} WebSocket) in ${(elapsedMs / 1000).toFixed(1)} s (REST bulk ${(restMs / 1000).toFixed(1)} s)`);
    t.diagnostic(`HTTP statuses: ${JSON.stringify(Object.fromEntries([...statuses].sort((a, b) => a[0] - b[0])))}; close codes: ${JSON.stringify(Object.fromEntries(closeCodes))}`);
    assert.deepEqual(bad.slice(0, 15), [], `${bad.length} input(s) not answered with a 4xx / error / close code`);
    assert.ok(total >= 10_000, `only ${total} inputs`);
    assert.ok(![...statuses.keys()].some((s) => s >= 500), 'no 5xx');
    assert.deepEqual(afterSnap, before, 'nothing was stored');
    assert.ok(!log.includes(ADMIN_TOKEN), 'the admin token is not in the log');
    assert.ok(!log.includes(AGENT_TOKEN), 'the agent token is not in the log');
    assert.ok(!/internal error|at .*\.ts:\d+:\d+/.test(log), `no internal error in the log:\n${log.slice(-2000)}`);
    owner.close();
    other.close();
  });
});
