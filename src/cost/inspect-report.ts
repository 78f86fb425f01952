/**
 * The facts `morphnet inspect` prints and `GET /api/models/:ref/inspect` returns: every layer
 * (class, output shape, MACs, params, channel group), the channel groups (which may be resized,
 * which MorphNet regularizes) and the network's totals at batch 1.
 */
import { layoutOf, type ChannelAnalysis } from '../graph/channel-groups.ts';
import type { LoadedModel } from '../graph/load.ts';
import { networkCost } from './counts.ts';

/** What the report reads: a loaded (or seed) model and its channel analysis. */
export interface InspectInput extends Pick<LoadedModel, 'path' | 'format' | 'graph' | 'weights'> {
  readonly analysis: ChannelAnalysis;
}

export interface InspectReport {
  readonly model: string;
  readonly format: string;
  readonly modelClass: string;
  /** Number of layers. */
  readonly layers: number;
  readonly macs: number;
  readonly flops: number;
  readonly params: number;
  readonly activationBytes: number;
  readonly inputs: { layer: string; shape: (number | null)[] }[];
  readonly outputs: { layer: string; shape: (number | null)[] }[];
  readonly hasWeights: boolean;
  readonly groups: { id: number; layers: string[]; channels: number; regularized: boolean; resizable: boolean; fixedReasons: string[] }[];
  readonly perLayer: { name: string; className: string; outputShape: (number | null)[]; macs: number; params: number; group: number | number[]; costed: boolean; scope: string[] }[];
  /** Layers MorphNet does not model: their params are in `params`, their MACs are not in `macs`. */
  readonly notCosted: { layer: string; className: string; params: number }[];
  /** Nested models inlined into the flat graph. */
  readonly inlinedModels: string[];
  readonly warnings: string[];
}

/** The report of `m`: its layers, groups and batch-1 totals as `networkCost` counts them (pure). */
export function inspectReport(m: InspectInput): InspectReport {
  const { graph, analysis } = m;
  const cost = networkCost(graph);
  const shapeOf = (layer: string): (number | null)[] => [...graph.layers.find((l) => l.name === layer)!.calls[0].outputShape];
  return {
    model: m.path,
    format: m.format,
    modelClass: graph.modelClass,
    layers: graph.layers.length,
    macs: cost.macs,
    flops: cost.flops,
    params: cost.params,
    activationBytes: cost.activationBytes,
    inputs: graph.inputs.map((r) => ({ layer: r.layer, shape: shapeOf(r.layer) })),
    outputs: graph.outputs.map((r) => ({ layer: r.layer, shape: shapeOf(r.layer) })),
    hasWeights: m.weights !== null,
    groups: analysis.groups.map((g) => ({
      id: g.id,
      layers: [...g.layers],
      channels: g.channels,
      regularized: g.regularized,
      resizable: g.resizable,
      fixedReasons: [...g.fixedReasons],
    })),
    perLayer: graph.layers.map((l, i) => {
      const segs = layoutOf(analysis, { layer: l.name, nodeIndex: 0, tensorIndex: 0 }).segments.map((s) => s.group);
      return {
        name: l.name,
        className: l.className,
        outputShape: [...l.calls[0].outputShape],
        macs: cost.layers[i].macs,
        params: cost.layers[i].params,
        group: segs.length === 1 ? segs[0] : segs,
        costed: cost.layers[i].costed,
        scope: [...l.scope],
      };
    }),
    notCosted: cost.layers.filter((c) => !c.costed).map((c) => ({ layer: c.layer, className: c.className, params: c.params })),
    inlinedModels: [...graph.inlinedModels],
    warnings: [...graph.warnings],
  };
}
