/** `morphnet export`: a model.json with weights as a float32 `.tflite` (batch norms folded). */
import { randomBytes } from 'node:crypto';
import { rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { MorphError } from '../../src/errors.ts';
import { writeNetworkTflite } from '../../src/export/tflite/network.ts';
import type { WeightMap } from '../../src/graph/weights.ts';
import { initialWeights } from '../../src/graph/rebuild.ts';
import { parseFlags, requireString, type Command } from '../args.ts';
import { human } from '../format.ts';
import { loadModelInput } from '../model-source.ts';

const USAGE = `Usage: morphnet export MODEL.json --tflite OUT.tflite [--random-weights] [--json]

Writes the model as one float32 TensorFlow Lite flatbuffer (batch 1): every batch norm that
directly follows a conv or dense layer is folded into its weights and bias, a ReLU/ReLU6 that
directly follows an op is fused into it, Dropout is removed, Flatten/Reshape become RESHAPE and
softmax becomes SOFTMAX. The file is written to a temporary name and renamed into place, so OUT
is either the old file or the complete new one.

The model needs its weights (a model.json with a weightsManifest and its .bin files): exporting a
topology alone would ship untrained weights. Pass --random-weights to export freshly initialised
weights on purpose (Glorot-uniform kernels, identity batch norms: for latency measurements).
Layers beyond the classic CNN ones are written too (swish, LeakyReLU, hard_swish, SE Multiply,
Conv2DTranspose, UpSampling2D, Cropping2D, Rescaling, Normalization: docs/layers.md).

Options:
  --tflite OUT       output file (overwritten if it exists)
  --random-weights   use freshly initialised weights when the model has none
  --json             print a JSON summary
  --input-shape H,W,C  the input size for a model saved with free sizes ([null, null, null, 3])
  -h, --help         this text`;

export const exportCommand: Command = {
  name: 'export',
  summary: 'write a model as a float32 .tflite (batch norms folded)',
  usage: USAGE,
  async run(argv, io) {
    const { values, positionals } = parseFlags('export', argv, {
      tflite: { type: 'string' },
      'random-weights': { type: 'boolean' },
      json: { type: 'boolean' },
      'input-shape': { type: 'string' },
    });
    const out = resolve(requireString('export', 'tflite', values.tflite, 'model.tflite'));
    if (positionals.length > 1) throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `morphnet export: give one MODEL.json, got ${positionals.length} paths`);
    const m = await loadModelInput('export', positionals[0], undefined, { inputShape: values['input-shape'] as string | undefined });
    let weights: WeightMap | null = m.weights;
    let randomWeights = false;
    if (!weights) {
      if (values['random-weights'] !== true) {
        throw new MorphError(
          'MORPH_ERR_EXPORT',
          `${m.path} has no weights (no weightsManifest, or its weight files are not beside it); give a model.json saved with its weights, or pass --random-weights to export freshly initialised weights on purpose`,
          { path: m.path },
        );
      }
      // Our own initialisers over the parsed (flat) graph: nested models and --input-shape included.
      weights = initialWeights(m.graph, m.analysis);
      randomWeights = true;
    }
    const result = writeNetworkTflite(m.graph, weights, { description: `morphnet-edge export of ${basename(m.path)} (float32, batch norms folded)` });
    try {
      const s = await stat(dirname(out));
      if (!s.isDirectory()) throw new Error('not a directory');
    } catch {
      throw new MorphError('MORPH_ERR_NOT_FOUND', `morphnet export: the folder of ${out} does not exist; create it first`, { path: out });
    }
    const tmp = join(dirname(out), `.${basename(out)}.${randomBytes(6).toString('hex')}.tmp`);
    try {
      await writeFile(tmp, result.bytes);
      await rename(tmp, out);
    } catch (err) {
      await rm(tmp, { force: true });
      throw new MorphError('MORPH_ERR_NOT_FOUND', `morphnet export: cannot write ${out}: ${(err as Error).message}`, { path: out });
    }
    const summary = {
      model: m.path,
      tflite: out,
      bytes: result.bytes.byteLength,
      operators: result.operators,
      foldedBatchNorms: result.foldedBatchNorms,
      fusedActivations: result.fusedActivations,
      randomWeights,
      dtype: 'float32',
    };
    if (values.json) io.out(JSON.stringify(summary, null, 2));
    else {
      io.out(
        `wrote ${out}: ${human(summary.bytes)}B, ${summary.operators} ops, ${summary.foldedBatchNorms} batch norms folded, ${summary.fusedActivations} activations fused${randomWeights ? ' (random weights)' : ''}`,
      );
    }
    return 0;
  },
};
