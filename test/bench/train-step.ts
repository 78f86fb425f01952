/**
 * Training throughput of one step of our loop (`createTrainStep`: forward, backward, Adam update)
 * for each seed model on each backend, same batch of random 28×28×1 images. Prints one JSON object.
 *
 *   node --import tsx test/bench/train-step.ts [--backends wasm,cpu,tfjs-node,torch] [--batch 64]
 *        [--steps 10] [--cpu-steps 1] [--seeds mobilenet,resnet,vgg] [--torch-device auto]
 *
 * `torch` is the torch engine through our training interface (engine.fit: the batch order and
 * data fed from a Dataset, the learning rates per epoch, step events back over the protocol, and
 * the MorphNet proximal step after every update, as a shrink phase runs), timed between its step
 * events here; beside it, in the same run, `plain-torch` is the same network written as a PyTorch
 * user would (nn modules, one in-memory batch, a plain Adam loop: test/bench/plain-torch.py).
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
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { analyzeChannels } from '../../src/graph/channel-groups.ts';
import { planGammas } from '../../src/graph/gamma-plan.ts';
import { rebuild } from '../../src/graph/rebuild.ts';
import { identitySelection } from '../../src/graph/widths.ts';
import { openDataset } from '../../src/train/data/index.ts';
import { startTorchEngine, type TorchEngine } from '../../src/train/torch/torch-engine.ts';
import { netSpecOf } from '../../src/train/torch/net-spec.ts';

const { values } = parseArgs({
  options: {
    backends: { type: 'string', default: 'wasm,cpu,tfjs-node' },
    batch: { type: 'string', default: '64' },
    steps: { type: 'string', default: '10' },
    'cpu-steps': { type: 'string', default: '1' },
    seeds: { type: 'string', default: VALID_SEEDS.join(',') },
    'torch-device': { type: 'string', default: 'auto' },
  },
});
const batch = Number(values.batch);
const backends = values.backends!.split(',') as (BackendName | 'torch')[];
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

/** The torch engine through engine.fit, shrink-style (proximal step on), timed between step events. */
async function timeTorch(engine: TorchEngine, seed: SeedName, steps: number, warmup: number, trainFlopsPerStep: number): Promise<Timing> {
  const topology = seedModel(seed).modelTopology as ModelConfigJson;
  const graph = parseModel({ format: 'layers-model', modelTopology: topology }).graph;
  const analysis = analyzeChannels(graph);
  const plan = planGammas(graph, analysis);
  const start = rebuild(graph, analysis, identitySelection(analysis), null, { seed: 1 });
  const n = (warmup + steps) * batch;
  // 10% of the training file is held out for validation.
  const dataset = await openDataset(`synthetic:h=28,w=28,c=1,classes=10,train=${Math.ceil(n / 0.9) + batch},test=1`, { seed: 1 });
  const stamps: number[] = [];
  await engine.fit(
    {
      modelTopology: start.modelTopology,
      weights: start.weights,
      dataset,
      train: { epochs: 1, batchSize: batch, maxStepsPerEpoch: warmup + steps, optimizer: { kind: 'adam', lr: 1e-3 } },
      prox: { plan, lambda: 1e-9, coefficients: plan.slices.map((sl) => (sl.length > 0 ? 1 : 0)) },
    },
    { onStep: () => void stamps.push(performance.now()) },
  );
  const ms = stamps.slice(warmup).map((t, i) => t - stamps[warmup + i - 1]).sort((a, b) => a - b);
  const median = percentile(ms, 0.5);
  const r = (v: number): number => Math.round(v * 10) / 10;
  return {
    msPerStep: { median: r(median), p10: r(percentile(ms, 0.1)), p90: r(percentile(ms, 0.9)) },
    steps: ms.length,
    warmup,
    imagesPerSec: r(batch / (median / 1000)),
    gflopsPerSec: Number((trainFlopsPerStep / (median / 1000) / 1e9).toPrecision(3)),
  };
}

/** The same network as a PyTorch user would write it, trained by a plain loop (plain-torch.py). */
async function timePlain(python: string, seed: SeedName, steps: number, warmup: number): Promise<Record<string, unknown>> {
  const spec = netSpecOf(parseModel(seedModel(seed)).graph);
  const file = join(tmpdir(), `plain-torch-${process.pid}-${seed}.json`);
  await writeFile(file, JSON.stringify(spec));
  const script = new URL('./plain-torch.py', import.meta.url).pathname;
  const { stdout } = await promisify(execFile)(python, [script, file, '--batch', String(batch), '--steps', String(steps), '--warmup', String(warmup), '--device', values['torch-device']!]);
  return JSON.parse(stdout) as Record<string, unknown>;
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
  if (backend === 'torch') {
    for (const seed of seeds) {
      const steps = Math.max(20, Number(values.steps));
      // One process at a time: an idle torch process's OpenMP threads spin for a while and would
      // slow the other on two cores.
      const engine = await startTorchEngine({ device: values['torch-device'] });
      results[seed].torch = await timeTorch(engine, seed, steps, 3, results[seed].trainFlopsPerStep as number);
      const { executable } = engine.info;
      results.torchEngine = { description: engine.description };
      await engine.close();
      results[seed]['plain-torch'] = await timePlain(executable, seed, steps, 3);
      process.stderr.write(`${seed} on torch: ${JSON.stringify(results[seed].torch)}; plain: ${JSON.stringify(results[seed]['plain-torch'])}\n`);
    }
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
  const t = results[seed].torch as Timing | undefined;
  const p = results[seed]['plain-torch'] as { msPerStep: { median: number } } | undefined;
  if (t && w) results[seed].speedupTorchOverWasm = Math.round((w.msPerStep.median / t.msPerStep.median) * 10) / 10;
  if (t && p) results[seed].torchOverPlain = Math.round((p.msPerStep.median / t.msPerStep.median) * 100) / 100;
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
