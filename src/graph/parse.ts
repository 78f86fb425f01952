/**
 * The one converter from wire JSON (tfjs `model.json` or a bare Keras config, Keras 2 or 3) to the
 * Graph IR. Two passes, as tfjs's own `Container.fromConfig` does: first build every layer and
 * queue its calls, then drain the queue until every call's inputs exist, inferring shapes on the
 * way. A reference that never resolves is reported with the layer that holds it.
 */
import { MorphError } from '../errors.ts';
import type { Graph, GraphLayer, LayerCall, ModelClass, Shape, TensorRef, WeightSpec } from './graph.ts';
import { formatRef } from './graph.ts';
import {
  isJsonObject,
  type JsonObject,
  type JsonValue,
  type LayerJson,
  type ModelConfigJson,
  type WeightsGroupJson,
} from './keras-json.ts';
import type { AnyOpDescriptor, OpContext } from './ops/op.ts';
import { opFor } from './ops/register-all.ts';
import { fmt } from './ops/shape-utils.ts';

export interface ParseOptions {
  /** Refuse models with more layers than this (default 10,000): a guard against hostile files. */
  readonly maxLayers?: number;
  /** Names the source in messages, e.g. the file path. */
  readonly source?: string;
}

export interface ParsedModel {
  readonly graph: Graph;
  /** The tfjs weights manifest, if the file had one. */
  readonly weightsManifest: readonly WeightsGroupJson[] | null;
  readonly format: 'tfjs-layers-model' | 'keras-config';
  /** The model config exactly as read (needed to write a Sequential model back as Sequential). */
  readonly modelConfig: ModelConfigJson;
}

export const DEFAULT_MAX_LAYERS = 10_000;

const notAModel = (source: string, why: string): MorphError =>
  new MorphError(
    'MORPH_ERR_NOT_A_MODEL',
    `${source}: ${why}. Expected a TensorFlow.js model.json ({"format": "layers-model", "modelTopology": ...}) or a Keras model config ({"class_name": "Functional" | "Model" | "Sequential", "config": ...})`,
    { source },
  );

const topologyError = (message: string, details: Record<string, unknown>): MorphError =>
  new MorphError('MORPH_ERR_BAD_TOPOLOGY', message, details);

/** Finds the model config inside whichever envelope the file uses. */
function unwrap(json: unknown, source: string): { config: ModelConfigJson; manifest: WeightsGroupJson[] | null; format: ParsedModel['format'] } {
  if (!isJsonObject(json)) throw notAModel(source, 'the JSON is not an object');
  if ('modelTopology' in json) {
    let topo = json.modelTopology;
    if (isJsonObject(topo) && isJsonObject(topo.model_config)) topo = topo.model_config;
    if (!isJsonObject(topo)) throw notAModel(source, 'modelTopology is not an object');
    if (json.format !== undefined && json.format !== 'layers-model') {
      throw notAModel(source, `format is ${JSON.stringify(json.format)}; only "layers-model" files describe layers (graph-models have no layer structure to resize)`);
    }
    const manifest = json.weightsManifest;
    if (manifest !== undefined && !Array.isArray(manifest)) throw notAModel(source, 'weightsManifest is not a list');
    return { config: checkModelConfig(topo, source), manifest: (manifest as unknown as WeightsGroupJson[]) ?? null, format: 'tfjs-layers-model' };
  }
  if ('class_name' in json) return { config: checkModelConfig(json, source), manifest: null, format: 'keras-config' };
  throw notAModel(source, 'it has neither "modelTopology" nor "class_name"');
}

function checkModelConfig(json: JsonObject, source: string): ModelConfigJson {
  const cls = json.class_name;
  if (cls !== 'Sequential' && cls !== 'Functional' && cls !== 'Model') {
    throw notAModel(source, `class_name is ${JSON.stringify(cls)}; only Sequential, Functional and Model are models`);
  }
  if (!isJsonObject(json.config) && !Array.isArray(json.config)) throw notAModel(source, 'config is missing');
  return json as unknown as ModelConfigJson;
}

function layerList(config: ModelConfigJson, source: string): LayerJson[] {
  const c = config.config as unknown;
  const layers = Array.isArray(c) ? c : isJsonObject(c) ? c.layers : undefined;
  if (!Array.isArray(layers)) throw notAModel(source, 'config.layers is not a list');
  layers.forEach((l, i) => {
    if (!isJsonObject(l) || typeof l.class_name !== 'string' || !isJsonObject(l.config)) {
      throw notAModel(source, `layer #${i} is not {"class_name": ..., "config": {...}}`);
    }
  });
  return layers as unknown as LayerJson[];
}

function layerName(l: LayerJson, index: number): string {
  const n = l.name ?? l.config.name;
  return typeof n === 'string' && n.length > 0 ? n : `${l.class_name.toLowerCase()}_${index}`;
}

function isRefJson(v: JsonValue): v is [string, number, number] {
  return Array.isArray(v) && v.length >= 3 && typeof v[0] === 'string' && typeof v[1] === 'number' && typeof v[2] === 'number';
}

function toRef(v: [string, number, number]): TensorRef {
  return { layer: v[0], nodeIndex: v[1], tensorIndex: v[2] };
}

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

/** Keras writes `[[name, 0, 0]]`, or `[name, 0, 0]` for a single tensor (Keras 3). */
function refList(v: unknown, what: string, source: string): TensorRef[] {
  if (isRefJson(v as JsonValue)) return [toRef(v as [string, number, number])];
  if (Array.isArray(v) && v.every((r) => isRefJson(r as JsonValue))) return (v as [string, number, number][]).map(toRef);
  throw notAModel(source, `config.${what} is not a list of [layer, node, tensor] references`);
}

interface PendingLayer {
  json: LayerJson;
  name: string;
  desc: AnyOpDescriptor | undefined;
  attrs: Record<string, unknown>;
  pendingCalls: TensorRef[][];
  calls: LayerCall[];
}

/** Converts a Sequential layer list into functional form: each layer calls the previous one. */
function sequentialToFunctional(layers: LayerJson[], source: string): { layers: LayerJson[]; synthetic: boolean } {
  if (layers.length === 0) throw notAModel(source, 'the Sequential model has no layers');
  const out: LayerJson[] = [];
  let synthetic = false;
  let prev: string;
  let start = 0;
  const first = layers[0];
  if (first.class_name === 'InputLayer') {
    prev = layerName(first, 0);
    out.push({ ...first, inbound_nodes: [] });
    start = 1;
  } else {
    const c = first.config;
    const shape = c.batch_input_shape ?? c.batch_shape ?? (Array.isArray(c.input_shape) ? [null, ...c.input_shape] : undefined);
    if (!Array.isArray(shape)) {
      throw new MorphError(
        'MORPH_ERR_SHAPE',
        `${source}: the first layer "${layerName(first, 0)}" has no batch_input_shape, so the input shape cannot be inferred; add "batch_input_shape": [null, H, W, C] to its config or start the model with an InputLayer`,
        { layer: layerName(first, 0) },
      );
    }
    prev = `${layerName(first, 0)}_input`;
    synthetic = true;
    out.push({ class_name: 'InputLayer', name: prev, config: { name: prev, batch_input_shape: shape }, inbound_nodes: [] });
  }
  for (let i = start; i < layers.length; i++) {
    const name = layerName(layers[i], i);
    out.push({ ...layers[i], name, inbound_nodes: [[[prev, 0, 0, {}]]] });
    prev = name;
  }
  return { layers: out, synthetic };
}

/**
 * Parses model JSON (already `JSON.parse`d) into a Graph.
 * @throws MorphError `MORPH_ERR_NOT_A_MODEL`, `MORPH_ERR_BAD_TOPOLOGY`, `MORPH_ERR_SHAPE`, `MORPH_ERR_LIMIT`.
 */
export function parseModel(json: unknown, options: ParseOptions = {}): ParsedModel {
  const source = options.source ?? 'model';
  const maxLayers = options.maxLayers ?? DEFAULT_MAX_LAYERS;
  const { config, manifest, format } = unwrap(json, source);
  const rawLayers = layerList(config, source);
  if (rawLayers.length > maxLayers) {
    throw new MorphError('MORPH_ERR_LIMIT', `${source}: ${rawLayers.length} layers is over the limit of ${maxLayers}`, { limit: maxLayers });
  }

  const isSequential = config.class_name === 'Sequential';
  const { layers: fnLayers, synthetic } = isSequential ? sequentialToFunctional(rawLayers, source) : { layers: rawLayers, synthetic: false };

  // Pass 1: build every layer and queue its calls.
  const pending = new Map<string, PendingLayer>();
  const order: string[] = [];
  const warnings: string[] = [];
  fnLayers.forEach((l, i) => {
    const name = layerName(l, i);
    if (pending.has(name)) throw topologyError(`${source}: two layers are named "${name}"; layer names must be unique`, { layer: name });
    const desc = opFor(l.class_name);
    const ctx: OpContext = { layer: name, className: l.class_name };
    const attrs = desc ? (desc.parseAttrs(l.config, ctx) as Record<string, unknown>) : {};
    let calls = inboundCalls(l, name);
    if (calls.length === 0 && l.class_name === 'InputLayer') calls = [[]];
    pending.set(name, { json: l, name, desc, attrs, pendingCalls: calls, calls: [] });
    order.push(name);
  });

  let inputs: TensorRef[];
  let outputs: TensorRef[];
  if (isSequential) {
    inputs = [{ layer: order[0], nodeIndex: 0, tensorIndex: 0 }];
    outputs = [{ layer: order[order.length - 1], nodeIndex: 0, tensorIndex: 0 }];
  } else {
    const c = config.config as unknown as JsonObject;
    inputs = refList(c.input_layers, 'input_layers', source);
    outputs = refList(c.output_layers, 'output_layers', source);
  }
  for (const ref of [...inputs, ...outputs]) {
    if (!pending.has(ref.layer)) throw topologyError(`${source}: the model's inputs/outputs name layer "${ref.layer}", which does not exist`, { layer: ref.layer });
  }

  // Pass 2: drain the queue in file order until no call can make progress.
  const shapes = new Map<string, Shape>(); // key: formatRef
  const topo: string[] = [];
  const outstanding = (p: PendingLayer): boolean => p.calls.length < p.pendingCalls.length;
  let progress = true;
  while (progress) {
    progress = false;
    for (const name of order) {
      const p = pending.get(name)!;
      while (outstanding(p)) {
        const refs = p.pendingCalls[p.calls.length];
        const inputShapes = refs.map((r) => shapes.get(formatRef(r)));
        if (inputShapes.some((s) => s === undefined)) break;
        const outputShape = inferShape(p, inputShapes as Shape[], warnings);
        shapes.set(formatRef({ layer: name, nodeIndex: p.calls.length, tensorIndex: 0 }), outputShape);
        p.calls.push({ inputs: refs, inputShapes: inputShapes as Shape[], outputShape });
        if (p.calls.length === 1) topo.push(name);
        progress = true;
      }
    }
  }

  for (const name of order) {
    const p = pending.get(name)!;
    if (!outstanding(p)) continue;
    const refs = p.pendingCalls[p.calls.length];
    const missing = refs.find((r) => !shapes.has(formatRef(r)))!;
    const why = !pending.has(missing.layer)
      ? `layer "${missing.layer}" does not exist`
      : missing.tensorIndex !== 0
        ? `tensor index ${missing.tensorIndex} is not produced (every layer here has one output)`
        : missing.nodeIndex >= pending.get(missing.layer)!.pendingCalls.length
          ? `layer "${missing.layer}" has no call number ${missing.nodeIndex}`
          : 'it is never computed (the layers form a cycle or depend on something missing)';
    throw topologyError(`${source}: layer "${name}" takes input ${formatRef(missing)}, but ${why}`, { layer: name, ref: formatRef(missing) });
  }
  for (const ref of [...inputs, ...outputs]) {
    if (!shapes.has(formatRef(ref))) throw topologyError(`${source}: model input/output ${formatRef(ref)} is never computed`, { ref: formatRef(ref) });
  }

  const layers: GraphLayer[] = [];
  for (const name of topo) {
    const p = pending.get(name)!;
    layers.push({
      name,
      className: p.json.class_name,
      kind: p.desc?.kind ?? 'unknown',
      attrs: p.attrs,
      calls: p.calls,
      weights: p.desc ? weightSpecs(p.desc, p.attrs, p.calls[0].inputShapes) : [],
      raw: p.json,
    });
  }
  const unused = order.filter((n) => !topo.includes(n));
  if (unused.length > 0) warnings.push(`layers never called, ignored: ${unused.join(', ')}`);

  const modelClass: ModelClass = config.class_name === 'Sequential' ? 'Sequential' : config.class_name === 'Model' ? 'Model' : 'Functional';
  const cfgName = isJsonObject(config.config) ? config.config.name : undefined;
  const graph: Graph = {
    name: typeof cfgName === 'string' ? cfgName : 'model',
    modelClass,
    layers,
    inputs,
    outputs,
    warnings,
    syntheticInput: synthetic,
  };
  return { graph, weightsManifest: manifest, format, modelConfig: config };
}

function weightSpecs(desc: AnyOpDescriptor, attrs: Record<string, unknown>, inputShapes: readonly Shape[]): WeightSpec[] {
  const roles = desc.weightRoles(attrs);
  const shapes = desc.weightShapes(attrs, inputShapes);
  return roles.map((r: { kind: string }, i: number) => ({ kind: r.kind, shape: shapes[i] }));
}

function inferShape(p: PendingLayer, inputShapes: Shape[], warnings: string[]): Shape {
  const ctx: OpContext = { layer: p.name, className: p.json.class_name };
  if (p.desc) {
    if (p.desc.kind !== 'input' && inputShapes.length === 0) {
      throw topologyError(`layer "${p.name}" (${p.json.class_name}) is called with no inputs`, { layer: p.name });
    }
    const out = p.desc.outputShape(p.attrs, inputShapes, ctx);
    if (p.desc.kind !== 'input' && p.calls.length > 0) {
      const first = p.calls[0].inputShapes;
      if (JSON.stringify(first.map((s) => s.slice(1))) !== JSON.stringify(inputShapes.map((s) => s.slice(1)))) {
        throw new MorphError('MORPH_ERR_SHAPE', `layer "${p.name}" is shared by calls with different input shapes ${first.map(fmt).join(',')} and ${inputShapes.map(fmt).join(',')}`, { layer: p.name });
      }
    }
    return out;
  }
  // An unknown class: assume it keeps its input's shape (true of custom activations, noise and
  // normalisation layers, the usual unknowns) and say so; refuse where that cannot hold.
  // Lambda-like layers may declare their output shape (without the batch dimension).
  const declared = p.json.config.output_shape;
  if (Array.isArray(declared) && declared.length > 0 && declared.every((d) => typeof d === 'number' && d > 0)) {
    if (p.calls.length === 0) {
      warnings.push(`layer "${p.name}" has class ${p.json.class_name}, which is not supported; using its declared output_shape and keeping the widths around it fixed`);
    }
    return [null, ...(declared as number[])];
  }
  if (inputShapes.length === 0) {
    throw new MorphError('MORPH_ERR_SHAPE', `layer "${p.name}" has class ${p.json.class_name}, which is not supported, and no inputs to infer its shape from`, { layer: p.name });
  }
  const first = inputShapes[0];
  if (inputShapes.some((s) => fmt(s) !== fmt(first))) {
    throw new MorphError(
      'MORPH_ERR_SHAPE',
      `layer "${p.name}" has class ${p.json.class_name}, which is not supported, and its inputs ${inputShapes.map(fmt).join(', ')} differ, so its output shape cannot be inferred; replace it with a supported layer`,
      { layer: p.name },
    );
  }
  if (p.calls.length === 0) {
    warnings.push(`layer "${p.name}" has class ${p.json.class_name}, which is not supported; assuming it keeps its input shape ${fmt(first)} and keeping the widths around it fixed`);
  }
  return first;
}
