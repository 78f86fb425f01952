/**
 * The `model` field of API requests: a built-in seed's name, or a model as JSON (a tfjs
 * model.json or a Keras model config; weights are not needed to time a network). Parsed once
 * with the graph module's own checks, then identified by a hash of its config.
 */
import { createHash } from 'node:crypto';
import type * as tfTypes from '@tensorflow/tfjs';
import { MorphError } from '../src/errors.ts';
import { networkCost } from '../src/cost/counts.ts';
import { analyzeChannels } from '../src/graph/channel-groups.ts';
import type { Graph } from '../src/graph/graph.ts';
import type { ModelConfigJson } from '../src/graph/keras-json.ts';
import { parseModel } from '../src/graph/parse.ts';
import { graphSpecs, type GraphSpecs } from '../src/ops/graph-specs.ts';
import { isSeedName, seedModel, VALID_SEEDS } from '../src/seeds/index.ts';

/** Most layers a model sent to the API may have. */
export const MAX_API_LAYERS = 2000;
/** Largest dimension (height, width, channels) of any tensor of an API model: an OpSpec's wire limit. */
export const MAX_API_DIM = 65_536;
/** Most elements (batch 1) in one tensor of an API model: 2^28, 1 GiB of float32. */
export const MAX_API_TENSOR_ELEMENTS = 2 ** 28;
/** Most parameters an API model may have: 2^28 (VGG-16 has 138 M). */
export const MAX_API_PARAMS = 2 ** 28;

export interface ResolvedModel {
  /** `m-` + 16 hex digits of the config's hash. */
  readonly id: string;
  readonly name: string;
  readonly graph: Graph;
  readonly modelConfig: ModelConfigJson;
  readonly specs: GraphSpecs;
}

function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const keys = Object.keys(value).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

export function modelIdOf(config: unknown): string {
  return `m-${createHash('sha256').update(canonical(config)).digest('hex').slice(0, 16)}`;
}

/**
 * Resolves a request's `model`. The field path is used in error messages.
 * @throws MorphError MORPH_ERR_BAD_ARGUMENT for a missing field or unknown seed, and the graph
 *   module's codes (MORPH_ERR_NOT_A_MODEL, MORPH_ERR_BAD_TOPOLOGY, MORPH_ERR_SHAPE…) for a model
 *   it refuses.
 */
export function resolveModel(model: unknown, field = 'model'): ResolvedModel {
  let json: unknown;
  let source: string;
  if (typeof model === 'string') {
    const name = model.startsWith('seed:') ? model.slice(5) : model;
    if (!isSeedName(name)) {
      throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `${field}: ${JSON.stringify(model)} is not a built-in seed; give one of ${VALID_SEEDS.join(', ')} or a model.json object`, { field });
    }
    json = seedModel(name);
    source = `seed:${name}`;
  } else if (model !== null && typeof model === 'object' && !Array.isArray(model)) {
    json = model;
    source = field;
  } else {
    throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `${field} is required: a seed name (${VALID_SEEDS.join(', ')}) or a model.json object`, { field });
  }
  const parsed = parseModel(json, { source, maxLayers: MAX_API_LAYERS });
  checkModelSize(parsed.graph, source);
  const analysis = analyzeChannels(parsed.graph);
  return {
    id: modelIdOf(parsed.modelConfig),
    name: parsed.graph.name,
    graph: parsed.graph,
    modelConfig: parsed.modelConfig,
    specs: graphSpecs(parsed.graph, { analysis }),
  };
}

/**
 * Refuses a model too large to handle: a tensor dimension over MAX_API_DIM, a tensor over
 * MAX_API_TENSOR_ELEMENTS or more than MAX_API_PARAMS parameters. Checked before anything walks
 * its channels (a profile grid steps through every channel count up to the seed's).
 * @throws MorphError MORPH_ERR_LIMIT naming the layer.
 */
export function checkModelSize(graph: Graph, source: string): void {
  for (const layer of graph.layers) {
    for (const call of layer.calls) {
      const dims = call.outputShape.slice(1);
      const shape = `[${call.outputShape.map((d) => (d === null ? 'null' : String(d))).join(', ')}]`;
      if (dims.some((d) => d !== null && d > MAX_API_DIM)) {
        throw new MorphError('MORPH_ERR_LIMIT', `${source}: layer "${layer.name}" outputs ${shape}, a dimension over the limit of ${MAX_API_DIM}`, { layer: layer.name, limit: MAX_API_DIM });
      }
      const elements = dims.reduce<number>((a, d) => a * (d ?? 1), 1);
      if (elements > MAX_API_TENSOR_ELEMENTS) {
        throw new MorphError('MORPH_ERR_LIMIT', `${source}: layer "${layer.name}" outputs ${shape}, ${elements} elements, over the limit of ${MAX_API_TENSOR_ELEMENTS}`, { layer: layer.name, limit: MAX_API_TENSOR_ELEMENTS });
      }
    }
  }
  const params = networkCost(graph).params;
  if (params > MAX_API_PARAMS) throw new MorphError('MORPH_ERR_LIMIT', `${source}: ${params} parameters is over the limit of ${MAX_API_PARAMS}`, { limit: MAX_API_PARAMS });
}

let tfLoad: Promise<typeof tfTypes> | undefined;

/**
 * A float32 `.tflite` of the model with tfjs's random initial weights (for timing; the values do
 * not change the time). tfjs is loaded on first use, on its `cpu` backend, so that the server
 * does not compete with a local agent's wasm.
 */
export async function networkTflite(model: ResolvedModel): Promise<Uint8Array> {
  tfLoad ??= import('@tensorflow/tfjs');
  const tf = await tfLoad;
  if (tf.getBackend() !== 'cpu') await tf.setBackend('cpu');
  const { buildTfModel, readWeights } = await import('../src/train/tf-model.ts');
  const { writeNetworkTflite } = await import('../src/export/tflite/network.ts');
  const live = await buildTfModel(model.modelConfig, null);
  try {
    return writeNetworkTflite(model.graph, readWeights(live)).bytes;
  } finally {
    live.dispose();
  }
}
