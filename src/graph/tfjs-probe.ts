/**
 * Shapes and weights of layer classes we do not model, computed by TensorFlow.js itself: the layer
 * is built from its config and applied to symbolic inputs, so its output shape and its weights
 * (names and shapes, hence `countParams()`) are exactly what tfjs would load. Nothing is computed
 * on data. Used by the parser so that an unknown layer is never assumed to keep its input shape.
 *
 * tfjs is loaded on first use (synchronously: its Node entry point is CommonJS), so parsing a
 * model made only of layers we model never loads it.
 */
import { createRequire } from 'node:module';
import type { Shape } from './graph.ts';
import { isJsonObject, type JsonObject, type JsonValue } from './keras-json.ts';

export interface ProbedWeight {
  /** The suffix tfjs stores the weight under (`kernel`, `recurrent_kernel`, `embeddings`, ...). */
  readonly kind: string;
  readonly shape: readonly number[];
}

export interface ProbedLayer {
  readonly outputShape: Shape;
  readonly weights: readonly ProbedWeight[];
}

/** The slice of the tfjs API the probe uses. */
interface TfjsLike {
  serialization: { SerializationMap: { getMap(): { classNameMap: Record<string, [unknown, (cls: unknown, config: unknown) => ProbeLayer]> } } };
  input(args: { batchShape: (number | null)[] }): unknown;
  tidy<T>(fn: () => T): T;
}
interface ProbeLayer {
  apply(inputs: unknown): { shape: (number | null)[] } | { shape: (number | null)[] }[];
  weights: { originalName: string; shape: number[] }[];
  dispose(): void;
}

let tfjs: TfjsLike | null = null;
function loadTfjs(): TfjsLike {
  if (!tfjs) tfjs = createRequire(import.meta.url)('@tensorflow/tfjs') as TfjsLike;
  return tfjs;
}

/** Classes tfjs registers that are models or non-layers: never probed as layers. */
const NOT_LAYERS = new Set(['Model', 'Functional', 'Sequential', 'InputLayer']);

/** Whether tfjs has a layer class of this name. */
export function tfjsKnowsLayer(className: string): boolean {
  if (NOT_LAYERS.has(className)) return false;
  const entry = loadTfjs().serialization.SerializationMap.getMap().classNameMap[className];
  return entry !== undefined && /^[A-Z]/.test(className);
}

const camel = (k: string): string => k.replace(/_(\w)/g, (_, c: string) => c.toUpperCase());

/**
 * Keras config → the arguments tfjs's constructors take, converted as tfjs's own loader does
 * (keys and string values camelCased, `name` kept). Initializers become zeros so that probing
 * allocates cheaply and prints no "slowness" warnings, and regularizers and constraints are
 * dropped (tfjs lacks some Keras ones, e.g. Keras 3's `L2`): neither changes a shape.
 */
function toTfjsArgs(v: JsonValue, key = ''): unknown {
  if (key.endsWith('_initializer')) return { className: 'Zeros', config: {} };
  if (key.endsWith('_regularizer') || key.endsWith('_constraint')) return null;
  if (typeof v === 'string') return key === 'name' ? v : camel(v);
  if (Array.isArray(v)) return v.map((x) => toTfjsArgs(x, key));
  if (!isJsonObject(v)) return v;
  // Keras 3 dtype policies; tfjs wants the dtype name.
  if (v.class_name === 'DTypePolicy' && isJsonObject(v.config)) return v.config.name ?? 'float32';
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) {
    if (k === 'module' || k === 'registered_name' || k === 'build_config') continue;
    out[camel(k)] = toTfjsArgs(x, k);
  }
  return out;
}

/**
 * Builds a layer of class `className` with `config` and applies it to symbolic inputs of the given
 * shapes. Returns null when tfjs does not know the class; throws (with tfjs's message) when tfjs
 * knows it but refuses the config or the inputs.
 */
export function probeLayer(className: string, config: JsonObject, inputShapes: readonly Shape[]): ProbedLayer | null {
  if (!tfjsKnowsLayer(className)) return null;
  const tf = loadTfjs();
  const [cls, fromConfig] = tf.serialization.SerializationMap.getMap().classNameMap[className];
  const layer = fromConfig(cls, toTfjsArgs(config));
  try {
    const inputs = inputShapes.map((s) => tf.input({ batchShape: [...s] }));
    const out = layer.apply(inputs.length === 1 ? inputs[0] : inputs);
    if (Array.isArray(out)) throw new Error(`it has ${out.length} outputs; only single-output layers are supported`);
    // tfjs names a weight `<layer name>/<kind>` (`bidirectional/forward_lstm/kernel`): the kind is the rest.
    const prefix = typeof config.name === 'string' ? `${config.name}/` : '';
    const weights = layer.weights.map((w) => ({
      kind: prefix && w.originalName.startsWith(prefix) ? w.originalName.slice(prefix.length) : w.originalName.slice(w.originalName.lastIndexOf('/') + 1),
      shape: [...w.shape],
    }));
    return { outputShape: [...out.shape], weights };
  } finally {
    layer.dispose();
  }
}
