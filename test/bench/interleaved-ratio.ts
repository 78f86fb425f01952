/**
 * How steady is "network B in the terms of network A" on this machine? In this process, for each
 * runtime: a reference network (a seed) and a candidate (the same seed at a smaller width
 * multiplier), their ratio read `--reps` times in three ways:
 *
 * - `separate`: A measured, then B (the agent's protocol each), ratio of the medians — what two
 *   measure jobs give;
 * - `referenced`: as the closed loop did before paired measure jobs: A then B per reading, B read
 *   in A's settled terms, readings until two agree within ±3% (`settledLow`, src/morph/closed-loop.ts);
 * - `interleaved`: `measureInterleaved([A, B])` (src/measure/interleaved.ts), the median of the
 *   per-round ratios: what a measure job with a reference gives, and the closed loop now uses.
 *
 * Printed as JSON: every ratio, and per way the share of readings within ±3% of their own median
 * and the spread max/min.
 *
 *   node --import tsx test/bench/interleaved-ratio.ts [--runtimes tfjs-wasm,tflite] [--seed mobilenetv2]
 *     [--multiplier 0.5] [--input 64] [--reps 10] [--out FILE.json]
 */
import { writeFile, readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, sep } from 'node:path';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { writeNetworkTflite } from '../../src/export/tflite/network.ts';
import { parseModel } from '../../src/graph/parse.ts';
import { measureInterleaved } from '../../src/measure/interleaved.ts';
import { measure } from '../../src/measure/timing.ts';
import { settledLow } from '../../src/morph/closed-loop.ts';
import { loadTfliteModel } from '../../device-agent/node/tflite-runtime.ts';
import { seedModel, isSeedName } from '../../src/seeds/index.ts';
import { buildTfModel, readWeights } from '../../src/train/tf-model.ts';

const { values } = parseArgs({
  options: {
    runtimes: { type: 'string', default: 'tfjs-wasm,tflite' },
    seed: { type: 'string', default: 'mobilenetv2' },
    multiplier: { type: 'string', default: '0.5' },
    input: { type: 'string', default: '64' },
    reps: { type: 'string', default: '10' },
    out: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});
if (values.help) {
  process.stdout.write(`${(await readFile(new URL(import.meta.url), 'utf8')).split('*/')[0]}*/\n`);
  process.exit(0);
}
if (!isSeedName(values.seed)) throw new Error(`--seed: unknown seed ${values.seed}`);
const seedName = values.seed;
const reps = Number(values.reps);
const size = Number(values.input);
const log = (s: string): void => void process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${s}\n`);

type Run = () => void;

/** One inference of `predict` on `x` with the output read back, as the agents time a network. */
function predictRun(predict: (x: tf.Tensor) => tf.Tensor, x: tf.Tensor, dispose: () => void): { run: Run; free: () => void } {
  return {
    run: () => {
      const y = predict(x);
      y.dataSync();
      y.dispose();
    },
    free: () => {
      x.dispose();
      dispose();
    },
  };
}

/** A network's single inference with read-back, on `runtime`; `free` releases it. */
async function prepare(runtime: string, multiplier: number): Promise<{ run: Run; free: () => void }> {
  const json = seedModel(seedName, { inputShape: [size, size, 1], widthMultiplier: multiplier });
  const parsed = parseModel(json);
  if (runtime === 'tflite') {
    await tf.setBackend('cpu');
    const live = await buildTfModel(parsed.modelConfig, null);
    const bytes = writeNetworkTflite(parsed.graph, readWeights(live)).bytes;
    live.dispose();
    const model = await loadTfliteModel(bytes, { numThreads: 1 });
    const x = tf.randomUniform([...model.inputs[0].shape], -1, 1, 'float32');
    return predictRun((t) => model.predict(t) as tf.Tensor, x, () => model.dispose());
  }
  await tf.setBackend('wasm');
  const model = await tf.models.modelFromJSON({ modelTopology: JSON.parse(JSON.stringify(parsed.modelConfig)) } as tf.io.ModelJSON);
  return predictRun((t) => model.predict(t) as tf.Tensor, tf.randomUniform([1, size, size, 1], -1, 1, 'float32'), () => model.dispose());
}

function spread(xs: readonly number[]): { within3: number; maxOverMin: number; median: number } {
  const s = [...xs].sort((a, b) => a - b);
  const median = s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  return { within3: xs.filter((x) => Math.abs(x / median - 1) <= 0.03).length / xs.length, maxOverMin: s[s.length - 1] / s[0], median };
}

const wasm = (await import('@tensorflow/tfjs-backend-wasm')) as unknown as { setWasmPaths(prefix: string): void };
wasm.setWasmPaths(dirname(createRequire(import.meta.url).resolve('@tensorflow/tfjs-backend-wasm')) + sep);

const results: Record<string, unknown>[] = [];
for (const runtime of String(values.runtimes).split(',').filter(Boolean)) {
  const a = await prepare(runtime, 1);
  const b = await prepare(runtime, Number(values.multiplier));
  if (runtime !== 'tflite') await tf.setBackend('wasm');
  const separate: number[] = [];
  const referencedRatios: number[] = [];
  const interleaved: number[] = [];
  try {
    // The reference's settled time, as the closed loop keeps it from preparation.
    const refMs = await settledLow(async () => (await measure(a.run)).medianMs);
    for (let r = 0; r < reps; r++) {
      separate.push((await measure(b.run)).medianMs / (await measure(a.run)).medianMs);
      // The reference measured right before the network, the network read in its settled terms.
      const read = async (): Promise<number> => {
        const referenceNowMs = (await measure(a.run)).medianMs;
        return ((await measure(b.run)).medianMs * refMs.measured) / referenceNowMs;
      };
      referencedRatios.push((await settledLow(read)).measured / refMs.measured);
      interleaved.push((await measureInterleaved([a.run, b.run])).ratios[1].median);
      log(`${runtime} rep ${r + 1}/${reps}: separate ${separate.at(-1)!.toFixed(3)}, referenced ${referencedRatios.at(-1)!.toFixed(3)}, interleaved ${interleaved.at(-1)!.toFixed(3)}`);
    }
  } finally {
    a.free();
    b.free();
  }
  results.push({
    runtime,
    separate: { ratios: separate, ...spread(separate) },
    referenced: { ratios: referencedRatios, ...spread(referencedRatios) },
    interleaved: { ratios: interleaved, ...spread(interleaved) },
  });
}
const report = { bench: 'interleaved-ratio', date: new Date().toISOString(), seed: seedName, multiplier: Number(values.multiplier), input: size, reps, results };
const text = `${JSON.stringify(report, null, 2)}\n`;
if (values.out) await writeFile(values.out, text);
process.stdout.write(text);
