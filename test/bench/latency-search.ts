/**
 * Latency-targeted search vs its baselines at equal measured latency, through the real system:
 * a server with its built-in local agent (this host is the device; the agent is paused while a
 * search trains here), Fashion-MNIST, target = a fraction of the seed's latency measured on the
 * device. For each (seed model, runtime, RNG seed) one search with `baseline: true` gives three
 * networks trained with the identical schedule: latency-MorphNet, the uniformly shrunk seed and
 * FLOP-MorphNet, each expanded in closed loop to the target. Reports measured latency vs target,
 * accuracy, MACs, params, the wall time split (profiling, search), and each learned network
 * measured on the other runtimes (`cross`).
 *
 *   node --import tsx test/bench/latency-search.ts [--models mobilenet,resnet] [--runtimes tfjs-wasm,tflite]
 *     [--seeds 1] [--train-limit 4000] [--shrink-epochs 2] [--final-epochs 3] [--fraction 0.5]
 *     [--out docs/bench/latency-search.json]
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startServer, type RunningServer } from '../../server/app.ts';

const { values } = parseArgs({
  options: {
    models: { type: 'string', default: 'mobilenet,resnet' },
    runtimes: { type: 'string', default: 'tfjs-wasm,tflite' },
    seeds: { type: 'string', default: '1' },
    'train-limit': { type: 'string', default: '4000' },
    'test-limit': { type: 'string', default: '2000' },
    'shrink-epochs': { type: 'string', default: '2' },
    'final-epochs': { type: 'string', default: '3' },
    fraction: { type: 'string', default: '0.5' },
    strength: { type: 'string', default: '40' },
    'profile-grid': { type: 'string', default: '5' },
    out: { type: 'string' },
  },
});

const log = (s: string): void => {
  process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${s}\n`);
};

async function api(server: RunningServer, method: string, path: string, body?: unknown): Promise<any> {
  const res = await fetch(`${server.url}${path}`, { method, headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  const json = await res.json();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

function summary(net: any): Record<string, unknown> | null {
  if (!net) return null;
  return { measuredMs: net.measured, predictedMs: net.cost, verifyStop: net.verifyStop, measurements: net.verify?.length ?? 0, verify: net.verify ?? [], accuracy: net.accuracy, macs: net.macs, params: net.params, multiplier: net.multiplier, structure: net.structure };
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'morphnet-latbench-'));
  const server = await startServer({ port: 0, dataDir: dir, log: (l) => (l.includes('[local agent] lease') ? undefined : log(l)) });
  const runs: Record<string, unknown>[] = [];
  // Written after every search, so a long run that is stopped keeps what it finished.
  const flush = async (final: boolean): Promise<string> => {
    const text = JSON.stringify({ bench: 'latency-search', date: new Date().toISOString(), complete: final, machine: { cpu: cpus()[0]?.model, cores: cpus().length, node: process.version }, config: values, runs }, null, 2);
    if (values.out) await writeFile(String(values.out), `${text}\n`);
    return text;
  };
  try {
    let device: any;
    for (let i = 0; i < 600 && !device; i++) {
      device = (await api(server, 'GET', '/api/devices')).devices.find((d: any) => d.online);
      if (!device) await new Promise((r) => setTimeout(r, 200));
    }
    if (!device) throw new Error('the local agent did not come online');
    for (const runtime of String(values.runtimes).split(',')) {
      for (const model of String(values.models).split(',')) {
        for (let seed = 1; seed <= Number(values.seeds); seed++) {
          const started = Date.now();
          const created = await api(server, 'POST', '/api/searches', {
            seed: model,
            data: { dataset: 'fashion-mnist', trainLimit: Number(values['train-limit']), testLimit: Number(values['test-limit']) },
            cost: 'latency',
            deviceId: device.id,
            runtime,
            target: { fraction: Number(values.fraction) },
            options: {
              shrinkEpochs: Number(values['shrink-epochs']),
              finalEpochs: Number(values['final-epochs']),
              strength: Number(values.strength),
              baseline: true,
              seed,
              divisor: 8,
              profileGrid: Number(values['profile-grid']),
              backend: 'wasm',
            },
          });
          log(`search ${created.id}: ${model} on ${runtime}, seed ${seed}`);
          let s: any;
          let lastNote = '';
          const phases: { at: number; what: string }[] = [];
          for (;;) {
            s = await api(server, 'GET', `/api/searches/${created.id}`);
            const what = `${s.state}${s.progress?.phase ? ` ${s.progress.phase}` : ''}`;
            if (what !== lastNote) {
              phases.push({ at: (Date.now() - started) / 1000, what });
              log(`  ${what}`);
              lastNote = what;
            }
            if (['done', 'failed', 'cancelled'].includes(s.state)) break;
            await new Promise((r) => setTimeout(r, 2000));
          }
          const wall = (Date.now() - started) / 1000;
          if (s.state !== 'done') {
            runs.push({ model, runtime, seed, state: s.state, error: s.error, wallSeconds: wall, phases });
            continue;
          }
          const report = await (await fetch(`${server.url}/api/searches/${created.id}/artifacts/report.json`)).json();
          runs.push({
            searchId: created.id,
            model,
            runtime,
            seed,
            state: s.state,
            targetMs: report.latency.targetMs,
            seedMeasuredMs: report.latency.seedMeasuredMs,
            seedPredictedMs: report.latency.seedPredictedMs,
            profiledPoints: report.latency.profiledPoints,
            latencyMorphNet: summary(report.learned),
            uniform: summary(report.baseline),
            flopMorphNet: summary(report.flopSearch),
            wallSeconds: wall,
            phases,
          });
          await flush(false);
        }
      }
    }
    // Cross-device: each search's learned network measured on every other runtime, beside that
    // runtime's own search result for the same seed model (does it pay to search per runtime?).
    const runtimes = String(values.runtimes).split(',');
    for (const run of runs as { searchId?: string; model: string; runtime: string; state: string; cross?: Record<string, number> }[]) {
      if (run.state !== 'done' || !run.searchId) continue;
      const modelJson = await (await fetch(`${server.url}/api/searches/${run.searchId}/artifacts/model.json`)).json();
      run.cross = {};
      for (const other of runtimes.filter((r) => r !== run.runtime)) {
        const job = await api(server, 'POST', '/api/measure', { deviceId: device.id, runtime: other, model: modelJson });
        let j: any;
        for (;;) {
          j = await api(server, 'GET', `/api/jobs/${job.id}`);
          if (['done', 'failed', 'cancelled'].includes(j.state)) break;
          await new Promise((r) => setTimeout(r, 500));
        }
        if (j.state === 'done') run.cross[other] = j.result.medianMs;
        log(`  ${run.model} searched on ${run.runtime}, measured on ${other}: ${j.state === 'done' ? `${j.result.medianMs.toFixed(3)} ms` : j.state}`);
      }
    }
    process.stdout.write(`${await flush(true)}\n`);
  } finally {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
