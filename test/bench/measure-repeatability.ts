/**
 * How repeatable is one end-to-end measurement of the same network? The question behind
 * closed-loop expand measuring each candidate until two measurements agree (`settledLow`). MobileNet seed shrunk by a
 * uniform multiplier, the same network measured `--repeats` times, each from a fresh load (fresh
 * random weights, as a measure job gets), with the agents' protocol. Prints one JSON object.
 *
 *   node --import tsx test/bench/measure-repeatability.ts [--multiplier 0.3359] [--repeats 16]
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
import { measure, summarize } from '../../src/measure/protocol.ts';
import { loadTfliteModel } from '../../src/ops/tflite-node.ts';
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
  },
});

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
