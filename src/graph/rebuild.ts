/**
 * Model surgery: a new network with the widths of a `Selection`. The topology keeps every layer
 * and connection and changes only width fields (`filters`, `units`); the weights keep the
 * selected channels *exactly*, slicing every axis that indexes a changed group (kernels, biases,
 * batch-norm parameters, concat slices, flattened rows), and initialise the fresh ones.
 */
import { MorphError } from '../errors.ts';
import type { ChannelAnalysis, ChannelLayout } from './channel-groups.ts';
import { layoutOf, layoutWidth } from './channel-groups.ts';
import type { Graph, GraphLayer } from './graph.ts';
import { isJsonObject, type JsonObject, type JsonValue, type LayerJson, type ModelConfigJson, type TfjsModelJson } from './keras-json.ts';
import type { AxisRole, WeightInit, WeightRole } from './layers/op.ts';
import { descriptorOf } from './layers/register-all.ts';
import { createRng } from '../util/random.ts';
import { sizeOf, type WeightMap, type WeightTensor } from './weights.ts';
import { tfjsForm, toTfjsConfig } from './tfjs-compat.ts';
import { identitySelection, widthOf, type Selection } from './widths.ts';

export interface RebuildOptions {
  /** Seed for initialising fresh channels (default 1). */
  readonly seed?: number;
}

export interface NamedWeight {
  /** `layerName/kind`, the name tfjs matches on load. */
  readonly name: string;
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

export interface RebuiltModel {
  /** A tfjs `model.json` topology (Keras 2 style, which `tf.loadLayersModel` reads). */
  readonly modelTopology: ModelConfigJson;
  /** Every weight of the new network, in the order tfjs lists them. */
  readonly weights: readonly NamedWeight[];
}

/**
 * Maps each channel of the new layout (one position, then tiled) to its old index, or -1 for a
 * fresh channel.
 */
export function mapLayout(layout: ChannelLayout, analysis: ChannelAnalysis, selection: Selection): Int32Array {
  const block: number[] = [];
  let oldOffset = 0;
  for (const s of layout.segments) {
    const sel = selection[s.group];
    for (const c of sel.keep) for (let r = 0; r < s.repeat; r++) block.push(oldOffset + c * s.repeat + r);
    for (let i = 0; i < sel.add * s.repeat; i++) block.push(-1);
    oldOffset += analysis.groups[s.group].channels * s.repeat;
  }
  const out = new Int32Array(block.length * layout.tile);
  for (let p = 0; p < layout.tile; p++) {
    for (let j = 0; j < block.length; j++) out[p * block.length + j] = block[j] < 0 ? -1 : p * oldOffset + block[j];
  }
  return out;
}

/** Keras's defaults by weight name, for the weights of layers we do not model. */
function opaqueInit(kind: string, shape: readonly number[]): WeightInit {
  const leaf = kind.slice(kind.lastIndexOf('/') + 1);
  if (leaf === 'gamma' || leaf === 'moving_variance' || leaf === 'variance') return 'ones';
  if (shape.length < 2) return 'zeros';
  return 'glorot';
}

function initValue(init: WeightInit, shape: readonly number[], random: () => number): () => number {
  if (init === 'zeros') return () => 0;
  if (init === 'ones') return () => 1;
  // Glorot uniform, with fans as Keras computes them for conv kernels.
  const receptive = shape.slice(0, -2).reduce((a, b) => a * b, 1);
  const fanIn = shape.length >= 2 ? receptive * shape[shape.length - 2] : shape[0];
  const fanOut = shape.length >= 2 ? receptive * shape[shape.length - 1] : shape[0];
  const limit = Math.sqrt(6 / (fanIn + fanOut));
  return () => (random() * 2 - 1) * limit;
}

/** Gathers `old` along the mapped axes; positions mapped to -1 get fresh values. */
export function gatherAxes(
  old: WeightTensor | null,
  baseShape: readonly number[],
  maps: readonly (Int32Array | null)[],
  fresh: () => number,
): WeightTensor {
  const shape = baseShape.map((d, i) => maps[i]?.length ?? d);
  const n = sizeOf(shape);
  const data = new Float32Array(n);
  const oldShape = old?.shape ?? baseShape;
  const oldStrides = oldShape.map((_, i) => oldShape.slice(i + 1).reduce((a, b) => a * b, 1));
  const idx = new Array<number>(shape.length).fill(0);
  for (let flat = 0; flat < n; flat++) {
    let src = 0;
    let isFresh = old === null;
    for (let ax = 0; ax < shape.length && !isFresh; ax++) {
      const m = maps[ax];
      const o = m ? m[idx[ax]] : idx[ax];
      if (o < 0) isFresh = true;
      else src += o * oldStrides[ax];
    }
    data[flat] = isFresh ? fresh() : old!.data[src];
    for (let ax = shape.length - 1; ax >= 0; ax--) {
      if (++idx[ax] < shape[ax]) break;
      idx[ax] = 0;
    }
  }
  return { shape, data };
}

function axisMap(role: AxisRole, inMap: Int32Array | null, midMap: Int32Array | null, outMap: Int32Array): Int32Array | null {
  if (role === 'in') return inMap;
  if (role === 'mid') return midMap;
  if (role === 'out') return outMap;
  return null;
}

function layerWeights(
  layer: GraphLayer,
  analysis: ChannelAnalysis,
  selection: Selection,
  weights: WeightMap | null,
  random: () => number,
): NamedWeight[] {
  const desc = descriptorOf(layer);
  if (!desc) {
    // Unknown layers keep their weights untouched (the analysis fixed the widths around them),
    // or get fresh ones of the shapes tfjs builds them with when the model has none.
    const have = weights?.get(layer.name);
    if (have) return [...have.entries()].map(([kind, t]) => ({ name: `${layer.name}/${kind}`, shape: t.shape, data: t.data }));
    return layer.weights.map((w) => {
      const t = gatherAxes(null, w.shape, w.shape.map(() => null), initValue(opaqueInit(w.kind, w.shape), w.shape, random));
      return { name: `${layer.name}/${w.kind}`, shape: t.shape, data: t.data };
    });
  }
  const roles: readonly WeightRole[] = desc.weightRoles(layer.attrs);
  if (roles.length === 0) return [];
  const call = layer.calls[0];
  const inLayout = layoutOf(analysis, call.inputs[0]);
  const inMap = mapLayout(inLayout, analysis, selection);
  const outMap = mapLayout(layoutOf(analysis, { layer: layer.name, nodeIndex: 0, tensorIndex: 0 }), analysis, selection);
  const multiplier = (layer.attrs as { depthMultiplier?: number }).depthMultiplier ?? 1;
  const midMap = mapLayout({ tile: inLayout.tile, segments: inLayout.segments.map((s) => ({ group: s.group, repeat: s.repeat * multiplier })) }, analysis, selection);
  return roles.map((role, i) => {
    const spec = layer.weights[i];
    const old = weights?.get(layer.name)?.get(role.kind) ?? null;
    const maps = role.roles.map((r) => axisMap(r, inMap, midMap, outMap));
    const newShape = spec.shape.map((d, ax) => maps[ax]?.length ?? d);
    const t = gatherAxes(old, spec.shape, maps, initValue(role.init, newShape, random));
    return { name: `${layer.name}/${role.kind}`, shape: t.shape, data: t.data };
  });
}

function newConfig(layer: GraphLayer, analysis: ChannelAnalysis, selection: Selection): JsonObject {
  const config = toTfjsConfig(layer.raw.config) as JsonObject;
  // An inlined layer may have been renamed (`outer/inner`); tfjs names its weights after config.name.
  config.name = layer.name;
  const desc = descriptorOf(layer);
  const out = layoutOf(analysis, { layer: layer.name, nodeIndex: 0, tensorIndex: 0 });
  if (desc?.widthKey) config[desc.widthKey] = widthOf(selection[out.segments[0].group]);
  if (desc?.withWidth) return desc.withWidth(config, layoutWidth(out, (g) => widthOf(selection[g])));
  return config;
}

/**
 * Fresh weights for every layer of `graph` at its own widths (Glorot-uniform kernels, zero biases,
 * identity batch norms; the layers we do not model by Keras's defaults), as a weight map.
 */
export function initialWeights(graph: Graph, analysis: ChannelAnalysis, seed = 1): WeightMap {
  const random = createRng(seed);
  const selection = identitySelection(analysis);
  const out: WeightMap = new Map();
  for (const layer of graph.layers) {
    const named = layerWeights(layer, analysis, selection, null, random);
    if (named.length === 0) continue;
    out.set(layer.name, new Map(named.map((w) => [w.name.slice(layer.name.length + 1), { shape: w.shape, data: w.data }])));
  }
  return out;
}

/**
 * Builds the new topology and weights. With `weights` null (a topology-only model) every weight
 * is freshly initialised.
 */
export function rebuild(graph: Graph, analysis: ChannelAnalysis, selection: Selection, weights: WeightMap | null, options: RebuildOptions = {}): RebuiltModel {
  if (selection.length !== analysis.groups.length) throw new Error('internal: selection does not match the channel analysis');
  analysis.groups.forEach((g) => {
    const w = widthOf(selection[g.id]);
    if (w <= 0) throw new MorphError('MORPH_ERR_BAD_STRUCTURE', `group ${g.id} (${g.layers.join(', ')}) would have ${w} channels; every layer needs at least one`);
    if (!g.resizable && (w !== g.channels || selection[g.id].keep.some((c, i) => c !== i))) {
      throw new Error(`internal: fixed group ${g.id} was resized`);
    }
  });
  const random = createRng(options.seed ?? 1);
  const layersJson: LayerJson[] = [];
  const outWeights: NamedWeight[] = [];
  for (const layer of graph.layers) {
    const width = layoutWidth(layoutOf(analysis, { layer: layer.name, nodeIndex: 0, tensorIndex: 0 }), (g) => widthOf(selection[g]));
    const form = tfjsForm(layer, newConfig(layer, analysis, selection), layerWeights(layer, analysis, selection, weights, random), width);
    outWeights.push(...form.weights);
    if (graph.modelClass === 'Sequential' && graph.syntheticInput && layer.kind === 'input') continue;
    const json: LayerJson = { class_name: form.className, config: form.config };
    if (graph.modelClass !== 'Sequential') {
      json.name = layer.name;
      json.inbound_nodes = layer.calls.map((c) => c.inputs.map((r) => [r.layer, r.nodeIndex, r.tensorIndex, {}] as [string, number, number, JsonObject]));
    }
    layersJson.push(json);
  }
  const refs = (rs: Graph['inputs']): [string, number, number][] => rs.map((r) => [r.layer, r.nodeIndex, r.tensorIndex]);
  const modelTopology: ModelConfigJson =
    graph.modelClass === 'Sequential'
      ? { class_name: 'Sequential', config: { name: graph.name, layers: layersJson }, keras_version: 'tfjs-layers 4.22.0', backend: 'tensor_flow.js' }
      : {
          class_name: 'Model',
          config: { name: graph.name, layers: layersJson, input_layers: refs(graph.inputs), output_layers: refs(graph.outputs) },
          keras_version: 'tfjs-layers 4.22.0',
          backend: 'tensor_flow.js',
        };
  return { modelTopology, weights: outWeights };
}

/** A complete tfjs model.json object for a rebuilt model whose weights go to one `weights.bin`. */
export function toModelJson(model: RebuiltModel, weightsPath = 'weights.bin', generatedBy = 'morphnet-edge'): TfjsModelJson {
  return {
    format: 'layers-model',
    generatedBy,
    convertedBy: null,
    modelTopology: model.modelTopology,
    weightsManifest: [{ paths: [weightsPath], weights: model.weights.map((w) => ({ name: w.name, shape: [...w.shape], dtype: 'float32' })) }],
  };
}
