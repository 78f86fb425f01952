/**
 * `.tflite` export vs tfjs on model files too big for the test suite's tfjs `cpu` check: the
 * file's flat model with random weights (kernels at variance 1 / fan-in, batch-norm statistics
 * and biases moved off 1/0), its logits (a softmax head made linear), run by the TFLite runtime
 * and by tfjs on the `wasm` backend (XNNPACK: its sums may round differently from `cpu`).
 * Prints one JSON line per file: the largest difference, relative to the largest output.
 *
 *   node --import tsx test/bench/export-check.ts test/fixtures/real-models/yolov3-tfjs.json [--input-shape 416,416,3] [--gain 2] ...
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { writeNetworkTflite } from '../../src/export/tflite/network.ts';
import { analyzeChannels } from '../../src/graph/channel-groups.ts';
import { parseModel } from '../../src/graph/parse.ts';
import { rebuild } from '../../src/graph/rebuild.ts';
import { identitySelection } from '../../src/graph/widths.ts';
import { randomArray, seededRandom } from '../../src/ops/spec-weights.ts';
import { loadTfliteModel, loadTfliteRuntime } from '../../device-agent/node/tflite-runtime.ts';
import { selectBackend } from '../../src/train/backend.ts';
import { assignWeights, readWeights } from '../../src/train/tf-model.ts';
import { perturbWeights } from '../helpers/random-weights.ts';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { 'input-shape': { type: 'string' }, gain: { type: 'string', default: '1' } } });
/** Kernel variance × fan-in: 1 with batch norms; 2 (He) for a ReLU network without them, whose signal otherwise fades. */
const GAIN = Number(values.gain);
tf.enableProdMode();
await selectBackend({ backend: 'wasm' });
await loadTfliteRuntime();

for (const file of positionals) {
  const inputShape = values['input-shape']?.split(',').map(Number);
  const { graph } = parseModel(JSON.parse(readFileSync(file, 'utf8')), { source: file, inputShape });
  const analysis = analyzeChannels(graph);
  const topology = rebuild(graph, analysis, identitySelection(analysis), null).modelTopology;
  const config = topology.config as { layers: { name?: string; config: Record<string, unknown> }[]; output_layers: [string, number, number][] };
  for (const l of config.layers) if (config.output_layers.some((r) => r[0] === l.name) && l.config.activation === 'softmax') l.config.activation = 'linear';
  const model = await tf.models.modelFromJSON({ modelTopology: topology } as unknown as tf.io.ModelJSON);
  const weights = perturbWeights(readWeights(model), 11, { statSpread: 0.2, biasSpread: 0.2, kernelGain: GAIN });
  assignWeights(model, weights);
  const flat = parseModel({ format: 'layers-model', modelTopology: topology }).graph;
  const tflite = await loadTfliteModel(writeNetworkTflite(flat, weights).bytes);
  const shape = [1, ...(flat.layers.find((l) => l.name === flat.inputs[0].layer)!.calls[0].outputShape.slice(1) as number[])];
  const x = randomArray(shape.reduce((a, b) => a * b, 1), 1, seededRandom(5));
  const got = tflite.run([x]).flatMap((a) => [...a]);
  const want = tf.tidy(() => {
    const y = model.predict(tf.tensor(x, shape));
    return (Array.isArray(y) ? y : [y]).flatMap((t) => [...(t.dataSync() as Float32Array)]);
  });
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < want.length; i++) {
    diff = Math.max(diff, Math.abs(got[i] - want[i]));
    scale = Math.max(scale, Math.abs(want[i]));
  }
  // The spread of the outputs: near 0, the network outputs a constant and the check says little.
  const mean = want.reduce((a, v) => a + v, 0) / want.length;
  const sd = Math.sqrt(want.reduce((a, v) => a + (v - mean) ** 2, 0) / want.length);
  console.log(JSON.stringify({ file, outputs: want.length, maxAbsDiff: diff, maxAbsOutput: scale, outputSd: sd, relative: diff / Math.max(1, scale) }));
  tflite.dispose();
  model.dispose();
}
