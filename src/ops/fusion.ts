/**
 * The deployment view of a graph: which batch norms fold into the conv/dense before them and
 * which ReLU/ReLU6 layers fuse into the op before them, as TFLite (and the tfjs fused kernels)
 * run them. Shared by the OpSpec derivation and the `.tflite` network writer, so both see the
 * same ops.
 *
 * Rules (each absorbed layer must be the only consumer of its producer's output, have a single
 * call, and its input must not be a network output):
 * - conv2d (groups 1), depthwise, separable, dense whose own activation is linear: a directly
 *   following BatchNormalization folds in; then a directly following relu/relu6 fuses.
 * - the same layers with own activation relu/relu6: fused as is; nothing after them folds.
 * - pooling, global pooling, Add and Concatenate: a directly following relu/relu6 fuses.
 */
import type { Graph, GraphLayer, TensorRef } from '../graph/graph.ts';
import { formatRef } from '../graph/graph.ts';
import type { ActivationAttrs } from '../graph/layers/passthrough.ts';
import type { FusedActivation } from './op-spec.ts';

export interface Fusion {
  /** The batch norm folded into this op, if any. */
  readonly batchNorm: string | null;
  readonly activation: FusedActivation;
  /** The activation layer fused into this op, if any (null when it is the op's own activation). */
  readonly activationLayer: string | null;
  /** The tensor whose value this op's output now stands for (the last absorbed layer's output). */
  readonly output: TensorRef;
}

export interface FusionPlan {
  /** Per fused op (layer name). Ops with nothing absorbed and their own activation are listed too. */
  readonly fusions: ReadonlyMap<string, Fusion>;
  /** Layers absorbed into another op. */
  readonly absorbed: ReadonlySet<string>;
}

const WEIGHTED = new Set(['conv2d', 'depthwise', 'separable', 'dense']);
const ACT_ONLY = new Set(['pool', 'globalpool', 'elementwise', 'concat']);

/** relu / relu6 for an Activation/ReLU layer or an activation name, else null. */
export function fusableActivation(layer: GraphLayer): FusedActivation | null {
  if (layer.kind !== 'activation') return null;
  const a = layer.attrs as unknown as ActivationAttrs;
  if (a.activation === 'relu') return a.maxValue === null ? 'relu' : a.maxValue === 6 ? 'relu6' : null;
  if (a.activation === 'relu6') return 'relu6';
  return null;
}

export function activationName(name: string): FusedActivation | null {
  if (name === 'linear' || name === 'none') return 'none';
  if (name === 'relu' || name === 'relu6') return name;
  return null;
}

/** Consumers of every tensor: `formatRef` → the layers (with call index) that read it. */
export function consumersOf(graph: Graph): Map<string, { layer: GraphLayer; call: number }[]> {
  const out = new Map<string, { layer: GraphLayer; call: number }[]>();
  for (const layer of graph.layers) {
    layer.calls.forEach((call, ci) => {
      for (const input of call.inputs) {
        const key = formatRef(input);
        if (!out.has(key)) out.set(key, []);
        out.get(key)!.push({ layer, call: ci });
      }
    });
  }
  return out;
}

export function planFusion(graph: Graph): FusionPlan {
  const consumers = consumersOf(graph);
  const outputs = new Set(graph.outputs.map(formatRef));
  const fusions = new Map<string, Fusion>();
  const absorbed = new Set<string>();
  const soleNext = (ref: TensorRef): GraphLayer | null => {
    const key = formatRef(ref);
    if (outputs.has(key)) return null;
    const list = consumers.get(key) ?? [];
    if (list.length !== 1 || list[0].layer.calls.length !== 1) return null;
    return list[0].layer;
  };

  for (const layer of graph.layers) {
    if (absorbed.has(layer.name) || layer.calls.length !== 1) continue;
    const weighted = WEIGHTED.has(layer.kind) && !(layer.kind === 'conv2d' && (layer.attrs as { groups?: number }).groups !== 1);
    if (!weighted && !ACT_ONLY.has(layer.kind)) continue;
    let output: TensorRef = { layer: layer.name, nodeIndex: 0, tensorIndex: 0 };
    let batchNorm: string | null = null;
    let activation: FusedActivation = 'none';
    let activationLayer: string | null = null;
    const own = weighted ? activationName(String((layer.attrs as { activation?: string }).activation ?? 'linear')) : 'none';
    if (own === null) {
      // A non-fusable own activation (softmax, sigmoid, …) runs as its own op after this one.
      fusions.set(layer.name, { batchNorm, activation, activationLayer, output });
      continue;
    }
    activation = own;
    if (own === 'none') {
      if (weighted) {
        const next = soleNext(output);
        if (next && next.kind === 'batchnorm') {
          batchNorm = next.name;
          absorbed.add(next.name);
          output = { layer: next.name, nodeIndex: 0, tensorIndex: 0 };
        }
      }
      const next = soleNext(output);
      const fused = next ? fusableActivation(next) : null;
      if (next && fused) {
        activation = fused;
        activationLayer = next.name;
        absorbed.add(next.name);
        output = { layer: next.name, nodeIndex: 0, tensorIndex: 0 };
      }
    }
    fusions.set(layer.name, { batchNorm, activation, activationLayer, output });
  }
  return { fusions, absorbed };
}
