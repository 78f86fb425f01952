/**
 * Latency prediction quality and profiling efficiency, through the real system: a server, a real
 * Node agent (child process) and optionally the browser agent in headless Chromium, all on
 * 127.0.0.1.
 *
 * For each runtime: every random CNN (test/bench/random-cnns.ts) is profiled (its ops at its own
 * channel counts) and measured end to end. Predictions are judged out of sample: the calibration
 * a·Σops + b·n + c of network i is fitted on the other networks only (leave-one-out). Reported:
 * the share within ±10% of the measured median and the median absolute error, for
 *   - raw Σ ops (no calibration),
 *   - the calibrated table prediction (what POST /api/predict returns),
 *   - the FLOP baseline: the same calibration fitted on MACs instead of table latencies
 *     (what "guessing latency from FLOPs" gives at best),
 * and the measurements' own spread (p90/p10) as the noise floor. Then a full default-grid table
 * for a seed model per runtime: its wall time and the share spent inside timed runs.
 *
 *   node --import tsx test/bench/prediction-quality.ts [--networks 30] [--runtimes tfjs-wasm,tflite]
 *     [--browser] [--full-table mobilenet|none] [--out docs/bench/prediction-quality.json]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startServer, type RunningServer } from '../../server/app.ts';
import { fitCalibration, applyCalibration, type CalibrationSample } from '../../src/cost/calibration.ts';
import { generateRandomCnn } from './random-cnns.ts';
import { api } from './server-api.ts';

const TOKEN = 'prediction-bench-token';
const BIN = new URL('../../cli/bin.js', import.meta.url).pathname;

const { values } = parseArgs({
  options: {
    networks: { type: 'string', default: '30' },
    runtimes: { type: 'string', default: 'tfjs-wasm,tflite' },
    browser: { type: 'boolean', default: false },
    'browser-runtimes': { type: 'string', default: 'tfjs-wasm' },
    'full-table': { type: 'string', default: 'mobilenet' },
    /** The protocol for this bench's ops and networks: 'default' (DESIGN's) or 'quick' (fewer samples, for a 2-core machine shared with other work). */
    protocol: { type: 'string', default: 'quick' },
    out: { type: 'string' },
  },
});
const N = Number(values.networks);
const nodeRuntimes = String(values.runtimes).split(',').filter(Boolean);
const browserRuntimes = String(values['browser-runtimes']).split(',').filter(Boolean);

const QUICK = { warmupRuns: 3, warmupMs: 20, minSamples: 10, minWindowMs: 100, maxAttempts: 2, maxMs: 3000 };
const MEASURE = values.protocol === 'quick' ? QUICK : undefined;

const log = (s: string): void => {
  process.stderr.write(`${s}\n`);
};

async function waitJobs(server: RunningServer, ids: string[], label: string): Promise<any[]> {
  const done = new Map<string, any>();
  let last = '';
  while (done.size < ids.length) {
    for (const id of ids) {
      if (done.has(id)) continue;
      const j = await api(server, 'GET', `/api/jobs/${id}`);
      if (['done', 'failed', 'cancelled'].includes(j.state)) done.set(id, j);
    }
    const line = `${label}: ${done.size}/${ids.length} jobs finished`;
    if (line !== last) log(line);
    last = line;
    if (done.size < ids.length) await new Promise((r) => setTimeout(r, 500));
  }
  return ids.map((id) => done.get(id));
}

async function waitDevice(server: RunningServer, platform: string, timeoutMs = 120_000): Promise<any> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const d = (await api(server, 'GET', '/api/devices')).devices.find((x: any) => x.platform === platform && x.online);
    if (d) return d;
    if (Date.now() > end) throw new Error(`no ${platform} device came online`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

interface Row {
  readonly name: string;
  readonly macs: number;
  readonly measuredMs: number;
  readonly spread: number;
  readonly sumOpsMs: number;
  readonly nOps: number;
}

interface Quality {
  readonly within10: number;
  readonly withinCount: number;
  readonly medianApe: number;
  readonly p90Ape: number;
  readonly maxApe: number;
}

function quality(pred: number[], meas: number[]): Quality {
  const ape = pred.map((p, i) => Math.abs(p - meas[i]) / meas[i]).sort((a, b) => a - b);
  const q = (f: number): number => ape[Math.min(ape.length - 1, Math.floor(f * (ape.length - 1) + 0.5))];
  const withinCount = ape.filter((e) => e <= 0.1).length;
  return { within10: withinCount / ape.length, withinCount, medianApe: q(0.5), p90Ape: q(0.9), maxApe: ape[ape.length - 1] };
}

/** Leave-one-out predictions from `feature` (Σ ops or MACs) with the a·x + b·n + c calibration. */
function looPredictions(rows: readonly Row[], feature: (r: Row) => number): number[] {
  const sample = (r: Row): CalibrationSample => ({ device: 'd', runtime: 'r', sumOpsMs: feature(r), nOps: r.nOps, measuredMs: r.measuredMs, model: r.name });
  return rows.map((r, i) => {
    const cal = fitCalibration(rows.filter((_, j) => j !== i).map(sample));
    return applyCalibration(cal, { sumOpsMs: feature(r), nOps: r.nOps });
  });
}

async function evaluate(server: RunningServer, deviceId: string, runtime: string, nets: ReturnType<typeof generateRandomCnn>[]): Promise<Record<string, unknown>> {
  const started = performance.now();
  const profiles = [];
  for (const n of nets) profiles.push((await api(server, 'POST', '/api/profile', { deviceId, runtime, model: n.model, grid: { seedOnly: true }, ...(MEASURE ? { measure: MEASURE } : {}) })).id);
  const pj = await waitJobs(server, profiles, `${runtime} profile`);
  const failedProfiles = pj.filter((j) => j.state !== 'done');
  const profileS = (performance.now() - started) / 1000;
  const measures = [];
  for (const n of nets) measures.push((await api(server, 'POST', '/api/measure', { deviceId, runtime, model: n.model, ...(MEASURE ? { measure: { ...MEASURE, maxMs: 10_000 } } : {}) })).id);
  const mj = await waitJobs(server, measures, `${runtime} measure`);
  const { networks } = await api(server, 'GET', `/api/networks?deviceId=${deviceId}&runtime=${runtime}`);
  const byName = new Map(networks.map((x: any) => [x.modelName, x]));
  const rows: Row[] = [];
  nets.forEach((n, i) => {
    const net: any = byName.get(n.name);
    if (!net || net.sumOpsMs === null || mj[i].state !== 'done') return;
    rows.push({ name: n.name, macs: n.macs, measuredMs: net.measuredMs, spread: net.p90Ms / net.p10Ms, sumOpsMs: net.sumOpsMs, nOps: net.nOps });
  });
  const meas = rows.map((r) => r.measuredMs);
  const table = looPredictions(rows, (r) => r.sumOpsMs);
  const flops = looPredictions(rows, (r) => r.macs / 1e6);
  const all = fitCalibration(rows.map((r) => ({ device: 'd', runtime, sumOpsMs: r.sumOpsMs, nOps: r.nOps, measuredMs: r.measuredMs, model: r.name })));
  const spreads = rows.map((r) => r.spread).sort((a, b) => a - b);
  return {
    runtime,
    deviceId,
    networks: rows.length,
    failed: { profiles: failedProfiles.length, measures: mj.filter((j) => j.state !== 'done').length },
    wallSeconds: { profile: profileS, total: (performance.now() - started) / 1000 },
    measuredMs: { min: Math.min(...meas), median: [...meas].sort((a, b) => a - b)[Math.floor(meas.length / 2)], max: Math.max(...meas) },
    noise: { medianP90OverP10: spreads[Math.floor(spreads.length / 2)], maxP90OverP10: spreads[spreads.length - 1] },
    rawSumOfOps: quality(rows.map((r) => r.sumOpsMs), meas),
    tableCalibratedLoo: quality(table, meas),
    flopsCalibratedLoo: quality(flops, meas),
    calibrationOnAll: { a: all.a, b: all.b, c: all.c, method: all.method },
    perNetwork: rows.map((r, i) => ({ name: r.name, macs: r.macs, nOps: r.nOps, measuredMs: r.measuredMs, sumOpsMs: r.sumOpsMs, predictedLooMs: table[i], flopsLooMs: flops[i] })),
  };
}

async function fullTable(server: RunningServer, deviceId: string, runtime: string, seed: string): Promise<Record<string, unknown>> {
  // The default protocol and grid: what a user's full table costs. No refinement round, to time the grid alone.
  const job = await api(server, 'POST', '/api/profile', { deviceId, runtime, model: seed, refine: false });
  const [done] = await waitJobs(server, [job.id], `${runtime} full ${seed} table`);
  const r = done.result;
  return { runtime, seed, state: done.state, points: r.measured, signatures: r.signatures, wallSeconds: r.wallMs / 1000, measuringSeconds: r.measuringMs / 1000, sampledSeconds: r.sampledMs / 1000, timedShare: r.sampledMs / r.wallMs, measuringShare: r.measuringMs / r.wallMs };
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'morphnet-predbench-'));
  const server = await startServer({ port: 0, dataDir: dir, agentToken: TOKEN, localAgent: false, log: () => undefined });
  const children: ChildProcess[] = [];
  let browser: { close(): Promise<void> } | null = null;
  try {
    const agent = spawn(process.execPath, [BIN, 'agent', '--server', server.wsUrl, '--name', 'bench node agent', '--device-key', 'prediction-bench-node', ...nodeRuntimes.flatMap((r) => ['--runtime', r])], {
      env: { ...process.env, MORPHNET_AGENT_TOKEN: TOKEN },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    children.push(agent);
    const nodeDevice = await waitDevice(server, 'node');
    const nets = Array.from({ length: N }, (_, i) => generateRandomCnn(1000 + i));
    const results: Record<string, unknown>[] = [];
    const tables: Record<string, unknown>[] = [];
    for (const runtime of nodeRuntimes) {
      results.push({ agent: 'node', ...(await evaluate(server, nodeDevice.id, runtime, nets)) });
      if (values['full-table'] !== 'none') tables.push({ agent: 'node', ...(await fullTable(server, nodeDevice.id, runtime, String(values['full-table']))) });
    }
    if (values.browser) {
      const { chromium } = await import('playwright-core');
      const b = await chromium.launch({
        executablePath: '/usr/bin/chromium',
        args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
      });
      browser = b;
      const page = await b.newPage();
      await page.goto(`${server.url}/agent?token=${TOKEN}`);
      // The node agent stays connected but the browser is another device; stop the node agent so the two do not share the CPU.
      agent.kill('SIGTERM');
      const browserDevice = await waitDevice(server, 'browser');
      for (const runtime of browserRuntimes) {
        results.push({ agent: 'chromium', ...(await evaluate(server, browserDevice.id, runtime, nets)) });
        if (values['full-table'] !== 'none') tables.push({ agent: 'chromium', ...(await fullTable(server, browserDevice.id, runtime, String(values['full-table']))) });
      }
    }
    const report = {
      bench: 'prediction-quality',
      date: new Date().toISOString(),
      machine: { cpu: cpus()[0]?.model, cores: cpus().length, node: process.version },
      config: {
        networks: N,
        seeds: `1000..${1000 + N - 1}`,
        grid: 'seedOnly (each network’s own channel counts)',
        protocol: MEASURE ? { name: 'quick', ...MEASURE } : 'default (warm-up ≥5 runs/50 ms, ≥20 samples/200 ms, re-measure when CV > 0.15)',
        fullTableProtocol: 'default',
      },
      macs: { min: Math.min(...nets.map((n) => n.macs)), max: Math.max(...nets.map((n) => n.macs)) },
      results,
      fullTables: tables,
    };
    const text = JSON.stringify(report, null, 2);
    process.stdout.write(`${text}\n`);
    if (values.out) await writeFile(String(values.out), `${text}\n`);
  } finally {
    await browser?.close().catch(() => undefined);
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
    await server.close();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
