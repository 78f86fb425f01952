/**
 * What composes on Node TFLite and tfjs-wasm: for random CNNs, in this process, each network's
 * end-to-end time next to what its ops cost alone (issue 17's first look).
 *
 * Per network: the end-to-end median (predict + read-back, the agent's protocol), taken
 * `--passes` + 1 times minutes apart; every op's single-op model timed end to end (what the
 * tables hold) in `--passes` passes; on tfjs-wasm also the kernels' times from `tf.profile`, of
 * the network and of each op alone. TFLite's own op profiler gives nothing usable here: XNNPACK
 * takes the whole graph as one delegate node, and the wasm build reports whole milliseconds.
 * Each op and network keeps its lowest reading (this VM's slow phases, docs/benchmarks.md) and
 * all of them (`aloneAllMs`, `e2eAllMs`). One JSON line per network, appended, so a stopped run
 * resumes; `composition-summary.ts` reads the file.
 *
 *   node --import tsx test/bench/composition-probe.ts [--runtime tflite|tfjs-wasm] [--networks 12]
 *     [--first-seed 5000] [--min-macs 3e6] [--max-macs 3e8] [--passes 2] [--out FILE.jsonl]
 */
import { appendFile, readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { writeNetworkTflite } from '../../src/export/tflite/network.ts';
import { parseModel } from '../../src/graph/parse.ts';
import { measure } from '../../src/measure/timing.ts';
import { graphSpecs } from '../../src/ops/graph-specs.ts';
import { outputShape, type OpSpec } from '../../src/ops/op-spec.ts';
import { specInputs } from '../../src/ops/spec-weights.ts';
import { loadTfliteModel, type TfliteNodeModel } from '../../device-agent/node/tflite-runtime.ts';
import { writeSpecTflite } from '../../src/export/tflite/single-op.ts';
import { buildTfModel, readWeights } from '../../src/train/tf-model.ts';
import { buildLayersOp } from '../../src/ops/tfjs-layers-op.ts';
import { generateRandomCnn } from './random-cnns.ts';

const { values } = parseArgs({
  options: {
    runtime: { type: 'string', default: 'tflite' },
    networks: { type: 'string', default: '12' },
    'first-seed': { type: 'string', default: '5000' },
    'min-macs': { type: 'string', default: '3e6' },
    'max-macs': { type: 'string', default: '3e8' },
    passes: { type: 'string', default: '2' },
    out: { type: 'string', default: '/tmp/composition-probe.jsonl' },
    help: { type: 'boolean', default: false },
  },
});
if (values.help) {
  process.stdout.write(`${(await readFile(new URL(import.meta.url), 'utf8')).split('*/')[0]}*/\n`);
  process.exit(0);
}

const RUNTIME = values.runtime;
const PASSES = Number(values.passes);
if (RUNTIME !== 'tflite' && RUNTIME !== 'tfjs-wasm') throw new Error(`--runtime must be tflite or tfjs-wasm, got ${RUNTIME}`);
if (RUNTIME === 'tfjs-wasm') {
  const { createRequire } = await import('node:module');
  const { dirname, sep } = await import('node:path');
  const wasm = (await import('@tensorflow/tfjs-backend-wasm')) as unknown as { setWasmPaths(prefix: string): void };
  wasm.setWasmPaths(dirname(createRequire(import.meta.url).resolve('@tensorflow/tfjs-backend-wasm')) + sep);
  await tf.setBackend('wasm');
}

type Timed = { ms: number; nodes: { type: string; name: string; ms: number }[] };

/** A tfjs run's end-to-end median and its kernels' times (tf.profile, median over runs). */
async function timeTfjs(run: () => tf.Tensor | tf.Tensor[]): Promise<Timed> {
  const once = (): void => {
    const out = run();
    for (const t of Array.isArray(out) ? out : [out]) {
      t.dataSync();
      t.dispose();
    }
  };
  const ms = (await measure(once)).medianMs;
  for (let i = 0; i < 5; i++) once();
  const perNode: number[][] = [];
  let names: { type: string; name: string }[] = [];
  for (let r = 0; r < 25; r++) {
    const info = await tf.profile(once);
    names = info.kernels.map((k) => ({ type: k.name, name: k.name }));
    info.kernels.forEach((k, j) => (perNode[j] ??= []).push(k.kernelTimeMs as number));
  }
  return { ms, nodes: names.map((n, j) => ({ ...n, ms: median(perNode[j]) })) };
}

async function timeNetwork(modelConfig: unknown, bytes: Uint8Array): Promise<Timed> {
  if (RUNTIME === 'tflite') return timeModel(bytes, null);
  const model = await tf.models.modelFromJSON({ modelTopology: JSON.parse(JSON.stringify(modelConfig)) } as tf.io.ModelJSON);
  const x = tf.randomUniform([1, ...(model.inputs[0].shape.slice(1) as number[])], -1, 1, 'float32');
  try {
    return await timeTfjs(() => model.predict(x) as tf.Tensor);
  } finally {
    x.dispose();
    model.dispose();
  }
}

async function timeOp(spec: OpSpec): Promise<Timed> {
  if (RUNTIME === 'tflite') return timeModel(writeSpecTflite(spec), specInputs(spec));
  const op = buildLayersOp(spec);
  const xs = specInputs(spec).map((d, i) => tf.tensor(d, [...op.inputShapes[i]], 'float32'));
  try {
    return await timeTfjs(() => op.run(xs));
  } finally {
    xs.forEach((t) => t.dispose());
    op.dispose();
  }
}

const log = (s: string): void => void process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${s}\n`);
const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/**
 * A `.tflite`'s end-to-end median, with no per-node times: TFLite's op profiler is of no use
 * here (XNNPACK takes the whole graph as one delegate node; the wasm build reports whole ms).
 */
async function timeModel(bytes: Uint8Array, data: readonly Float32Array[] | null): Promise<Timed> {
  await tf.setBackend('cpu');
  const plain = await loadTfliteModel(bytes, { numThreads: 1 });
  const inputs = (m: TfliteNodeModel): tf.Tensor[] =>
    m.inputs.map((t, i) => (data ? tf.tensor(data[i], [...t.shape], 'float32') : tf.randomUniform([...t.shape], -1, 1, 'float32')));
  const run = (m: TfliteNodeModel, xs: tf.Tensor[]): void => {
    const out = m.predict(xs.length === 1 ? xs[0] : xs);
    for (const t of Array.isArray(out) ? out : [out]) {
      t.dataSync();
      t.dispose();
    }
  };
  const xs = inputs(plain);
  let ms: number;
  try {
    ms = (await measure(() => run(plain, xs))).medianMs;
  } finally {
    xs.forEach((t) => t.dispose());
    plain.dispose();
  }
  return { ms, nodes: [] };
}

const done = new Set<number>();
try {
  for (const line of (await readFile(values.out, 'utf8')).split('\n')) if (line.trim()) done.add(JSON.parse(line).seed);
} catch {
  // No file yet.
}

const first = Number(values['first-seed']);
for (let seed = first; seed < first + Number(values.networks); seed++) {
  if (done.has(seed)) continue;
  const cnn = generateRandomCnn(seed, { minMacs: Number(values['min-macs']), maxMacs: Number(values['max-macs']) });
  const parsed = parseModel(cnn.model);
  await tf.setBackend('cpu');
  const live = await buildTfModel(parsed.modelConfig, null);
  const net = writeNetworkTflite(parsed.graph, readWeights(live));
  live.dispose();
  if (RUNTIME === 'tfjs-wasm') await tf.setBackend('wasm');
  // Each op and the network are measured in several passes, minutes apart, and the lowest kept:
  // this VM has a fast and a slow phase (docs/benchmarks.md, "The machine has two speeds").
  const first = await timeNetwork(parsed.modelConfig, net.bytes);
  const e2e = [first.ms];
  const specs = graphSpecs(parsed.graph);
  const times = new Map<string, { ms: number[]; kernelMs: number[]; nodes: number }>();
  for (let pass = 0; pass < PASSES; pass++) {
    for (const { key, spec } of specs.specs) {
      const t = await timeOp(spec);
      const entry = times.get(key) ?? { ms: [], kernelMs: [], nodes: t.nodes.length };
      entry.ms.push(t.ms);
      entry.kernelMs.push(t.nodes.reduce((sum, n) => sum + n.ms, 0));
      times.set(key, entry);
    }
    e2e.push((await timeNetwork(parsed.modelConfig, net.bytes)).ms);
  }
  const byKey = new Map<string, OpSpec>(specs.specs.map((s) => [s.key, s.spec]));
  const ops = specs.occurrences.map(({ layer, key }) => {
    const spec = byKey.get(key) as OpSpec;
    const t = times.get(key)!;
    const out = outputShape(spec);
    return {
      layer,
      kind: spec.kind,
      inH: spec.inH,
      inW: spec.inW,
      outH: out.length === 4 ? out[1] : 1,
      outW: out.length === 4 ? out[2] : 1,
      numInputs: spec.numInputs,
      cIn: spec.cIn,
      cOut: spec.cOut,
      kernel: spec.kernel[0],
      stride: spec.stride[0],
      activation: spec.activation,
      aloneMs: Math.min(...t.ms),
      aloneAllMs: t.ms,
      aloneKernelMs: Math.min(...t.kernelMs),
      kernels: t.nodes,
    };
  });
  const row = {
    runtime: RUNTIME,
    seed,
    name: cnn.name,
    macs: cnn.macs,
    input: cnn.inputShape,
    operators: net.operators,
    e2eMs: Math.min(...e2e),
    e2eAllMs: e2e,
    profileSumMs: first.nodes.reduce((sum, n) => sum + n.ms, 0),
    nodes: first.nodes,
    nOps: ops.length,
    sumAloneMs: ops.reduce((sum, o) => sum + o.aloneMs, 0),
    sumAloneKernelMs: ops.reduce((sum, o) => sum + o.aloneKernelMs, 0),
    ops,
  };
  await appendFile(values.out, `${JSON.stringify(row)}\n`);
  log(`${cnn.name}: e2e ${e2e.map((x) => x.toFixed(3)).join('/')} ms, in-network kernels Σ ${row.profileSumMs.toFixed(3)}, Σ alone ${row.sumAloneMs.toFixed(3)}, Σ alone kernels ${row.sumAloneKernelMs.toFixed(3)} (${ops.length} ops)`);
}
