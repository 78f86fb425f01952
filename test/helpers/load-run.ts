/**
 * One load run against a real server (a `morphnet serve --no-local-agent` child process, so its
 * memory and CPU are its own): N simulated agents (each its own device) stream results for S
 * seconds while pollers hit the API the UI reads (GET /api/devices, /api/jobs, /api/searches,
 * /api/tables), then the queued work drains and the run checks that nothing was lost or stored
 * twice. `test/bench/load.ts` runs it at full size and prints the report; the test suite runs a
 * short one (`test/server/load.test.ts`).
 *
 * The load is closed-loop by default: each device holds one lease of 8 items, its agent answers
 * them at once (`delayMs` 0), the next lease comes when the last is acked; so the rate is the
 * server's ceiling. Each device always has work: a new profile job (`force`, the seed models in
 * turn) is queued whenever the device starts its newest. A fraction of agents (`replay`) sends
 * every result a second time after its ack, as an agent that missed the ack would.
 *
 * Nothing lost and nothing twice means: every item leased got exactly one `stored` ack, every
 * `stored` item is `done` in the database (and no other item is), every job finished with all its
 * items, each table point belongs to a stored item and there is one per distinct measured op,
 * every replayed result was acked `duplicate` and changed nothing, no agent got an error or was
 * disconnected, and every poll answered 200.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { cpus, loadavg, release, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import sqlite3 from 'sqlite3';
import { signature, type OpSpec } from '../../src/ops/op-spec.ts';
import type { ServerMessage } from '../../src/protocol/agent-protocol.ts';
import { MAX_PENDING_PER_ADDRESS } from '../../server/hub.ts';
import { FakeAgent } from './fake-agent.ts';
import { BIN, ROOT } from './server-child.ts';

export interface LoadOptions {
  /** Simulated agents, each its own device. */
  readonly agents: number;
  /** Seconds of measured streaming (after a warm-up of `warmupS`). */
  readonly seconds: number;
  readonly warmupS?: number;
  /** Points per channel axis of each profile job (`grid.maxPerAxis`). Default 3. */
  readonly grid?: number;
  /** Concurrent UI pollers. Default 4. */
  readonly pollers?: number;
  /** Pause between two polls of one poller, ms. Default 250. */
  readonly pollPauseMs?: number;
  /** ms an agent waits before answering each item. Default 0 (closed loop). */
  readonly delayMs?: number;
  /** Fraction of agents that send every result again after its ack. Default 0.05. */
  readonly replay?: number;
  /**
   * Agents connecting at once. Default MAX_PENDING_PER_ADDRESS (20): every agent connects from
   * 127.0.0.1, and the hub refuses (HTTP 429) more than that many sockets of one address without
   * an accepted hello.
   */
  readonly connectBatch?: number;
  readonly drainTimeoutMs?: number;
  readonly log?: (line: string) => void;
}

const RUNTIME = 'tfjs-wasm';
const MODELS = ['mobilenet', 'resnet', 'vgg'] as const;
const POLLED = ['devices', 'jobs', 'searches', 'tables'] as const;
type Polled = (typeof POLLED)[number];

export interface Summary {
  readonly n: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
  readonly mean: number;
}

export interface LoadReport {
  readonly bench: 'load';
  readonly date: string;
  readonly config: Required<Omit<LoadOptions, 'log'>> & { readonly runtime: string; readonly server: string };
  readonly machine: { readonly cpus: number; readonly cpuModel: string; readonly memoryGb: number; readonly node: string; readonly os: string; readonly loadAverage: { readonly atStart: number[]; readonly atEnd: number[] } };
  readonly figures: {
    readonly connectMs: number;
    readonly window: { readonly seconds: number; readonly resultsStored: number; readonly resultsStoredPerS: number; readonly perSecond: { readonly min: number; readonly max: number } };
    readonly overall: { readonly itemsStored: number; readonly seconds: number; readonly resultsStoredPerS: number; readonly drainS: number };
    readonly ackLatencyMs: { readonly window: Summary; readonly duplicates: Summary };
    readonly pollLatencyMs: Readonly<Record<Polled, Summary & { readonly errors: number }>>;
    readonly serverRssMb: { readonly start: number; readonly afterConnect: number; readonly peak: number; readonly end: number };
    readonly serverCpuPercentOfOneCore: number;
    readonly jobs: { readonly created: number; readonly items: number; readonly creationErrors: readonly string[] };
    readonly timeline: readonly { t: number; stored: number; rssMb: number; connected: number }[];
  };
  readonly checks: Readonly<Record<string, number>>;
  readonly verification: Readonly<Record<string, boolean>> & { readonly allPassed: boolean };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const round = (x: number, digits = 1): number => Math.round(x * 10 ** digits) / 10 ** digits;

function summary(values: readonly number[]): Summary {
  const s = [...values].sort((a, b) => a - b);
  const at = (p: number): number => (s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]);
  const mean = s.reduce((a, b) => a + b, 0) / Math.max(1, s.length);
  return { n: s.length, p50: round(at(50)), p90: round(at(90)), p99: round(at(99)), max: round(s[s.length - 1] ?? NaN), mean: round(mean) };
}

const CLK_TCK = ((): number => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

async function procStats(pid: number): Promise<{ rssMb: number; cpuS: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const rssKb = Number(/^VmRSS:\s+(\d+)\s+kB/m.exec(status)?.[1] ?? NaN);
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { rssMb: rssKb / 1024, cpuS: (Number(rest[11]) + Number(rest[12])) / CLK_TCK };
}

interface Server {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly url: string;
  readonly stderr: string[];
}

function startServer(dataDir: string, token: string): Promise<Server> {
  const child = spawn(process.execPath, [BIN, 'serve', '--port', '0', '--json', '--no-local-agent', '--data-dir', dataDir], { cwd: ROOT, env: { ...process.env, MORPHNET_AGENT_TOKEN: token }, stdio: ['ignore', 'pipe', 'pipe'] });
  const stderr: string[] = [];
  createInterface({ input: child.stderr! }).on('line', (l) => stderr.push(l));
  return new Promise((resolveStart, reject) => {
    const timer = setTimeout(() => reject(new Error(`the server did not listen within 600 s: ${stderr.slice(-5).join(' | ')}`)), 600_000);
    child.once('exit', (code) => reject(new Error(`the server exited (${code}) before listening: ${stderr.slice(-5).join(' | ')}`)));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (!line.startsWith('{"event":"listening"')) return;
      clearTimeout(timer);
      resolveStart({ child, pid: child.pid as number, url: (JSON.parse(line) as { url: string }).url, stderr });
    });
  });
}

async function stopServer(s: Server): Promise<number | null> {
  if (s.child.exitCode !== null) return s.child.exitCode;
  const exited = new Promise<number | null>((r) => s.child.once('exit', (code) => r(code)));
  s.child.kill('SIGTERM');
  const timer = setTimeout(() => s.child.kill('SIGKILL'), 30_000);
  const code = await exited;
  clearTimeout(timer);
  return code;
}

async function getJson(url: string, init?: RequestInit): Promise<{ status: number; json: any; ms: number }> {
  const t0 = performance.now();
  const res = await fetch(url, init);
  const json = await res.json().catch(() => null);
  return { status: res.status, json, ms: performance.now() - t0 };
}

function dbAll<T>(db: sqlite3.Database, sql: string): Promise<T[]> {
  return new Promise((r, reject) => db.all(sql, (err, rows) => (err ? reject(err) : r(rows as T[]))));
}

interface Device {
  readonly agent: FakeAgent;
  readonly replays: boolean;
  readonly jobs: { id: string; total: number }[];
  /** itemId → its table key (signature@cInxcOut), from the leases. */
  readonly items: Map<number, string>;
  readonly leasedTwice: number[];
  readonly storedAt: number[];
  readonly replayed: Set<number>;
  nextModel: number;
  cancels: number;
}

/** Runs the load (see the file comment) and returns the report; never leaves the server running. */
export async function runLoad(options: LoadOptions): Promise<LoadReport> {
  const o = {
    agents: options.agents,
    seconds: options.seconds,
    warmupS: options.warmupS ?? 2,
    grid: options.grid ?? 3,
    pollers: options.pollers ?? 4,
    pollPauseMs: options.pollPauseMs ?? 250,
    delayMs: options.delayMs ?? 0,
    replay: options.replay ?? 0.05,
    connectBatch: options.connectBatch ?? MAX_PENDING_PER_ADDRESS,
    drainTimeoutMs: options.drainTimeoutMs ?? 180_000,
  };
  const log = options.log ?? (() => undefined);
  const loadAtStart = loadavg().map((x) => round(x, 2));
  const dataDir = await mkdtemp(join(tmpdir(), 'morphnet-load-'));
  const token = randomBytes(18).toString('base64url');
  const devices: Device[] = [];
  let server: Server | null = null;
  let db: sqlite3.Database | null = null;
  try {
    server = await startServer(dataDir, token);
    const base = server.url;
    const pid = server.pid;
    const rss = { start: (await procStats(pid)).rssMb, afterConnect: NaN, peak: 0, end: NaN };
    log(`server pid ${pid} at ${base}; connecting ${o.agents} agents`);

    const t0 = performance.now();
    const replayEvery = o.replay > 0 ? Math.max(1, Math.round(1 / o.replay)) : Infinity;
    for (let i = 0; i < o.agents; i += o.connectBatch) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(o.connectBatch, o.agents - i) }, (_, k) =>
          FakeAgent.connect({ url: `${base.replace(/^http/, 'ws')}/agents`, token, deviceKey: `load-device-${String(i + k).padStart(5, '0')}`, name: `load agent ${i + k}`, runtimes: [RUNTIME], delayMs: o.delayMs }),
        ),
      );
      for (const agent of batch) {
        const index = devices.length;
        devices.push({ agent, replays: index % replayEvery === 0, jobs: [], items: new Map(), leasedTwice: [], storedAt: [], replayed: new Set(), nextModel: index % MODELS.length, cancels: 0 });
      }
    }
    const connectMs = performance.now() - t0;
    rss.afterConnect = (await procStats(pid)).rssMb;
    log(`connected ${devices.length} in ${Math.round(connectMs)} ms`);

    // Work: two jobs per device to start, one more whenever a device starts its newest.
    let feeding = true;
    const creations = new Set<Promise<void>>();
    const creationErrors: string[] = [];
    const createJob = (d: Device): Promise<void> => {
      const model = MODELS[d.nextModel++ % MODELS.length];
      const p = getJson(`${base}/api/profile`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ deviceId: d.agent.deviceId, runtime: RUNTIME, model, grid: { maxPerAxis: o.grid }, force: true, refine: false }) })
        .then(({ status, json }) => {
          if (status !== 202) creationErrors.push(`${status} ${JSON.stringify(json).slice(0, 200)}`);
          else d.jobs.push({ id: json.id, total: json.progress.total });
        })
        .catch((err: unknown) => void creationErrors.push(String(err)));
      creations.add(p);
      void p.finally(() => creations.delete(p));
      return p;
    };
    for (const d of devices) {
      d.agent.ws.on('message', (data) => {
        const m = JSON.parse(data.toString()) as ServerMessage;
        if (m.type === 'work') {
          for (const item of m.items) {
            if (d.items.has(item.itemId)) d.leasedTwice.push(item.itemId);
            const spec = (item as { spec: OpSpec }).spec;
            d.items.set(item.itemId, `${signature(spec)}@${spec.cIn}x${spec.cOut}`);
          }
          if (feeding && d.jobs.length > 0 && m.jobId === d.jobs[d.jobs.length - 1].id) void createJob(d);
        } else if (m.type === 'ack' && m.status === 'stored') {
          d.storedAt.push(performance.now());
          if (d.replays) {
            d.replayed.add(m.itemId);
            d.agent.sendResult(m.leaseId, m.itemId);
          }
        } else if (m.type === 'cancel') {
          d.cancels++;
        }
      });
    }
    const stored = (): number => devices.reduce((n, d) => n + d.storedAt.length, 0);
    const firstJobsAt = performance.now();
    for (let i = 0; i < devices.length; i += 16) {
      await Promise.all(devices.slice(i, i + 16).map(async (d) => {
        await createJob(d);
        await createJob(d);
      }));
    }
    log(`queued ${devices.length * 2} jobs in ${Math.round(performance.now() - firstJobsAt)} ms`);

    // The UI's polling, and a sampler for memory and progress.
    let polling = true;
    const polls: Record<Polled, { ms: number; at: number }[]> = { devices: [], jobs: [], searches: [], tables: [] };
    const pollErrors: Record<Polled, number> = { devices: 0, jobs: 0, searches: 0, tables: 0 };
    const poller = async (k: number): Promise<void> => {
      let turn = k;
      while (polling) {
        const what = POLLED[turn++ % POLLED.length];
        const d = devices[Math.floor(Math.random() * devices.length)];
        const path = what === 'tables' ? `/api/tables?deviceId=${d.agent.deviceId}&runtime=${RUNTIME}` : what === 'jobs' ? '/api/jobs?limit=100' : `/api/${what}`;
        try {
          const r = await getJson(`${base}${path}`);
          if (r.status !== 200) pollErrors[what]++;
          polls[what].push({ ms: r.ms, at: performance.now() });
        } catch {
          pollErrors[what]++;
        }
        await sleep(o.pollPauseMs);
      }
    };
    const pollerRuns = Array.from({ length: o.pollers }, (_, k) => poller(k));
    const timeline: { t: number; stored: number; rssMb: number; connected: number }[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const p = await procStats(pid).catch(() => null);
        if (p) rss.peak = Math.max(rss.peak, p.rssMb);
        const health = await getJson(`${base}/api/health`).catch(() => null);
        timeline.push({ t: round((performance.now() - firstJobsAt) / 1000, 2), stored: stored(), rssMb: round(p?.rssMb ?? NaN), connected: health?.json?.hub?.connected ?? NaN });
        await sleep(1000);
      }
    })();

    await sleep(o.warmupS * 1000);
    const w0 = { at: performance.now(), stored: stored(), cpuS: (await procStats(pid)).cpuS };
    await sleep(o.seconds * 1000);
    const w1 = { at: performance.now(), stored: stored(), cpuS: (await procStats(pid)).cpuS };
    log(`window: ${w1.stored - w0.stored} results stored in ${round((w1.at - w0.at) / 1000, 2)} s`);
    polling = false;
    await Promise.all(pollerRuns);

    // Drain: no more jobs; every queued item gets done.
    feeding = false;
    await Promise.all([...creations]);
    const drainStart = performance.now();
    db = await new Promise<sqlite3.Database>((r, reject) => {
      const d = new sqlite3.Database(join(dataDir, 'morphnet.db'), sqlite3.OPEN_READONLY, (err) => (err ? reject(err) : r(d)));
    });
    const open = async (): Promise<number> => (await dbAll<{ n: number }>(db as sqlite3.Database, "SELECT COUNT(*) AS n FROM job_items WHERE state IN ('pending', 'leased')"))[0].n;
    while ((await open()) > 0 && performance.now() - drainStart < o.drainTimeoutMs) await sleep(200);
    const expectedAcks = (): number => devices.reduce((n, d) => n + d.items.size + d.replayed.size, 0);
    // Bounds the wait for the last acks only (they are on their way once the items are done).
    const ackDeadline = performance.now() + 60_000;
    while (devices.reduce((n, d) => n + d.agent.acks.length, 0) < expectedAcks() && performance.now() < ackDeadline) await sleep(100);
    const drainS = (performance.now() - drainStart) / 1000;
    sampling = false;
    await sampler;
    rss.end = (await procStats(pid)).rssMb;
    rss.peak = Math.max(rss.peak, rss.end);

    // ── checks ────────────────────────────────────────────────────────────────────────────
    const storedAcks = new Map<number, number>();
    const duplicateAcks = new Map<number, number>();
    let otherAcks = 0;
    for (const d of devices) {
      for (const a of d.agent.acks) {
        const into = a.status === 'stored' ? storedAcks : a.status === 'duplicate' ? duplicateAcks : null;
        if (into && d.items.has(a.itemId)) into.set(a.itemId, (into.get(a.itemId) ?? 0) + 1);
        else otherAcks++;
      }
    }
    const leased = devices.flatMap((d) => [...d.items.keys()]);
    const replayed = devices.flatMap((d) => [...d.replayed]);
    const notStored = leased.filter((id) => !storedAcks.has(id)).length;
    const storedTwice = [...storedAcks.values()].filter((n) => n > 1).length;
    const replayNotDuplicate = replayed.filter((id) => duplicateAcks.get(id) !== 1).length;
    const dbDone = new Set((await dbAll<{ id: number }>(db, "SELECT id FROM job_items WHERE state = 'done'")).map((r) => r.id));
    const ackedNotDone = [...storedAcks.keys()].filter((id) => !dbDone.has(id)).length;
    const doneNotAcked = [...dbDone].filter((id) => !storedAcks.has(id)).length;
    const jobs = devices.flatMap((d) => d.jobs);
    const jobRows = await dbAll<{ id: string; state: string; total: number; done: number }>(
      db,
      "SELECT j.id, j.state, COUNT(i.id) AS total, SUM(i.state = 'done') AS done FROM jobs j JOIN job_items i ON i.job_id = j.id GROUP BY j.id",
    );
    const byJob = new Map(jobRows.map((r) => [r.id, r]));
    const badJobs = jobs.filter((j) => {
      const r = byJob.get(j.id);
      return !r || r.state !== 'done' || r.total !== j.total || r.done !== j.total;
    }).length;
    const itemsTotal = jobs.reduce((n, j) => n + j.total, 0);
    const distinctKeys = devices.reduce((n, d) => n + new Set(d.items.values()).size, 0);
    const points = (await dbAll<{ n: number }>(db, 'SELECT COUNT(*) AS n FROM points'))[0].n;
    const pointsOfNoStoredItem = (await dbAll<{ n: number }>(db, "SELECT COUNT(*) AS n FROM points p LEFT JOIN job_items i ON i.id = p.item_id WHERE i.state IS NOT 'done'"))[0].n;
    const errorsSeen = devices.reduce((n, d) => n + d.agent.errors.length, 0);
    const cancels = devices.reduce((n, d) => n + d.cancels, 0);
    const disconnected = devices.filter((d) => d.agent.closeCode !== null).length;
    const leasedTwice = devices.reduce((n, d) => n + d.leasedTwice.length, 0);
    const polled = POLLED.reduce((n, k) => n + polls[k].length, 0);
    const pollErrorsTotal = POLLED.reduce((n, k) => n + pollErrors[k], 0);
    const peakConnected = Math.max(...timeline.map((s) => s.connected).filter(Number.isFinite));

    const checks = {
      agentsWelcomed: devices.filter((d) => d.agent.deviceId !== null).length,
      peakConnected,
      jobsCreated: jobs.length,
      itemsTotal,
      itemsLeased: leased.length,
      storedAcks: storedAcks.size,
      notStored,
      storedTwice,
      leasedTwice,
      dbDone: dbDone.size,
      ackedNotDone,
      doneNotAcked,
      badJobs,
      points,
      distinctKeys,
      pointsOfNoStoredItem,
      replayed: replayed.length,
      replayNotDuplicate,
      otherAcks,
      errorsSeen,
      cancels,
      disconnected,
      polls: polled,
      pollErrors: pollErrorsTotal,
      creationErrors: creationErrors.length,
    };
    const verificationBase = {
      allConnected: checks.agentsWelcomed === o.agents && peakConnected === o.agents,
      nothingLost: notStored === 0 && ackedNotDone === 0 && badJobs === 0 && creationErrors.length === 0 && leased.length === itemsTotal,
      nothingStoredTwice: storedTwice === 0 && leasedTwice === 0 && doneNotAcked === 0 && dbDone.size === itemsTotal,
      pointsMatchItems: points === distinctKeys && pointsOfNoStoredItem === 0,
      replaysAckedDuplicate: replayNotDuplicate === 0 && otherAcks === 0 && (o.replay === 0 || replayed.length > 0),
      noErrorsOrDisconnects: errorsSeen === 0 && cancels === 0 && disconnected === 0,
      pollsAnswered: pollErrorsTotal === 0 && POLLED.every((k) => polls[k].length > 0),
    };
    const verification = { ...verificationBase, allPassed: Object.values(verificationBase).every(Boolean) };

    const windowS = (w1.at - w0.at) / 1000;
    const inWindow = (at: number): boolean => at >= w0.at && at < w1.at;
    const perSecond = timeline.slice(1).map((s, i) => (s.stored - timeline[i].stored) / Math.max(1e-3, s.t - timeline[i].t)).filter((_, i) => {
      const at = firstJobsAt + timeline[i].t * 1000;
      return inWindow(at) && at + 1000 < w1.at;
    });
    const lastStoredAt = Math.max(...devices.flatMap((d) => d.storedAt));
    // A device's `stored` acks and its storedAt times were recorded in the same order.
    const windowAcks = devices.flatMap((d) => {
      const storedOnly = d.agent.acks.filter((a) => a.status === 'stored');
      return storedOnly.map((a, k) => ({ ms: a.ms, at: d.storedAt[k] })).filter((x) => inWindow(x.at));
    });
    const duplicateMs = devices.flatMap((d) => d.agent.acks.filter((a) => a.status === 'duplicate').map((a) => a.ms));
    const pollFigures = Object.fromEntries(POLLED.map((k) => [k, { ...summary(polls[k].map((p) => p.ms)), errors: pollErrors[k] }])) as Record<Polled, Summary & { errors: number }>;

    return {
      bench: 'load',
      date: new Date().toISOString(),
      config: { ...o, runtime: RUNTIME, server: 'child process: node cli/bin.js serve --port 0 --json --no-local-agent' },
      machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? 'unknown', memoryGb: round(totalmem() / 2 ** 30), node: process.version, os: `${process.platform} ${release()}`, loadAverage: { atStart: loadAtStart, atEnd: loadavg().map((x) => round(x, 2)) } },
      figures: {
        connectMs: Math.round(connectMs),
        window: {
          seconds: round(windowS, 2),
          resultsStored: w1.stored - w0.stored,
          resultsStoredPerS: round((w1.stored - w0.stored) / windowS),
          perSecond: { min: round(Math.min(...perSecond)), max: round(Math.max(...perSecond)) },
        },
        overall: { itemsStored: storedAcks.size, seconds: round((lastStoredAt - firstJobsAt) / 1000, 2), resultsStoredPerS: round(storedAcks.size / ((lastStoredAt - firstJobsAt) / 1000)), drainS: round(drainS, 2) },
        ackLatencyMs: { window: summary(windowAcks.map((x) => x.ms)), duplicates: summary(duplicateMs) },
        pollLatencyMs: pollFigures,
        serverRssMb: { start: round(rss.start), afterConnect: round(rss.afterConnect), peak: round(rss.peak), end: round(rss.end) },
        serverCpuPercentOfOneCore: round((100 * (w1.cpuS - w0.cpuS)) / windowS),
        jobs: { created: jobs.length, items: itemsTotal, creationErrors: creationErrors.slice(0, 5) },
        timeline,
      },
      checks,
      verification,
    };
  } finally {
    for (const d of devices) d.agent.close();
    await sleep(200);
    if (db) await new Promise((r) => (db as sqlite3.Database).close(r));
    if (server) {
      const code = await stopServer(server);
      log(`server stopped (exit ${code})`);
    }
    await rm(dataDir, { recursive: true, force: true });
  }
}
