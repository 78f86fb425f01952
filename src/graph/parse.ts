/**
 * The one converter from wire JSON (tfjs `model.json` or a bare Keras config, Keras 2 or 3) to the
 * Graph IR. Nested models are first inlined into one flat list of layers (`scope.ts`); then two
 * passes, as tfjs's own `Container.fromConfig` does: read every layer, then drain the calls until
 * every call's inputs exist, inferring shapes on the way. A reference that never resolves is
 * reported with the layer that holds it.
 */
import { MorphError } from '../errors.ts';
import type { Graph, GraphLayer, LayerCall, ModelClass, Shape, WeightSpec } from './graph.ts';
import { formatRef } from './graph.ts';
import { isJsonObject, type JsonObject, type ModelConfigJson, type WeightsGroupJson } from './keras-json.ts';
import type { AnyOpDescriptor, OpContext } from './layers/op.ts';
import { opFor } from './layers/register-all.ts';
import { fmt, isUnmodeled } from './layers/shape-utils.ts';
import { flattenModel, MODEL_CLASSES, notAModel, recordedShapes, type FlatModel, type ScopedLayer } from './scope.ts';
import { probeLayer } from './tfjs-probe.ts';

export interface ParseOptions {
  /** Refuse models with more layers than this (default 10,000): a guard against hostile files. */
  readonly maxLayers?: number;
  /** Names the source in messages, e.g. the file path. */
  readonly source?: string;
  /**
   * `[H, W, C]` (or any non-batch shape) for the model's single input, replacing the declared one:
   * for models saved with free sizes (`[null, null, null, 3]`: detectors, Keras applications without top).
   */
  readonly inputShape?: readonly number[];
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

const topologyError = (message: string, details: Record<string, unknown>): MorphError =>
  new MorphError('MORPH_ERR_BAD_TOPOLOGY', message, details);

function checkModelConfig(json: JsonObject, source: string): ModelConfigJson {
  const cls = json.class_name;
  if (!MODEL_CLASSES.has(cls as string)) {
    throw notAModel(source, `class_name is ${JSON.stringify(cls)}; only Sequential, Functional and Model are models`);
  }
  if (!isJsonObject(json.config) && !Array.isArray(json.config)) throw notAModel(source, 'config is missing');
  refuseKeras1(json, source);
  return json as unknown as ModelConfigJson;
}

/** Config keys only Keras 1 wrote (renamed in Keras 2.0). */
const KERAS1_KEYS = ['nb_filter', 'nb_row', 'nb_col', 'border_mode', 'subsample', 'W_regularizer', 'b_regularizer'];

function keras1Fields(l: unknown): string[] {
  if (!isJsonObject(l) || !isJsonObject(l.config)) return [];
  const c = l.config;
  const found = KERAS1_KEYS.filter((k) => k in c);
  // Keras 1's Dense had output_dim where Keras 2 has units.
  if (l.class_name === 'Dense' && 'output_dim' in c && !('units' in c)) found.push('output_dim');
  return found;
}

function refuseKeras1(json: JsonObject, source: string): void {
  const version = typeof json.keras_version === 'string' ? json.keras_version : '';
  const c = json.config as unknown;
  const layers = Array.isArray(c) ? c : isJsonObject(c) && Array.isArray(c.layers) ? c.layers : [];
  const old = layers.find((l) => keras1Fields(l).length > 0);
  if (version.startsWith('1.') || old) {
    const what = old && isJsonObject(old) ? `layer ${JSON.stringify((old.config as JsonObject).name ?? old.class_name)} uses Keras 1 fields (${keras1Fields(old).join(', ')})` : `keras_version is ${version}`;
    throw notAModel(source, `this is a Keras 1 model (${what}); Keras 1 is not supported — load it in Keras 2 or later and save it again`);
  }
}

/** Finds the model config inside whichever envelope the file uses. */
function unwrap(json: unknown, source: string, warnings: string[]): { config: ModelConfigJson; manifest: WeightsGroupJson[] | null; format: ParsedModel['format'] } {
  if (typeof json === 'string') {
    // `json.dump(model.to_json(), f)` writes the model JSON as one JSON string: decode it once more.
    let inner: unknown;
    try {
      inner = JSON.parse(json);
    } catch {
      throw notAModel(source, 'the JSON is a string, not an object');
    }
    if (!isJsonObject(inner)) throw notAModel(source, 'the JSON is a string, not an object');
    warnings.push('the file is double-encoded JSON (a JSON string holding the model JSON); read it decoded once');
    json = inner;
  }
  if (!isJsonObject(json)) throw notAModel(source, `the JSON is ${Array.isArray(json) ? 'a list' : typeof json}, not an object`);
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

interface PendingLayer {
  layer: ScopedLayer;
  desc: AnyOpDescriptor | undefined;
  attrs: Record<string, unknown>;
  calls: LayerCall[];
  /** Weights of a layer we do not model, as tfjs or the weights manifest gives them. */
  opaqueWeights: WeightSpec[] | null;
}

/**
 * Parses model JSON (already `JSON.parse`d) into a Graph. Nested models are inlined (see
 * `scope.ts`); a layer class we do not model gets its output shape and weights from tfjs, or from
 * the shapes a Keras 3 file recorded and the weights manifest, and is refused by name otherwise.
 * @throws MorphError `MORPH_ERR_NOT_A_MODEL`, `MORPH_ERR_BAD_TOPOLOGY`, `MORPH_ERR_SHAPE`,
 *   `MORPH_ERR_LIMIT`, `MORPH_ERR_UNSUPPORTED_LAYER`.
 */
export function parseModel(json: unknown, options: ParseOptions = {}): ParsedModel {
  const source = options.source ?? 'model';
  const maxLayers = options.maxLayers ?? DEFAULT_MAX_LAYERS;
  const warnings: string[] = [];
  const { config, manifest, format } = unwrap(json, source, warnings);
  const flat = withInputShape(flattenModel(config, source), options.inputShape, source);
  if (flat.layers.length > maxLayers) {
    throw new MorphError('MORPH_ERR_LIMIT', `${source}: ${flat.layers.length} layers is over the limit of ${maxLayers}`, { limit: maxLayers });
  }
  if (flat.inlined.length > 0) {
    warnings.push(`nested model(s) ${flat.inlined.join(', ')} are inlined into one graph; models written from it are flat Functional models`);
  }
  const recorded = recordedShapes(config);
  const manifestWeights = manifestByLayer(manifest);

  // Pass 1: read every layer's attributes.
  const pending = new Map<string, PendingLayer>();
  for (const l of flat.layers) {
    if (pending.has(l.name)) throw topologyError(`${source}: two layers are named "${l.name}"; layer names must be unique`, { layer: l.name });
    let desc = opFor(l.json.class_name);
    const ctx: OpContext = { layer: l.name, className: l.json.class_name };
    let attrs: Record<string, unknown> = {};
    try {
      if (desc) attrs = desc.parseAttrs(l.json.config, ctx) as Record<string, unknown>;
    } catch (err) {
      if (!isUnmodeled(err)) throw err;
      warnings.push(`${(err as Error).message}; counted by TensorFlow.js as a layer MorphNet does not model`);
      desc = undefined;
    }
    pending.set(l.name, { layer: l, desc, attrs, calls: [], opaqueWeights: null });
  }
  for (const ref of [...flat.inputs, ...flat.outputs]) {
    if (!pending.has(ref.layer)) throw topologyError(`${source}: the model's inputs/outputs name layer "${ref.layer}", which does not exist`, { layer: ref.layer });
  }

  // Pass 2: drain the calls in file order until no call can make progress.
  const shapes = new Map<string, Shape>(); // key: formatRef
  const topo: string[] = [];
  const outstanding = (p: PendingLayer): boolean => p.calls.length < p.layer.calls.length;
  let progress = true;
  while (progress) {
    progress = false;
    for (const p of pending.values()) {
      while (outstanding(p)) {
        const refs = p.layer.calls[p.calls.length];
        const inputShapes = refs.map((r) => shapes.get(formatRef(r)));
        if (inputShapes.some((s) => s === undefined)) break;
        const outputShape = inferShape(p, inputShapes as Shape[], { warnings, recorded, manifestWeights, source });
        shapes.set(formatRef({ layer: p.layer.name, nodeIndex: p.calls.length, tensorIndex: 0 }), outputShape);
        p.calls.push({ inputs: refs, inputShapes: inputShapes as Shape[], outputShape });
        if (p.calls.length === 1) topo.push(p.layer.name);
        progress = true;
      }
    }
  }

  for (const p of pending.values()) {
    if (!outstanding(p)) continue;
    const name = p.layer.name;
    const refs = p.layer.calls[p.calls.length];
    const missing = refs.find((r) => !shapes.has(formatRef(r)))!;
    const producer = pending.get(missing.layer);
    const why = !producer
      ? `layer "${missing.layer}" does not exist`
      : missing.tensorIndex !== 0
        ? `tensor index ${missing.tensorIndex} is not produced (every layer here has one output)`
        : missing.nodeIndex >= producer.layer.calls.length
          ? `layer "${missing.layer}" has no call number ${missing.nodeIndex}`
          : 'it is never computed (the layers form a cycle or depend on something missing)';
    throw topologyError(`${source}: layer "${name}" takes input ${formatRef(missing)}, but ${why}`, { layer: name, ref: formatRef(missing) });
  }
  for (const ref of [...flat.inputs, ...flat.outputs]) {
    if (!shapes.has(formatRef(ref))) throw topologyError(`${source}: model input/output ${formatRef(ref)} is never computed`, { ref: formatRef(ref) });
  }

  const layers: GraphLayer[] = [];
  for (const name of topo) {
    const p = pending.get(name)!;
    layers.push({
      name,
      className: p.layer.json.class_name,
      kind: p.desc?.kind ?? 'unknown',
      attrs: p.attrs,
      calls: p.calls,
      weights: p.desc ? weightSpecs(p.desc, p.attrs, p.calls[0].inputShapes) : (p.opaqueWeights ?? []),
      raw: p.layer.json,
      scope: p.layer.scope,
    });
  }
  const unused = [...pending.keys()].filter((n) => !topo.includes(n));
  if (unused.length > 0) warnings.push(`layers never called, ignored: ${unused.join(', ')}`);
  const opaque = layers.filter((l) => l.kind === 'unknown');
  if (opaque.length > 0) {
    warnings.push(
      `not costed (MorphNet does not model them; their parameters are counted and the widths around them stay fixed): ${opaque.map((l) => `${l.name} (${l.className})`).join(', ')}`,
    );
  }

  const flattened = flat.inlined.length > 0;
  const modelClass: ModelClass = flattened ? 'Model' : config.class_name === 'Sequential' ? 'Sequential' : config.class_name === 'Model' ? 'Model' : 'Functional';
  const cfgName = isJsonObject(config.config) ? config.config.name : undefined;
  const graph: Graph = {
    name: typeof cfgName === 'string' ? cfgName : 'model',
    modelClass,
    layers,
    inputs: flat.inputs,
    outputs: flat.outputs,
    warnings,
    syntheticInput: flat.syntheticInput,
    inlinedModels: flat.inlined,
  };
  return { graph, weightsManifest: manifest, format, modelConfig: config };
}

function withInputShape(flat: FlatModel, shape: readonly number[] | undefined, source: string): FlatModel {
  if (!shape) return flat;
  if (shape.length === 0 || shape.some((d) => !Number.isInteger(d) || d <= 0)) {
    throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `input shape ${JSON.stringify(shape)} must be positive integers, e.g. 224,224,3`);
  }
  if (flat.inputs.length !== 1) {
    throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `${source}: the model has ${flat.inputs.length} inputs; an input shape can only be given to a model with one`);
  }
  const name = flat.inputs[0].layer;
  const declared = flat.layers.find((l) => l.name === name)?.json.config;
  const declaredShape = declared ? (declared.batch_input_shape ?? declared.batch_shape) : undefined;
  if (Array.isArray(declaredShape) && declaredShape.length - 1 !== shape.length) {
    throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `${source}: input shape ${JSON.stringify(shape)} has ${shape.length} dimension(s) but the model's input ${JSON.stringify(declaredShape)} has ${declaredShape.length - 1} besides the batch; give ${declaredShape.length - 1}, e.g. ${declaredShape.slice(1).map((d, i) => (typeof d === 'number' ? d : [224, 224, 3][i] ?? 1)).join(',')}`);
  }
  const layers = flat.layers.map((l) => {
    if (l.name !== name) return l;
    const { batch_shape: _b, input_shape: _i, ...config } = l.json.config;
    return { ...l, json: { ...l.json, config: { ...config, batch_input_shape: [null, ...shape] } } };
  });
  return { ...flat, layers };
}

/** Manifest weights by the layer-name prefix of their names (`lstm/lstm_cell/kernel` → `lstm`...). */
function manifestByLayer(manifest: readonly WeightsGroupJson[] | null): { name: string; shape: number[] }[] {
  if (!manifest) return [];
  return manifest.flatMap((g) => (g && Array.isArray(g.weights) ? g.weights : [])).filter((w) => w && typeof w.name === 'string' && Array.isArray(w.shape)).map((w) => ({ name: w.name.replace(/:\d+$/, ''), shape: w.shape }));
}

function weightSpecs(desc: AnyOpDescriptor, attrs: Record<string, unknown>, inputShapes: readonly Shape[]): WeightSpec[] {
  const roles = desc.weightRoles(attrs);
  const shapes = desc.weightShapes(attrs, inputShapes);
  return roles.map((r: { kind: string }, i: number) => ({ kind: r.kind, shape: shapes[i] }));
}

interface UnknownContext {
  warnings: string[];
  recorded: ReadonlyMap<string, (number | null)[]>;
  manifestWeights: readonly { name: string; shape: number[] }[];
  source: string;
}

function unsupported(source: string, name: string, className: string, why: string, hint: string): MorphError {
  return new MorphError(
    'MORPH_ERR_UNSUPPORTED_LAYER',
    `${source}: layer "${name}" has class ${className}, which ${why}, so the model is refused rather than counted wrong. ${hint}`,
    { layer: name, className },
  );
}

const REPLACE_HINT = 'Replace the layer with a supported one (docs/layers.md lists them)';

function inferShape(p: PendingLayer, inputShapes: Shape[], u: UnknownContext): Shape {
  const name = p.layer.name;
  const className = p.layer.json.class_name;
  const ctx: OpContext = { layer: name, className };
  if (p.desc) {
    if (p.desc.kind !== 'input' && inputShapes.length === 0) {
      throw topologyError(`layer "${name}" (${className}) is called with no inputs`, { layer: name });
    }
    let out: Shape;
    try {
      out = p.desc.outputShape(p.attrs, inputShapes, ctx);
    } catch (err) {
      if (!isUnmodeled(err) || p.calls.length > 0) throw err;
      u.warnings.push(`${(err as Error).message}; counted by TensorFlow.js as a layer MorphNet does not model`);
      p.desc = undefined;
      p.attrs = {};
      return inferShape(p, inputShapes, u);
    }
    if (p.desc.kind !== 'input' && p.calls.length > 0) {
      const first = p.calls[0].inputShapes;
      if (JSON.stringify(first.map((s) => s.slice(1))) !== JSON.stringify(inputShapes.map((s) => s.slice(1)))) {
        throw new MorphError('MORPH_ERR_SHAPE', `layer "${name}" is shared by calls with different input shapes ${first.map(fmt).join(',')} and ${inputShapes.map(fmt).join(',')}`, { layer: name });
      }
    }
    return out;
  }
  if (inputShapes.length === 0) throw unsupported(u.source, name, className, 'is not supported and has no inputs', REPLACE_HINT);
  // A class tfjs knows: tfjs itself computes the output shape and the weights.
  let probed;
  try {
    probed = probeLayer(className, p.layer.json.config, inputShapes);
  } catch (err) {
    throw new MorphError('MORPH_ERR_SHAPE', `layer "${name}" (${className}): TensorFlow.js cannot apply it to inputs ${inputShapes.map(fmt).join(', ')}: ${(err as Error).message}`, { layer: name });
  }
  if (probed) {
    if (p.calls.length === 0) p.opaqueWeights = probed.weights.map((w) => ({ kind: w.kind, shape: w.shape }));
    return probed.outputShape;
  }
  // A class only Keras knows: a Keras 3 file records the shape its consumers saw; a Lambda may
  // declare one. Its weights come from the manifest, or it must have none (Lambda).
  const own = u.manifestWeights.filter((w) => w.name.startsWith(`${p.layer.json.name ?? p.layer.json.config.name}/`));
  const recorded = u.recorded.get(formatRef({ layer: name, nodeIndex: p.calls.length, tensorIndex: 0 }));
  const declared = p.layer.json.config.output_shape;
  let shape: Shape | undefined;
  if (recorded) shape = recorded;
  else if (Array.isArray(declared) && declared.length > 0 && declared.every((d) => typeof d === 'number' && d > 0)) shape = [null, ...(declared as number[])];
  if (!shape) {
    throw unsupported(u.source, name, className, 'neither MorphNet nor TensorFlow.js knows and whose output shape the file does not record', `${REPLACE_HINT}, or save the model with Keras 3, which records the shapes of its layers' outputs`);
  }
  if (own.length === 0 && className !== 'Lambda' && u.manifestWeights.length === 0) {
    throw unsupported(u.source, name, className, 'neither MorphNet nor TensorFlow.js knows, and the file has no weights manifest to count its parameters from', `${REPLACE_HINT}, or give the model as a tfjs model.json with its weightsManifest`);
  }
  if (p.calls.length === 0) p.opaqueWeights = own.map((w) => ({ kind: w.name.slice(w.name.lastIndexOf('/') + 1), shape: w.shape }));
  return shape;
}
