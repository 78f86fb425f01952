/**
 * The OpSpecs of a Graph as it runs at inference (see `fusion.ts` for what folds and fuses),
 * deduplicated, and the (cIn, cOut) grid a latency table needs for each.
 *
 * Layers that are free or nearly so at inference (Flatten/Reshape, Dropout, InputLayer) give no
 * spec. A standalone sigmoid, swish or LeakyReLU (or one a conv/dense layer applies itself, which
 * TFLite cannot fuse: `layer#activation`) is its own op, as is a squeeze-and-excitation Multiply
 * by a per-channel gate. Layers the OpSpec kinds do not cover (a standalone batch norm or other
 * activation, ZeroPadding, Cropping, Rescaling, global max pooling, a Multiply of equal shapes,
 * grouped convs, a concat along H or W, a dense over positions) are listed in `skipped` with the
 * reason, so a caller can see what the latency sum leaves out.
 */
import type { ChannelAnalysis } from '../graph/channel-groups.ts';
import type { Graph, GraphLayer } from '../graph/graph.ts';
import { channelsOf } from '../graph/graph.ts';
import type { Conv2DAttrs, Conv2DTransposeAttrs, DepthwiseAttrs, SeparableAttrs } from '../graph/layers/conv.ts';
import type { UpSamplingAttrs } from '../graph/layers/resample.ts';
import type { ConcatAttrs } from '../graph/layers/merge.ts';
import type { GlobalPoolAttrs, PoolAttrs } from '../graph/layers/passthrough.ts';
import { MorphError } from '../errors.ts';
import { activationName, planFusion } from './fusion.ts';
import type { OpSpec } from './op-spec.ts';
import { makeSpec, specKey } from './op-spec.ts';

/** One distinct spec and where the graph uses it. */
export interface GraphOpSpec {
  readonly spec: OpSpec;
  readonly key: string;
  /** Layers (and separable halves, `name#depthwise`/`name#pointwise`) that run this op. */
  readonly layers: readonly string[];
  /** How many times it runs per inference. */
  readonly count: number;
  /** Whether a search may change cIn / cOut (false for the network input, the logits, fixed groups). */
  readonly cInFixed: boolean;
  readonly cOutFixed: boolean;
}

export interface GraphSpecs {
  readonly specs: readonly GraphOpSpec[];
  /** Every op occurrence in execution order: (layer, key). */
  readonly occurrences: readonly { readonly layer: string; readonly key: string }[];
  readonly skipped: readonly { readonly layer: string; readonly reason: string }[];
}

const FREE_KINDS = new Set(['input', 'dropout', 'flatten', 'reshape']);

/** The OpSpec kind of a standalone activation, or null. */
function activationOpKind(name: string): 'sigmoid' | 'swish' | 'leaky_relu' | null {
  const a = name.toLowerCase();
  if (a === 'sigmoid') return 'sigmoid';
  if (a === 'swish' || a === 'silu') return 'swish';
  if (a === 'leakyrelu') return 'leaky_relu';
  return null;
}

/** `[inH, inW]` of an element-wise op's tensor: its H×W, or 1×1 for a rank-2 tensor. */
function plane(shape: GraphLayer['calls'][number]['outputShape']): [number, number] {
  return shape.length === 4 ? [shape[1] as number, shape[2] as number] : [1, 1];
}

function hw(shape: GraphLayer['calls'][number]['outputShape']): [number, number] {
  return [shape[1] as number, shape[2] as number];
}

/**
 * Derives the deduplicated OpSpecs of `graph` at `batch` (default 1).
 * @param analysis optional channel analysis; with it, `cInFixed`/`cOutFixed` say whether the
 *   channels may change width (without it both are false).
 */
export function graphSpecs(graph: Graph, options: { batch?: number; analysis?: ChannelAnalysis } = {}): GraphSpecs {
  const batch = options.batch ?? 1;
  const plan = planFusion(graph);
  const byKey = new Map<string, { spec: OpSpec; layers: string[]; count: number; cInFixed: boolean; cOutFixed: boolean }>();
  const occurrences: { layer: string; key: string }[] = [];
  const skipped: { layer: string; reason: string }[] = [];
  const fixedGroups = new Set<number>();
  const groupOfLayer = new Map<string, number>();
  if (options.analysis) {
    for (const g of options.analysis.groups) {
      if (!g.resizable) fixedGroups.add(g.id);
      for (const l of g.layers) if (!groupOfLayer.has(l)) groupOfLayer.set(l, g.id);
    }
  }
  const fixed = (layerName: string | undefined): boolean => {
    if (!options.analysis || layerName === undefined) return false;
    const g = groupOfLayer.get(layerName);
    return g === undefined || fixedGroups.has(g);
  };

  const add = (layer: string, spec: OpSpec, inLayer: string | undefined, outLayer: string | undefined): void => {
    const key = specKey(spec);
    const entry = byKey.get(key);
    const cInFixed = fixed(inLayer);
    const cOutFixed = spec.kind === 'conv2d' || spec.kind === 'dense' || spec.kind === 'concat' || spec.kind === 'transposeconv' ? fixed(outLayer) : cInFixed;
    if (entry) {
      entry.layers.push(layer);
      entry.count++;
      // A point is fixed only if every use of it is.
      entry.cInFixed &&= cInFixed;
      entry.cOutFixed &&= cOutFixed;
    } else {
      byKey.set(key, { spec, layers: [layer], count: 1, cInFixed, cOutFixed });
    }
    occurrences.push({ layer, key });
  };

  for (const layer of graph.layers) {
    if (plan.absorbed.has(layer.name) || FREE_KINDS.has(layer.kind)) continue;
    const fusion = plan.fusions.get(layer.name);
    const activation = fusion?.activation ?? 'none';
    layer.calls.forEach((call) => {
      const input = call.inputShapes[0];
      const producer = call.inputs[0]?.layer;
      const skip = (reason: string): void => {
        skipped.push({ layer: layer.name, reason });
      };
      /** The activation a weighted layer applies itself when TFLite cannot fuse it (the SE gate's sigmoid). */
      const ownActivation = (): void => {
        const own = String((layer.attrs as { activation?: string }).activation ?? 'linear');
        const kind = activationOpKind(own);
        // Others (a softmax head) stay unpriced, as before: skipping would drop the whole layer's op.
        if (kind === null) return;
        const [inH, inW] = plane(call.outputShape);
        const c = channelsOf(call.outputShape);
        add(`${layer.name}#activation`, makeSpec({ kind, inH, inW, cIn: c, batch }), layer.name, layer.name);
      };
      try {
        switch (layer.kind) {
          case 'conv2d': {
            const a = layer.attrs as unknown as Conv2DAttrs;
            if (a.groups !== 1) return skip(`grouped convolution (groups=${a.groups}) has no OpSpec kind`);
            const [inH, inW] = hw(input);
            add(layer.name, makeSpec({ kind: 'conv2d', inH, inW, cIn: channelsOf(input), cOut: a.filters, kernel: a.kernelSize, stride: a.strides, padding: a.padding, dilation: a.dilationRate, activation, batch }), producer, layer.name);
            return ownActivation();
          }
          case 'depthwise': {
            const a = layer.attrs as unknown as DepthwiseAttrs;
            const [inH, inW] = hw(input);
            const c = channelsOf(input);
            add(layer.name, makeSpec({ kind: 'depthwise', inH, inW, cIn: c, cOut: c * a.depthMultiplier, kernel: a.kernelSize, stride: a.strides, padding: a.padding, dilation: a.dilationRate, activation, batch }), producer, layer.name);
            return ownActivation();
          }
          case 'separable': {
            const a = layer.attrs as unknown as SeparableAttrs;
            const [inH, inW] = hw(input);
            const c = channelsOf(input);
            const dw = makeSpec({ kind: 'depthwise', inH, inW, cIn: c, cOut: c * a.depthMultiplier, kernel: a.kernelSize, stride: a.strides, padding: a.padding, dilation: a.dilationRate, batch });
            add(`${layer.name}#depthwise`, dw, producer, producer);
            const [oh, ow] = hw(call.outputShape);
            add(`${layer.name}#pointwise`, makeSpec({ kind: 'conv2d', inH: oh, inW: ow, cIn: c * a.depthMultiplier, cOut: a.filters, kernel: 1, stride: 1, padding: 'valid', activation, batch }), producer, layer.name);
            return ownActivation();
          }
          case 'dense': {
            if (input.length !== 2) return skip(`dense over a rank-${input.length} input (per position) has no OpSpec kind`);
            add(layer.name, makeSpec({ kind: 'dense', cIn: channelsOf(input), cOut: channelsOf(call.outputShape), activation, batch }), producer, layer.name);
            return ownActivation();
          }
          case 'pool': {
            const a = layer.attrs as unknown as PoolAttrs;
            const [inH, inW] = hw(input);
            add(layer.name, makeSpec({ kind: a.mode === 'max' ? 'maxpool' : 'avgpool', inH, inW, cIn: channelsOf(input), kernel: a.poolSize, stride: a.strides, padding: a.padding, activation, batch }), producer, producer);
            return;
          }
          case 'globalpool': {
            const a = layer.attrs as unknown as GlobalPoolAttrs;
            if (a.mode !== 'avg') return skip('global max pooling has no OpSpec kind');
            const [inH, inW] = hw(input);
            add(layer.name, makeSpec({ kind: 'globalavgpool', inH, inW, cIn: channelsOf(input), activation, batch }), producer, producer);
            return;
          }
          case 'elementwise': {
            if (layer.className === 'Multiply' && call.inputShapes.length === 2) {
              // x · gate, the gate one value per channel ([N, 1, 1, C] or [N, C]).
              const perChannel = (sh: typeof input): boolean => plane(sh)[0] * plane(sh)[1] === 1;
              const big = call.inputShapes.findIndex((sh) => !perChannel(sh));
              if (big < 0 || !perChannel(call.inputShapes[1 - big]) || call.inputShapes[big].length !== 4) return skip('a Multiply other than by a per-channel gate has no OpSpec kind');
              const [inH, inW] = hw(call.inputShapes[big]);
              add(layer.name, makeSpec({ kind: 'mul', inH, inW, cIn: channelsOf(call.outputShape), batch }), call.inputs[big].layer, call.inputs[big].layer);
              return;
            }
            if (layer.className !== 'Add') return skip(`${layer.className} has no OpSpec kind`);
            if (input.length !== 4) return skip(`Add of rank-${input.length} tensors has no OpSpec kind`);
            const [inH, inW] = hw(input);
            add(layer.name, makeSpec({ kind: 'add', inH, inW, cIn: channelsOf(input), numInputs: call.inputs.length, activation, batch }), producer, producer);
            return;
          }
          case 'concat': {
            const a = layer.attrs as unknown as ConcatAttrs;
            const rank = input.length;
            if (rank !== 4 || (a.axis !== -1 && a.axis !== 3)) return skip('a concat along H or W has no OpSpec kind');
            const [inH, inW] = hw(input);
            add(layer.name, makeSpec({ kind: 'concat', inH, inW, cIn: channelsOf(input), cOut: channelsOf(call.outputShape), numInputs: call.inputs.length, activation, batch }), producer, layer.name);
            return;
          }
          case 'activation': {
            const kind = activationOpKind(String((layer.attrs as { activation?: string }).activation ?? ''));
            if (kind === null) return skip(`${layer.className} (${layer.kind}) is not fused into an op and has no OpSpec kind`);
            const [inH, inW] = plane(input);
            add(layer.name, makeSpec({ kind, inH, inW, cIn: channelsOf(input), batch }), producer, producer);
            return;
          }
          case 'conv2dtranspose': {
            const a = layer.attrs as unknown as Conv2DTransposeAttrs;
            if (a.outputPadding !== null) return skip('a Conv2DTranspose with output_padding has no OpSpec kind');
            const own = activationName(a.activation);
            const [inH, inW] = hw(input);
            add(layer.name, makeSpec({ kind: 'transposeconv', inH, inW, cIn: channelsOf(input), cOut: a.filters, kernel: a.kernelSize, stride: a.strides, padding: a.padding, activation: own ?? 'none', batch }), producer, layer.name);
            return own === null ? ownActivation() : undefined;
          }
          case 'upsample': {
            const a = layer.attrs as unknown as UpSamplingAttrs;
            const [inH, inW] = hw(input);
            add(layer.name, makeSpec({ kind: a.interpolation === 'nearest' ? 'upsample_nearest' : 'upsample_bilinear', inH, inW, cIn: channelsOf(input), stride: a.size, batch }), producer, producer);
            return;
          }
          default:
            return skip(`${layer.className} (${layer.kind}) is not fused into an op and has no OpSpec kind`);
        }
      } catch (err) {
        if (err instanceof MorphError && err.code === 'MORPH_ERR_BAD_OP_SPEC') return skip(err.message);
        throw err;
      }
    });
  }
  const specs = [...byKey.entries()].map(([key, e]) => ({ spec: e.spec, key, layers: e.layers, count: e.count, cInFixed: e.cInFixed, cOutFixed: e.cOutFixed }));
  return { specs, occurrences, skipped };
}

export interface GridOptions {
  /** Channel counts are multiples of this (default 8, the expand rounding multiple). */
  readonly step?: number;
  /** At most this many values per axis (default 8); the multiples are thinned evenly. */
  readonly maxPerAxis?: number;
  /** Only the seed's own counts: the points that price this very network, none around it. */
  readonly seedOnly?: boolean;
  /** Largest value as a multiple of the seed's own count (default 1: shrink only). */
  readonly maxScale?: number;
}

/**
 * The channel counts one axis of a table samples: multiples of `step` up to `seed·maxScale`,
 * thinned to `maxPerAxis` values spread evenly (the smallest and largest kept), plus the seed's
 * own count, which is always present so the unshrunk network is priced from a measured point.
 * Why this grid: latency is piecewise linear in a channel count, with steps where the count
 * crosses a SIMD width (4 or 8 lanes), so sampling multiples of 8 lands on the same side of
 * every step and interpolation between samples is smooth; a fixed count per axis keeps a table
 * to at most `(maxPerAxis + 1)²` timings (the seed's count may come on top).
 */
export function axisValues(seed: number, options: GridOptions = {}): number[] {
  const step = options.step ?? 8;
  const maxPer = options.maxPerAxis ?? 8;
  if (options.seedOnly) return [seed];
  const top = Math.floor(seed * (options.maxScale ?? 1));
  if (!Number.isInteger(step) || step < 1) throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `grid step must be a positive integer, got ${step}`);
  if (!Number.isInteger(maxPer) || maxPer < 2) throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `grid maxPerAxis must be an integer ≥ 2, got ${maxPer}`);
  const multiples: number[] = [];
  for (let c = step; c <= top; c += step) multiples.push(c);
  if (multiples.length === 0) multiples.push(Math.min(step, seed));
  let picked = multiples;
  if (multiples.length > maxPer) {
    picked = Array.from({ length: maxPer }, (_, i) => multiples[Math.round((i * (multiples.length - 1)) / (maxPer - 1))]);
  }
  return [...new Set([...picked, seed])].filter((c) => c >= 1).sort((a, b) => a - b);
}

/**
 * The (cIn, cOut) points a table needs for one graph spec. Fixed axes keep the seed's count.
 * Depthwise, pooling, add, mul, activations and upsampling change cIn only (cOut follows); concat
 * varies its first part and keeps the others' total; conv2d, transposeconv and dense vary both.
 */
export function tableGrid(entry: Pick<GraphOpSpec, 'spec' | 'cInFixed' | 'cOutFixed'>, options: GridOptions = {}): { cIn: number; cOut: number }[] {
  const { spec } = entry;
  const ins = entry.cInFixed ? [spec.cIn] : axisValues(spec.cIn, options);
  switch (spec.kind) {
    case 'conv2d':
    case 'transposeconv':
    case 'dense': {
      const outs = entry.cOutFixed ? [spec.cOut] : axisValues(spec.cOut, options);
      return ins.flatMap((cIn) => outs.map((cOut) => ({ cIn, cOut })));
    }
    case 'concat': {
      const rest = spec.cOut - spec.cIn;
      return ins.map((cIn) => ({ cIn, cOut: cIn + rest }));
    }
    case 'depthwise': {
      const m = spec.cOut / spec.cIn;
      return ins.map((cIn) => ({ cIn, cOut: cIn * m }));
    }
    default:
      return ins.map((cIn) => ({ cIn, cOut: cIn }));
  }
}
