/**
 * Static costs of a network at batch 1, from its inferred shapes: multiply-accumulates, FLOPs
 * (2·MACs, the MorphNet paper's convention), parameters (every weight, as tfjs `countParams()`
 * counts them, batch-norm moving statistics included) and activation bytes (float32 outputs).
 */
import type { Graph, GraphLayer } from '../graph/graph.ts';
import { opFor } from '../graph/ops/register-all.ts';

export interface LayerCost {
  readonly layer: string;
  readonly className: string;
  readonly macs: number;
  readonly flops: number;
  readonly params: number;
  /** Bytes of all this layer's outputs at batch 1 in float32. */
  readonly activationBytes: number;
}

export interface NetworkCost {
  readonly layers: readonly LayerCost[];
  readonly macs: number;
  readonly flops: number;
  readonly params: number;
  readonly activationBytes: number;
}

export const BYTES_PER_FLOAT32 = 4;

function elements(shape: readonly (number | null)[]): number {
  return shape.slice(1).reduce<number>((a, d) => a * (d ?? 1), 1);
}

/**
 * @param extraParams parameters of layers we do not understand, by layer name (from the weights
 *   manifest), so that totals still match tfjs when a model has custom layers.
 */
export function layerCost(layer: GraphLayer, extraParams: ReadonlyMap<string, number> = new Map()): LayerCost {
  const desc = opFor(layer.className);
  let macs = 0;
  if (desc) for (const call of layer.calls) macs += desc.macs(layer.attrs, call.inputShapes, call.outputShape);
  const params = desc
    ? layer.weights.reduce((sum, w) => sum + w.shape.reduce((a, b) => a * b, 1), 0)
    : (extraParams.get(layer.name) ?? 0);
  const activationBytes = layer.kind === 'input' ? 0 : layer.calls.reduce((sum, c) => sum + elements(c.outputShape) * BYTES_PER_FLOAT32, 0);
  return { layer: layer.name, className: layer.className, macs, flops: 2 * macs, params, activationBytes };
}

export function networkCost(graph: Graph, extraParams?: ReadonlyMap<string, number>): NetworkCost {
  const layers = graph.layers.map((l) => layerCost(l, extraParams));
  const sum = (k: 'macs' | 'params' | 'activationBytes'): number => layers.reduce((a, l) => a + l[k], 0);
  const macs = sum('macs');
  return { layers, macs, flops: 2 * macs, params: sum('params'), activationBytes: sum('activationBytes') };
}
