/**
 * The `CostModel` interface that MorphNet's regularizer is written against, and the ops it
 * prices. A cost is a function of an op's alive input and output channel counts; its marginals
 * ∂cost/∂c_in and ∂cost/∂c_out weigh each channel's gamma in the regularizer. FLOPs and
 * parameters live here; the measured-latency model implements the same interface.
 */
import type { ChannelAnalysis, ChannelLayout } from '../graph/channel-groups.ts';
import { layoutOf } from '../graph/channel-groups.ts';
import type { Graph } from '../graph/graph.ts';
import type { Conv2DAttrs, DepthwiseAttrs, SeparableAttrs } from '../graph/layers/conv.ts';
import type { DenseAttrs } from '../graph/layers/dense.ts';

export const VALID_COST_OP_KINDS = ['conv2d', 'depthwise', 'separable', 'dense', 'conv2dtranspose'] as const;
export type CostOpKind = (typeof VALID_COST_OP_KINDS)[number];

/** One weighted op as the cost models see it: its geometry and which channels it reads and writes. */
export interface CostOp {
  readonly layer: string;
  readonly kind: CostOpKind;
  readonly inLayout: ChannelLayout;
  readonly outLayout: ChannelLayout;
  /** Input spatial size (1×1 for dense). */
  readonly inH: number;
  readonly inW: number;
  /** Output spatial size; for dense, the number of positions it is applied at is `outH·outW`. */
  readonly outH: number;
  readonly outW: number;
  readonly kernel: readonly [number, number];
  readonly strides: readonly [number, number];
  readonly padding: 'same' | 'valid';
  readonly depthMultiplier: number;
  /** Conv groups (1 for an ordinary conv). */
  readonly groups: number;
  readonly useBias: boolean;
  readonly activation: string;
  /** How many times the op runs per inference (shared layers run once per call). */
  readonly calls: number;
}

export interface Marginals {
  /** ∂cost/∂c_in at the given counts. */
  readonly dIn: number;
  /** ∂cost/∂c_out at the given counts. */
  readonly dOut: number;
}

export interface CostModel {
  readonly name: string;
  /** Unit of `cost`, e.g. 'FLOPs', 'params', 'ms'. */
  readonly unit: string;
  /**
   * Cost of one op with `cIn` input and `cOut` output channels (per position: a dense layer after
   * Flatten reads `cIn` channels at each of its flattened positions). For depthwise ops only
   * `cIn` matters (`cOut = cIn·multiplier`).
   */
  cost(op: CostOp, cIn: number, cOut: number): number;
  marginals(op: CostOp, cIn: number, cOut: number): Marginals;
}

/** Multiply-accumulates per inference as a function of the channel counts. */
export function opMacs(op: CostOp, cIn: number, cOut: number): number {
  const hw = op.outH * op.outW * op.calls;
  const k = op.kernel[0] * op.kernel[1];
  switch (op.kind) {
    case 'conv2d':
      return (hw * k * cIn * cOut) / op.groups;
    case 'depthwise':
      return hw * k * cIn * op.depthMultiplier;
    case 'separable':
      return hw * (k * cIn * op.depthMultiplier + cIn * op.depthMultiplier * cOut);
    case 'dense':
      return hw * tileOf(op) * cIn * cOut;
    case 'conv2dtranspose':
      // Every input position scatters a kh·kw·c_out block.
      return op.inH * op.inW * op.calls * k * cIn * cOut;
  }
}

function tileOf(op: CostOp): number {
  return op.inLayout.tile;
}

/** FLOPs = 2·MACs, as in the MorphNet paper and its reference implementation. */
export const flopsCostModel: CostModel = {
  name: 'flops',
  unit: 'FLOPs',
  cost: (op, cIn, cOut) => 2 * opMacs(op, cIn, cOut),
  marginals(op, cIn, cOut) {
    // The cost is bilinear in (cIn, cOut), so the marginals are exact differences.
    const dIn = 2 * (opMacs(op, cIn + 1, cOut) - opMacs(op, cIn, cOut));
    const dOut = op.kind === 'depthwise' ? 0 : 2 * (opMacs(op, cIn, cOut + 1) - opMacs(op, cIn, cOut));
    return { dIn, dOut };
  },
};

/** Weight count of an op (kernels and biases; batch-norm parameters are per channel and small). */
export function opParams(op: CostOp, cIn: number, cOut: number): number {
  const k = op.kernel[0] * op.kernel[1];
  switch (op.kind) {
    case 'conv2d':
      return (k * cIn * cOut) / op.groups + (op.useBias ? cOut : 0);
    case 'depthwise':
      return k * cIn * op.depthMultiplier + (op.useBias ? cIn * op.depthMultiplier : 0);
    case 'separable':
      return k * cIn * op.depthMultiplier + cIn * op.depthMultiplier * cOut + (op.useBias ? cOut : 0);
    case 'dense':
      return tileOf(op) * cIn * cOut + (op.useBias ? cOut : 0);
    case 'conv2dtranspose':
      return k * cIn * cOut + (op.useBias ? cOut : 0);
  }
}

export const paramsCostModel: CostModel = {
  name: 'params',
  unit: 'params',
  cost: opParams,
  marginals(op, cIn, cOut) {
    const dIn = opParams(op, cIn + 1, cOut) - opParams(op, cIn, cOut);
    const dOut = op.kind === 'depthwise' ? 0 : opParams(op, cIn, cOut + 1) - opParams(op, cIn, cOut);
    return { dIn, dOut };
  },
};

/** The weighted ops of a graph, in topological order, with their channel layouts. */
export function costOps(graph: Graph, analysis: ChannelAnalysis): CostOp[] {
  const ops: CostOp[] = [];
  for (const layer of graph.layers) {
    if (!(VALID_COST_OP_KINDS as readonly string[]).includes(layer.kind)) continue;
    const call = layer.calls[0];
    const input = call.inputShapes[0];
    const output = call.outputShape;
    const spatial = output.length === 4;
    const a = layer.attrs as unknown as Partial<Conv2DAttrs & DepthwiseAttrs & SeparableAttrs & DenseAttrs>;
    const positions = layer.kind === 'dense' ? (output.slice(1, -1) as number[]).reduce((x, y) => x * y, 1) : 1;
    ops.push({
      layer: layer.name,
      kind: layer.kind as CostOpKind,
      inLayout: layoutOf(analysis, call.inputs[0]),
      outLayout: layoutOf(analysis, { layer: layer.name, nodeIndex: 0, tensorIndex: 0 }),
      inH: spatial && layer.kind !== 'dense' ? (input[1] as number) : 1,
      inW: spatial && layer.kind !== 'dense' ? (input[2] as number) : 1,
      outH: spatial && layer.kind !== 'dense' ? (output[1] as number) : positions,
      outW: spatial && layer.kind !== 'dense' ? (output[2] as number) : 1,
      kernel: a.kernelSize ?? [1, 1],
      strides: a.strides ?? [1, 1],
      padding: a.padding ?? 'valid',
      depthMultiplier: a.depthMultiplier ?? 1,
      groups: a.groups ?? 1,
      useBias: a.useBias ?? true,
      activation: a.activation ?? 'linear',
      calls: layer.calls.length,
    });
  }
  return ops;
}
