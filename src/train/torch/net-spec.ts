/**
 * Our graph IR as the torch worker builds it (src/train/torch/worker.py `Net`): the layers with
 * their typed attributes and weights (tfjs shapes), and the calls in an order where every input
 * comes first. What the worker cannot build is found here, before a process is spawned, and named:
 * `unsupportedLayers` lists each such layer with the reason.
 */
import type { Graph, GraphLayer, TensorRef } from '../../graph/graph.ts';
import type { JsonObject } from '../../graph/keras-json.ts';
import type { OutputKind } from '../step.ts';

/**
 * Activations the worker computes (fused in conv/dense or as a layer): exactly as tfjs does, and
 * for the ones tfjs cannot load ('silu', 'hard_swish' and Keras 3's name for it 'hard_silu'), as
 * Keras does. 'hard_sigmoid' is tfjs's and Keras 2's clip(0.2x + 0.5, 0, 1).
 */
export const TORCH_ACTIVATIONS = [
  'linear',
  'relu',
  'relu6',
  'sigmoid',
  'tanh',
  'softmax',
  'elu',
  'selu',
  'softplus',
  'softsign',
  'swish',
  'silu',
  'hard_sigmoid',
  'hard_swish',
  'hard_silu',
  'gelu',
  'mish',
  'leakyrelu',
  'exponential',
] as const;

export interface SpecLayer {
  readonly name: string;
  readonly kind: GraphLayer['kind'];
  readonly trainable: boolean;
  readonly attrs: Readonly<Record<string, unknown>>;
  readonly weights: readonly { kind: string; shape: readonly number[] }[];
}

export interface SpecCall {
  /** `layer:nodeIndex`. */
  readonly id: string;
  readonly layer: string;
  readonly inputs: readonly string[];
}

export interface NetSpec {
  readonly layers: readonly SpecLayer[];
  /** Every call, each after the calls that produce its inputs. */
  readonly calls: readonly SpecCall[];
  readonly input: string;
  readonly output: string;
  /** `[H, W, C]` of one input image. */
  readonly inputShape: readonly [number, number, number];
  readonly outputKind: OutputKind;
}

export interface UnsupportedLayer {
  readonly layer: string;
  readonly className: string;
  readonly reason: string;
}

const callId = (r: TensorRef): string => `${r.layer}:${r.nodeIndex}`;

function activationOk(name: unknown): boolean {
  return typeof name === 'string' && (TORCH_ACTIVATIONS as readonly string[]).includes(name.toLowerCase());
}

function rawConfig(layer: GraphLayer): JsonObject {
  return (layer.raw.config ?? {}) as JsonObject;
}

function num(v: unknown, fallback: number): number {
  return typeof v === 'number' && Number.isFinite(v) ? v : fallback;
}

/** The worker's attributes of one layer, or the reason it cannot be built. */
function specAttrs(layer: GraphLayer): { attrs: Record<string, unknown> } | { reason: string } {
  const a = layer.attrs as Record<string, unknown>;
  const raw = rawConfig(layer);
  switch (layer.kind) {
    case 'input':
    case 'flatten':
    case 'zeropad':
    case 'pool':
    case 'globalpool':
    case 'elementwise':
    case 'concat':
    case 'upsample':
    case 'crop':
    case 'rescale':
    case 'normalize':
      return { attrs: { ...a } };
    case 'conv2d':
    case 'depthwise':
    case 'separable':
    case 'dense':
    case 'conv2dtranspose':
      if (!activationOk(a.activation)) return { reason: `activation ${JSON.stringify(a.activation)} is not one the torch engine computes (${TORCH_ACTIVATIONS.join(', ')})` };
      return { attrs: { ...a, activation: String(a.activation).toLowerCase() } };
    case 'batchnorm': {
      const axis = a.axis as number;
      if (axis !== -1 && axis !== 3 && axis !== 1) return { reason: `batch norm over axis ${axis}; the torch engine normalises the channel (last) axis` };
      return { attrs: { epsilon: a.epsilon, momentum: num(raw.momentum, 0.99), axis } };
    }
    case 'activation': {
      const name = String(a.activation).toLowerCase();
      if (!activationOk(name)) return { reason: `activation ${JSON.stringify(a.activation)} is not one the torch engine computes (${TORCH_ACTIVATIONS.join(', ')})` };
      if (layer.className === 'ReLU' && (num(raw.negative_slope, 0) !== 0 || num(raw.threshold, 0) !== 0)) return { reason: 'ReLU with a negative_slope or threshold' };
      // The parser reads LeakyReLU's slope (Keras 2 `alpha`, Keras 3 `negative_slope`) and ELU's alpha.
      const alpha = layer.className === 'LeakyReLU' ? num(a.alpha, 0.3) : layer.className === 'ELU' ? num(a.alpha, 1) : undefined;
      const axis = layer.className === 'Softmax' ? num(raw.axis, -1) : -1;
      return { attrs: { activation: name, maxValue: a.maxValue ?? null, axis, ...(alpha !== undefined ? { alpha } : {}) } };
    }
    case 'dropout':
      if (layer.className !== 'Dropout' && layer.className !== 'SpatialDropout2D') return { reason: `${layer.className} is not built by the torch engine` };
      return { attrs: { rate: num(raw.rate, 0), spatial: layer.className === 'SpatialDropout2D' } };
    case 'reshape': {
      const target = a.targetShape as number[];
      if (target.length !== 1 && target.length !== 3) return { reason: `Reshape to rank ${target.length + 1}; the torch engine reshapes to [batch, features] or [batch, H, W, C]` };
      return { attrs: { targetShape: target } };
    }
    case 'unknown':
      return { reason: `layer class ${layer.className} is not understood` };
  }
}

/** The layers of `graph` the torch worker cannot build, with why (empty when it builds them all). */
export function unsupportedLayers(graph: Graph): UnsupportedLayer[] {
  const out: UnsupportedLayer[] = [];
  for (const layer of graph.layers) {
    const r = specAttrs(layer);
    if ('reason' in r) out.push({ layer: layer.name, className: layer.className, reason: r.reason });
  }
  if (graph.inputs.length !== 1 || graph.outputs.length !== 1) out.push({ layer: graph.name, className: 'Model', reason: `the torch engine trains one input and one output; this model has ${graph.inputs.length} and ${graph.outputs.length}` });
  return out;
}

/** The output is probabilities when the last layer ends in a softmax, as `outputKindOf` reads a tfjs model. */
export function graphOutputKind(graph: Graph): OutputKind {
  const last = graph.layers.find((l) => l.name === graph.outputs[0].layer);
  const act = last ? String((last.attrs as { activation?: unknown }).activation ?? '') : '';
  return act.toLowerCase() === 'softmax' || last?.className === 'Softmax' ? 'probabilities' : 'logits';
}

/**
 * The worker's spec of `graph`. Call `unsupportedLayers` first: this throws a plain Error on a layer
 * it cannot express (a caller bug, not a user error).
 */
export function netSpecOf(graph: Graph): NetSpec {
  const layers: SpecLayer[] = graph.layers.map((layer) => {
    const r = specAttrs(layer);
    if ('reason' in r) throw new Error(`internal: netSpecOf on layer ${layer.name}: ${r.reason}`);
    return {
      name: layer.name,
      kind: layer.kind,
      trainable: rawConfig(layer).trainable !== false,
      attrs: r.attrs,
      weights: layer.weights.map((w) => ({ kind: w.kind, shape: [...w.shape] })),
    };
  });
  // Calls in dependency order: a worklist over every (layer, node) until each has its inputs.
  const pending = graph.layers.flatMap((l) => l.calls.map((c, i) => ({ id: `${l.name}:${i}`, layer: l.name, inputs: c.inputs.map(callId) })));
  const done = new Set<string>();
  const calls: SpecCall[] = [];
  while (pending.length > 0) {
    const at = pending.findIndex((c) => c.inputs.every((i) => done.has(i)));
    if (at < 0) throw new Error(`internal: netSpecOf: calls ${pending.map((c) => c.id).join(', ')} wait on inputs that never come`);
    const [c] = pending.splice(at, 1);
    done.add(c.id);
    calls.push(c);
  }
  const inputLayer = graph.layers.find((l) => l.name === graph.inputs[0].layer)!;
  const shape = inputLayer.calls[0].outputShape;
  return {
    layers,
    calls,
    input: callId(graph.inputs[0]),
    output: callId(graph.outputs[0]),
    inputShape: [shape[1] as number, shape[2] as number, shape[3] as number],
    outputKind: graphOutputKind(graph),
  };
}
