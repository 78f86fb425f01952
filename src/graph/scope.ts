/**
 * From a model config (Sequential, Functional or Model, Keras 2 or 3, tfjs) to one flat list of
 * layers and the tensor references of their calls. Models used as layers — `Sequential([base,
 * head])`, Teachable Machine exports, a Keras application as a base, a siamese branch shared by
 * several inputs — are inlined: their inner layers take their place, the inner inputs become the
 * tensors the nested model was called on, and references to the nested model's outputs become
 * references to the inner layers that compute them.
 *
 * A nested model called K times makes each inner layer a shared layer with K times its calls (the
 * weights stay shared, as in Keras). Keras ≥ 2.4 numbers the calls of a nested Functional model
 * from 1 (node 0 is the model's own construction, which the file does not list); older Keras and
 * tfjs number them from 0. The numbering is read from the references themselves.
 *
 * Inner layers keep their own names where these are unique in the flat model (so weights manifests
 * and reports still use the user's names); a name that collides becomes `outer/inner`.
 */
import { MorphError } from '../errors.ts';
import type { TensorRef } from './graph.ts';
import { formatRef } from './graph.ts';
import { isJsonObject, type JsonObject, type JsonValue, type LayerJson, type ModelConfigJson } from './keras-json.ts';

/** One layer of the flat model, with its calls as references to other flat layers. */
export interface ScopedLayer {
  /** Unique in the flat model; the user's own name unless it collided. */
  readonly name: string;
  readonly json: LayerJson;
  readonly calls: readonly (readonly TensorRef[])[];
  /** The nested models this layer sits in, outermost first (empty at top level). */
  readonly scope: readonly string[];
}

export interface FlatModel {
  readonly layers: readonly ScopedLayer[];
  readonly inputs: readonly TensorRef[];
  readonly outputs: readonly TensorRef[];
  /** True when a Sequential model had no InputLayer and one was made from its first layer's shape. */
  readonly syntheticInput: boolean;
  /** The nested models that were inlined, as `outer/inner` paths. */
  readonly inlined: readonly string[];
}

export const MODEL_CLASSES: ReadonlySet<string> = new Set(['Sequential', 'Functional', 'Model']);

/** The error for JSON that is not a model, with what a model looks like. */
export const notAModel = (source: string, why: string): MorphError =>
  new MorphError(
    'MORPH_ERR_NOT_A_MODEL',
    `${source}: ${why}. Expected a TensorFlow.js model.json ({"format": "layers-model", "modelTopology": ...}) or a Keras model config ({"class_name": "Functional" | "Model" | "Sequential", "config": ...})`,
    { source },
  );

const topologyError = (message: string, details: Record<string, unknown>): MorphError => new MorphError('MORPH_ERR_BAD_TOPOLOGY', message, details);

function layerList(config: ModelConfigJson, where: string, source: string): LayerJson[] {
  const c = config.config as unknown;
  const layers = Array.isArray(c) ? c : isJsonObject(c) ? c.layers : undefined;
  if (!Array.isArray(layers)) throw notAModel(source, `${where}config.layers is not a list`);
  layers.forEach((l, i) => {
    if (!isJsonObject(l) || typeof l.class_name !== 'string' || !isJsonObject(l.config)) {
      throw notAModel(source, `${where}layer #${i} is not {"class_name": ..., "config": {...}}`);
    }
  });
  return layers as unknown as LayerJson[];
}

export function layerName(l: LayerJson, index: number): string {
  const n = l.name ?? l.config.name;
  return typeof n === 'string' && n.length > 0 ? n : `${l.class_name.toLowerCase()}_${index}`;
}

function isRefJson(v: JsonValue): v is [string, number, number] {
  return Array.isArray(v) && v.length >= 3 && typeof v[0] === 'string' && typeof v[1] === 'number' && typeof v[2] === 'number';
}

const toRef = (v: [string, number, number]): TensorRef => ({ layer: v[0], nodeIndex: v[1], tensorIndex: v[2] });

/** Collects the Keras 3 symbolic tensors in a call's args, in order, however deeply nested. */
function collectKeras3(v: JsonValue, out: TensorRef[]): void {
  if (Array.isArray(v)) {
    for (const x of v) collectKeras3(x, out);
  } else if (isJsonObject(v)) {
    if (v.class_name === '__keras_tensor__' && isJsonObject(v.config) && isRefJson(v.config.keras_history as JsonValue)) {
      out.push(toRef(v.config.keras_history as [string, number, number]));
    }
  }
}

/** A layer's calls as lists of tensor refs, from either Keras 2 nested arrays or Keras 3 args. */
function inboundCalls(l: LayerJson, name: string): TensorRef[][] {
  const nodes = l.inbound_nodes ?? [];
  if (!Array.isArray(nodes)) throw topologyError(`layer "${name}": inbound_nodes is not a list`, { layer: name });
  return nodes.map((node, i) => {
    const refs: TensorRef[] = [];
    if (Array.isArray(node)) {
      for (const r of node) {
        if (!isRefJson(r as JsonValue)) throw topologyError(`layer "${name}": inbound node ${i} has a malformed tensor reference ${JSON.stringify(r)}`, { layer: name });
        refs.push(toRef(r as [string, number, number]));
      }
    } else if (isJsonObject(node)) {
      collectKeras3((node as JsonObject).args ?? [], refs);
      if (refs.length === 0) collectKeras3((node as JsonObject).kwargs ?? {}, refs);
    } else {
      throw topologyError(`layer "${name}": inbound node ${i} is neither a list (Keras 2) nor {"args": ...} (Keras 3)`, { layer: name });
    }
    return refs;
  });
}

/**
 * The shapes Keras 3 recorded for the tensors a call consumes, by `formatRef`: the only place a
 * Keras 3 file states the output shape of a layer (as seen by its consumers).
 */
export function recordedShapes(config: ModelConfigJson): Map<string, (number | null)[]> {
  const out = new Map<string, (number | null)[]>();
  const visit = (v: JsonValue): void => {
    if (Array.isArray(v)) {
      for (const x of v) visit(x);
    } else if (isJsonObject(v)) {
      if (v.class_name === '__keras_tensor__' && isJsonObject(v.config) && isRefJson(v.config.keras_history as JsonValue) && Array.isArray(v.config.shape)) {
        out.set(formatRef(toRef(v.config.keras_history as [string, number, number])), v.config.shape as (number | null)[]);
      }
      for (const x of Object.values(v)) visit(x);
    }
  };
  visit(config as unknown as JsonValue);
  return out;
}

/** Keras writes `[[name, 0, 0]]`, or `[name, 0, 0]` for a single tensor (Keras 3). */
function refList(v: unknown, what: string, source: string): TensorRef[] {
  if (isRefJson(v as JsonValue)) return [toRef(v as [string, number, number])];
  if (Array.isArray(v) && v.every((r) => isRefJson(r as JsonValue))) return (v as [string, number, number][]).map(toRef);
  throw notAModel(source, `${what} is not a list of [layer, node, tensor] references`);
}

/** The batch input shape a model declares: its InputLayer's, or its first layer's `batch_input_shape`. */
function declaredInputShape(l: LayerJson): JsonValue[] | undefined {
  if (MODEL_CLASSES.has(l.class_name)) {
    const c = l.config as unknown;
    const layers = Array.isArray(c) ? c : isJsonObject(c) && Array.isArray(c.layers) ? c.layers : [];
    const first = layers[0];
    return isJsonObject(first) && isJsonObject(first.config) ? declaredInputShape(first as unknown as LayerJson) : undefined;
  }
  const c = l.config;
  const shape = c.batch_input_shape ?? c.batch_shape ?? (Array.isArray(c.input_shape) ? [null, ...c.input_shape] : undefined);
  return Array.isArray(shape) ? shape : undefined;
}

/** A model's layers in functional form: each with its calls, Sequential chained. */
interface ScopeLayers {
  layers: { name: string; json: LayerJson; calls: TensorRef[][] }[];
  inputs: TensorRef[];
  outputs: TensorRef[];
  synthetic: boolean;
}

function functionalForm(config: ModelConfigJson, where: string, nested: boolean, source: string): ScopeLayers {
  const raw = layerList(config, where, source);
  if (config.class_name !== 'Sequential') {
    const c = config.config as unknown as JsonObject;
    const layers = raw.map((l, i) => {
      const name = layerName(l, i);
      let calls = inboundCalls(l, name);
      if (calls.length === 0 && l.class_name === 'InputLayer') calls = [[]];
      return { name, json: l, calls };
    });
    return { layers, inputs: refList(c.input_layers, `${where}config.input_layers`, source), outputs: refList(c.output_layers, `${where}config.output_layers`, source), synthetic: false };
  }
  if (raw.length === 0) throw notAModel(source, `${where}the Sequential model has no layers`);
  const layers: ScopeLayers['layers'] = [];
  let prev: string;
  let start = 0;
  let synthetic = false;
  const first = raw[0];
  if (first.class_name === 'InputLayer') {
    prev = layerName(first, 0);
    layers.push({ name: prev, json: first, calls: [[]] });
    start = 1;
  } else {
    const shape = declaredInputShape(first);
    if (!Array.isArray(shape) && !nested) {
      throw new MorphError(
        'MORPH_ERR_SHAPE',
        `${source}: the first layer "${layerName(first, 0)}" has no batch_input_shape, so the input shape cannot be inferred; add "batch_input_shape": [null, H, W, C] to its config or start the model with an InputLayer`,
        { layer: layerName(first, 0) },
      );
    }
    // A nested Sequential needs no declared shape: its input is whatever it is called on.
    prev = `${layerName(first, 0)}_input`;
    synthetic = true;
    layers.push({ name: prev, json: { class_name: 'InputLayer', name: prev, config: { name: prev, batch_input_shape: shape ?? null } }, calls: [[]] });
  }
  for (let i = start; i < raw.length; i++) {
    const name = layerName(raw[i], i);
    layers.push({ name, json: raw[i], calls: [[{ layer: prev, nodeIndex: 0, tensorIndex: 0 }]] });
    prev = name;
  }
  return { layers, inputs: [{ layer: layers[0].name, nodeIndex: 0, tensorIndex: 0 }], outputs: [{ layer: prev, nodeIndex: 0, tensorIndex: 0 }], synthetic };
}

/** A flat scope in progress: layers keyed by a path id unique across the whole model. */
interface Expanded {
  layers: { id: string; json: LayerJson; calls: TensorRef[][]; scope: string[] }[];
  /** Ids of this scope's input placeholders (InputLayers), in input order. */
  inputs: TensorRef[];
  outputs: TensorRef[];
  synthetic: boolean;
  inlined: string[];
}

const MAX_DEPTH = 16;
/**
 * Calls of all layers together: a nested model called K times multiplies its layers' calls by K,
 * so a hostile file of nested models called many times could otherwise ask for billions.
 */
export const MAX_CALLS = 100_000;

function expand(config: ModelConfigJson, path: string[], source: string): Expanded {
  if (path.length > MAX_DEPTH) throw notAModel(source, `models are nested more than ${MAX_DEPTH} deep`);
  const where = path.length === 0 ? '' : `nested model "${path.join('/')}": `;
  const { layers, inputs, outputs, synthetic } = functionalForm(config, where, path.length > 0, source);
  const idOf = (name: string): string => [...path, name].join('/');
  const names = new Set<string>();
  for (const l of layers) {
    if (names.has(l.name)) throw topologyError(`${source}: ${where}two layers are named "${l.name}"; layer names must be unique`, { layer: l.name });
    names.add(l.name);
  }
  for (const ref of [...inputs, ...outputs]) {
    if (!names.has(ref.layer)) throw topologyError(`${source}: ${where}the model's inputs/outputs name layer "${ref.layer}", which does not exist`, { layer: ref.layer });
  }

  // Every reference this scope makes, to learn how each nested model's calls are numbered.
  const allRefs = [...layers.flatMap((l) => l.calls.flat()), ...outputs];
  const out: Expanded = { layers: [], inputs: inputs.map((r) => ({ ...r, layer: idOf(r.layer) })), outputs: [], synthetic, inlined: [] };
  /** (nested model name, node index as referenced, tensor index) → the ref it stands for. */
  const modelOutputs = new Map<string, TensorRef>();
  const localRef = (r: TensorRef): TensorRef => ({ ...r, layer: idOf(r.layer) });

  for (const l of layers) {
    if (!MODEL_CLASSES.has(l.json.class_name)) {
      out.layers.push({ id: idOf(l.name), json: l.json, calls: l.calls.map((c) => c.map(localRef)), scope: path });
      continue;
    }
    const inner = expand(l.json as unknown as ModelConfigJson, [...path, l.name], source);
    out.inlined.push(idOf(l.name), ...inner.inlined);
    const k = l.calls.length;
    if (k === 0) continue; // never called: nothing of it is computed
    const indices = allRefs.filter((r) => r.layer === l.name).map((r) => r.nodeIndex);
    const offset = indices.length > 0 && Math.max(...indices) >= k ? 1 : 0;
    if (indices.some((i) => i - offset < 0 || i - offset >= k)) {
      throw topologyError(`${source}: ${where}nested model "${l.name}" is called ${k} time(s) but referenced with node indices ${[...new Set(indices)].join(', ')}`, { layer: l.name });
    }
    l.calls.forEach((c, callIndex) => {
      if (c.length !== inner.inputs.length) {
        throw topologyError(`${source}: ${where}nested model "${l.name}" has ${inner.inputs.length} input(s) but call ${callIndex} gives it ${c.length}`, { layer: l.name });
      }
    });
    const placeholders = new Map(inner.inputs.map((r, i) => [r.layer, i]));
    const callCount = new Map(inner.layers.map((x) => [x.id, x.calls.length]));
    /** An inner ref as seen from outer call `callIndex`: inputs become the outer tensors. */
    const rewrite = (r: TensorRef, callIndex: number): TensorRef => {
      const input = placeholders.get(r.layer);
      if (input !== undefined) return localRef(l.calls[callIndex][input]);
      const m = callCount.get(r.layer);
      if (m === undefined) return r; // a reference the parser will report as dangling
      return { ...r, nodeIndex: callIndex * m + r.nodeIndex };
    };
    for (const x of inner.layers) {
      if (placeholders.has(x.id)) continue;
      if (k * x.calls.length > MAX_CALLS) {
        throw new MorphError('MORPH_ERR_LIMIT', `${source}: ${where}nested model "${l.name}" called ${k} times gives layer "${x.id}" ${k * x.calls.length} calls, over the limit of ${MAX_CALLS}`, { limit: MAX_CALLS });
      }
      const calls: TensorRef[][] = [];
      for (let callIndex = 0; callIndex < k; callIndex++) for (const c of x.calls) calls.push(c.map((r) => rewrite(r, callIndex)));
      out.layers.push({ id: x.id, json: x.json, calls, scope: x.scope });
    }
    for (let callIndex = 0; callIndex < k; callIndex++) {
      inner.outputs.forEach((r, t) => modelOutputs.set(formatRef({ layer: idOf(l.name), nodeIndex: callIndex + offset, tensorIndex: t }), rewrite(r, callIndex)));
    }
  }

  // References to a nested model's outputs become the inner tensors (which may themselves be
  // outputs of another nested model called on them).
  const resolve = (r: TensorRef): TensorRef => {
    for (let hops = 0; hops <= layers.length; hops++) {
      const next = modelOutputs.get(formatRef(r));
      if (!next) return r;
      r = next;
    }
    throw topologyError(`${source}: ${where}nested models reference each other in a cycle at ${formatRef(r)}`, { ref: formatRef(r) });
  };
  const total = out.layers.reduce((n, x) => n + x.calls.length, 0);
  if (total > MAX_CALLS) throw new MorphError('MORPH_ERR_LIMIT', `${source}: ${where}${total} layer calls in all, over the limit of ${MAX_CALLS}`, { limit: MAX_CALLS });
  for (const x of out.layers) x.calls = x.calls.map((c) => c.map(resolve));
  out.inputs = out.inputs.map(resolve);
  out.outputs = outputs.map((r) => resolve(localRef(r)));
  return out;
}

/**
 * Flattens a model config into one list of layers (see the module comment).
 * @throws MorphError `MORPH_ERR_NOT_A_MODEL`, `MORPH_ERR_BAD_TOPOLOGY`, `MORPH_ERR_SHAPE`.
 */
export function flattenModel(config: ModelConfigJson, source: string): FlatModel {
  const e = expand(config, [], source);
  // Display names: the user's own where unique, the path where two nested layers share a name.
  const leaf = (id: string): string => id.slice(id.lastIndexOf('/') + 1);
  const count = new Map<string, number>();
  for (const x of e.layers) count.set(leaf(x.id), (count.get(leaf(x.id)) ?? 0) + 1);
  const nameOf = new Map(e.layers.map((x) => [x.id, count.get(leaf(x.id)) === 1 ? leaf(x.id) : x.id]));
  const rename = (r: TensorRef): TensorRef => ({ ...r, layer: nameOf.get(r.layer) ?? r.layer });
  return {
    layers: e.layers.map((x) => ({ name: nameOf.get(x.id)!, json: x.json, calls: x.calls.map((c) => c.map(rename)), scope: x.scope })),
    inputs: e.inputs.map(rename),
    outputs: e.outputs.map(rename),
    syntheticInput: e.synthetic,
    inlined: e.inlined,
  };
}
