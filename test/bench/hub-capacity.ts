/**
 * Hub capacity: how many results per second the real server stores, and how fast it acks them,
 * with N simulated agents (each its own device) connected at once and streaming results with no
 * think time. Prints one JSON object (config, machine, figures, verification).
 *
 *   node --import tsx test/bench/hub-capacity.ts [--agents 200] [--seconds 30]
 *        [--grid 3] [--replay 0.05] [--delay-ms 0] [--out docs/bench/hub-capacity.json]
 *
 * The server runs as a child process (`morphnet serve --no-local-agent`, token from
 * MORPHNET_AGENT_TOKEN), so its event loop is not shared with the simulated agents; only that
 * child is killed at the end. Each device gets profile jobs of the seed models in turn (`force`,
 * grid `maxPerAxis = --grid`), a new one queued whenever the device starts its newest, so every
 * agent always has work. After `--seconds` of measurement no more jobs are made, the queued ones
 * drain, and the bench checks that nothing was lost or stored twice: every job done with every
 * item done once, table points = distinct (signature, cIn, cOut) stored, one `stored` ack per item
 * answered, and the results that a fraction (`--replay`) of agents sends again acked as
 * `duplicate` and not stored again. Exit code 0 when every check holds, 1 otherwise.
 *
 * The load is closed-loop: a device holds one lease of 8 items (the server default), its agent
 * answers all 8 at once, and the next lease comes after the last is acked. So the rate is the
 * server's ceiling, and the figures split a device's cycle into the lease's service (results sent
 * → all acked) and the idle gap before its next lease (the cost of leasing). `--delay-ms` paces the
 * agents instead, to see the server below its ceiling.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, release, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import sqlite3 from 'sqlite3';
import { signature, type OpSpec } from '../../src/ops/op-spec.ts';
import type { ServerMessage } from '../../src/protocol/agent-protocol.ts';
import { MAX_PENDING_PER_ADDRESS } from '../../server/hub.ts';
import { FakeAgent } from '../helpers/fake-agent.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const RUNTIME = 'tfjs-wasm';
const MODELS = ['mobilenet', 'resnet', 'vgg'] as const;
/** The server's default items per lease (`FleetOptions.leaseItems`); `serve` has no flag for it. */
const LEASE_ITEMS = 8;
const START_TIMEOUT_MS = 30_000;
const DRAIN_TIMEOUT_MS = 180_000;
const HTTP_CONCURRENCY = 16;
/** The server child's pid while it runs, for the watchdog. */
let serverPid: number | null = null;

const { values: flags } = parseArgs({
  options: {
    agents: { type: 'string', default: '200' },
    seconds: { type: 'string', default: '30' },
    grid: { type: 'string', default: '3' },
    replay: { type: 'string', default: '0.05' },
    'delay-ms': { type: 'string', default: '0' },
    out: { type: 'string' },
  },
});

function intFlag(name: string, raw: string, min: number, max: number): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw new TypeError(`--${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`);
  return n;
}

const AGENTS = intFlag('agents', flags.agents, 1, 5000);
const SECONDS = intFlag('seconds', flags.seconds, 1, 600);
const GRID = intFlag('grid', flags.grid, 2, 64);
const DELAY_MS = intFlag('delay-ms', flags['delay-ms'], 0, 10_000);
const REPLAY = Number(flags.replay);
if (!(REPLAY >= 0 && REPLAY <= 1)) throw new TypeError(`--replay must be a fraction from 0 to 1, got ${JSON.stringify(flags.replay)}`);

// ── small helpers ─────────────────────────────────────────────────────────────────────────

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const round = (x: number, digits = 1): number => Math.round(x * 10 ** digits) / 10 ** digits;
const mean = (xs: readonly number[]): number => (xs.length === 0 ? NaN : xs.reduce((a, b) => a + b, 0) / xs.length);

/** Nearest-rank percentile of an ascending array. */
function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

function summary(values: readonly number[], digits = 1): { n: number; mean: number; p50: number; p90: number; p99: number; max: number } {
  const s = [...values].sort((a, b) => a - b);
  const mean = s.reduce((a, b) => a + b, 0) / Math.max(1, s.length);
  return { n: s.length, mean: round(mean, digits), p50: round(percentile(s, 50), digits), p90: round(percentile(s, 90), digits), p99: round(percentile(s, 99), digits), max: round(s[s.length - 1] ?? NaN, digits) };
}

async function pool<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

// ── the server child ──────────────────────────────────────────────────────────────────────

interface ServerChild {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly url: string;
  readonly stderr: string[];
}

function startServerChild(dataDir: string, token: string): Promise<ServerChild> {
  const child = spawn(process.execPath, ['cli/bin.js', 'serve', '--port', '0', '--json', '--no-local-agent', '--data-dir', dataDir], {
    cwd: ROOT,
    env: { ...process.env, MORPHNET_AGENT_TOKEN: token },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stderr: string[] = [];
  createInterface({ input: child.stderr! }).on('line', (line) => stderr.push(line));
  return new Promise((resolveStart, reject) => {
    const timer = setTimeout(() => reject(new Error(`the server did not print its listening line within ${START_TIMEOUT_MS} ms; stderr: ${stderr.slice(-10).join(' | ')}`)), START_TIMEOUT_MS);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the server exited with code ${code} before listening; stderr: ${stderr.slice(-10).join(' | ')}`));
    });
    createInterface({ input: child.stdout! }).on('line', (line) => {
      let facts: { event?: string; url?: string };
      try {
        facts = JSON.parse(line) as typeof facts;
      } catch {
        return;
      }
      if (facts.event === 'listening' && typeof facts.url === 'string') {
        clearTimeout(timer);
        resolveStart({ child, pid: child.pid as number, url: facts.url, stderr });
      }
    });
  });
}

async function stopServerChild(server: ServerChild): Promise<number | null> {
  if (server.child.exitCode !== null) return server.child.exitCode;
  const exited = new Promise<number | null>((r) => server.child.once('exit', (code) => r(code)));
  process.kill(server.pid, 'SIGTERM');
  const code = await Promise.race([exited, sleep(20_000).then(() => 'timeout' as const)]);
  if (code !== 'timeout') return code;
  process.kill(server.pid, 'SIGKILL');
  return exited;
}

const CLK_TCK = ((): number => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** Resident memory (MiB) and CPU time (s) of a process, from /proc. */
async function procStats(pid: number): Promise<{ rssMb: number; cpuS: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const rssKb = Number(/^VmRSS:\s+(\d+)\s+kB/m.exec(status)?.[1] ?? NaN);
  // Fields after the command name (which may hold spaces): utime and stime are fields 14 and 15.
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const cpuS = (Number(rest[11]) + Number(rest[12])) / CLK_TCK;
  return { rssMb: rssKb / 1024, cpuS };
}

// ── REST and the database (read-only, for server-side counts) ────────────────────────────────

async function api(base: string, method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(`${base}${path}`, { method, headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: res.status, json: await res.json() };
}

function openReadOnly(path: string): Promise<sqlite3.Database> {
  return new Promise((r, reject) => {
    const db = new sqlite3.Database(path, sqlite3.OPEN_READONLY, (err) => (err ? reject(err) : r(db)));
  });
}

function count(db: sqlite3.Database, sql: string): Promise<number> {
  return new Promise((r, reject) => db.get(sql, (err, row: { n: number } | undefined) => (err ? reject(err) : r(row?.n ?? 0))));
}

// ── per-device bookkeeping ────────────────────────────────────────────────────────────────

interface Device {
  readonly index: number;
  readonly agent: FakeAgent;
  readonly replays: boolean;
  readonly jobs: { id: string; total: number; model: string }[];
  /** itemId → its job and table key (signature@cInxcOut), from the leases received. */
  readonly items: Map<number, { jobId: string; key: string }>;
  readonly leasedTwice: number[];
  readonly replayedNow: Set<number>;
  readonly replayedAfterAck: Set<number>;
  readonly storedAt: number[];
  readonly latencies: { ms: number; at: number }[];
  readonly duplicateLatencies: number[];
  /** ms from the stored ack that emptied a lease to the next `work` (the device idle, waiting). */
  readonly leaseGaps: { ms: number; at: number }[];
  /** ms from receiving a lease to the stored ack of its last item. */
  readonly leaseServices: { ms: number; at: number }[];
  /** Items of the current lease not yet acked as stored, and when the lease arrived. */
  open: Set<number>;
  leaseAt: number;
  idleSince: number | null;
  nextModel: number;
  cancels: number;
}

function newDevice(index: number, agent: FakeAgent, replays: boolean): Device {
  return {
    index,
    agent,
    replays,
    jobs: [],
    items: new Map(),
    leasedTwice: [],
    replayedNow: new Set(),
    replayedAfterAck: new Set(),
    storedAt: [],
    latencies: [],
    duplicateLatencies: [],
    leaseGaps: [],
    leaseServices: [],
    open: new Set(),
    leaseAt: 0,
    idleSince: null,
    nextModel: index % MODELS.length,
    cancels: 0,
  };
}

/**
 * Bookkeeping for one server message; FakeAgent's own listener ran first, so it has already
 * answered a `work` and recorded an ack's timing. Replaying agents send results again here.
 */
function deviceOnMessage(d: Device, m: ServerMessage, onNewestJobStarted: (d: Device) => void): void {
  if (m.type === 'work') {
    const now = performance.now();
    if (d.idleSince !== null) d.leaseGaps.push({ ms: now - d.idleSince, at: now });
    d.idleSince = null;
    d.open = new Set(m.items.map((i) => i.itemId));
    d.leaseAt = now;
    for (const item of m.items) {
      if (d.items.has(item.itemId)) d.leasedTwice.push(item.itemId);
      const spec = (item as { spec: OpSpec }).spec;
      d.items.set(item.itemId, { jobId: m.jobId, key: `${signature(spec)}@${spec.cIn}x${spec.cOut}` });
    }
    if (d.jobs.length > 0 && m.jobId === d.jobs[d.jobs.length - 1].id) onNewestJobStarted(d);
    // Send the lease's first result again at once: it reaches the server while the first
    // copy waits in the write queue.
    if (d.replays && DELAY_MS === 0) {
      d.replayedNow.add(m.items[0].itemId);
      d.agent.sendResult(m.leaseId, m.items[0].itemId);
    }
  } else if (m.type === 'ack') {
    const timing = d.agent.acks[d.agent.acks.length - 1];
    const at = performance.now();
    if (m.status === 'stored') {
      d.storedAt.push(at);
      if (d.open.delete(m.itemId) && d.open.size === 0) {
        d.idleSince = at;
        d.leaseServices.push({ ms: at - d.leaseAt, at });
      }
      if (!d.replayedNow.has(m.itemId)) d.latencies.push({ ms: timing.ms, at });
      // Send it again after the ack, as an agent that missed the ack would.
      if (d.replays && !d.replayedNow.has(m.itemId)) {
        d.replayedAfterAck.add(m.itemId);
        d.agent.sendResult(m.leaseId, m.itemId);
      }
    } else if (m.status === 'duplicate' && d.replayedAfterAck.has(m.itemId)) {
      d.duplicateLatencies.push(timing.ms);
    }
  } else if (m.type === 'cancel') {
    d.cancels++;
  }
}

interface DeviceCheck {
  /** Acks other than one `stored` per item the device was leased (or acks for items it was not). */
  storedAckProblems: number;
  /** Items whose `duplicate` acks differ from the copies sent again (1 if replayed, else 0). */
  duplicateAckProblems: number;
  /** Jobs whose `stored` acks differ from their item count. */
  jobAckProblems: number;
  /** Table points the server returns, and distinct (signature, cIn, cOut) of the items stored. */
  points: number;
  distinctKeys: number;
  pointsMatch: boolean;
}

/** Checks one device's acks against its leases, and its table (GET /api/tables) against them. */
async function checkDevice(base: string, d: Device): Promise<DeviceCheck> {
  const check: DeviceCheck = { storedAckProblems: 0, duplicateAckProblems: 0, jobAckProblems: 0, points: 0, distinctKeys: 0, pointsMatch: false };
  const stored = new Map<number, number>();
  const dups = new Map<number, number>();
  for (const a of d.agent.acks) {
    const into = a.status === 'stored' ? stored : a.status === 'duplicate' ? dups : null;
    if (!into || !d.items.has(a.itemId)) check.storedAckProblems++;
    else into.set(a.itemId, (into.get(a.itemId) ?? 0) + 1);
  }
  const replayed = new Set([...d.replayedNow, ...d.replayedAfterAck]);
  const perJob = new Map<string, number>();
  for (const [itemId, it] of d.items) {
    if (stored.get(itemId) !== 1) check.storedAckProblems++;
    else perJob.set(it.jobId, (perJob.get(it.jobId) ?? 0) + 1);
    if ((dups.get(itemId) ?? 0) !== (replayed.has(itemId) ? 1 : 0)) check.duplicateAckProblems++;
  }
  for (const j of d.jobs) if ((perJob.get(j.id) ?? 0) !== j.total) check.jobAckProblems++;
  const keys = new Set([...d.items.values()].map((it) => it.key));
  const res = await api(base, 'GET', `/api/tables?deviceId=${d.agent.deviceId}&runtime=${RUNTIME}`);
  const tables = (res.json as { tables: { signature: string; points: { cIn: number; cOut: number }[] }[] }).tables;
  const pointKeys = tables.flatMap((t) => t.points.map((p) => `${t.signature}@${p.cIn}x${p.cOut}`));
  check.points = pointKeys.length;
  check.distinctKeys = keys.size;
  check.pointsMatch = res.status === 200 && pointKeys.every((k) => keys.has(k));
  return check;
}

async function main(): Promise<number> {
  const dataDir = await mkdtemp(join(tmpdir(), 'morphnet-hub-bench-'));
  const token = randomBytes(18).toString('base64url');
  const loopDelay = monitorEventLoopDelay({ resolution: 10 });
  const loadAtStart = loadavg().map((x) => round(x, 2));
  let server: ServerChild | null = null;
  let db: sqlite3.Database | null = null;
  const devices: Device[] = [];
  try {
    server = await startServerChild(dataDir, token);
    serverPid = server.pid;
    const base = server.url;
    const pid = server.pid;
    const wsUrl = `${base.replace(/^http/, 'ws')}/agents`;
    db = await openReadOnly(join(dataDir, 'morphnet.db'));
    const rss = { start: (await procStats(pid)).rssMb, afterConnect: NaN, peak: 0, end: NaN };
    process.stderr.write(`server pid ${pid} at ${base}; connecting ${AGENTS} agents\n`);

    // Connect the agents MAX_PENDING_PER_ADDRESS at a time: they all come from 127.0.0.1, and the
    // hub refuses (HTTP 429) more sockets of one address than that without an accepted hello.
    loopDelay.enable();
    const connectStart = performance.now();
    const agents: FakeAgent[] = [];
    for (let i = 0; i < AGENTS; i += MAX_PENDING_PER_ADDRESS) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(MAX_PENDING_PER_ADDRESS, AGENTS - i) }, (_, k) =>
          FakeAgent.connect({ url: wsUrl, token, deviceKey: `bench-device-${String(i + k).padStart(5, '0')}`, name: `bench agent ${i + k}`, runtimes: [RUNTIME], delayMs: DELAY_MS }),
        ),
      );
      agents.push(...batch);
    }
    const connectMs = performance.now() - connectStart;
    const replayEvery = REPLAY > 0 ? Math.max(1, Math.round(1 / REPLAY)) : Infinity;
    agents.forEach((agent, index) => devices.push(newDevice(index, agent, index % replayEvery === 0)));
    const health0 = (await api(base, 'GET', '/api/health')).json as { hub: { connected: number }; online: number };
    const devices0 = (await api(base, 'GET', '/api/devices')).json as { devices: { id: string; online: boolean }[] };
    const onlineAtStart = devices0.devices.filter((d) => d.online).length;
    const welcomed = new Set(agents.map((a) => a.deviceId).filter((id) => id !== null)).size;
    rss.afterConnect = (await procStats(pid)).rssMb;
    process.stderr.write(`connected ${welcomed} in ${Math.round(connectMs)} ms; hub.connected ${health0.hub.connected}, online ${onlineAtStart}\n`);

    // Jobs: two per device to start; one more each time a device starts its newest.
    let feeding = true;
    const creations = new Set<Promise<void>>();
    const creationErrors: string[] = [];
    /** ms a POST /api/profile took: the two per device before the run, and those made during it. */
    const creationMs = { initial: [] as number[], during: [] as number[] };
    const createJob = (d: Device): Promise<void> => {
      const model = MODELS[d.nextModel++ % MODELS.length];
      const sentAt = performance.now();
      const p = api(base, 'POST', '/api/profile', { deviceId: d.agent.deviceId, runtime: RUNTIME, model, grid: { maxPerAxis: GRID }, force: true })
        .then(({ status, json }) => {
          (d.jobs.length < 2 ? creationMs.initial : creationMs.during).push(performance.now() - sentAt);
          if (status !== 202) creationErrors.push(`${status} ${JSON.stringify(json).slice(0, 300)}`);
          else d.jobs.push({ id: json.id, total: json.progress.total, model });
        })
        .catch((err: unknown) => void creationErrors.push(String(err)));
      creations.add(p);
      void p.finally(() => creations.delete(p));
      return p;
    };

    const onNewestJobStarted = (d: Device): void => {
      if (feeding) void createJob(d);
    };
    for (const d of devices) d.agent.ws.on('message', (data) => deviceOnMessage(d, JSON.parse(data.toString()) as ServerMessage, onNewestJobStarted));

    const totalStored = (): number => devices.reduce((s, d) => s + d.storedAt.length, 0);
    const serverDone = (): Promise<number> => count(db as sqlite3.Database, "SELECT COUNT(*) AS n FROM job_items WHERE state = 'done'");
    const firstJobsAt = performance.now();
    await pool(devices, HTTP_CONCURRENCY, async (d) => {
      await createJob(d);
      await createJob(d);
    });
    process.stderr.write(`created ${devices.length * 2} jobs in ${Math.round(performance.now() - firstJobsAt)} ms\n`);

    // Sample once a second: server RSS and CPU, done count, hub connections.
    const timeline: { t: number; serverDone: number; clientStored: number; jobsCreated: number; rssMb: number; cpuS: number; connected: number; online: number }[] = [];
    let sampling = true;
    let peakConnected = health0.hub.connected;
    let peakOnline = health0.online;
    const sampler = (async () => {
      while (sampling) {
        const [p, done, health] = await Promise.all([procStats(pid), serverDone(), api(base, 'GET', '/api/health')]);
        const h = health.json as { hub: { connected: number }; online: number };
        peakConnected = Math.max(peakConnected, h.hub.connected);
        peakOnline = Math.max(peakOnline, h.online);
        rss.peak = Math.max(rss.peak, p.rssMb);
        timeline.push({ t: round((performance.now() - firstJobsAt) / 1000, 2), serverDone: done, clientStored: totalStored(), jobsCreated: devices.reduce((n, x) => n + x.jobs.length, 0), rssMb: round(p.rssMb), cpuS: p.cpuS, connected: h.hub.connected, online: h.online });
        await sleep(1000);
      }
    })();

    // Warm up, then measure for SECONDS.
    await sleep(2000);
    const w0 = { at: performance.now(), done: await serverDone(), stored: totalStored(), proc: await procStats(pid), bench: process.cpuUsage() };
    loopDelay.reset();
    await sleep(SECONDS * 1000);
    const w1 = { at: performance.now(), done: await serverDone(), stored: totalStored(), proc: await procStats(pid), bench: process.cpuUsage(w0.bench) };
    const benchLoop = { p99: loopDelay.percentile(99) / 1e6, max: loopDelay.max / 1e6 };
    const perAgentInWindow = devices.map((d) => d.storedAt.filter((t) => t >= w0.at && t < w1.at).length);

    // Drain: no more jobs; wait for every item of every job.
    feeding = false;
    await Promise.all([...creations]);
    const drainStart = performance.now();
    while ((await count(db, "SELECT COUNT(*) AS n FROM job_items WHERE state IN ('pending', 'leased')")) > 0) {
      if (performance.now() - drainStart > DRAIN_TIMEOUT_MS) break;
      await sleep(200);
    }
    // Let the last acks (and duplicate acks) arrive.
    const expectedAcks = (): number => devices.reduce((s, d) => s + d.items.size + d.replayedNow.size + d.replayedAfterAck.size, 0);
    const ackDeadline = performance.now() + 10_000;
    while (devices.reduce((s, d) => s + d.agent.acks.length, 0) < expectedAcks() && performance.now() < ackDeadline) await sleep(100);
    const drainS = (performance.now() - drainStart) / 1000;
    const lastStoredAt = Math.max(...devices.flatMap((d) => d.storedAt));
    sampling = false;
    await sampler;
    const endStats = await procStats(pid);
    rss.end = endStats.rssMb;
    rss.peak = Math.max(rss.peak, rss.end);

    // ── verification ───────────────────────────────────────────────────────────────────────
    const allJobs = devices.flatMap((d) => d.jobs.map((j) => ({ ...j, device: d })));
    const jobViews = await pool(allJobs, HTTP_CONCURRENCY, async (j) => (await api(base, 'GET', `/api/jobs/${j.id}`)).json as { state: string; progress: { total: number; done: number; failed: number; leased: number; pending: number } });
    const badJobs = allJobs.filter((j, i) => {
      const v = jobViews[i];
      return v.state !== 'done' || v.progress.done !== v.progress.total || v.progress.total !== j.total || v.progress.failed + v.progress.leased + v.progress.pending !== 0;
    });
    const itemsTotal = allJobs.reduce((s, j) => s + j.total, 0);

    const deviceChecks = await pool(devices, HTTP_CONCURRENCY, (d) => checkDevice(base, d));
    const sumChecks = (key: Exclude<keyof DeviceCheck, 'pointsMatch'>): number => deviceChecks.reduce((n, c) => n + c[key], 0);
    const storedAckProblems = sumChecks('storedAckProblems');
    const duplicateAckProblems = sumChecks('duplicateAckProblems');
    const jobAckProblems = sumChecks('jobAckProblems');
    const pointProblems = deviceChecks.filter((c) => c.points !== c.distinctKeys || !c.pointsMatch).length;
    const pointsTotal = sumChecks('points');
    const distinctKeysTotal = sumChecks('distinctKeys');
    const serverDoneEnd = await serverDone();
    const dbPoints = await count(db, 'SELECT COUNT(*) AS n FROM points');
    const storedAcks = totalStored();
    const leasedTwice = devices.reduce((s, d) => s + d.leasedTwice.length, 0);
    const allItemIds = devices.flatMap((d) => [...d.items.keys()]);
    const errorsSeen = devices.reduce((s, d) => s + d.agent.errors.length, 0);
    const cancels = devices.reduce((s, d) => s + d.cancels, 0);
    const closed = devices.filter((d) => d.agent.closeCode !== null).length;
    const replaysNow = devices.reduce((s, d) => s + d.replayedNow.size, 0);
    const replaysAfterAck = devices.reduce((s, d) => s + d.replayedAfterAck.size, 0);
    const duplicateAcks = devices.reduce((s, d) => s + d.agent.acks.filter((a) => a.status === 'duplicate').length, 0);

    const verification = {
      allConnectedAtOnce: welcomed === AGENTS && health0.hub.connected === AGENTS && onlineAtStart === AGENTS && peakConnected === AGENTS,
      everyJobDoneEveryItemOnce: badJobs.length === 0 && creationErrors.length === 0 && serverDoneEnd === itemsTotal,
      pointsEqualDistinctItemsStored: pointProblems === 0 && pointsTotal === distinctKeysTotal && dbPoints === distinctKeysTotal,
      oneStoredAckPerItemAnswered: storedAckProblems === 0 && jobAckProblems === 0 && storedAcks === itemsTotal,
      duplicatesAckedAsDuplicateOnly: duplicateAckProblems === 0 && duplicateAcks === replaysNow + replaysAfterAck && (REPLAY === 0 || duplicateAcks > 0),
      noItemLeasedTwice: leasedTwice === 0 && new Set(allItemIds).size === allItemIds.length && allItemIds.length === itemsTotal,
      serverDoneEqualsClientStored: serverDoneEnd === storedAcks,
      noErrorsCancelsOrDisconnects: errorsSeen === 0 && cancels === 0 && closed === 0,
    };
    const allPassed = Object.values(verification).every(Boolean);

    // ── figures ────────────────────────────────────────────────────────────────────────────
    const windowS = (w1.at - w0.at) / 1000;
    const perSecond = timeline.slice(1).map((s, i) => (s.serverDone - timeline[i].serverDone) / Math.max(1e-3, s.t - timeline[i].t));
    const inWindow = timeline.filter((s) => s.t * 1000 + firstJobsAt >= w0.at && s.t * 1000 + firstJobsAt <= w1.at);
    const windowRates = perSecond.filter((_, i) => inWindow.includes(timeline[i + 1]) && inWindow.includes(timeline[i]));
    const latencies = devices.flatMap((d) => d.latencies);
    const inW = latencies.filter((l) => l.at >= w0.at && l.at < w1.at).map((l) => l.ms);
    const jain = ((): number => {
      const sum = perAgentInWindow.reduce((a, b) => a + b, 0);
      const sq = perAgentInWindow.reduce((a, b) => a + b * b, 0);
      return sq === 0 ? NaN : (sum * sum) / (perAgentInWindow.length * sq);
    })();
    const perAgentSorted = [...perAgentInWindow].sort((a, b) => a - b);
    const errorLines = server.stderr.filter((l) => /fail|error|exception/i.test(l));

    const report = {
      bench: 'hub-capacity',
      date: new Date().toISOString(),
      config: {
        agents: AGENTS,
        seconds: SECONDS,
        runtime: RUNTIME,
        models: MODELS,
        grid: { maxPerAxis: GRID },
        force: true,
        leaseItems: LEASE_ITEMS,
        agentDelayMsPerItem: DELAY_MS,
        replayFraction: REPLAY,
        replayAgents: devices.filter((d) => d.replays).length,
        server: 'child process: node cli/bin.js serve --port 0 --json --no-local-agent',
      },
      machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? 'unknown', memoryGb: round(totalmem() / 2 ** 30), node: process.version, os: `${process.platform} ${release()}`,
        // Other work on the machine competes for the same cores: the 1/5/15-minute load averages.
        loadAverage: { atStart: loadAtStart, atEnd: loadavg().map((x) => round(x, 2)) },
      },
      figures: {
        connect: { ms: Math.round(connectMs), welcomed, hubConnectedAtStart: health0.hub.connected, devicesOnlineAtStart: onlineAtStart, peakHubConnected: peakConnected, peakDevicesOnline: peakOnline },
        throughput: {
          windowS: round(windowS, 2),
          serverDoneInWindow: w1.done - w0.done,
          serverResultsPerS: round((w1.done - w0.done) / windowS),
          clientStoredAcksInWindow: w1.stored - w0.stored,
          clientStoredAcksPerS: round((w1.stored - w0.stored) / windowS),
          perSecondServer: { min: round(Math.min(...windowRates)), max: round(Math.max(...windowRates)) },
          overall: { items: serverDoneEnd, seconds: round((lastStoredAt - firstJobsAt) / 1000, 2), resultsPerS: round(serverDoneEnd / ((lastStoredAt - firstJobsAt) / 1000)) },
        },
        // Per device: how long a lease took to be answered and acked, and how long the device then
        // sat idle before the server leased it more (in the window).
        leaseMs: {
          service: summary(devices.flatMap((d) => d.leaseServices).filter((l) => l.at >= w0.at && l.at < w1.at).map((l) => l.ms)),
          idleGapBeforeNextLease: summary(devices.flatMap((d) => d.leaseGaps).filter((l) => l.at >= w0.at && l.at < w1.at).map((l) => l.ms)),
        },
        ackLatencyMs: { window: summary(inW), all: summary(latencies.map((l) => l.ms)), duplicateAfterAck: summary(devices.flatMap((d) => d.duplicateLatencies)) },
        serverRssMb: { start: round(rss.start), afterConnect: round(rss.afterConnect), peak: round(rss.peak), end: round(rss.end) },
        cpu: {
          serverPercentOfOneCore: round((100 * (w1.proc.cpuS - w0.proc.cpuS)) / windowS),
          benchPercentOfOneCore: round((100 * (w1.bench.user + w1.bench.system)) / 1e6 / windowS),
          benchEventLoopDelayMs: { p99: round(benchLoop.p99), max: round(benchLoop.max) },
        },
        fairness: {
          storedPerAgentInWindow: { min: perAgentSorted[0], p50: percentile(perAgentSorted, 50), max: perAgentSorted[perAgentSorted.length - 1] },
          jainIndex: round(jain, 3),
          meanStoredInWindow: { replayAgents: round(mean(perAgentInWindow.filter((_, i) => devices[i].replays))), otherAgents: round(mean(perAgentInWindow.filter((_, i) => !devices[i].replays))) },
          lowestAgents: perAgentInWindow
            .map((n, i) => ({ agent: i, stored: n, replays: devices[i].replays }))
            .sort((a, b) => a.stored - b.stored)
            .slice(0, 5),
        },
        jobs: { created: allJobs.length, items: itemsTotal, drainS: round(drainS, 2), createMs: { initial: summary(creationMs.initial), during: summary(creationMs.during) } },
        duplicates: { replayedAtOnce: replaysNow, replayedAfterAck: replaysAfterAck, duplicateAcks },
        checks: { badJobs: badJobs.length, creationErrors: creationErrors.slice(0, 5), storedAckProblems, duplicateAckProblems, jobAckProblems, pointProblems, pointsTotal, distinctKeysTotal, dbPoints, serverDoneEnd, storedAcks, errorsSeen, cancels, closed, leasedTwice },
        serverLog: { lines: server.stderr.length, errorLines: errorLines.length, errorSample: errorLines.slice(0, 5) },
        timeline: timeline.map((s) => ({ t: s.t, serverDone: s.serverDone, clientStored: s.clientStored, jobsCreated: s.jobsCreated, rssMb: s.rssMb, connected: s.connected })),
      },
      verification: { ...verification, allPassed },
    };
    const text = JSON.stringify(report, null, 2);
    console.log(text);
    if (flags.out) {
      const out = resolve(flags.out);
      await mkdir(dirname(out), { recursive: true });
      await writeFile(out, `${text}\n`);
    }
    return allPassed ? 0 : 1;
  } finally {
    loopDelay.disable();
    for (const d of devices) d.agent.close();
    await sleep(300);
    if (db) await new Promise<void>((r) => (db as sqlite3.Database).close(() => r()));
    if (server) {
      const code = await stopServerChild(server);
      serverPid = null;
      process.stderr.write(`server pid ${server.pid} stopped (exit ${code})\n`);
    }
    await rm(dataDir, { recursive: true, force: true });
  }
}

// A hard stop, in case something hangs: the measured time plus generous set-up and drain.
const watchdog = setTimeout(() => {
  process.stderr.write('hub-capacity: watchdog fired; giving up\n');
  if (serverPid !== null) process.kill(serverPid, 'SIGKILL');
  process.exit(2);
}, (SECONDS + 420) * 1000);
watchdog.unref();

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`hub-capacity: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
