/**
 * Latency prediction of unseen networks, judged against paired measurements (issue 17), through
 * the real system on 127.0.0.1: a server, a Node agent (child process) and, with `--browser`, the
 * browser agent page in headless Chromium (the Node agent is stopped first, so the two do not share
 * the cores).
 *
 * Per runtime:
 * 1. Random CNNs (`random-cnns.ts`, seeds `--seed` … `--seed` + N − 1, 2M–200M MACs) have their ops
 *    profiled at their own channel counts (the server's default protocol), and each is predicted
 *    (`POST /api/predict`: Σ ops, op count, activation and weight MB) before it is measured.
 * 2. Each network is measured `--rounds` times against the reference (`reference`: the network and
 *    the reference timed interleaved, the median per-round ratio, with the closed loop's
 *    `PAIRED_MEASURE_OPTIONS`: ≥ 100 rounds over ≥ 2 s), the networks in a rotated order
 *    each round. Its latency is its median ratio × the reference's settled latency (the median of
 *    the reference's own medians over every paired job of the runtime). The rounds give the noise
 *    floor: the share of readings within ±10% of their own network's median.
 * 3. The calibration is fitted on the first `--calibrate` networks only and predicts every other
 *    one (strictly out of sample: no network's own measurement calibrates its prediction), three
 *    ways: the calibration as the server now fits it (the memory terms where they help out of
 *    sample), the classic a·Σops + b·n + c, and the FLOP baseline (the classic form on MACs).
 *
 * One JSON line per runtime is appended to `--out` as it finishes (resumable: a runtime already in
 * the file is skipped). Progress goes to stderr.
 *
 * `--refit FILE` measures nothing: it fits the calibration of the code as it is now on the stored
 * readings of every line of FILE (the same first networks) and prints, per line, the held-out
 * figures then and now, so a change of the calibration is judged on readings taken before it.
 *
 *   node --import tsx test/bench/prediction-paired.ts [--runtimes tflite,tfjs-wasm] [--browser]
 *     [--browser-runtimes tfjs-wasm,tflite] [--networks 30] [--calibrate 10] [--seed 7000]
 *     [--rounds 2] [--reference mobilenetv2] [--out docs/bench/prediction-paired.jsonl]
 *   node --import tsx test/bench/prediction-paired.ts --refit docs/bench/prediction-paired.jsonl
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startServer, type RunningServer } from '../../server/app.ts';
import { applyCalibration, fitCalibration, type CalibrationSample } from '../../src/cost/calibration.ts';
import { PAIRED_MEASURE_OPTIONS } from '../../src/measure/interleaved.ts';
import { generateRandomCnn, type RandomCnn } from './random-cnns.ts';
import { api } from './server-api.ts';

const TOKEN = 'prediction-paired-bench-token';
const BIN = new URL('../../cli/bin.js', import.meta.url).pathname;

const { values } = parseArgs({
  options: {
    runtimes: { type: 'string', default: 'tflite,tfjs-wasm' },
    browser: { type: 'boolean', default: false },
    'browser-runtimes': { type: 'string', default: 'tfjs-wasm,tflite' },
    networks: { type: 'string', default: '30' },
    calibrate: { type: 'string', default: '10' },
    seed: { type: 'string', default: '7000' },
    rounds: { type: 'string', default: '2' },
    reference: { type: 'string', default: 'mobilenetv2' },
    out: { type: 'string' },
    refit: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});
if (values.help) {
  process.stdout.write(`${(await readFile(new URL(import.meta.url), 'utf8')).split('*/')[0]}*/\n`);
  process.exit(0);
}
const N = Number(values.networks);
const K = Number(values.calibrate);
const SEED = Number(values.seed);
const ROUNDS = Number(values.rounds);
if (!(Number.isInteger(N) && Number.isInteger(K) && K >= 1 && K < N && Number.isInteger(SEED) && Number.isInteger(ROUNDS) && ROUNDS >= 1)) {
  throw new Error('--networks and --calibrate must be integers with 1 ≤ calibrate < networks; --seed an integer; --rounds ≥ 1');
}
const reference = String(values.reference);

const log = (s: string): void => {
  process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${s}\n`);
};

async function job(server: RunningServer, id: string): Promise<any> {
  for (;;) {
    const j = await api(server, 'GET', `/api/jobs/${id}`);
    if (['done', 'failed', 'cancelled'].includes(j.state)) return j;
    await new Promise((r) => setTimeout(r, 200));
  }
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

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
};

interface Row {
  readonly name: string;
  readonly macs: number;
  readonly sumOpsMs: number;
  readonly nOps: number;
  readonly ioMB: number;
  readonly weightMB: number;
  readonly ratios: number[];
  measuredMs: number;
}

function quality(errors: readonly number[]): { within10: number; of: number; share: number; medianApe: number; p90Ape: number; maxApe: number } {
  const e = [...errors].sort((a, b) => a - b);
  const q = (f: number): number => e[Math.min(e.length - 1, Math.floor(f * (e.length - 1) + 0.5))];
  const within10 = e.filter((x) => x <= 0.1 + 1e-12).length;
  return { within10, of: e.length, share: within10 / e.length, medianApe: q(0.5), p90Ape: q(0.9), maxApe: e[e.length - 1] };
}

/** Fits on `cal` and predicts `test`; `feature` gives Σ ops (or MACs), `bytes` whether the memory terms may be used. */
function heldOut(cal: readonly Row[], test: readonly Row[], feature: (r: Row) => number, bytes: boolean) {
  const sample = (r: Row): CalibrationSample => ({
    device: 'd',
    runtime: 'r',
    sumOpsMs: feature(r),
    nOps: r.nOps,
    ...(bytes ? { ioMB: r.ioMB, weightMB: r.weightMB } : {}),
    measuredMs: r.measuredMs,
    model: r.name,
  });
  const calibration = fitCalibration(cal.map(sample));
  const predicted = test.map((r) => applyCalibration(calibration, sample(r)));
  return {
    calibration: { a: calibration.a, b: calibration.b, c: calibration.c, d: calibration.d, e: calibration.e, method: calibration.method, note: calibration.note, outOfSample: calibration.outOfSample },
    quality: quality(test.map((r, i) => Math.abs(predicted[i] - r.measuredMs) / r.measuredMs)),
    predictedMs: predicted,
  };
}

async function evaluate(server: RunningServer, deviceId: string, runtime: string, nets: readonly RandomCnn[]): Promise<Record<string, unknown>> {
  const started = Date.now();
  const profiles = [];
  for (const n of nets) profiles.push((await api(server, 'POST', '/api/profile', { deviceId, runtime, model: n.model, grid: { seedOnly: true } })).id);
  let failedProfiles = 0;
  for (const [i, id] of profiles.entries()) {
    let j = await job(server, id);
    // A failed job (an agent lost, items out of attempts) is profiled once more: a new job times only what is missing.
    if (j.state !== 'done') {
      failedProfiles++;
      log(`${runtime}: profile of ${nets[i].name} ${j.state}: ${JSON.stringify(j.error ?? j.progress).slice(0, 300)}; profiling it again`);
      j = await job(server, (await api(server, 'POST', '/api/profile', { deviceId, runtime, model: nets[i].model, grid: { seedOnly: true } })).id);
      if (j.state !== 'done') throw new Error(`${nets[i].name}: profile job ${j.state} twice: ${JSON.stringify(j.error ?? j.progress).slice(0, 300)}`);
    }
    log(`${runtime}: profiled ${i + 1}/${nets.length}`);
  }
  const profileS = (Date.now() - started) / 1000;
  const rows: Row[] = [];
  for (const n of nets) {
    // Throws (a 4xx with the missing signatures) when the profile left an op without a table.
    const x = await api(server, 'POST', '/api/predict', { deviceId, runtime, model: n.model });
    rows.push({ name: n.name, macs: n.macs, sumOpsMs: x.sumOpsMs, nOps: x.nOps, ioMB: x.ioMB, weightMB: x.weightMB, ratios: [], measuredMs: Number.NaN });
  }
  const referenceMs: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    for (let k = 0; k < nets.length; k++) {
      const i = (k + r * 7) % nets.length;
      const j = await job(server, (await api(server, 'POST', '/api/measure', { deviceId, runtime, model: nets[i].model, reference, measure: PAIRED_MEASURE_OPTIONS })).id);
      if (j.state !== 'done' || !j.result?.reference) throw new Error(`${nets[i].name}: paired measure job ${j.state}: ${JSON.stringify(j.error ?? j.result).slice(0, 300)}`);
      rows[i].ratios.push(j.result.reference.ratio);
      referenceMs.push(j.result.reference.medianMs);
      log(`${runtime} round ${r + 1}/${ROUNDS} ${nets[i].name}: ratio ${j.result.reference.ratio.toFixed(4)}, ${reference} ${j.result.reference.medianMs.toFixed(3)} ms`);
    }
  }
  const settledMs = median(referenceMs);
  for (const r of rows) r.measuredMs = median(r.ratios) * settledMs;
  let floorIn = 0;
  let floorOf = 0;
  for (const r of rows) {
    const m = median(r.ratios);
    for (const x of r.ratios) {
      floorOf++;
      if (Math.abs(x / m - 1) <= 0.1) floorIn++;
    }
  }
  const cal = rows.slice(0, K);
  const test = rows.slice(K);
  const current = heldOut(cal, test, (r) => r.sumOpsMs, true);
  const classic = heldOut(cal, test, (r) => r.sumOpsMs, false);
  const flops = heldOut(cal, test, (r) => r.macs / 1e6, false);
  const meas = rows.map((r) => r.measuredMs);
  return {
    runtime,
    deviceId,
    networks: rows.length,
    calibrationNetworks: K,
    failedProfiles,
    wallSeconds: { profile: profileS, total: (Date.now() - started) / 1000 },
    reference: { name: reference, settledMs, minMs: Math.min(...referenceMs), maxMs: Math.max(...referenceMs) },
    measuredMs: { min: Math.min(...meas), median: median(meas), max: Math.max(...meas) },
    noiseFloor: ROUNDS >= 2 ? { within10: floorIn, of: floorOf, share: floorIn / floorOf } : null,
    prediction: { current: current.quality, classic: classic.quality, flops: flops.quality },
    calibration: { current: current.calibration, classic: classic.calibration, flops: flops.calibration },
    rawSumOfOps: quality(test.map((r) => Math.abs(r.sumOpsMs - r.measuredMs) / r.measuredMs)),
    perNetwork: rows.map((r, i) => ({
      name: r.name,
      role: i < K ? 'calibration' : 'test',
      macs: r.macs,
      nOps: r.nOps,
      ioMB: r.ioMB,
      weightMB: r.weightMB,
      sumOpsMs: r.sumOpsMs,
      ratios: r.ratios,
      measuredMs: r.measuredMs,
      predictedMs: i < K ? null : current.predictedMs[i - K],
      classicMs: i < K ? null : classic.predictedMs[i - K],
      flopsMs: i < K ? null : flops.predictedMs[i - K],
    })),
  };
}

async function done(): Promise<Set<string>> {
  if (!values.out) return new Set();
  const text = await readFile(String(values.out), 'utf8').catch(() => '');
  return new Set(
    text
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l))
      .filter((r) => r.seed === SEED && r.networks === N && r.calibrationNetworks === K)
      .map((r) => `${r.agent}/${r.runtime}`),
  );
}

async function record(agent: string, result: Record<string, unknown>): Promise<void> {
  const row: Record<string, unknown> = {
    bench: 'prediction-paired',
    date: new Date().toISOString(),
    machine: { cpu: cpus()[0]?.model.trim(), cores: cpus().length, node: process.version },
    agent,
    seed: SEED,
    rounds: ROUNDS,
    ...result,
  };
  const p = row.prediction as Record<string, { within10: number; of: number; medianApe: number }>;
  process.stdout.write(`${JSON.stringify({ agent, runtime: result.runtime, noiseFloor: result.noiseFloor, current: p.current, classic: p.classic, flops: p.flops })}\n`);
  if (values.out) await appendFile(String(values.out), `${JSON.stringify(row)}\n`);
}

/** `--refit`: the stored readings of each line, calibrated by the code as it is now. */
async function refit(file: string): Promise<void> {
  const lines = (await readFile(file, 'utf8')).split('\n').filter(Boolean);
  for (const line of lines) {
    const r = JSON.parse(line);
    const rows: Row[] = r.perNetwork;
    const cal = rows.slice(0, r.calibrationNetworks);
    const test = rows.slice(r.calibrationNetworks);
    const now = heldOut(cal, test, (x) => x.sumOpsMs, true);
    const q = (x: { within10: number; of: number; medianApe: number }): string => `${x.within10}/${x.of} (median ${(x.medianApe * 100).toFixed(1)}%)`;
    process.stdout.write(
      `${JSON.stringify({ agent: r.agent, runtime: r.runtime, seed: r.seed, date: r.date, noiseFloor: r.noiseFloor, then: q(r.prediction.current), now: q(now.quality), classic: q(r.prediction.classic), note: now.calibration.note })}\n`,
    );
  }
}

async function main(): Promise<void> {
  if (values.refit) return refit(String(values.refit));
  const skip = await done();
  const nodeRuntimes = String(values.runtimes).split(',').filter((r) => r && !skip.has(`node/${r}`));
  const browserRuntimes = values.browser ? String(values['browser-runtimes']).split(',').filter((r) => r && !skip.has(`chromium/${r}`)) : [];
  const nets = Array.from({ length: N }, (_, i) => generateRandomCnn(SEED + i, { minMacs: 2e6, maxMacs: 2e8 }));
  const dir = await mkdtemp(join(tmpdir(), 'morphnet-predpaired-'));
  const server = await startServer({ port: 0, dataDir: dir, agentToken: TOKEN, localAgent: false, log: () => undefined });
  const children: ChildProcess[] = [];
  let browser: { close(): Promise<void> } | null = null;
  try {
    if (nodeRuntimes.length > 0) {
      const agent = spawn(process.execPath, [BIN, 'agent', '--server', server.wsUrl, '--name', 'bench node agent', '--device-key', 'prediction-paired-node', ...nodeRuntimes.flatMap((r) => ['--runtime', r])], {
        env: { ...process.env, MORPHNET_AGENT_TOKEN: TOKEN },
        stdio: ['ignore', 'ignore', 'inherit'],
      });
      children.push(agent);
      const device = await waitDevice(server, 'node');
      for (const runtime of nodeRuntimes) await record('node', await evaluate(server, device.id, runtime, nets));
      agent.kill('SIGTERM');
    }
    if (browserRuntimes.length > 0) {
      const { chromium } = await import('playwright-core');
      const b = await chromium.launch({
        executablePath: '/usr/bin/chromium',
        args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
      });
      browser = b;
      const page = await b.newPage();
      await page.goto(`${server.url}/agent?token=${TOKEN}`);
      const device = await waitDevice(server, 'browser');
      for (const runtime of browserRuntimes) await record('chromium', await evaluate(server, device.id, runtime, nets));
    }
  } finally {
    await browser?.close().catch(() => undefined);
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
    await server.close();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
