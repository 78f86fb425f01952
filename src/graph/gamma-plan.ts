/**
 * Where each regularized group's batch-norm gammas live: for every batch norm that covers a group
 * (through concat slices and depthwise repeats), the contiguous block of its gamma vector that
 * holds the group's channels. One plan serves pruning (gammas from a weight map), training (gammas
 * from tfjs variables) and the proximal step of the regularizer, so all three read the same
 * numbers. DESIGN: a group's |γ| is the max over its members.
 */
import type { ChannelAnalysis } from './channel-groups.ts';
import { layoutOf } from './channel-groups.ts';
import type { Graph } from './graph.ts';

/**
 * Channel c of the group is gamma[p·stride + offset + c·repeat + r] for r < repeat and p < tile
 * (tile > 1 for a batch norm over flattened features: one gamma per position and channel).
 */
export interface GammaSlice {
  readonly layer: string;
  readonly offset: number;
  readonly channels: number;
  readonly repeat: number;
  readonly tile: number;
  readonly stride: number;
}

/** The gamma indices that belong to channel c of a slice. */
function* positions(s: GammaSlice, c: number): Generator<number> {
  for (let p = 0; p < s.tile; p++) for (let r = 0; r < s.repeat; r++) yield p * s.stride + s.offset + c * s.repeat + r;
}

export interface GammaPlan {
  /** Per group id: the slices covering it (empty for groups that are not regularized). */
  readonly slices: readonly (readonly GammaSlice[])[];
}

export function planGammas(graph: Graph, analysis: ChannelAnalysis): GammaPlan {
  const slices: GammaSlice[][] = analysis.groups.map(() => []);
  for (const layer of graph.layers) {
    if (layer.kind !== 'batchnorm' || !(layer.attrs as { scale?: boolean }).scale) continue;
    const layout = layoutOf(analysis, { layer: layer.name, nodeIndex: 0, tensorIndex: 0 });
    const stride = layout.segments.reduce((w, s) => w + analysis.groups[s.group].channels * s.repeat, 0);
    let offset = 0;
    for (const s of layout.segments) {
      const size = analysis.groups[s.group].channels;
      if (analysis.groups[s.group].regularized) {
        slices[s.group].push({ layer: layer.name, offset, channels: size, repeat: s.repeat, tile: layout.tile, stride });
      }
      offset += size * s.repeat;
    }
  }
  return { slices };
}

/** The layers a plan reads. */
export function plannedLayers(plan: GammaPlan): string[] {
  return [...new Set(plan.slices.flatMap((s) => s.map((x) => x.layer)))];
}

/** Per group, max |γ| of each channel over every slice; empty arrays for groups without slices. */
export function groupMaxAbs(plan: GammaPlan, read: (layer: string) => ArrayLike<number> | undefined): Float32Array[] {
  return plan.slices.map((slices) => {
    if (slices.length === 0) return new Float32Array(0);
    const out = new Float32Array(slices[0].channels);
    for (const s of slices) {
      const gamma = read(s.layer);
      if (!gamma) continue;
      for (let c = 0; c < s.channels; c++) {
        for (const i of positions(s, c)) {
          const v = Math.abs(gamma[i]);
          if (v > out[c]) out[c] = v;
        }
      }
    }
    return out;
  });
}

/**
 * The proximal step of t·max_k |v_k| on one channel's member gammas, in place: if Σ|v| ≤ t every
 * member becomes 0; otherwise every |v_k| is clipped at θ, where θ is the level that removes
 * exactly t of "mass" from the largest members (v minus its projection on the ℓ1 ball of radius t).
 * With one member this is the familiar soft threshold sign(v)·max(|v| − t, 0).
 */
export function proxMaxAbs(v: Float64Array, t: number): void {
  const n = v.length;
  let l1 = 0;
  for (let i = 0; i < n; i++) l1 += Math.abs(v[i]);
  if (l1 <= t) {
    v.fill(0);
    return;
  }
  const u = Array.from(v, Math.abs).sort((a, b) => b - a);
  let sum = 0;
  let theta = 0;
  for (let j = 0; j < n; j++) {
    sum += u[j];
    const candidate = (sum - t) / (j + 1);
    if (u[j] - candidate > 0) theta = candidate;
  }
  for (let i = 0; i < n; i++) v[i] = Math.sign(v[i]) * Math.min(Math.abs(v[i]), theta);
}

/**
 * Applies `proxMaxAbs` with threshold `thresholds[g]` to every channel of every group with slices.
 * `arrays` maps each batch-norm layer to its gamma vector, modified in place.
 */
export function applyGroupProx(plan: GammaPlan, arrays: Map<string, Float32Array>, thresholds: ArrayLike<number>): void {
  plan.slices.forEach((slices, g) => {
    const t = thresholds[g];
    if (!t || slices.length === 0) return;
    const members = slices.reduce((n, s) => n + s.repeat * s.tile, 0);
    const v = new Float64Array(members);
    for (let c = 0; c < slices[0].channels; c++) {
      let k = 0;
      for (const s of slices) for (const i of positions(s, c)) v[k++] = arrays.get(s.layer)?.[i] ?? 0;
      proxMaxAbs(v, t);
      k = 0;
      for (const s of slices) {
        const a = arrays.get(s.layer);
        for (const i of positions(s, c)) {
          if (a) a[i] = v[k];
          k++;
        }
      }
    }
  });
}
