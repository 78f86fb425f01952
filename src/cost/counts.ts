/**
 * Static costs of a network at batch 1, from its inferred shapes: multiply-accumulates, FLOPs
 * (2·MACs, the MorphNet paper's convention), parameters (every weight, as tfjs `countParams()`
 * counts them, batch-norm moving statistics included) and activation bytes (float32 outputs).
 */
import type { Graph, GraphLayer } from '../graph/graph.ts';
import { descriptorOf } from '../graph/layers/register-all.ts';

export interface LayerCost {
  readonly layer: string;
  readonly className: string;
  readonly macs: number;
  readonly flops: number;
  readonly params: number;
  /** Bytes of all this layer's outputs at batch 1 in float32. */
  readonly activationBytes: number;
  /** False for a layer MorphNet does not model: its params count, its MACs are not known (0 here). */
  readonly costed: boolean;
}

export interface NetworkCost {
  readonly layers: readonly LayerCost[];
  readonly macs: number;
  readonly flops: number;
  readonly params: number;
  readonly activationBytes: number;
  /** Layers whose MACs are not counted (see `LayerCost.costed`), listed so that no total is silently short. */
  readonly notCosted: readonly string[];
}

export const BYTES_PER_FLOAT32 = 4;

function elements(shape: readonly (number | null)[]): number {
  return shape.slice(1).reduce<number>((a, d) => a * (d ?? 1), 1);
}

/** Every layer's params count, including those of layers we do not model (their weights come from tfjs). */
export function layerCost(layer: GraphLayer): LayerCost {
  const desc = descriptorOf(layer);
  let macs = 0;
  if (desc) for (const call of layer.calls) macs += desc.macs(layer.attrs, call.inputShapes, call.outputShape);
  const params = layer.weights.reduce((sum, w) => sum + w.shape.reduce((a, b) => a * b, 1), 0);
  const activationBytes = layer.kind === 'input' ? 0 : layer.calls.reduce((sum, c) => sum + elements(c.outputShape) * BYTES_PER_FLOAT32, 0);
  return { layer: layer.name, className: layer.className, macs, flops: 2 * macs, params, activationBytes, costed: desc !== undefined };
}

export function networkCost(graph: Graph): NetworkCost {
  const layers = graph.layers.map((l) => layerCost(l));
  const sum = (k: 'macs' | 'params' | 'activationBytes'): number => layers.reduce((a, l) => a + l[k], 0);
  const macs = sum('macs');
  return { layers, macs, flops: 2 * macs, params: sum('params'), activationBytes: sum('activationBytes'), notCosted: layers.filter((l) => !l.costed).map((l) => l.layer) };
}
