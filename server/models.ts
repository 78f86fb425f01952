/**
 * The `model` field of API requests: a built-in seed's name, or a model as JSON (a tfjs
 * model.json or a Keras model config; weights are not needed to time a network). Parsed once
 * with the graph module's own checks, then identified by a hash of its config.
 */
import { createHash } from 'node:crypto';
import type * as tfTypes from '@tensorflow/tfjs';
import { MorphError } from '../src/errors.ts';
import { analyzeChannels } from '../src/graph/channel-groups.ts';
import type { Graph } from '../src/graph/graph.ts';
import type { ModelConfigJson } from '../src/graph/keras-json.ts';
import { parseModel } from '../src/graph/parse.ts';
import { graphSpecs, type GraphSpecs } from '../src/ops/graph-specs.ts';
import { isSeedName, seedModel, VALID_SEEDS } from '../src/seeds/index.ts';

/** Most layers a model sent to the API may have. */
export const MAX_API_LAYERS = 2000;

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
  const analysis = analyzeChannels(parsed.graph);
  return {
    id: modelIdOf(parsed.modelConfig),
    name: parsed.graph.name,
    graph: parsed.graph,
    modelConfig: parsed.modelConfig,
    specs: graphSpecs(parsed.graph, { analysis }),
  };
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
