/**
 * Weights as named float32 tensors, matched to the graph's layers: decoding a tfjs weights
 * manifest, checking it against the topology, and the canonical order for writing them back.
 */
import { MorphError } from '../errors.ts';
import type { Graph } from './graph.ts';
import type { WeightsGroupJson } from './keras-json.ts';
import type { NamedWeight } from './rebuild.ts';

export interface WeightTensor {
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

/** layer name → weight kind (`kernel`, `gamma`, ...) → tensor. */
export type WeightMap = Map<string, Map<string, WeightTensor>>;

const BYTES: Record<string, number> = { float32: 4, int32: 4 };

/** Either weight form our modules produce (a map by layer and kind, or a `layer/kind` list), by `layer/kind`. */
export function weightsByName(weights: WeightMap | readonly NamedWeight[]): Map<string, WeightTensor> {
  const out = new Map<string, WeightTensor>();
  if (weights instanceof Map) {
    for (const [layer, kinds] of weights) for (const [kind, t] of kinds) out.set(`${layer}/${kind}`, t);
  } else {
    for (const w of weights) out.set(w.name, { shape: w.shape, data: w.data });
  }
  return out;
}

export function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/**
 * Splits a manifest weight name (`block1/conv/kernel:0`) into the layer it belongs to and its kind:
 * the layer named exactly by the prefix; else the longest layer name the name starts with
 * (`lstm/lstm_cell/kernel`: kind `lstm_cell/kernel`); else the longest one the prefix ends with
 * (a scope in front: `sequential_1/conv1/kernel`).
 */
function locate(graph: Graph, name: string): { layer: string; kind: string } | null {
  const clean = name.replace(/:\d+$/, '');
  const cut = clean.lastIndexOf('/');
  if (cut <= 0) return null;
  const prefix = clean.slice(0, cut);
  const kind = clean.slice(cut + 1);
  let head: string | null = null;
  let tail: string | null = null;
  for (const l of graph.layers) {
    if (l.name === prefix) return { layer: l.name, kind };
    if (clean.startsWith(`${l.name}/`) && (head === null || l.name.length > head.length)) head = l.name;
    if (prefix.endsWith(`/${l.name}`) && (tail === null || l.name.length > tail.length)) tail = l.name;
  }
  if (head) return { layer: head, kind: clean.slice(head.length + 1) };
  return tail ? { layer: tail, kind } : null;
}

/**
 * Decodes the manifest's weights from the concatenated bytes of each group's files and checks
 * them against the topology.
 * @param groupBytes one buffer per manifest group (its `paths` read and concatenated in order).
 * @throws MorphError `MORPH_ERR_WEIGHTS_MISMATCH` naming the layer and weight that does not fit.
 */
export function decodeWeights(graph: Graph, manifest: readonly WeightsGroupJson[], groupBytes: readonly Uint8Array[], source: string): WeightMap {
  const map: WeightMap = new Map();
  const mismatch = (message: string, details: Record<string, unknown> = {}): MorphError =>
    new MorphError('MORPH_ERR_WEIGHTS_MISMATCH', `${source}: ${message}`, details);

  manifest.forEach((group, gi) => {
    const bytes = groupBytes[gi];
    let offset = 0;
    for (const spec of group.weights) {
      if (spec.quantization) throw mismatch(`weight "${spec.name}" is quantized; convert the model with float32 weights`, { weight: spec.name });
      const width = BYTES[spec.dtype];
      if (!width) throw mismatch(`weight "${spec.name}" has dtype ${JSON.stringify(spec.dtype)}; only float32 and int32 are supported`, { weight: spec.name });
      if (!Array.isArray(spec.shape) || spec.shape.some((d) => !Number.isInteger(d) || d < 0)) {
        throw mismatch(`weight "${spec.name}" has a malformed shape ${JSON.stringify(spec.shape)}`, { weight: spec.name });
      }
      const n = sizeOf(spec.shape);
      if (offset + n * width > bytes.byteLength) {
        throw mismatch(`the weight files of group ${gi} (${group.paths.join(', ')}) hold ${bytes.byteLength} bytes, fewer than the manifest needs; the .bin files do not belong to this model.json or are truncated`);
      }
      const view = new DataView(bytes.buffer, bytes.byteOffset + offset, n * width);
      const data = new Float32Array(n);
      for (let i = 0; i < n; i++) data[i] = spec.dtype === 'int32' ? view.getInt32(i * 4, true) : view.getFloat32(i * 4, true);
      offset += n * width;
      const where = locate(graph, spec.name);
      if (!where) throw mismatch(`weight "${spec.name}" belongs to no layer of the topology; the weights do not belong to this model`, { weight: spec.name });
      if (!map.has(where.layer)) map.set(where.layer, new Map());
      map.get(where.layer)!.set(where.kind, { shape: [...spec.shape], data });
    }
    if (offset !== bytes.byteLength) {
      throw mismatch(`the weight files of group ${gi} (${group.paths.join(', ')}) hold ${bytes.byteLength} bytes but the manifest describes ${offset}; the .bin files do not belong to this model.json`);
    }
  });

  for (const layer of graph.layers) {
    const have = map.get(layer.name);
    if (layer.kind === 'unknown') {
      // A layer we do not model: tfjs and Keras name its weights differently
      // (`lstm/kernel` vs `lstm/lstm_cell/kernel`), so check the shapes in order, not the names.
      const got = [...(have?.values() ?? [])].map((t) => JSON.stringify(t.shape));
      const want = layer.weights.map((w) => JSON.stringify(w.shape));
      if (got.join() !== want.join()) {
        throw mismatch(`layer "${layer.name}" (${layer.className}) has weights of shapes ${got.join(', ') || 'none'} but tfjs builds it with ${want.join(', ') || 'none'}`, { layer: layer.name });
      }
      continue;
    }
    for (const w of layer.weights) {
      const t = have?.get(w.kind);
      if (!t) throw mismatch(`layer "${layer.name}" needs weight "${w.kind}" of shape ${JSON.stringify(w.shape)}, which the manifest lacks`, { layer: layer.name, weight: w.kind });
      if (JSON.stringify(t.shape) !== JSON.stringify(w.shape)) {
        throw mismatch(`layer "${layer.name}" weight "${w.kind}" has shape ${JSON.stringify(t.shape)} but the topology implies ${JSON.stringify(w.shape)}`, { layer: layer.name, weight: w.kind });
      }
    }
    if (have) {
      const extra = [...have.keys()].filter((k) => !layer.weights.some((w) => w.kind === k));
      if (extra.length > 0) throw mismatch(`layer "${layer.name}" (${layer.className}) has unexpected weights ${extra.join(', ')}`, { layer: layer.name });
    }
  }
  return map;
}
