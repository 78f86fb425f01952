/**
 * One offline FLOP search per seed model on the whole Fashion-MNIST training file (54k train, 6k
 * validation, 10k test), with the uniform baseline: wall time per phase and accuracies, on one
 * training engine. Resumable and safe to cut short: every finished epoch and every finished search
 * is appended to `--out` as one JSON line as it happens (a case already there is skipped), so a run
 * stopped by `timeout` still says how far it got. Prints the finished cases as one JSON object.
 *
 *   node --import tsx test/bench/offline-search.ts --engine torch [--seeds mobilenet,resnet]
 *     [--shrink-epochs 5] [--final-epochs 10] [--train-limit N] [--out docs/bench/offline-search-60k.jsonl]
 */
import { appendFile, readFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { parseModel } from '../../src/graph/parse.ts';
import { runOptionsOf, withDefaults } from '../../src/morph/search-options.ts';
import { runSearch } from '../../src/morph/search.ts';
import { seedModel, type SeedName } from '../../src/seeds/index.ts';
import { openDataset } from '../../src/train/data/index.ts';
import { isEngineChoice } from '../../src/train/engine.ts';
import { selectEngine } from '../../src/train/select-engine.ts';

const { values } = parseArgs({
  options: {
    engine: { type: 'string', default: 'torch' },
    seeds: { type: 'string', default: 'mobilenet,resnet' },
    'shrink-epochs': { type: 'string', default: '5' },
    'final-epochs': { type: 'string', default: '10' },
    'train-limit': { type: 'string' },
    strength: { type: 'string', default: '20' },
    out: { type: 'string', default: 'docs/bench/offline-search-60k.jsonl' },
  },
});
if (!isEngineChoice(values.engine)) throw new Error(`--engine ${values.engine}: auto, torch or tfjs`);
const out = values.out!;
const done = new Set<string>();
try {
  for (const line of (await readFile(out, 'utf8')).split('\n').filter(Boolean)) {
    const r = JSON.parse(line) as { type: string; case?: string };
    if (r.type === 'search' && r.case) done.add(r.case);
  }
} catch {
  // no file yet
}
const write = (o: unknown): Promise<void> => appendFile(out, `${JSON.stringify(o)}\n`);

const { engine, report } = await selectEngine({ engine: values.engine, backend: 'auto', onNotice: (m) => process.stderr.write(`${m}\n`) });
const env = { cpu: cpus()[0]?.model, cores: cpus().length, node: process.version, engine: report.description };
const finished: unknown[] = [];
try {
  for (const seed of values.seeds!.split(',') as SeedName[]) {
    const caseId = `${seed}/${report.name}/s${values['shrink-epochs']}f${values['final-epochs']}/${values['train-limit'] ?? 'all'}`;
    if (done.has(caseId)) {
      process.stderr.write(`${caseId}: already in ${out}, skipped\n`);
      continue;
    }
    const dataset = await openDataset('fashion-mnist', { seed: 0, limit: { train: values['train-limit'] ? Number(values['train-limit']) : undefined } });
    const flat = withDefaults({ shrinkEpochs: Number(values['shrink-epochs']), finalEpochs: Number(values['final-epochs']), baseline: true, strength: Number(values.strength) });
    const options = runOptionsOf(flat, 'flops', { fraction: 0.5 });
    const started = Date.now();
    const phaseStart: Record<string, number> = {};
    await write({ type: 'start', case: caseId, at: new Date().toISOString(), trainSize: dataset.trainSize, valSize: dataset.valSize, testSize: dataset.testSize, options: flat, env });
    const result = await runSearch({ graph: parseModel(seedModel(seed)).graph, weights: null }, dataset, options, (e) => {
      if (e.type === 'phase' && phaseStart[e.phase] === undefined) phaseStart[e.phase] = Date.now();
      if (e.type === 'epoch') {
        const line = { type: 'epoch', case: caseId, phase: e.phase, epoch: e.epoch.epoch, epochs: e.epoch.epochs, seconds: e.epoch.seconds, trainLoss: e.epoch.trainLoss, valAccuracy: e.epoch.valAccuracy, elapsedSeconds: (Date.now() - started) / 1000 };
        process.stderr.write(`${JSON.stringify(line)}\n`);
        void write(line);
      }
    }, { engine });
    const r = result.report;
    const summary = {
      type: 'search',
      case: caseId,
      seed,
      engine: r.learned.engine,
      trainSize: dataset.trainSize,
      seconds: {
        total: (Date.now() - started) / 1000,
        shrink: r.rounds.reduce((a, x) => a + x.shrinkSeconds, 0),
        final: r.learned.trainSeconds,
        baseline: r.baseline?.trainSeconds ?? null,
      },
      accuracy: { morphnet: r.learned.accuracy, uniform: r.baseline?.accuracy ?? null },
      flops: { seed: r.seed.flops, target: r.target.value, morphnet: r.learned.flops, uniform: r.baseline?.flops ?? null },
      shrinkEpochs: r.rounds[0].epochs.map((e) => ({ epoch: e.epoch, valAccuracy: e.valAccuracy, aliveCost: e.aliveCost, aliveChannels: e.alive.reduce((a, b) => a + b, 0) })),
      widths: r.rounds[0].groups.filter((g) => g.coefficient > 0).map((g) => ({ layer: g.layers[0], seed: g.channels, alive: g.alive, final: g.expanded })),
      env,
    };
    await write(summary);
    finished.push(summary);
    process.stderr.write(`${JSON.stringify(summary)}\n`);
  }
} finally {
  await engine.close();
}
console.log(JSON.stringify({ bench: 'offline-search', out, finished }, null, 2));
