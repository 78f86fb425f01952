/**
 * How repeatable is one end-to-end measurement of the same network? The question behind
 * closed-loop expand measuring each candidate until two measurements agree (`settledLow`). MobileNet seed shrunk by a
 * uniform multiplier, the same network measured `--repeats` times, each from a fresh load (fresh
 * random weights, as a measure job gets), with the agents' protocol. Prints one JSON object.
 *
 *   node --import tsx test/bench/measure-repeatability.ts [--machine-probe] [--multiplier 0.3359] [--repeats 16]
 *     [--warmup-ms 50] [--through-server] [--runtime tflite] [--model mobilenet]
 *
 * In process (default): Node TFLite, the way the Node agent times a `.tflite`. Run it in a fresh
 * process for each `--warmup-ms`: the first loads of a process are the slow ones.
 * `--through-server`: a real server and its built-in local agent, `POST /api/measure` each time
 * (any runtime the agent serves).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { startServer } from '../../server/app.ts';
import { analyzeChannels } from '../../src/graph/channel-groups.ts';
import type { ModelConfigJson } from '../../src/graph/keras-json.ts';
import { parseModel } from '../../src/graph/parse.ts';
import { rebuild } from '../../src/graph/rebuild.ts';
import { uniformSelection } from '../../src/graph/widths.ts';
import { writeNetworkTflite } from '../../src/export/tflite/network.ts';
import { measure, summarize } from '../../src/measure/timing.ts';
import { loadTfliteModel } from '../../device-agent/node/tflite-runtime.ts';
import { seedModel, type SeedName } from '../../src/seeds/index.ts';
import { buildTfModel, readWeights } from '../../src/train/tf-model.ts';

const { values } = parseArgs({
  options: {
    multiplier: { type: 'string', default: '0.3359' },
    repeats: { type: 'string', default: '16' },
    'warmup-ms': { type: 'string', default: '50' },
    'through-server': { type: 'boolean', default: false },
    runtime: { type: 'string', default: 'tflite' },
    model: { type: 'string', default: 'mobilenet' },
    'machine-probe': { type: 'boolean', default: false },
  },
});

/**
 * `--machine-probe`: is the machine itself steady? A compute-bound loop (an integer LCG) and a
 * memory-bound one (a strided read of 4 MiB) alternate for 30 s; each 100 ms window's median per
 * loop is printed. On this 2-core VM the compute loop stayed within ±2% while the memory loop
 * switched between two speeds for seconds at a time: the bimodal network timings come from there.
 */
function machineProbe(): { computeMs: number[]; memoryMs: number[] } {
  const buffer = new Float32Array(1 << 20);
  const compute = (): number => {
    let x = 0;
    for (let i = 0; i < 2e6; i++) x = (x * 1103515245 + 12345) | 0;
    return x;
  };
  const memory = (): number => {
    let sum = 0;
    for (let r = 0; r < 4; r++) for (let i = 0; i < buffer.length; i += 16) sum += buffer[i];
    return sum;
  };
  for (let i = 0; i < 50; i++) compute() + memory();
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1];
  const computeMs: number[] = [];
  const memoryMs: number[] = [];
  for (let w = 0; w < 300; w++) {
    const c: number[] = [];
    const m: number[] = [];
    const end = performance.now() + 100;
    while (performance.now() < end) {
      let t = performance.now();
      compute();
      c.push(performance.now() - t);
      t = performance.now();
      memory();
      m.push(performance.now() - t);
    }
    computeMs.push(Number(median(c).toFixed(3)));
    memoryMs.push(Number(median(m).toFixed(4)));
  }
  return { computeMs, memoryMs };
}

if (values['machine-probe']) {
  const { computeMs, memoryMs } = machineProbe();
  const spread = (xs: number[]): Record<string, number> => {
    const s = summarize(xs);
    return { min: s.min, median: s.median, max: s.max, cv: s.cv, windowsOver10PercentAboveMin: xs.filter((x) => x > s.min * 1.1).length };
  };
  console.log(JSON.stringify({ bench: 'machine-probe', machine: { cpu: cpus()[0]?.model, cores: cpus().length, node: process.version }, windows: computeMs.length, windowMs: 100, compute: spread(computeMs), memory: spread(memoryMs), computeMs, memoryMs }));
  process.exit(0);
}

const seed = parseModel(seedModel(String(values.model) as SeedName));
const analysis = analyzeChannels(seed.graph);
const topology = rebuild(seed.graph, analysis, uniformSelection(analysis, Number(values.multiplier), 8), null).modelTopology as ModelConfigJson;
const repeats = Number(values.repeats);
/** Each measurement's 10th percentile of per-run times, beside its median. */
const p10s: number[] = [];

async function inProcess(): Promise<number[]> {
  await tf.setBackend('cpu');
  const graph = parseModel(topology).graph;
  const medians: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const live = await buildTfModel(topology, null);
    const bytes = writeNetworkTflite(graph, readWeights(live)).bytes;
    live.dispose();
    const model = await loadTfliteModel(bytes);
    const x = tf.randomUniform([1, ...model.inputs[0].shape.slice(1)], -1, 1, 'float32');
    const m = await measure(() => {
      const y = model.predict(x) as tf.Tensor;
      y.dataSync();
      y.dispose();
    }, { warmupMs: Number(values['warmup-ms']) });
    medians.push(m.medianMs);
    p10s.push(m.p10Ms);
    x.dispose();
    model.dispose();
  }
  return medians;
}

async function throughServer(): Promise<number[]> {
  const dir = await mkdtemp(join(tmpdir(), 'morphnet-repeat-'));
  const server = await startServer({ port: 0, dataDir: dir, log: () => undefined });
  const api = async (method: string, path: string, body?: unknown): Promise<any> =>
    (await fetch(`${server.url}${path}`, { method, headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) })).json();
  try {
    let device: { id: string } | undefined;
    for (let i = 0; i < 600 && !device; i++) {
      device = (await api('GET', '/api/devices')).devices.find((d: { online: boolean }) => d.online);
      if (!device) await new Promise((r) => setTimeout(r, 200));
    }
    if (!device) throw new Error('the local agent did not come online');
    const medians: number[] = [];
    for (let i = 0; i < repeats; i++) {
      const created = await api('POST', '/api/measure', { deviceId: device.id, runtime: values.runtime, model: { format: 'layers-model', modelTopology: topology }, measure: { warmupMs: Number(values['warmup-ms']) } });
      let job: any;
      do {
        await new Promise((r) => setTimeout(r, 100));
        job = await api('GET', `/api/jobs/${created.id}`);
      } while (!['done', 'failed', 'cancelled'].includes(job.state));
      if (job.state !== 'done') throw new Error(`measure job ${created.id} ${job.state}: ${JSON.stringify(job.error)}`);
      medians.push(job.result.medianMs);
      p10s.push(job.result.p10Ms);
    }
    return medians;
  } finally {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  }
}

const medians = values['through-server'] ? await throughServer() : await inProcess();
const s = summarize(medians);
// The measurements more than 6% slower than the floor (what settledLow measures past).
const slow = medians.filter((m) => m > s.min * 1.06).length;
console.log(
  JSON.stringify(
    {
      bench: 'measure-repeatability',
      machine: { cpu: cpus()[0]?.model, cores: cpus().length, node: process.version },
      config: values,
      mediansMs: medians.map((m) => Number(m.toFixed(4))),
      p10Ms: p10s.map((m) => Number(m.toFixed(4))),
      summary: { min: s.min, median: s.median, max: s.max, cv: s.cv, slowerThanMinBy6Percent: slow },
    },
    null,
    2,
  ),
);
