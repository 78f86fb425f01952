/**
 * Channel analysis: which channels of the network must keep equal widths (a group), which groups
 * may change width at all, and where each group's channels sit inside every tensor.
 *
 * A union-find over channel equalities, as Torch-Pruning's dependency graph does, minus the
 * mutation: element-wise merges tie their operands' groups; batch norm, activations, pooling and
 * depthwise convs pass channels through; Concatenate's output is the list of its inputs' groups
 * (slices, not a new group); convs and dense layers start new groups. A tensor's channels are a
 * `ChannelLayout`: segments of whole groups, each channel possibly repeated (depthwise
 * multiplier), the whole possibly tiled over positions (after Flatten).
 */
import type { Graph, GraphLayer, TensorRef } from './graph.ts';
import { channelsOf, formatRef } from './graph.ts';
import type { BatchNormAttrs } from './layers/batch-norm.ts';
import type { ChannelRule } from './layers/op.ts';
import { descriptorOf } from './layers/register-all.ts';

/** `repeat` consecutive tensor channels per group channel: group channel c ↦ c·repeat + r. */
export interface Segment {
  readonly group: number;
  readonly repeat: number;
}

/**
 * The channels of a tensor at one position are the segments in order; a flattened tensor repeats
 * that block `tile` times (position p, channel j ↦ p·width + j).
 */
export interface ChannelLayout {
  readonly tile: number;
  readonly segments: readonly Segment[];
}

export interface ChannelGroup {
  readonly id: number;
  readonly channels: number;
  /** Layers whose output channels are exactly this group (producer first, then pass-throughs). */
  readonly layers: readonly string[];
  /** May this group change width? False for the network input, the final output, boundaries. */
  readonly resizable: boolean;
  /** Resizable and has at least one batch-norm gamma to regularize. */
  readonly regularized: boolean;
  /** Why the group is fixed (empty when resizable). */
  readonly fixedReasons: readonly string[];
  /** Batch-norm layers whose gammas cover (part of) this group. */
  readonly gammaLayers: readonly string[];
}

export interface ChannelAnalysis {
  readonly groups: readonly ChannelGroup[];
  /** Layout of the output of every call, keyed by `formatRef` of the tensor. */
  readonly layouts: ReadonlyMap<string, ChannelLayout>;
}

class UnionFind {
  #parent: number[] = [];

  add(): number {
    this.#parent.push(this.#parent.length);
    return this.#parent.length - 1;
  }

  find(x: number): number {
    let root = x;
    while (this.#parent[root] !== root) root = this.#parent[root];
    while (this.#parent[x] !== root) {
      const next = this.#parent[x];
      this.#parent[x] = root;
      x = next;
    }
    return root;
  }

  union(a: number, b: number): number {
    const ra = this.find(a);
    const rb = this.find(b);
    // Keep the older id as the root so groups are numbered in the order they first appear.
    if (ra !== rb) this.#parent[Math.max(ra, rb)] = Math.min(ra, rb);
    return Math.min(ra, rb);
  }
}

interface RawGroup {
  size: number;
  fixed: string[];
}

/** Width of one position of a layout, given each group's size. */
export function layoutWidth(layout: ChannelLayout, size: (group: number) => number): number {
  return layout.segments.reduce((sum, s) => sum + size(s.group) * s.repeat, 0);
}

/**
 * Runs the channel analysis over a parsed graph.
 * Never throws on unknown layers: they become boundaries whose widths stay fixed.
 */
export function analyzeChannels(graph: Graph): ChannelAnalysis {
  const uf = new UnionFind();
  const raw: RawGroup[] = [];
  const layouts = new Map<string, ChannelLayout>();
  const producedBy = new Map<string, number>(); // shared produce layers keep one group
  const gammaOf = new Map<string, ChannelLayout>();

  const newGroup = (size: number, fixed?: string): number => {
    raw.push({ size, fixed: fixed ? [fixed] : [] });
    return uf.add();
  };
  const fix = (layout: ChannelLayout, reason: string): void => {
    for (const s of layout.segments) raw[uf.find(s.group)].fixed.push(reason);
  };
  const tie = (a: ChannelLayout, b: ChannelLayout, where: string): boolean => {
    const same =
      a.tile === b.tile &&
      a.segments.length === b.segments.length &&
      a.segments.every((s, i) => s.repeat === b.segments[i].repeat && raw[uf.find(s.group)].size === raw[uf.find(b.segments[i].group)].size);
    if (!same) {
      const reason = `${where} merges channels that are split differently`;
      fix(a, reason);
      fix(b, reason);
      return false;
    }
    a.segments.forEach((s, i) => {
      const ra = uf.find(s.group);
      const rb = uf.find(b.segments[i].group);
      if (ra === rb) return;
      const merged = uf.union(ra, rb);
      const other = merged === ra ? rb : ra;
      raw[merged].fixed.push(...raw[other].fixed);
    });
    return true;
  };

  const consumers = consumerClasses(graph);
  for (const [layer, callIndex] of callOrder(graph)) {
    const call = layer.calls[callIndex];
    const ins = call.inputs.map((r) => layouts.get(formatRef(r))!);
    const outChannels = channelsOf(call.outputShape);
    let rule: ChannelRule = ruleOf(layer, call.inputShapes);
    if (rule.type === 'boundary' && rule.gate) {
      const users = consumers.get(formatRef({ layer: layer.name, nodeIndex: callIndex, tensorIndex: 0 })) ?? [];
      if (users.length > 0 && users.every((c) => c === 'Multiply')) rule = { type: 'pass' };
    }
    let out: ChannelLayout;
    switch (rule.type) {
      case 'source':
        out = single(newGroup(outChannels, 'network input'));
        break;
      case 'produce': {
        let g = producedBy.get(layer.name);
        if (g === undefined) {
          g = newGroup(outChannels);
          producedBy.set(layer.name, g);
        }
        out = single(g);
        break;
      }
      case 'pass':
        out = ins[0];
        break;
      case 'repeat':
        out = { tile: ins[0].tile, segments: ins[0].segments.map((s) => ({ group: s.group, repeat: s.repeat * rule.times })) };
        break;
      case 'tie':
        for (const other of ins.slice(1)) tie(ins[0], other, `layer "${layer.name}"`);
        out = ins[0];
        break;
      case 'concat':
        if (ins.every((l) => l.tile === 1)) {
          out = { tile: 1, segments: ins.flatMap((l) => l.segments) };
        } else {
          ins.forEach((l) => fix(l, `layer "${layer.name}" concatenates flattened tensors`));
          out = single(newGroup(outChannels, `output of layer "${layer.name}"`));
        }
        break;
      case 'flatten': {
        const shape = call.inputShapes[0];
        const positions = (shape.slice(1, -1) as number[]).reduce((a, b) => a * b, 1);
        out = { tile: ins[0].tile * positions, segments: ins[0].segments };
        break;
      }
      case 'boundary':
        ins.forEach((l) => fix(l, `input of layer "${layer.name}" (${rule.reason})`));
        out = single(newGroup(outChannels, `output of layer "${layer.name}" (${rule.reason})`));
        break;
    }
    // A shared layer's weights serve every call, so its inputs must match across calls.
    if (callIndex > 0 && rule.type !== 'source') {
      const first = layer.calls[0].inputs.map((r) => layouts.get(formatRef(r))!);
      ins.forEach((l, i) => first[i] && tie(first[i], l, `shared layer "${layer.name}"`));
    }
    if (layer.kind === 'batchnorm' && (layer.attrs as unknown as BatchNormAttrs).scale && callIndex === 0) gammaOf.set(layer.name, out);
    layouts.set(formatRef({ layer: layer.name, nodeIndex: callIndex, tensorIndex: 0 }), out);
  }

  for (const ref of graph.outputs) fix(layouts.get(formatRef(ref))!, 'network output');

  // Renumber roots densely in order of first appearance.
  const idOf = new Map<number, number>();
  for (let g = 0; g < raw.length; g++) {
    const root = uf.find(g);
    if (!idOf.has(root)) idOf.set(root, idOf.size);
  }
  const resolve = (layout: ChannelLayout): ChannelLayout => ({
    tile: layout.tile,
    segments: layout.segments.map((s) => ({ group: idOf.get(uf.find(s.group))!, repeat: s.repeat })),
  });
  const resolved = new Map<string, ChannelLayout>();
  for (const [k, v] of layouts) resolved.set(k, resolve(v));

  const members: string[][] = [...idOf.values()].map(() => []);
  const gammas: string[][] = [...idOf.values()].map(() => []);
  for (const layer of graph.layers) {
    const l = resolved.get(formatRef({ layer: layer.name, nodeIndex: 0, tensorIndex: 0 }))!;
    if (l.tile === 1 && l.segments.length === 1 && l.segments[0].repeat === 1 && layer.kind !== 'input') members[l.segments[0].group].push(layer.name);
    if (layer.kind === 'input') members[l.segments[0].group].push(layer.name);
  }
  for (const [bn, layout] of gammaOf) {
    for (const s of resolve(layout).segments) if (!gammas[s.group].includes(bn)) gammas[s.group].push(bn);
  }

  const groups: ChannelGroup[] = [];
  for (const [root, id] of idOf) {
    const r = raw[root];
    const reasons = [...new Set(r.fixed)];
    groups[id] = {
      id,
      channels: r.size,
      layers: members[id],
      resizable: reasons.length === 0,
      regularized: reasons.length === 0 && gammas[id].length > 0,
      fixedReasons: reasons,
      gammaLayers: gammas[id],
    };
  }
  return { groups, layouts: resolved };
}

/**
 * Every call of every layer, ordered so that each call's inputs are computed before it.
 * `graph.layers` is ordered by first call only: a shared layer's later call may consume a layer
 * listed after it, so calls cannot simply be taken layer by layer.
 */
function callOrder(graph: Graph): [GraphLayer, number][] {
  const ready = new Set<string>();
  const next = new Map<string, number>();
  const order: [GraphLayer, number][] = [];
  let progress = true;
  while (progress) {
    progress = false;
    for (const layer of graph.layers) {
      let i = next.get(layer.name) ?? 0;
      while (i < layer.calls.length && layer.calls[i].inputs.every((r) => ready.has(formatRef(r)))) {
        order.push([layer, i]);
        ready.add(formatRef({ layer: layer.name, nodeIndex: i, tensorIndex: 0 }));
        i++;
        progress = true;
      }
      next.set(layer.name, i);
    }
  }
  return order;
}

/** The classes of the layers that consume each tensor, by `formatRef` (network outputs count as 'output'). */
function consumerClasses(graph: Graph): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const add = (ref: TensorRef, cls: string): void => {
    const k = formatRef(ref);
    out.set(k, [...(out.get(k) ?? []), cls]);
  };
  for (const layer of graph.layers) for (const call of layer.calls) for (const r of call.inputs) add(r, layer.className);
  for (const r of graph.outputs) add(r, 'output');
  return out;
}

function single(group: number): ChannelLayout {
  return { tile: 1, segments: [{ group, repeat: 1 }] };
}

function ruleOf(layer: GraphLayer, inputShapes: GraphLayer['calls'][number]['inputShapes']): ChannelRule {
  const desc = descriptorOf(layer);
  if (!desc) return { type: 'boundary', reason: `unsupported class ${layer.className}` };
  return desc.channelRule(layer.attrs, inputShapes);
}

/** The layout of a tensor. */
export function layoutOf(analysis: ChannelAnalysis, ref: TensorRef): ChannelLayout {
  const l = analysis.layouts.get(formatRef(ref));
  if (!l) throw new Error(`internal: no channel layout for ${formatRef(ref)}`);
  return l;
}

/**
 * For each channel of one position of a layout: which group and which channel of that group it
 * carries. Used to gather gammas and to slice weights.
 */
export function expandLayout(layout: ChannelLayout, size: (group: number) => number): { group: number; channel: number }[] {
  const out: { group: number; channel: number }[] = [];
  for (const s of layout.segments) {
    const n = size(s.group);
    for (let c = 0; c < n; c++) for (let r = 0; r < s.repeat; r++) out.push({ group: s.group, channel: c });
  }
  return out;
}
