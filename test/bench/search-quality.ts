/**
 * Search quality on Fashion-MNIST: MorphNet's network vs. the uniform width multiplier at the same
 * FLOP target (default 50% of the seed), for the MobileNet- and ResNet-style seeds, over several
 * random seeds. Prints one JSON object (per-run figures and mean ± std per seed model) on stdout;
 * progress as JSON lines on stderr.
 *
 *   node --import tsx test/bench/search-quality.ts [--seeds mobilenet,resnet] [--runs 1,2,3]
 *     [--train-limit 10000] [--test-limit 10000] [--shrink-epochs 2] [--final-epochs 3]
 *     [--strength 2] [--target 0.5] [--data fashion-mnist]
 */
import { parseArgs } from 'node:util';
import { analyzeChannels } from '../../src/graph/channel-groups.ts';
import { parseModel } from '../../src/graph/parse.ts';
import { runSearch, type SearchOptions } from '../../src/morph/search.ts';
import { seedModel, type SeedName } from '../../src/seeds/index.ts';
import { describeBackend, selectBackend } from '../../src/train/backend.ts';
import { openDataset } from '../../src/train/data/index.ts';

const { values } = parseArgs({
  options: {
    seeds: { type: 'string', default: 'mobilenet,resnet' },
    runs: { type: 'string', default: '1,2,3' },
    'train-limit': { type: 'string', default: '10000' },
    'test-limit': { type: 'string', default: '10000' },
    'shrink-epochs': { type: 'string', default: '2' },
    'final-epochs': { type: 'string', default: '3' },
    strength: { type: 'string', default: '2' },
    target: { type: 'string', default: '0.5' },
    data: { type: 'string', default: 'fashion-mnist' },
    lr: { type: 'string', default: '0.05' },
  },
});

const seeds = values.seeds!.split(',') as SeedName[];
const runs = values.runs!.split(',').map(Number);
const backend = await selectBackend({ backend: 'auto' });
const started = Date.now();

interface Run {
  seedModel: string;
  run: number;
  targetFlops: number;
  morphnet: { flops: number; params: number; accuracy: number; trainSeconds: number; multiplier: number; structure: Record<string, number> };
  baseline: { flops: number; params: number; accuracy: number; trainSeconds: number; multiplier: number };
  aliveAfterShrink: Record<string, number>;
  shrinkSeconds: number;
}
const results: Run[] = [];

for (const name of seeds) {
  for (const run of runs) {
    const data = await openDataset(values.data!, { seed: run, limit: { train: Number(values['train-limit']), test: Number(values['test-limit']) } });
    const graph = parseModel(seedModel(name)).graph;
    const options: SearchOptions = {
      cost: 'flops',
      target: { fraction: Number(values.target) },
      strength: Number(values.strength),
      threshold: 0.01,
      shrinkEpochs: Number(values['shrink-epochs']),
      finalEpochs: Number(values['final-epochs']),
      rounds: 1,
      seed: run,
      baseline: true,
      keepWeights: false,
      divisor: 4,
      train: { batchSize: 64, optimizer: { kind: 'sgd', lr: Number(values.lr) }, schedule: 'cosine' },
    };
    const r = await runSearch({ graph, weights: null }, data, options, (e) => {
      if (e.type === 'phase' || e.type === 'evaluated' || e.type === 'epoch') {
        process.stderr.write(`${JSON.stringify({ seedModel: name, run, ...(e.type === 'epoch' ? { type: 'epoch', phase: e.phase, epoch: e.epoch.epoch, trainLoss: e.epoch.trainLoss, valAccuracy: e.epoch.valAccuracy, seconds: e.epoch.seconds } : e) })}\n`);
      }
    });
    const round = r.report.rounds[0];
    const analysis = analyzeChannels(graph);
    const alive: Record<string, number> = {};
    for (const g of round.groups) if (analysis.groups[g.id].regularized) alive[g.layers[0]] = g.alive;
    results.push({
      seedModel: name,
      run,
      targetFlops: r.report.target.value,
      morphnet: {
        flops: r.report.learned.flops,
        params: r.report.learned.params,
        accuracy: r.report.learned.accuracy,
        trainSeconds: r.report.learned.trainSeconds,
        multiplier: r.report.learned.multiplier,
        structure: r.report.learned.structure,
      },
      baseline: {
        flops: r.report.baseline!.flops,
        params: r.report.baseline!.params,
        accuracy: r.report.baseline!.accuracy,
        trainSeconds: r.report.baseline!.trainSeconds,
        multiplier: r.report.baseline!.multiplier,
      },
      aliveAfterShrink: alive,
      shrinkSeconds: round.shrinkSeconds,
    });
  }
}

function stats(xs: number[]): { mean: number; std: number; min: number; max: number } {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const std = Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(1, xs.length - 1));
  return { mean, std, min: Math.min(...xs), max: Math.max(...xs) };
}

const summary = Object.fromEntries(
  seeds.map((name) => {
    const rs = results.filter((r) => r.seedModel === name);
    const seedFlops = parseModel(seedModel(name)).graph && rs[0] ? rs[0].targetFlops / Number(values.target) : 0;
    return [
      name,
      {
        seedFlops,
        targetFlops: rs[0]?.targetFlops,
        morphnetAccuracy: stats(rs.map((r) => r.morphnet.accuracy)),
        baselineAccuracy: stats(rs.map((r) => r.baseline.accuracy)),
        accuracyGain: stats(rs.map((r) => r.morphnet.accuracy - r.baseline.accuracy)),
        morphnetFlopsOfTarget: stats(rs.map((r) => r.morphnet.flops / r.targetFlops)),
        baselineFlopsOfTarget: stats(rs.map((r) => r.baseline.flops / r.targetFlops)),
      },
    ];
  }),
);

process.stdout.write(
  `${JSON.stringify(
    {
      bench: 'search-quality',
      backend: describeBackend(backend),
      dataset: values.data,
      config: values,
      flopsConvention: 'FLOPs = 2 x multiply-accumulates of conv/dense layers at batch 1',
      wallSeconds: (Date.now() - started) / 1000,
      summary,
      runs: results,
    },
    null,
    2,
  )}\n`,
);
