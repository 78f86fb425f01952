/**
 * Saving and loading tfjs Layers models as `model.json` + `weights.bin` directories without
 * tfjs-node (so without `file://`): save through `tf.io.withSaveHandler`, load through a custom
 * IOHandler. Tests use these to hand our library files written by tfjs itself, and to check that
 * what our library writes loads back in tfjs.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs';

export interface SavedFiles {
  readonly dir: string;
  readonly modelJsonPath: string;
  readonly weightsPath: string;
}

/** Joins tfjs `WeightData` (one buffer or several) into one little-endian byte array. */
function joinWeightData(data: tf.io.WeightData | undefined): Uint8Array {
  if (data === undefined) return new Uint8Array(0);
  return new Uint8Array(tf.io.CompositeArrayBuffer.join(data));
}

/** Saves `model` with its weights as `dir/model.json` + `dir/weights.bin`. */
export async function saveLayersModel(model: tf.LayersModel, dir: string): Promise<SavedFiles> {
  await mkdir(dir, { recursive: true });
  const modelJsonPath = join(dir, 'model.json');
  const weightsPath = join(dir, 'weights.bin');
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      const json = {
        format: artifacts.format ?? 'layers-model',
        generatedBy: artifacts.generatedBy,
        convertedBy: artifacts.convertedBy ?? null,
        modelTopology: artifacts.modelTopology,
        weightsManifest: [{ paths: ['weights.bin'], weights: artifacts.weightSpecs ?? [] }],
      };
      await writeFile(modelJsonPath, JSON.stringify(json));
      await writeFile(weightsPath, joinWeightData(artifacts.weightData));
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  return { dir, modelJsonPath, weightsPath };
}

/** Writes a topology-only model.json (no weightsManifest) at `path`. */
export async function writeJson(path: string, json: unknown): Promise<string> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, JSON.stringify(json));
  return path;
}

/** Loads `dir/model.json` and the weight files its manifest names into a tfjs LayersModel. */
export async function loadLayersModelDir(dir: string): Promise<tf.LayersModel> {
  const json = JSON.parse(await readFile(join(dir, 'model.json'), 'utf8')) as {
    modelTopology: object;
    weightsManifest?: { paths: string[]; weights: tf.io.WeightsManifestEntry[] }[];
  };
  const weightSpecs: tf.io.WeightsManifestEntry[] = [];
  const parts: Uint8Array[] = [];
  for (const group of json.weightsManifest ?? []) {
    weightSpecs.push(...group.weights);
    for (const p of group.paths) parts.push(new Uint8Array(await readFile(join(dir, p))));
  }
  const total = parts.reduce((a, p) => a + p.byteLength, 0);
  const bytes = new Uint8Array(total);
  let offset = 0;
  for (const p of parts) {
    bytes.set(p, offset);
    offset += p.byteLength;
  }
  const handler: tf.io.IOHandler = {
    load: async () => ({ modelTopology: json.modelTopology, weightSpecs, weightData: bytes.buffer }),
  };
  return tf.loadLayersModel(handler);
}

/** A seeded uniform [-1, 1) tensor, so test failures reproduce. */
export function randomInput(shape: number[], seed = 7): tf.Tensor {
  return tf.randomUniform(shape, -1, 1, 'float32', seed);
}

/** Largest absolute element-wise difference of two tensors. */
export function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
}
