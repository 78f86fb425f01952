/**
 * Training throughput of one step of our loop (`createTrainStep`: forward, backward, Adam update)
 * for each seed model on each backend, same batch of random 28×28×1 images. Prints one JSON object.
 *
 *   node --import tsx test/bench/train-step.ts [--backends wasm,cpu,tfjs-node] [--batch 64]
 *        [--steps 10] [--cpu-steps 1] [--seeds mobilenet,resnet,vgg]
 *
 * wasm: 3 warm-up steps, then the median of 10. cpu: no warm-up and 1 step by default (one step
 * takes 1 to 4 minutes there, and two steps differ by a few percent); the whole run then takes
 * about 10 minutes on these 2 cores.
 *
 * Achieved GFLOP/s counts training as 3 × forward FLOPs (forward, plus backward to inputs and to
 * weights, each about one forward) × batch, with forward FLOPs = 2·MACs from `networkCost`.
 */
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { networkCost } from '../../src/cost/counts.ts';
import { parseModel } from '../../src/graph/parse.ts';
import type { ModelConfigJson } from '../../src/graph/keras-json.ts';
import { seedModel, VALID_SEEDS, type SeedName } from '../../src/seeds/index.ts';
import { probeBackends, selectBackend, type BackendName } from '../../src/train/backend.ts';
import { createOptimizer, resolveOptimizerOptions } from '../../src/train/optimizer.ts';
import { createTrainStep } from '../../src/train/step.ts';
import { buildTfModel } from '../../src/train/tf-model.ts';

const { values } = parseArgs({
  options: {
    backends: { type: 'string', default: 'wasm,cpu,tfjs-node' },
    batch: { type: 'string', default: '64' },
    steps: { type: 'string', default: '10' },
    'cpu-steps': { type: 'string', default: '1' },
    seeds: { type: 'string', default: VALID_SEEDS.join(',') },
  },
});
const batch = Number(values.batch);
const backends = values.backends!.split(',') as BackendName[];
const seeds = values.seeds!.split(',') as SeedName[];

function percentile(sorted: number[], p: number): number {
  const i = (sorted.length - 1) * p;
  const lo = Math.floor(i);
  return sorted[lo] + (sorted[Math.ceil(i)] - sorted[lo]) * (i - lo);
}

interface Timing {
  msPerStep: { median: number; p10: number; p90: number };
  steps: number;
  warmup: number;
  imagesPerSec: number;
  gflopsPerSec: number;
}

async function timeSeed(seed: SeedName, steps: number, warmup: number, trainFlopsPerStep: number): Promise<Timing> {
  const topology = seedModel(seed).modelTopology as ModelConfigJson;
  const model = await buildTfModel(topology, null);
  const optimizer = createOptimizer(resolveOptimizerOptions({ kind: 'adam', lr: 1e-3 }));
  const step = createTrainStep(model, optimizer.tf);
  const xData = new Float32Array(batch * 28 * 28);
  for (let i = 0; i < xData.length; i++) xData[i] = Math.random();
  const yData = Int32Array.from({ length: batch }, (_, i) => i % 10);
  const ms: number[] = [];
  for (let i = 0; i < warmup + steps; i++) {
    const t0 = performance.now();
    // As the loop does: tensors from the batch's typed arrays, the step, then release.
    const x = tf.tensor4d(xData, [batch, 28, 28, 1]);
    const y = tf.tensor1d(yData, 'int32');
    step(x, y);
    tf.dispose([x, y]);
    if (i >= warmup) ms.push(performance.now() - t0);
  }
  optimizer.tf.dispose();
  model.dispose();
  ms.sort((a, b) => a - b);
  const median = percentile(ms, 0.5);
  const r = (v: number): number => Math.round(v * 10) / 10;
  return {
    msPerStep: { median: r(median), p10: r(percentile(ms, 0.1)), p90: r(percentile(ms, 0.9)) },
    steps,
    warmup,
    imagesPerSec: r(batch / (median / 1000)),
    gflopsPerSec: Number((trainFlopsPerStep / (median / 1000) / 1e9).toPrecision(3)),
  };
}

const probe = await probeBackends();
const skipped: Record<string, string> = {};
const results: Record<string, Record<string, unknown>> = {};
for (const seed of seeds) {
  const forward = networkCost(parseModel(seedModel(seed)).graph).flops;
  results[seed] = { forwardFlopsPerImage: forward, trainFlopsPerStep: 3 * forward * batch };
}
for (const backend of backends) {
  if (backend === 'tfjs-node' && !probe.tfjsNode.available) {
    skipped[backend] = probe.tfjsNode.reason ?? 'does not load';
    continue;
  }
  await selectBackend({ backend });
  const steps = backend === 'cpu' ? Number(values['cpu-steps']) : Number(values.steps);
  // cpu steps take about a minute each and vary little; the first one's extra work (Adam slots) is small there.
  const warmup = backend === 'cpu' ? 0 : 3;
  for (const seed of seeds) {
    results[seed][backend] = await timeSeed(seed, steps, warmup, results[seed].trainFlopsPerStep as number);
    process.stderr.write(`${seed} on ${backend}: ${JSON.stringify(results[seed][backend])}\n`);
  }
}
for (const seed of seeds) {
  const w = results[seed].wasm as Timing | undefined;
  const c = results[seed].cpu as Timing | undefined;
  if (w && c) results[seed].speedupWasmOverCpu = Math.round((c.msPerStep.median / w.msPerStep.median) * 10) / 10;
}
console.log(
  JSON.stringify(
    {
      bench: 'train-step',
      batch,
      input: [28, 28, 1],
      optimizer: 'adam',
      flopsConvention: 'training FLOPs per step = 3 × forward FLOPs (2·MACs, networkCost) × batch; GFLOP/s = that / median step time',
      step: 'createTrainStep: tensors from typed arrays, forward (training mode), backward, finiteness check, Adam update',
      results,
      skipped,
      env: { node: process.version, cpu: cpus()[0]?.model, cores: cpus().length, tfjs: tf.version.tfjs },
    },
    null,
    2,
  ),
);
