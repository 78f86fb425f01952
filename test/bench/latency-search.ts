/**
 * Latency-targeted search vs its baselines at equal measured latency, through the real system:
 * a server with its built-in local agent (this host is the device; the agent is paused while a
 * search trains here), Fashion-MNIST, target = a fraction of the seed's latency measured on the
 * device. For each case (seed model × runtime × target fraction × RNG seed) one search with
 * `baseline: true` gives three networks trained with the identical schedule: latency-MorphNet, the
 * uniformly shrunk seed and FLOP-MorphNet, each expanded in closed loop to the target. The strength
 * is chosen by the search's own procedure (src/morph/strength.ts) unless `--strength K` is given:
 * the same rule for every case, on training and validation data only.
 *
 * Resumable: one JSON line per finished case is appended to `--out`; a rerun skips the cases the
 * file already holds (done or failed) and reuses `--data-dir`, so the device's tables are profiled
 * once. Cases run RNG seed by RNG seed, so a partial run covers every condition once first.
 * `latency-search-summary.ts` turns the file into paired gains. Every other option is the search's
 * default (divisor 4, profile grid 6, SGD, cosine final schedule, torch engine).
 *
 *   node --import tsx test/bench/latency-search.ts [--models mobilenetv2,wideresnet]
 *     [--runtimes tflite,tfjs-wasm] [--fractions 0.5,0.3] [--seeds 3] [--train-limit 8000]
 *     [--test-limit 10000] [--shrink-epochs 2] [--final-epochs 4] [--strength auto|K]
 *     [--out docs/bench/latency-search.jsonl] [--data-dir DIR] [--max-cases N]
 */
import { appendFile, mkdir, readFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startServer, type RunningServer } from '../../server/app.ts';
import { api } from './server-api.ts';

const { values } = parseArgs({
  options: {
    models: { type: 'string', default: 'mobilenetv2,wideresnet' },
    runtimes: { type: 'string', default: 'tflite,tfjs-wasm' },
    fractions: { type: 'string', default: '0.5,0.3' },
    seeds: { type: 'string', default: '3' },
    'train-limit': { type: 'string', default: '8000' },
    'test-limit': { type: 'string', default: '10000' },
    'shrink-epochs': { type: 'string', default: '2' },
    'final-epochs': { type: 'string', default: '4' },
    strength: { type: 'string', default: 'auto' },
    out: { type: 'string', default: 'docs/bench/latency-search.jsonl' },
    'data-dir': { type: 'string', default: join(tmpdir(), 'morphnet-latbench-data') },
    'max-cases': { type: 'string' },
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

/** One network of a case, as the summary reads it. */
function network(net: any, targetMs: number): Record<string, unknown> | null {
  if (!net) return null;
  return {
    accuracy: net.accuracy,
    measuredMs: net.measured,
    vsTarget: net.measured / targetMs - 1,
    within: Math.abs(net.measured / targetMs - 1) <= 0.03,
    verifyStop: net.verifyStop,
    predictedMs: net.cost,
    macs: net.macs,
    params: net.params,
    multiplier: net.multiplier,
    structure: net.structure,
    verify: net.verify ?? [],
    trainSeconds: net.trainSeconds,
  };
}

const caseKey = (c: { model: string; runtime: string; fraction: number; seed: number }): string => `${c.model}|${c.runtime}|${c.fraction}|${c.seed}`;

async function finishedCases(path: string): Promise<Set<string>> {
  let text = '';
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const keys = new Set<string>();
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    keys.add(caseKey(JSON.parse(line)));
  }
  return keys;
}

async function waitSearch(server: RunningServer, id: string): Promise<{ s: any; phases: { at: number; what: string }[] }> {
  const started = Date.now();
  const phases: { at: number; what: string }[] = [];
  let last = '';
  for (;;) {
    const s = await api(server, 'GET', `/api/searches/${id}`);
    const what = `${s.state}${s.progress?.phase ? ` ${s.progress.phase}` : ''}`;
    if (what !== last) {
      phases.push({ at: (Date.now() - started) / 1000, what });
      log(`  ${what}`);
      last = what;
    }
    if (['done', 'failed', 'cancelled'].includes(s.state)) return { s, phases };
    await new Promise((r) => setTimeout(r, 2000));
  }
}

async function main(): Promise<void> {
  const out = String(values.out);
  const done = await finishedCases(out);
  const cases: { model: string; runtime: string; fraction: number; seed: number }[] = [];
  for (let seed = 1; seed <= Number(values.seeds); seed++) {
    for (const model of String(values.models).split(',')) {
      for (const runtime of String(values.runtimes).split(',')) {
        for (const fraction of String(values.fractions).split(',').map(Number)) cases.push({ model, runtime, fraction, seed });
      }
    }
  }
  const todo = cases.filter((c) => !done.has(caseKey(c))).slice(0, values['max-cases'] ? Number(values['max-cases']) : undefined);
  log(`${cases.length} case(s), ${cases.length - cases.filter((c) => !done.has(caseKey(c))).length} already in ${out}; running ${todo.length}`);
  if (todo.length === 0) return;
  await mkdir(String(values['data-dir']), { recursive: true });
  const server = await startServer({ port: 0, dataDir: String(values['data-dir']), log: (l) => (l.includes('[local agent] lease') ? undefined : log(l)) });
  try {
    let device: any;
    for (let i = 0; i < 600 && !device; i++) {
      // The built-in local agent names its device "<hostname> (local)".
      device = (await api(server, 'GET', '/api/devices')).devices.find((d: any) => d.online && String(d.name).endsWith('(local)'));
      if (!device) await new Promise((r) => setTimeout(r, 200));
    }
    if (!device) throw new Error('the local agent did not come online');
    for (const c of todo) {
      const started = Date.now();
      const body = {
        seed: c.model,
        data: { dataset: 'fashion-mnist', trainLimit: Number(values['train-limit']), testLimit: Number(values['test-limit']) },
        cost: 'latency',
        deviceId: device.id,
        runtime: c.runtime,
        target: { fraction: c.fraction },
        options: {
          shrinkEpochs: Number(values['shrink-epochs']),
          finalEpochs: Number(values['final-epochs']),
          strength: values.strength === 'auto' ? null : Number(values.strength),
          baseline: true,
          seed: c.seed,
          engine: 'torch',
        },
      };
      const res = await fetch(`${server.url}/api/searches`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      const created = await res.json();
      if (!res.ok) {
        // A refused case (a target out of reach) is a result too: recorded, and the bench goes on.
        await appendFile(out, `${JSON.stringify({ ...c, bench: 'latency-search', date: new Date().toISOString(), state: 'refused', error: created.error })}\n`);
        log(`case ${caseKey(c)}: refused: ${created.error?.message}`);
        continue;
      }
      log(`case ${caseKey(c)}: search ${created.id}`);
      const { s, phases } = await waitSearch(server, created.id);
      const wallSeconds = (Date.now() - started) / 1000;
      const base = { ...c, bench: 'latency-search', date: new Date().toISOString(), machine: { cpu: cpus()[0]?.model, cores: cpus().length, node: process.version }, config: { ...values, out: undefined, help: undefined }, searchId: created.id, state: s.state, wallSeconds, phases };
      if (s.state !== 'done') {
        await appendFile(out, `${JSON.stringify({ ...base, error: s.error })}\n`);
        log(`  ${s.state}: ${JSON.stringify(s.error)}`);
        continue;
      }
      const report = await (await fetch(`${server.url}/api/searches/${created.id}/artifacts/report.json`)).json();
      const targetMs = report.latency.targetMs;
      const round = report.rounds[report.rounds.length - 1];
      const record = {
        ...base,
        targetMs,
        seedMeasuredMs: report.latency.seedMeasuredMs,
        seedPredictedMs: report.latency.seedPredictedMs,
        minimumMs: report.latency.minimumMs,
        profiledPoints: report.latency.profiledPoints,
        strength: report.strength,
        engine: report.engine?.description ?? null,
        seed: c.seed,
        seedNetwork: { macs: report.seed.macs, params: report.seed.params, structure: report.seed.structure },
        // The regularizer's per-group weights on the device (step 4 of the issue): the latency
        // coefficient of each group beside its alive and expanded widths.
        groups: round.groups.map((g: any) => ({ id: g.id, layers: g.layers, channels: g.channels, alive: g.alive, expanded: g.expanded, latencyCoefficient: g.coefficient })),
        latencyMorphNet: network(report.learned, targetMs),
        uniform: network(report.baseline, targetMs),
        flopMorphNet: network(report.flopSearch, targetMs),
      };
      await appendFile(out, `${JSON.stringify(record)}\n`);
      const acc = (n: any): string => (n ? `${(n.accuracy * 100).toFixed(2)}% @ ${n.measured.toFixed(3)} ms (${n.verifyStop})` : '—');
      log(`  target ${targetMs.toFixed(3)} ms: latency ${acc(report.learned)}, uniform ${acc(report.baseline)}, FLOP ${acc(report.flopSearch)}; ${wallSeconds.toFixed(0)} s`);
    }
  } finally {
    await server.close();
  }
}

await main();
