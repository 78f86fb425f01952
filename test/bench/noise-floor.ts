/**
 * The noise floor of a network measurement on this machine, through the real system: a server
 * with its built-in local agent (this host is the device), `POST /api/measure` for each reading.
 * Random CNNs (test/bench/random-cnns.ts, seeds from `--seed`) are each measured `--rounds` times,
 * the networks taken in turn inside each round (so every network meets every phase of the
 * machine), two ways per reading:
 *
 * - `plain`: the network alone (one measure job): its median, ms;
 * - `paired`: the network interleaved with a reference network (one measure job with
 *   `reference`): the per-round ratio network/reference, scale-free (src/measure/interleaved.ts).
 *
 * Printed per runtime (and appended as one JSON line to `--out`): for each way, the share of
 * readings within ±10% (and ±3%) of their own network's median, and each network's spread
 * (max/min). Prediction accuracy cannot beat the share within ±10%: it is the ceiling any latency
 * predictor judged against these measurements has on this machine.
 *
 *   node --import tsx test/bench/noise-floor.ts [--runtimes tflite,tfjs-wasm] [--networks 6]
 *     [--rounds 5] [--seed 9100] [--reference mobilenetv2] [--measure '{"minWindowMs":2000}']
 *     [--out docs/bench/noise-floor.jsonl]
 *
 * `--measure`: the measure options of every job (docs/api.md, "measure options"); default: the
 * server's own for a measure job.
 */
import { appendFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir, cpus } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startServer, type RunningServer } from '../../server/app.ts';
import { randomCnn } from './random-cnns.ts';
import { api } from './server-api.ts';

const { values } = parseArgs({
  options: {
    runtimes: { type: 'string', default: 'tflite,tfjs-wasm' },
    networks: { type: 'string', default: '6' },
    rounds: { type: 'string', default: '5' },
    seed: { type: 'string', default: '9100' },
    reference: { type: 'string', default: 'mobilenetv2' },
    measure: { type: 'string' },
    out: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});

if (values.help) {
  process.stdout.write(`${(await readFile(new URL(import.meta.url), 'utf8')).split('*/')[0]}*/\n`);
  process.exit(0);
}

const log = (s: string): void => {
  process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${s}\n`);
};

interface MeasureResult {
  medianMs: number;
  reference?: { medianMs: number; ratio: number; ratioP10: number; ratioP90: number; rounds: number };
}

const measureOptions = values.measure ? (JSON.parse(values.measure) as Record<string, number>) : undefined;

async function measure(server: RunningServer, deviceId: string, runtime: string, model: unknown, reference?: unknown): Promise<MeasureResult> {
  const job = await api(server, 'POST', '/api/measure', { deviceId, runtime, model, ...(reference === undefined ? {} : { reference }), ...(measureOptions ? { measure: measureOptions } : {}) });
  for (;;) {
    const j = await api(server, 'GET', `/api/jobs/${job.id}`);
    if (j.state === 'done') return j.result as MeasureResult;
    if (j.state === 'failed' || j.state === 'cancelled') throw new Error(`measure job ${job.id} ${j.state}: ${JSON.stringify(j.error)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** Share of readings within ±tol of their own network's median, over all networks. */
function within(readings: readonly (readonly number[])[], tol: number): { within: number; of: number; share: number } {
  let n = 0;
  let total = 0;
  for (const r of readings) {
    const m = median(r);
    for (const x of r) {
      total++;
      if (Math.abs(x / m - 1) <= tol) n++;
    }
  }
  return { within: n, of: total, share: total > 0 ? n / total : 0 };
}

const runtimes = String(values.runtimes).split(',').filter(Boolean);
const count = Number(values.networks);
const rounds = Number(values.rounds);
const firstSeed = Number(values.seed);
if (!(Number.isInteger(count) && count >= 1 && Number.isInteger(rounds) && rounds >= 2 && Number.isInteger(firstSeed))) {
  throw new Error('--networks must be an integer ≥ 1, --rounds an integer ≥ 2, --seed an integer');
}
// 0.5–50 ms on this VM: 2M–200M MACs.
const networks = Array.from({ length: count }, (_, i) => randomCnn(firstSeed + i, { minMacs: 2e6, maxMacs: 2e8 }));
const reference = values.reference as string;

const dir = await mkdtemp(join(tmpdir(), 'morphnet-noise-'));
const server = await startServer({ port: 0, dataDir: dir, log: () => undefined });
try {
  let deviceId = '';
  for (let i = 0; i < 600 && !deviceId; i++) {
    deviceId = ((await api(server, 'GET', '/api/devices')).devices as { id: string; online: boolean }[]).find((d) => d.online)?.id ?? '';
    if (!deviceId) await new Promise((r) => setTimeout(r, 100));
  }
  if (!deviceId) throw new Error('the built-in local agent did not come online');
  for (const runtime of runtimes) {
    const started = Date.now();
    const plain: number[][] = networks.map(() => []);
    const paired: number[][] = networks.map(() => []);
    for (let r = 0; r < rounds; r++) {
      // Rotate the order each round, so no network always follows the same one.
      for (let k = 0; k < networks.length; k++) {
        const i = (k + r) % networks.length;
        plain[i].push((await measure(server, deviceId, runtime, networks[i])).medianMs);
        const p = await measure(server, deviceId, runtime, networks[i], reference);
        if (!p.reference) throw new Error('a paired measurement came back without its reference figures');
        paired[i].push(p.reference.ratio);
        log(`${runtime} round ${r + 1}/${rounds} network ${i}: plain ${plain[i].at(-1)!.toFixed(3)} ms, ratio to ${reference} ${p.reference.ratio.toFixed(4)}`);
      }
    }
    const spread = (rs: readonly (readonly number[])[]): number[] => rs.map((x) => Math.max(...x) / Math.min(...x));
    const row = {
      bench: 'noise-floor',
      date: new Date().toISOString(),
      machine: { cpu: cpus()[0]?.model.trim(), cores: cpus().length, node: process.version },
      runtime,
      seed: firstSeed,
      networks: count,
      rounds,
      reference,
      measure: measureOptions ?? null,
      wallSeconds: (Date.now() - started) / 1000,
      plain: { within10: within(plain, 0.1), within3: within(plain, 0.03), spread: spread(plain), medianMs: plain.map(median), readings: plain },
      paired: { within10: within(paired, 0.1), within3: within(paired, 0.03), spread: spread(paired), medianRatio: paired.map(median), readings: paired },
    };
    process.stdout.write(`${JSON.stringify({ runtime, measure: measureOptions ?? null, plain: { within10: row.plain.within10, within3: row.plain.within3 }, paired: { within10: row.paired.within10, within3: row.paired.within3 } })}\n`);
    if (values.out) await appendFile(values.out, `${JSON.stringify(row)}\n`);
  }
} finally {
  await server.close();
  await rm(dir, { recursive: true, force: true });
}
