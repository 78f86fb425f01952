/**
 * The learned structure as flat JSON `{layerName: channels}`, the reference MorphNet exporter's
 * format: one entry per layer that sets a width (convs, separable convs, dense layers).
 */
import type { ChannelAnalysis } from '../graph/channel-groups.ts';
import { layoutOf } from '../graph/channel-groups.ts';
import type { Graph } from '../graph/graph.ts';
import { descriptorOf } from '../graph/layers/register-all.ts';
import { widthOf, type Selection } from '../graph/widths.ts';

export type Structure = Record<string, number>;

export function structureOf(graph: Graph, analysis: ChannelAnalysis, selection: Selection): Structure {
  const out: Structure = {};
  for (const layer of graph.layers) {
    if (!descriptorOf(layer)?.widthKey) continue;
    const g = layoutOf(analysis, { layer: layer.name, nodeIndex: 0, tensorIndex: 0 }).segments[0].group;
    out[layer.name] = widthOf(selection[g]);
  }
  return out;
}
