/**
 * The three ways to choose new widths for a network's channel groups: a uniform multiplier, an
 * explicit `{layer: channels}` structure (the reference exporter's format), and the alive
 * channels of a trained network (|γ| above a threshold). Each yields a `Selection`: per group,
 * which old channels to keep, in order, and how many fresh ones to append.
 */
import { MorphError } from '../errors.ts';
import type { ChannelAnalysis, ChannelLayout } from './channel-groups.ts';
import { layoutOf } from './channel-groups.ts';
import { groupMaxAbs, planGammas } from './gamma-plan.ts';
import type { Graph } from './graph.ts';
import type { WeightMap } from './weights.ts';

export interface GroupSelection {
  readonly keep: readonly number[];
  readonly add: number;
}

/** Indexed by group id. */
export type Selection = readonly GroupSelection[];

export function widthOf(s: GroupSelection): number {
  return s.keep.length + s.add;
}

function firstK(old: number, width: number): GroupSelection {
  const k = Math.min(old, width);
  return { keep: Array.from({ length: k }, (_, i) => i), add: width - k };
}

/** Each group at the given width, keeping its first channels (and appending fresh ones). */
export function selectionFromWidths(analysis: ChannelAnalysis, widths: readonly number[]): Selection {
  return analysis.groups.map((g) => firstK(g.channels, widths[g.id]));
}

export function identitySelection(analysis: ChannelAnalysis): Selection {
  return analysis.groups.map((g) => firstK(g.channels, g.channels));
}

/**
 * Scales every resizable group by `multiplier`, rounding to the nearest multiple of `divisor`
 * (default 1), never below `divisor`. Keeps the first channels when shrinking.
 */
export function uniformSelection(analysis: ChannelAnalysis, multiplier: number, divisor = 1): Selection {
  if (!Number.isFinite(multiplier) || multiplier <= 0) {
    throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `multiplier ${multiplier} must be a positive number, e.g. 0.5 or 1.25`);
  }
  return analysis.groups.map((g) => (g.resizable ? firstK(g.channels, roundWidth(g.channels * multiplier, divisor)) : firstK(g.channels, g.channels)));
}

export function roundWidth(width: number, divisor = 1): number {
  return Math.max(divisor, Math.round(width / divisor) * divisor);
}

/** Channels of one position of a layout, at the given group widths. */
export function channelsAt(layout: ChannelLayout, widths: ArrayLike<number>): number {
  let c = 0;
  for (const s of layout.segments) c += widths[s.group] * s.repeat;
  return c;
}

/** Every group at its own (the seed's) channel count. */
export function seedWidths(analysis: ChannelAnalysis): number[] {
  return analysis.groups.map((g) => g.channels);
}

/**
 * Widths from a structure `{layerName: channels}`. Layers not named keep their width.
 * @throws MorphError `MORPH_ERR_BAD_STRUCTURE` for unknown layers, non-positive widths, layers
 *   whose channels are not one group, fixed groups, and conflicting widths within one group.
 */
export function structureSelection(graph: Graph, analysis: ChannelAnalysis, structure: unknown, source = 'structure'): Selection {
  const bad = (message: string, details: Record<string, unknown> = {}): MorphError =>
    new MorphError('MORPH_ERR_BAD_STRUCTURE', `${source}: ${message}`, details);
  if (typeof structure !== 'object' || structure === null || Array.isArray(structure)) {
    throw bad('must be a JSON object mapping layer names to channel counts, e.g. {"conv1": 12}');
  }
  const entries = Object.entries(structure as Record<string, unknown>);
  const unknown = entries.filter(([name]) => !graph.layers.some((l) => l.name === name)).map(([n]) => n);
  if (unknown.length > 0) {
    throw bad(`unknown layer names ${unknown.map((n) => JSON.stringify(n)).join(', ')}; run "morphnet inspect" to list the layers and their groups`, { layers: unknown });
  }
  const badWidths = entries.filter(([, w]) => typeof w !== 'number' || !Number.isInteger(w) || w <= 0);
  if (badWidths.length > 0) {
    throw bad(`widths must be positive integers: ${badWidths.map(([n, w]) => `${n}=${JSON.stringify(w)}`).join(', ')}`, { layers: badWidths.map(([n]) => n) });
  }
  const wanted = new Map<number, { width: number; layer: string }>();
  for (const [name, w] of entries as [string, number][]) {
    const layout = layoutOf(analysis, { layer: name, nodeIndex: 0, tensorIndex: 0 });
    if (layout.tile !== 1 || layout.segments.length !== 1 || layout.segments[0].repeat !== 1) {
      throw bad(`layer "${name}" outputs channels of several groups (a concatenation, a depthwise multiplier or a flatten); set the widths of the layers that produce them instead`, { layer: name });
    }
    const g = analysis.groups[layout.segments[0].group];
    if (!g.resizable && w !== g.channels) {
      throw bad(`layer "${name}" has ${g.channels} channels that cannot change (${g.fixedReasons.join('; ')}); leave it out of the structure`, { layer: name });
    }
    const prev = wanted.get(g.id);
    if (prev && prev.width !== w) {
      throw bad(
        `layers "${prev.layer}" (${prev.width}) and "${name}" (${w}) must have equal widths because they share channel group ${g.id} (${g.layers.join(', ')}); give them one value`,
        { layers: [prev.layer, name], group: g.id },
      );
    }
    wanted.set(g.id, { width: w, layer: name });
  }
  return analysis.groups.map((g) => firstK(g.channels, wanted.get(g.id)?.width ?? g.channels));
}

/**
 * The max |γ| of each channel of each regularized group over every batch norm that covers it
 * (DESIGN: a group's gamma is the max over its members). Other groups get an empty array.
 */
export function groupGammas(graph: Graph, analysis: ChannelAnalysis, weights: WeightMap): Float32Array[] {
  return groupMaxAbs(planGammas(graph, analysis), (layer) => weights.get(layer)?.get('gamma')?.data);
}

export interface AliveResult {
  readonly selection: Selection;
  /** Per group: channels before and alive after. */
  readonly alive: readonly { group: number; layers: readonly string[]; channels: number; alive: number; regularized: boolean }[];
  readonly warnings: readonly string[];
}

/**
 * Keeps, in every regularized group, the channels whose max |γ| exceeds `threshold`; other groups
 * keep all channels. A group left with nothing keeps its single largest channel, because a layer
 * with zero channels would disconnect the network.
 */
export function aliveSelection(graph: Graph, analysis: ChannelAnalysis, weights: WeightMap, threshold: number): AliveResult {
  return aliveFromGammas(analysis, groupGammas(graph, analysis, weights), threshold);
}

/**
 * The alive rule on group gammas (max |γ| per channel), shared by pruning and by the shrink
 * phase's alive counts: channels of regularized groups above `threshold`; a group left with
 * nothing keeps its largest channel.
 */
export function aliveFromGammas(analysis: ChannelAnalysis, gammas: readonly ArrayLike<number>[], threshold: number): AliveResult {
  if (!Number.isFinite(threshold) || threshold < 0) {
    throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `threshold ${threshold} must be a non-negative number, e.g. 0.01`);
  }
  const warnings: string[] = [];
  const selection = analysis.groups.map((g) => {
    const gam = gammas[g.id];
    if (!g.regularized || gam.length === 0) return firstK(g.channels, g.channels);
    let keep = Array.from({ length: gam.length }, (_, c) => c).filter((c) => gam[c] > threshold);
    if (keep.length === 0) {
      let best = 0;
      for (let c = 1; c < gam.length; c++) if (gam[c] > gam[best]) best = c;
      keep = [best];
      warnings.push(`group ${g.id} (${g.layers[0]}) has no channel with |gamma| > ${threshold}; kept its largest one so the network stays connected`);
    }
    return { keep, add: 0 };
  });
  const alive = analysis.groups.map((g) => ({ group: g.id, layers: g.layers, channels: g.channels, alive: widthOf(selection[g.id]), regularized: g.regularized }));
  return { selection, alive, warnings };
}
