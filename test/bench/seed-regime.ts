/**
 * Is a seed in a regime where widths matter? For each seed × input size × width multiplier ×
 * runtime, times end to end (the agents' measurement protocol, as a measure job runs it) the seed
 * and its smallest reachable network (every resizable group at 8 channels, or its own width when
 * smaller): `ratio = min / seed`. Near 1, per-op overhead dominates and no width search can move
 * the latency; the issue asks for ≤ 0.2. Prints one JSON line per case (append to a .jsonl to keep).
 *
 *   node --import tsx test/bench/seed-regime.ts [--seeds mobilenet,resnet] [--sizes 28,56]
 *        [--widths 1,2] [--runtimes tflite,tfjs-wasm] [--channels 1] [--train-steps 40]
 *
 * With `--train-steps N` it also trains each seed for N steps of 64 images on the torch engine
 * (through `engine.fit`, shrink-style with the proximal step, after 3 warm-up steps) and gives
 * the images per second and the seconds one epoch of the 60k Fashion-MNIST training set takes.
 *
 * Nothing else should run on the machine meanwhile: the figures are single-thread timings.
 */
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { availableAdapters } from '../../device-agent/node/adapters.ts';
import type { Runnable, RuntimeAdapter } from '../../device-agent/runtime.ts';
import { networkCost } from '../../src/cost/counts.ts';
import { inferenceTopology } from '../../src/export/inference-topology.ts';
import { writeNetworkTflite } from '../../src/export/tflite/network.ts';
import { analyzeChannels } from '../../src/graph/channel-groups.ts';
import type { Graph } from '../../src/graph/graph.ts';
import type { ModelConfigJson } from '../../src/graph/keras-json.ts';
import { parseModel } from '../../src/graph/parse.ts';
import { planGammas } from '../../src/graph/gamma-plan.ts';
import { initialWeights, rebuild } from '../../src/graph/rebuild.ts';
import { identitySelection, selectionFromWidths } from '../../src/graph/widths.ts';
import { measure } from '../../src/measure/timing.ts';
import type { RuntimeName } from '../../src/protocol/agent-protocol.ts';
import { seedModel, type SeedName } from '../../src/seeds/index.ts';
import { openDataset } from '../../src/train/data/index.ts';
import { startTorchEngine, type TorchEngine } from '../../src/train/torch/torch-engine.ts';

const { values } = parseArgs({
  options: {
    seeds: { type: 'string', default: 'mobilenet,resnet' },
    sizes: { type: 'string', default: '28' },
    widths: { type: 'string', default: '1' },
    channels: { type: 'string', default: '1' },
    runtimes: { type: 'string', default: 'tflite,tfjs-wasm' },
    divisor: { type: 'string', default: '8' },
    'train-steps': { type: 'string', default: '0' },
  },
});
const list = (s: string): string[] => s.split(',').map((x) => x.trim()).filter(Boolean);
const divisor = Number(values.divisor);
tf.enableProdMode();

interface Net {
  readonly graph: Graph;
  readonly modelConfig: ModelConfigJson;
}

/** The seed with every resizable group at `divisor` channels (or fewer, its own). */
function smallest(seed: Net): Net {
  const analysis = analyzeChannels(seed.graph);
  const widths = analysis.groups.map((g) => (g.resizable ? Math.min(divisor, g.channels) : g.channels));
  const rebuilt = rebuild(seed.graph, analysis, selectionFromWidths(analysis, widths), null);
  const parsed = parseModel({ format: 'layers-model', modelTopology: rebuilt.modelTopology });
  return { graph: parsed.graph, modelConfig: parsed.modelConfig };
}

async function prepare(adapter: RuntimeAdapter, net: Net): Promise<Runnable> {
  if (adapter.name === 'tflite') {
    const bytes = writeNetworkTflite(net.graph, initialWeights(net.graph, analyzeChannels(net.graph))).bytes;
    return adapter.prepareNetwork({ name: net.graph.name, tfliteBase64: Buffer.from(bytes).toString('base64') });
  }
  const { modelConfig } = inferenceTopology(net.graph, net.modelConfig);
  return adapter.prepareNetwork({ name: net.graph.name, modelTopology: modelConfig as unknown as Record<string, unknown> });
}

async function time(adapter: RuntimeAdapter, net: Net): Promise<{ medianMs: number; cv: number }> {
  const r = await prepare(adapter, net);
  try {
    const m = await measure(() => r.run(), { maxMs: 20_000 });
    return { medianMs: m.medianMs, cv: m.cv };
  } finally {
    r.dispose();
  }
}

const BATCH = 64;
const WARMUP = 3;

/** Torch-engine training throughput on this seed: median ms between step events. */
async function trainSpeed(engine: TorchEngine, net: Net, steps: number): Promise<{ imagesPerSec: number; epoch60kSeconds: number }> {
  const analysis = analyzeChannels(net.graph);
  const plan = planGammas(net.graph, analysis);
  const start = rebuild(net.graph, analysis, identitySelection(analysis), null, { seed: 1 });
  const [h, w, c] = net.graph.layers[0].calls[0].outputShape.slice(1) as number[];
  const n = (WARMUP + steps) * BATCH;
  const dataset = await openDataset(`synthetic:h=${h},w=${w},c=${c},classes=10,train=${Math.ceil(n / 0.9) + BATCH},test=1`, { seed: 1 });
  const stamps: number[] = [];
  await engine.fit(
    {
      modelTopology: start.modelTopology,
      weights: start.weights,
      dataset,
      train: { epochs: 1, batchSize: BATCH, maxStepsPerEpoch: WARMUP + steps, optimizer: { kind: 'sgd', lr: 0.01, momentum: 0.9 } },
      prox: { plan, lambda: 1e-9, coefficients: plan.slices.map((sl) => (sl.length > 0 ? 1 : 0)) },
    },
    { onStep: () => void stamps.push(performance.now()) },
  );
  const ms = stamps.slice(WARMUP).map((t, i) => t - stamps[WARMUP + i - 1]).sort((a, b) => a - b);
  const median = ms[Math.floor(ms.length / 2)];
  const imagesPerSec = BATCH / (median / 1000);
  return { imagesPerSec: Math.round(imagesPerSec), epoch60kSeconds: Math.round(60_000 / imagesPerSec) };
}

const trainSteps = Number(values['train-steps']);
const engine = trainSteps > 0 ? await startTorchEngine({}) : null;
const { adapters, unavailable } = await availableAdapters(list(values.runtimes!) as RuntimeName[]);
for (const u of unavailable) console.error(`runtime ${u.name} unavailable: ${u.reason}`);
for (const seed of list(values.seeds!) as SeedName[]) {
  for (const size of list(values.sizes!).map(Number)) {
    for (const width of list(values.widths!).map(Number)) {
      const parsed = parseModel(seedModel(seed, { inputShape: [size, size, Number(values.channels)], widthMultiplier: width }));
      const seedNet: Net = { graph: parsed.graph, modelConfig: parsed.modelConfig };
      const minNet = smallest(seedNet);
      if (engine) {
        const speed = await trainSpeed(engine, seedNet, trainSteps);
        console.log(JSON.stringify({ seed, input: [size, size, Number(values.channels)], widthMultiplier: width, engine: engine.description, trainSteps, ...speed }));
      }
      for (const adapter of adapters) {
        const s = await time(adapter, seedNet);
        const m = await time(adapter, minNet);
        console.log(
          JSON.stringify({
            seed,
            input: [size, size, Number(values.channels)],
            widthMultiplier: width,
            runtime: adapter.name,
            seedMs: +s.medianMs.toFixed(4),
            minMs: +m.medianMs.toFixed(4),
            ratio: +(m.medianMs / s.medianMs).toFixed(3),
            seedMacs: networkCost(seedNet.graph).macs,
            minMacs: networkCost(minNet.graph).macs,
            cv: [+s.cv.toFixed(3), +m.cv.toFixed(3)],
          }),
        );
      }
    }
  }
}

await engine?.close();
