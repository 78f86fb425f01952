/**
 * Where a network's ops meet the latency tables of one device: which table(s) each weighted op
 * (`CostOp`) reads for the MorphNet regularizer, the whole network's predicted latency at any
 * group widths (for expand, whose target is in measured ms), and the table points a search needs.
 *
 * Everything derives from one `NetworkLatencyPlan`: the OpSpecs of the seed graph as it runs at
 * inference (`graphSpecs`: BN folded, ReLU fused, a SeparableConv2D as `name#depthwise` and
 * `name#pointwise`), each with its c_in and c_out written as a `ChannelLayout` over the channel
 * groups (c = tile · Σ width·repeat). Widths change channel counts only, never a signature (spatial
 * sizes, kernels, fused activations, depth multipliers and input counts stay), so the plan prices
 * any widths without rebuilding the graph, and its locate function serves rebuilt graphs too.
 */
import { MorphError } from '../errors.ts';
import { analyzeChannels, layoutOf, type ChannelAnalysis, type ChannelLayout } from '../graph/channel-groups.ts';
import type { Graph } from '../graph/graph.ts';
import { channelsAt, roundWidth, seedWidths } from '../graph/widths.ts';
import type { SeparableAttrs } from '../graph/layers/conv.ts';
import { axisValues, graphSpecs, type GraphSpecs, type GridOptions } from '../ops/graph-specs.ts';
import { signature, specBytes, specKey, withChannels, type OpSpec } from '../ops/op-spec.ts';
import { applyCalibration, IDENTITY_CALIBRATION, type CalibrationTerms } from './calibration.ts';
import { costOps, type CostOp } from './cost-model.ts';
import { LatencyCostModel, type LatencyCostModelOptions, type LocateTables, type TableRef } from './latency-model.ts';
import type { LatencyTable } from './latency-table.ts';
import type { MissingTable, PredictedOp } from './predict-network.ts';

/** The device's table for a signature (one device and runtime), or undefined when it has none. */
export type TableOf = (signature: string) => LatencyTable | undefined;

export type { CalibrationTerms } from './calibration.ts';

/** One op the network runs, with its channel counts as functions of the group widths. */
export interface PlannedOp {
  /** The op's name as `graphSpecs` gives it: the layer, or `layer#depthwise` / `layer#pointwise`. */
  readonly name: string;
  /** The graph layer that runs it. */
  readonly layer: string;
  readonly signature: string;
  /** The op at the seed's widths. */
  readonly spec: OpSpec;
  /** c_in = tile · Σ width[group]·repeat over this layout; likewise c_out. */
  readonly cIn: ChannelLayout;
  readonly cOut: ChannelLayout;
}

export interface NetworkLatencyPlan {
  readonly analysis: ChannelAnalysis;
  /** Every op occurrence, in execution order (one per call of a shared layer). */
  readonly ops: readonly PlannedOp[];
  /** Layers no OpSpec describes; the prediction leaves them out (see `graphSpecs`). */
  readonly skipped: GraphSpecs['skipped'];
}

export interface PlanOptions {
  /** Batch size of the timed ops (default 1). */
  readonly batch?: number;
}

/** c = tile · Σ width·repeat. */
function countAt(layout: ChannelLayout, widths: ArrayLike<number>): number {
  return layout.tile * channelsAt(layout, widths);
}

function scaled(layout: ChannelLayout, m: number): ChannelLayout {
  return { tile: layout.tile, segments: layout.segments.map((s) => ({ group: s.group, repeat: s.repeat * m })) };
}

function internal(message: string, details: Record<string, unknown> = {}): MorphError {
  return new MorphError('MORPH_ERR_INTERNAL', message, details);
}

/**
 * Derives the plan of `graph` (its OpSpecs with their channel dependence on the groups).
 * @throws MorphError `MORPH_ERR_INTERNAL` if a spec's channels do not follow from the channel
 *   analysis (a bug: the two derivations disagree).
 */
export function planNetworkLatency(graph: Graph, analysis: ChannelAnalysis = analyzeChannels(graph), options: PlanOptions = {}): NetworkLatencyPlan {
  const specs = graphSpecs(graph, { batch: options.batch, analysis });
  const byKey = new Map(specs.specs.map((s) => [s.key, s.spec]));
  // Occurrences per op name, in call order.
  const queues = new Map<string, OpSpec[]>();
  for (const { layer, key } of specs.occurrences) {
    const q = queues.get(layer) ?? [];
    q.push(byKey.get(key) as OpSpec);
    queues.set(layer, q);
  }
  const skippedLayers = new Set(specs.skipped.map((s) => s.layer));
  const seed = seedWidths(analysis);
  const ops: PlannedOp[] = [];
  for (const layer of graph.layers) {
    layer.calls.forEach((call, k) => {
      if (call.inputs.length === 0) return;
      const input = layoutOf(analysis, call.inputs[0]);
      const output = layoutOf(analysis, { layer: layer.name, nodeIndex: k, tensorIndex: 0 });
      let forms: { name: string; cIn: ChannelLayout; cOut: ChannelLayout }[];
      switch (layer.kind) {
        case 'conv2d':
        case 'depthwise':
        case 'dense':
        case 'concat':
        case 'conv2dtranspose':
          forms = [{ name: layer.name, cIn: input, cOut: output }];
          break;
        case 'separable': {
          const mid = scaled(input, (layer.attrs as unknown as SeparableAttrs).depthMultiplier);
          forms = [
            { name: `${layer.name}#depthwise`, cIn: input, cOut: mid },
            { name: `${layer.name}#pointwise`, cIn: mid, cOut: output },
          ];
          break;
        }
        case 'pool':
        case 'globalpool':
        case 'elementwise':
        case 'upsample':
          forms = [{ name: layer.name, cIn: input, cOut: input }];
          break;
        case 'activation':
          // Only a standalone one: a ReLU fused into the op before it has no OpSpec of its own.
          forms = queues.has(layer.name) ? [{ name: layer.name, cIn: input, cOut: input }] : [];
          break;
        default:
          forms = [];
      }
      // The activation a layer applies itself, when it runs as an op of its own (graph-specs.ts).
      if (queues.has(`${layer.name}#activation`)) forms.push({ name: `${layer.name}#activation`, cIn: output, cOut: output });
      for (const f of forms) {
        const spec = queues.get(f.name)?.[0];
        const cIn = countAt(f.cIn, seed);
        const cOut = countAt(f.cOut, seed);
        if (spec && spec.cIn === cIn && spec.cOut === cOut) {
          queues.get(f.name)!.shift();
          ops.push({ name: f.name, layer: layer.name, signature: signature(spec), spec, cIn: f.cIn, cOut: f.cOut });
        } else if (!skippedLayers.has(layer.name)) {
          throw internal(`op ${f.name} (call ${k}): its OpSpec ${spec ? specKey(spec) : '(none)'} does not have the ${cIn}→${cOut} channels the channel analysis gives`, { layer: layer.name });
        }
      }
    });
  }
  const left = [...queues.entries()].filter(([, q]) => q.length > 0).map(([name]) => name);
  if (left.length > 0) throw internal(`ops ${left.join(', ')} have OpSpecs the plan could not place`, { ops: left });
  return { analysis, ops, skipped: specs.skipped };
}

/**
 * The `locate` of a `LatencyCostModel` for the CostOps of `graph` (and of graphs rebuilt from it
 * with other widths: signatures do not depend on widths). CostOp channels are per position
 * (`cost-model.ts`), so: a conv reads its table as is; a depthwise op writes m·c_in (`outMap
 * [m, 0]`, whose c_out does not matter); a SeparableConv2D reads a depthwise table (c_in → m·c_in)
 * and a 1×1 conv table (m·c_in → c_out); a dense layer after Flatten reads tile·c_in features
 * (`inMap [tile, 0]`). `repeat` counts the layer's calls with that signature. Ops without an
 * OpSpec (grouped convs, dense over positions) get `undefined`: the model prices them by FLOPs.
 * @param analysis default `analyzeChannels(graph)`.
 * @throws MorphError `MORPH_ERR_INTERNAL` when the maps would not reproduce the seed's table
 *   channel counts (a bug).
 */
export function locateTables(graph: Graph, analysis: ChannelAnalysis = analyzeChannels(graph), options: PlanOptions = {}): LocateTables {
  return locateFromPlan(planNetworkLatency(graph, analysis, options), costOps(graph, analysis));
}

function locateFromPlan(plan: NetworkLatencyPlan, seedOps: readonly CostOp[]): LocateTables {
  const skipped = new Set(plan.skipped.map((s) => s.layer));
  // Op name → signature → runs.
  const runs = new Map<string, Map<string, number>>();
  for (const op of plan.ops) {
    const bySig = runs.get(op.name) ?? new Map<string, number>();
    bySig.set(op.signature, (bySig.get(op.signature) ?? 0) + 1);
    runs.set(op.name, bySig);
  }
  const refsOf = (op: CostOp, name: string, maps: Pick<TableRef, 'inMap' | 'outMap'>): TableRef[] | undefined => {
    const bySig = runs.get(name);
    if (!bySig) return undefined;
    const refs = [...bySig.entries()].map(([sig, repeat]) => ({ signature: sig, ...maps, repeat }));
    // Some calls without an OpSpec: the tables describe only part of the layer.
    return refs.reduce((n, r) => n + r.repeat, 0) === op.calls ? refs : undefined;
  };
  const locate: LocateTables = (op) => {
    if (skipped.has(op.layer)) return undefined;
    switch (op.kind) {
      case 'conv2d':
      case 'conv2dtranspose':
        return refsOf(op, op.layer, {});
      case 'depthwise':
        return refsOf(op, op.layer, { outMap: [op.depthMultiplier, 0] });
      case 'dense':
        return refsOf(op, op.layer, { inMap: [op.inLayout.tile, 0] });
      case 'separable': {
        const dw = refsOf(op, `${op.layer}#depthwise`, { outMap: [op.depthMultiplier, 0] });
        const pw = refsOf(op, `${op.layer}#pointwise`, { inMap: [op.depthMultiplier, 0] });
        return dw && pw ? [...dw, ...pw] : undefined;
      }
    }
  };
  checkLocate(plan, seedOps, locate);
  return locate;
}

/** Every ref's maps, at the seed's widths, must give the channels of the specs it stands for. */
function checkLocate(plan: NetworkLatencyPlan, seedOps: readonly CostOp[], locate: LocateTables): void {
  const seed = seedWidths(plan.analysis);
  const specsOf = new Map<string, Set<string>>();
  for (const op of plan.ops) {
    const keys = specsOf.get(op.layer) ?? new Set<string>();
    keys.add(specKey(op.spec));
    specsOf.set(op.layer, keys);
  }
  for (const op of seedOps) {
    const r = locate(op);
    if (r === undefined) continue;
    const cIn = channelsAt(op.inLayout, seed);
    const cOut = channelsAt(op.outLayout, seed);
    for (const ref of Array.isArray(r) ? (r as readonly TableRef[]) : [r as TableRef]) {
      const inMap = ref.inMap ?? [1, 0];
      const outMap = ref.outMap ?? [0, 1];
      const key = `${ref.signature}@${inMap[0] * cIn + inMap[1] * cOut}x${outMap[0] * cIn + outMap[1] * cOut}`;
      if (!specsOf.get(op.layer)?.has(key)) throw internal(`layer ${op.layer}: table point ${key} is none of its OpSpecs (${[...(specsOf.get(op.layer) ?? [])].join(', ')})`, { layer: op.layer });
    }
  }
}

/** Options of `latencyCostModel`: those of `LatencyCostModel` less `locate`, which comes from the graph. */
export interface GraphLatencyCostModelOptions extends Omit<LatencyCostModelOptions, 'locate'> {
  /** Default `analyzeChannels(graph)`. */
  readonly analysis?: ChannelAnalysis;
  /** Batch size of the timed ops (default 1). */
  readonly batch?: number;
}

/** `new LatencyCostModel({ ...options, locate: locateTables(graph, analysis) })`. */
export function latencyCostModel(graph: Graph, options: GraphLatencyCostModelOptions): LatencyCostModel {
  const { analysis, batch, ...rest } = options;
  return new LatencyCostModel({ ...rest, locate: locateTables(graph, analysis ?? analyzeChannels(graph), { batch }) });
}

/** One op's latency at some widths. */
export interface PlannedOpLatency extends PredictedOp {
  /** The op's name (layer, or `layer#depthwise` / `layer#pointwise`). */
  readonly name: string;
}

export interface NetworkLatency {
  /** The calibrated prediction (`applyCalibration`; sumOpsMs without a calibration), ms. */
  readonly predictedMs: number;
  /** Σ of the ops' table latencies, ms. */
  readonly sumOpsMs: number;
  readonly nOps: number;
  readonly ops: readonly PlannedOpLatency[];
}

function checkWidths(analysis: ChannelAnalysis, widths: ArrayLike<number>): void {
  if (widths.length !== analysis.groups.length) {
    throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `widths has ${widths.length} entries; the network has ${analysis.groups.length} channel groups (one width each)`);
  }
  const problems: string[] = [];
  for (const g of analysis.groups) {
    const w = widths[g.id];
    if (!Number.isInteger(w) || w < 1) problems.push(`group ${g.id} (${g.layers[0] ?? '?'}): ${w} is not a positive integer`);
    else if (!g.resizable && w !== g.channels) problems.push(`group ${g.id} (${g.layers[0] ?? '?'}) is fixed at ${g.channels} channels, got ${w}`);
  }
  if (problems.length > 0) {
    throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `bad group widths: ${problems.slice(0, 8).join('; ')}${problems.length > 8 ? `; and ${problems.length - 8} more` : ''}`, { problems });
  }
}

/**
 * The whole network's predicted latency at `widths` (one per channel group; fixed groups at their
 * own width): every op the network runs, weighted or not (pooling, global pooling, add, concat),
 * at the channel counts the widths give, then the calibration — the same sum, in the same order,
 * as `predictNetwork` on the graph rebuilt at those widths (a measured point predicts itself).
 * @throws MorphError `MORPH_ERR_BAD_ARGUMENT` for widths of the wrong length, non-integer, or
 *   changing a fixed group; `MORPH_ERR_MISSING_OPS` when a signature has no table, with every
 *   such signature and the (cIn, cOut) points needed in `details.missing` (a `MissingTable[]`).
 */
export function networkLatencyAt(plan: NetworkLatencyPlan, widths: ArrayLike<number>, tableOf: TableOf, calibration?: CalibrationTerms): NetworkLatency {
  checkWidths(plan.analysis, widths);
  const missing = new Map<string, { points: Map<string, { cIn: number; cOut: number }>; layers: Set<string> }>();
  const ops: PlannedOpLatency[] = [];
  let sumOpsMs = 0;
  let ioMB = 0;
  let weightMB = 0;
  for (const op of plan.ops) {
    const cIn = countAt(op.cIn, widths);
    const cOut = countAt(op.cOut, widths);
    const table = tableOf(op.signature);
    if (!table) {
      const m = missing.get(op.signature) ?? { points: new Map(), layers: new Set() };
      m.points.set(`${cIn}x${cOut}`, { cIn, cOut });
      m.layers.add(op.name);
      missing.set(op.signature, m);
      continue;
    }
    const e = table.estimate(cIn, cOut);
    const tableMs = table.measured(cIn, cOut) ?? e.ms;
    sumOpsMs += tableMs;
    const bytes = specBytes(withChannels(op.spec, cIn, cOut));
    ioMB += bytes.ioMB;
    weightMB += bytes.weightMB;
    ops.push({ name: op.name, key: `${op.signature}@${cIn}x${cOut}`, signature: op.signature, cIn, cOut, tableMs, extrapolated: e.extrapolated, ...bytes });
  }
  if (missing.size > 0) {
    const list: MissingTable[] = [...missing.entries()].map(([sig, m]) => ({ signature: sig, points: [...m.points.values()], layers: [...m.layers] }));
    const shown = list.slice(0, 5).map((m) => `${m.signature} at ${m.points.map((p) => `(${p.cIn}, ${p.cOut})`).join(', ')}`);
    throw new MorphError(
      'MORPH_ERR_MISSING_OPS',
      `no latency table for ${list.length} op signature(s): ${shown.join('; ')}${list.length > 5 ? `; and ${list.length - 5} more` : ''}; profile them on this device and runtime first`,
      { missing: list },
    );
  }
  const nOps = ops.length;
  return { predictedMs: applyCalibration(calibration ?? IDENTITY_CALIBRATION, { sumOpsMs, nOps, ioMB, weightMB }), sumOpsMs, nOps, ops };
}

/** One table point to measure: the op at (cIn, cOut), ready for a profile job. */
export interface RequiredPoint {
  readonly signature: string;
  readonly cIn: number;
  readonly cOut: number;
  readonly spec: OpSpec;
}

export interface RequiredPointsOptions extends GridOptions, PlanOptions {}

/**
 * Every (signature, cIn, cOut) a search of `graph` may price on a device, as OpSpecs, unique,
 * sorted by signature then channels. Per op, each channel count that depends on a regularized
 * group samples `axisValues` (multiples of `step` up to the seed's count, thinned, plus the seed's
 * own count) of its per-position count, times its tile, plus the count at the seed's widths
 * rounded to `step` where that is larger (expand's rounding reaches it at ω ≤ 1); others keep the
 * seed's count. The shape
 * follows `tableGrid` (conv2d/dense: a grid; depthwise, pooling, add: c_out from c_in), but which
 * axes vary comes from the channel groups themselves: `graphSpecs` marks an axis fixed when its
 * producer layer is no group member (a Flatten, a Concatenate, a depthwise with multiplier > 1),
 * so `tableGrid` alone would never sample a dense after Flatten below the seed's input width, and
 * it varies a concat's first input only, while a search changes every input.
 * @param analysis default `analyzeChannels(graph)`.
 */
export function requiredPoints(graph: Graph, analysis: ChannelAnalysis = analyzeChannels(graph), options: RequiredPointsOptions = {}): RequiredPoint[] {
  const plan = planNetworkLatency(graph, analysis, options);
  const seed = seedWidths(analysis);
  const varies = (l: ChannelLayout): boolean => l.segments.some((s) => analysis.groups[s.group].regularized);
  const step = options.step ?? 8;
  const axis = (l: ChannelLayout): number[] => {
    const own = countAt(l, seed);
    if (!varies(l)) return [own];
    const values = axisValues(channelsAt(l, seed), options).map((v) => v * l.tile);
    // Rounding to the divisor may put a group above its seed width (12 → 16) even at ω ≤ 1.
    const rounded = l.tile * l.segments.reduce((n, s) => n + s.repeat * (analysis.groups[s.group].regularized ? roundWidth(seed[s.group], step) : seed[s.group]), 0);
    if (!options.seedOnly && rounded > own) values.push(rounded);
    return values;
  };
  const wanted = new Map<string, RequiredPoint>();
  const want = (op: PlannedOp, cIn: number, cOut: number): void => {
    const spec = withChannels(op.spec, cIn, cOut);
    wanted.set(specKey(spec), { signature: op.signature, cIn: spec.cIn, cOut: spec.cOut, spec });
  };
  for (const op of plan.ops) {
    const { spec } = op;
    const ins = axis(op.cIn);
    switch (spec.kind) {
      case 'conv2d':
      case 'dense': {
        const outs = axis(op.cOut);
        for (const cIn of ins) for (const cOut of outs) want(op, cIn, cOut);
        break;
      }
      case 'concat': {
        const n = op.cIn.segments.length;
        const prefix = op.cIn.tile === 1 && op.cOut.tile === 1 && op.cIn.segments.every((s, i) => op.cOut.segments[i]?.group === s.group && op.cOut.segments[i].repeat === s.repeat);
        if (prefix) {
          // The output is the inputs' segments in order: the rest are the other inputs.
          const rests = axis({ tile: 1, segments: op.cOut.segments.slice(n) });
          for (const cIn of ins) for (const rest of rests) if (rest >= spec.numInputs - 1) want(op, cIn, cIn + rest);
        } else {
          for (const cIn of ins) for (const cOut of axis(op.cOut)) if (cOut >= cIn + spec.numInputs - 1) want(op, cIn, cOut);
        }
        break;
      }
      default:
        // depthwise (c_out = m·c_in), pooling, global pooling, add: c_out follows c_in.
        for (const cIn of ins) want(op, cIn, cIn);
    }
  }
  return [...wanted.values()].sort((a, b) => (a.signature < b.signature ? -1 : a.signature > b.signature ? 1 : a.cIn - b.cIn || a.cOut - b.cOut));
}
