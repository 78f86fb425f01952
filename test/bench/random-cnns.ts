/**
 * Seeded random CNNs: the test set of a latency predictor, as nn-Meter uses one. Each model is an
 * ordinary tfjs `model.json` (topology only, like `seedModel()`), written with the seed builder,
 * that parses, derives an OpSpec for every compute layer (no `skipped` entries), builds in tfjs
 * and exports to a `.tflite` that runs in the Node TFLite runtime.
 *
 * What varies, per model: input size (32–128 px square, 1 or 3 channels), a stem conv, 3–14
 * blocks, widths 8–160 (half rounded to multiples of 8, half not), kernels 1/3/5/7, strides 1/2,
 * 'same'/'valid' padding, ReLU or ReLU6, and the head (global average pooling or flatten, an
 * optional hidden dense, dense logits). Block kinds:
 * - `plain`: conv → BN → ReLU(6), or a conv with bias and its own activation;
 * - `separable`: depthwise → BN → ReLU → 1×1 conv → BN → ReLU (depth multiplier 1 or 2);
 * - `residual`: two k×k convs (or a 1×1 → k×k → 1×1 bottleneck) plus a shortcut, Add → ReLU,
 *   the shortcut a 1×1 conv + BN where the stride or width changes;
 * - `inverted`: MobileNetV2's 1×1 expand → depthwise → linear 1×1 project, Add when shapes allow;
 * - `concat`: a 1×1 branch and a k×k, depthwise-separable or pool + 1×1 branch, concatenated;
 * - `maxpool` / `avgpool`: a window between blocks (not counted in the depth).
 *
 * Size control: every model draws a MAC target log-uniformly inside `[minMacs, maxMacs]` and caps
 * each block's width so its MACs stay within its share; a model that still lands outside the
 * range is redrawn from a derived seed (`attempts` counts draws), so the range always holds.
 */
import { networkCost } from '../../src/cost/counts.ts';
import { MorphError } from '../../src/errors.ts';
import type { TfjsModelJson } from '../../src/graph/keras-json.ts';
import { parseModel } from '../../src/graph/parse.ts';
import { FunctionalBuilder, maxPooling2dConfig, type Padding } from '../../src/seeds/builder.ts';
import { SEED_GENERATED_BY } from '../../src/seeds/index.ts';
import { createRng, type Rng } from '../../src/util/random.ts';

export interface RandomCnnOptions {
  /** Units of the logits layer (linear activation). Default 10. */
  numClasses?: number;
  /** Smallest accepted MACs at batch 1. Default 1e6. */
  minMacs?: number;
  /** Largest accepted MACs at batch 1. Default 2e8. */
  maxMacs?: number;
}

export const VALID_RANDOM_BLOCK_KINDS = ['plain', 'separable', 'residual', 'inverted', 'concat', 'maxpool', 'avgpool'] as const;
export type RandomBlockKind = (typeof VALID_RANDOM_BLOCK_KINDS)[number];

/** One block as drawn: its main kernel, stride and padding, and its output shape. */
export interface RandomBlock {
  readonly kind: RandomBlockKind;
  readonly kernel: number;
  readonly stride: number;
  readonly padding: Padding;
  /** Output H (= W). */
  readonly size: number;
  /** Output channels. */
  readonly channels: number;
}

export interface RandomCnn {
  readonly seed: number;
  readonly name: string;
  readonly model: TfjsModelJson;
  readonly inputShape: readonly [number, number, number];
  readonly stem: RandomBlock;
  /** Blocks after the stem, pools included, in order. */
  readonly blocks: readonly RandomBlock[];
  /** Compute blocks (pools not counted): 3–14. */
  readonly depth: number;
  readonly head: { readonly pooling: 'gap' | 'flatten'; readonly hidden: number | null };
  readonly macs: number;
  readonly params: number;
  /** Draws until the MACs fell in range (1 for most seeds). */
  readonly attempts: number;
}

const MIN_WIDTH = 8;
const MAX_WIDTH = 160;
const MIN_DEPTH = 3;
const MAX_DEPTH = 14;
/** Redraws before giving up on a MAC range (a range this generator cannot reach). */
const MAX_ATTEMPTS = 200;
/** Flatten only small maps: a dense over more inputs dominates the network and is not a CNN. */
const MAX_FLATTEN = 4096;

const int = (rng: Rng, lo: number, hi: number): number => lo + Math.floor(rng() * (hi - lo + 1));
const chance = (rng: Rng, p: number): boolean => rng() < p;
function pick<T>(rng: Rng, items: readonly T[], weights?: readonly number[]): T {
  if (!weights) return items[Math.floor(rng() * items.length)];
  let r = rng() * weights.reduce((a, b) => a + b, 0);
  for (let i = 0; i < items.length; i++) if ((r -= weights[i]) < 0) return items[i];
  return items[items.length - 1];
}
const outSize = (h: number, k: number, s: number, padding: Padding): number => (padding === 'same' ? Math.ceil(h / s) : Math.floor((h - k) / s) + 1);

/** Current tensor: name, H (= W) and channels. */
interface State {
  x: string;
  h: number;
  c: number;
}

/** Draw state shared by the blocks of one model. */
interface Draw {
  readonly rng: Rng;
  readonly b: FunctionalBuilder;
  readonly act: 'relu' | 'relu6';
  /** MACs each block may spend. */
  readonly budget: number;
  /** The width the network is heading for; blocks jitter around it. */
  target: number;
}

/**
 * A width near `d.target` (jittered ±20 %, half the time rounded to a multiple of 8), at least 8
 * and at most the largest width up to `max` whose `cost` fits `d.budget` (8 when none does).
 */
function width(d: Draw, cost: (w: number) => number, max = MAX_WIDTH): number {
  let hi = max;
  while (hi > MIN_WIDTH && cost(hi) > d.budget) hi--;
  let w = Math.max(MIN_WIDTH, Math.min(hi, Math.round(d.target * (0.8 + 0.4 * d.rng()))));
  if (chance(d.rng, 0.5)) {
    const r = Math.round(w / 8) * 8;
    w = r > hi ? Math.max(MIN_WIDTH, Math.floor(hi / 8) * 8) : Math.max(MIN_WIDTH, r);
  }
  return w;
}

function relu(d: Draw, name: string, x: string): string {
  const act = chance(d.rng, 0.2) ? (d.act === 'relu' ? 'relu6' : 'relu') : d.act;
  return d.b.relu(name, x, act === 'relu6' ? 6 : null);
}

/** conv (no bias) → BN, then ReLU(6) unless `linear`. */
function convBn(d: Draw, name: string, x: string, filters: number, k: number, s: number, padding: Padding, linear = false): string {
  const y = d.b.batchNorm(`${name}_bn`, d.b.conv2d(name, x, { filters, kernelSize: k, strides: s, padding, useBias: false }));
  return linear ? y : relu(d, `${name}_relu`, y);
}

/** depthwise (no bias) → BN → ReLU(6). */
function dwBn(d: Draw, name: string, x: string, k: number, s: number, padding: Padding, multiplier = 1): string {
  const y = d.b.batchNorm(`${name}_bn`, d.b.depthwiseConv2d(name, x, { kernelSize: k, strides: s, padding, depthMultiplier: multiplier, useBias: false }));
  return relu(d, `${name}_relu`, y);
}

function drawStride(d: Draw, h: number): number {
  const p = h >= 64 ? 0.5 : h >= 16 ? 0.3 : h >= 6 ? 0.15 : 0;
  return chance(d.rng, p) ? 2 : 1;
}

/** 'valid' a quarter of the time, where the output keeps at least 3 positions. */
function drawPadding(d: Draw, h: number, k: number, s: number): Padding {
  return k > 1 && outSize(h, k, s, 'valid') >= 3 && chance(d.rng, 0.25) ? 'valid' : 'same';
}

function drawKernel(d: Draw, h: number, choices: readonly number[], weights: readonly number[]): number {
  // A window far larger than the map is mostly padding; keep kernels ≤ the map plus one.
  const fit = choices.filter((k) => k <= h + 1);
  return fit.length === 0 ? 1 : pick(d.rng, fit, weights.slice(0, fit.length));
}

function block(d: Draw, i: number, kind: RandomBlockKind, st: State): RandomBlock {
  const { rng, b } = d;
  const p = `b${i}_${kind}`;
  const hw = (h: number): number => h * h;
  switch (kind) {
    case 'maxpool':
    case 'avgpool': {
      const k = st.h >= 8 && chance(rng, 0.4) ? 3 : 2;
      const padding: Padding = chance(rng, 0.3) ? 'same' : 'valid';
      const config = maxPooling2dConfig(p, { poolSize: k, strides: 2, padding });
      st.x = b.layer(kind === 'maxpool' ? 'MaxPooling2D' : 'AveragePooling2D', config, [st.x]);
      st.h = outSize(st.h, k, 2, padding);
      d.target *= 1.3 + 0.5 * rng();
      return { kind, kernel: k, stride: 2, padding, size: st.h, channels: st.c };
    }
    case 'plain': {
      const k = drawKernel(d, st.h, [1, 3, 5, 7], [0.2, 0.5, 0.2, 0.1]);
      const s = drawStride(d, st.h);
      const padding = drawPadding(d, st.h, k, s);
      const ho = outSize(st.h, k, s, padding);
      if (s === 2) d.target *= 1.4 + 0.6 * rng();
      const w = width(d, (w) => hw(ho) * k * k * st.c * w);
      if (chance(rng, 0.2)) {
        // A conv with bias and its own activation: fused as is, no batch norm to fold.
        st.x = b.conv2d(p, st.x, { filters: w, kernelSize: k, strides: s, padding, activation: d.act });
      } else {
        st.x = convBn(d, p, st.x, w, k, s, padding);
      }
      Object.assign(st, { h: ho, c: w });
      return { kind, kernel: k, stride: s, padding, size: ho, channels: w };
    }
    case 'separable': {
      const k = drawKernel(d, st.h, [3, 5, 7], [0.6, 0.25, 0.15]);
      const s = drawStride(d, st.h);
      const padding = drawPadding(d, st.h, k, s);
      const ho = outSize(st.h, k, s, padding);
      const m = st.c <= 48 && chance(rng, 0.2) ? 2 : 1;
      if (s === 2) d.target *= 1.4 + 0.6 * rng();
      const w = width(d, (w) => hw(ho) * st.c * m * (k * k + w));
      st.x = convBn(d, `${p}_pw`, dwBn(d, `${p}_dw`, st.x, k, s, padding, m), w, 1, 1, 'valid');
      Object.assign(st, { h: ho, c: w });
      return { kind, kernel: k, stride: s, padding, size: ho, channels: w };
    }
    case 'residual': {
      const k = drawKernel(d, st.h, [3, 5], [0.8, 0.2]);
      const s = drawStride(d, st.h);
      const ho = outSize(st.h, k, s, 'same');
      const bottleneck = chance(rng, 0.35);
      if (s === 2) d.target *= 1.4 + 0.6 * rng();
      const keep = s === 1 && chance(rng, 0.6);
      const mid = bottleneck ? (w: number): number => Math.max(MIN_WIDTH, Math.round(w / 4)) : (w: number): number => w;
      // Priced with the projection: a width drawn here usually differs from the input's.
      const cost = (w: number): number =>
        (bottleneck ? hw(st.h) * st.c * mid(w) + hw(ho) * k * k * mid(w) * mid(w) + hw(ho) * mid(w) * w : hw(ho) * k * k * (st.c * w + w * w)) + hw(ho) * st.c * w;
      const w = keep ? st.c : width(d, cost);
      let y: string;
      if (bottleneck) {
        const h1 = convBn(d, `${p}_reduce`, st.x, mid(w), 1, 1, 'valid');
        y = convBn(d, `${p}_expand`, convBn(d, `${p}_conv`, h1, mid(w), k, s, 'same'), w, 1, 1, 'valid', true);
      } else {
        y = convBn(d, `${p}_conv2`, convBn(d, `${p}_conv1`, st.x, w, k, s, 'same'), w, k, 1, 'same', true);
      }
      const shortcut = s === 1 && w === st.c ? st.x : convBn(d, `${p}_proj`, st.x, w, 1, s, 'same', true);
      st.x = relu(d, `${p}_out`, b.add(`${p}_add`, [y, shortcut]));
      Object.assign(st, { h: ho, c: w });
      return { kind, kernel: k, stride: s, padding: 'same', size: ho, channels: w };
    }
    case 'inverted': {
      const k = drawKernel(d, st.h, [3, 5, 7], [0.6, 0.3, 0.1]);
      const s = drawStride(d, st.h);
      const padding = s === 1 ? 'same' : drawPadding(d, st.h, k, s);
      const ho = outSize(st.h, k, s, padding);
      const t = pick(rng, [2, 3, 4, 6]);
      const e = Math.min(MAX_WIDTH, Math.max(MIN_WIDTH, st.c * t));
      if (s === 2) d.target *= 1.4 + 0.6 * rng();
      const keep = s === 1 && chance(rng, 0.6);
      const w = keep ? st.c : width(d, (w) => hw(st.h) * st.c * e + hw(ho) * e * (k * k + w));
      const dw = dwBn(d, `${p}_dw`, convBn(d, `${p}_expand`, st.x, e, 1, 1, 'valid'), k, s, padding);
      const y = convBn(d, `${p}_project`, dw, w, 1, 1, 'valid', true);
      st.x = s === 1 && w === st.c ? b.add(`${p}_add`, [y, st.x]) : y;
      Object.assign(st, { h: ho, c: w });
      return { kind, kernel: k, stride: s, padding, size: ho, channels: w };
    }
    case 'concat': {
      const k = drawKernel(d, st.h, [3, 5, 7], [0.6, 0.3, 0.1]);
      const s = drawStride(d, st.h);
      const ho = outSize(st.h, k, s, 'same');
      if (s === 2) d.target *= 1.4 + 0.6 * rng();
      const branch = pick(rng, ['conv', 'separable', 'pool'] as const);
      const half = (w: number): number => Math.max(MIN_WIDTH, Math.round(w / 2));
      const cost = (w: number): number =>
        hw(ho) * st.c * half(w) + (branch === 'conv' ? hw(ho) * k * k * st.c * half(w) : branch === 'separable' ? hw(ho) * st.c * (k * k + half(w)) : hw(ho) * st.c * half(w));
      const total = width(d, cost);
      const w1 = Math.max(MIN_WIDTH, Math.round(total * (0.3 + 0.4 * rng())));
      const w2 = Math.max(MIN_WIDTH, total - w1);
      const a = convBn(d, `${p}_a`, st.x, w1, 1, s, 'same');
      let c: string;
      if (branch === 'conv') c = convBn(d, `${p}_b`, st.x, w2, k, s, 'same');
      else if (branch === 'separable') c = convBn(d, `${p}_b_pw`, dwBn(d, `${p}_b_dw`, st.x, k, s, 'same'), w2, 1, 1, 'valid');
      else {
        // Inception's pool branch: a 3×3 max pool, stride s, 'same', then a 1×1 conv.
        const pooled = b.maxPooling2d(`${p}_b_pool`, st.x, { poolSize: 3, strides: s, padding: 'same' });
        c = convBn(d, `${p}_b_pw`, pooled, w2, 1, 1, 'valid');
      }
      st.x = b.concatenate(`${p}_concat`, [a, c]);
      Object.assign(st, { h: ho, c: w1 + w2 });
      return { kind, kernel: branch === 'pool' ? 3 : k, stride: s, padding: 'same', size: ho, channels: w1 + w2 };
    }
  }
}

/** One draw of a model; the caller checks its MACs. */
function draw(seed: number, rng: Rng, numClasses: number, macRange: [number, number]): Omit<RandomCnn, 'macs' | 'params' | 'attempts'> {
  const name = `random-cnn-${seed}`;
  const size = chance(rng, 0.5) ? pick(rng, [32, 48, 56, 64, 96, 112, 128]) : int(rng, 32, 128);
  const inputShape: [number, number, number] = [size, size, chance(rng, 0.3) ? 1 : 3];
  const depth = int(rng, MIN_DEPTH, MAX_DEPTH);
  const [lo, hi] = macRange;
  const macTarget = Math.exp(Math.log(lo * 2) + rng() * (Math.log(hi * 0.8) - Math.log(lo * 2)));
  const b = new FunctionalBuilder(name);
  const d: Draw = { rng, b, act: chance(rng, 0.6) ? 'relu' : 'relu6', budget: macTarget / (depth + 1), target: int(rng, 8, 32) };
  const st: State = { x: b.input('input', inputShape), h: size, c: inputShape[2] };

  const k0 = drawKernel(d, size, [3, 5, 7], [0.6, 0.2, 0.2]);
  const s0 = chance(rng, size >= 64 ? 0.7 : 0.3) ? 2 : 1;
  const pad0 = drawPadding(d, size, k0, s0);
  const h0 = outSize(size, k0, s0, pad0);
  const w0 = width(d, (w) => h0 * h0 * k0 * k0 * st.c * w, 32);
  st.x = convBn(d, 'stem', st.x, w0, k0, s0, pad0);
  Object.assign(st, { h: h0, c: w0 });
  const stem: RandomBlock = { kind: 'plain', kernel: k0, stride: s0, padding: pad0, size: h0, channels: w0 };

  const blocks: RandomBlock[] = [];
  for (let i = 1; i <= depth; i++) {
    d.target = Math.min(MAX_WIDTH, d.target * (0.9 + 0.35 * rng()));
    if (st.h >= 12 && chance(rng, 0.15)) blocks.push(block(d, blocks.length + 1, chance(rng, 0.5) ? 'maxpool' : 'avgpool', st));
    const kind = pick(rng, ['plain', 'separable', 'residual', 'inverted', 'concat'] as const, [0.25, 0.2, 0.2, 0.15, 0.2]);
    blocks.push(block(d, blocks.length + 1, kind, st));
    d.target = Math.min(MAX_WIDTH, d.target);
  }

  const pooling = st.h * st.h * st.c <= MAX_FLATTEN && chance(rng, 0.4) ? 'flatten' : 'gap';
  let x = pooling === 'flatten' ? b.flatten('flatten', st.x) : b.globalAveragePooling2d('gap', st.x);
  let hidden: number | null = null;
  if (chance(rng, 0.5)) {
    hidden = int(rng, 16, 256);
    if (chance(rng, 0.5)) x = relu(d, 'fc_relu', b.batchNorm('fc_bn', b.dense('fc', x, { units: hidden, useBias: false })));
    else x = b.dense('fc', x, { units: hidden, activation: d.act });
    if (chance(rng, 0.3)) x = b.dropout('fc_dropout', x, 0.2);
  }
  x = b.dense('logits', x, { units: numClasses });
  const model: TfjsModelJson = { format: 'layers-model', generatedBy: SEED_GENERATED_BY, convertedBy: null, modelTopology: b.build([x]) };
  return { seed, name, model, inputShape, stem, blocks, depth, head: { pooling, hidden } };
}

/** Multiply-accumulates of `model` at batch 1 (`networkCost`'s count). */
export function cnnMacs(model: TfjsModelJson): number {
  return networkCost(parseModel(model).graph).macs;
}

/**
 * The random CNN of `seed` with what was drawn. Same seed and options → identical JSON.
 * @throws MorphError `MORPH_ERR_BAD_ARGUMENT` for a non-integer seed, a bad option, or a MAC
 *   range no draw reaches.
 */
export function generateRandomCnn(seed: number, options: RandomCnnOptions = {}): RandomCnn {
  const numClasses = options.numClasses ?? 10;
  const minMacs = options.minMacs ?? 1e6;
  const maxMacs = options.maxMacs ?? 2e8;
  if (!Number.isSafeInteger(seed)) throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `random CNN seed must be an integer, got ${JSON.stringify(seed)}`);
  if (!Number.isInteger(numClasses) || numClasses < 1) throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `random CNN numClasses must be a positive integer, got ${JSON.stringify(numClasses)}`);
  if (!(minMacs > 0 && maxMacs > minMacs)) throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `random CNN MAC range must have 0 < minMacs < maxMacs, got [${minMacs}, ${maxMacs}]`);
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    // Attempt 0 draws from the seed itself; later ones from a hash of (seed, attempt).
    const rng = createRng(attempt === 0 ? seed : (Math.imul(seed, 0x9e3779b1) ^ Math.imul(attempt, 0x85ebca6b)) >>> 0);
    const drawn = draw(seed, rng, numClasses, [minMacs, maxMacs]);
    const cost = networkCost(parseModel(drawn.model).graph);
    if (cost.macs >= minMacs && cost.macs <= maxMacs) return { ...drawn, macs: cost.macs, params: cost.params, attempts: attempt + 1 };
  }
  throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `no random CNN for seed ${seed} within [${minMacs}, ${maxMacs}] MACs after ${MAX_ATTEMPTS} draws; widen the range`);
}

/** The tfjs model.json (topology only) of the random CNN `random-cnn-<seed>`. */
export function randomCnn(seed: number, options: RandomCnnOptions = {}): TfjsModelJson {
  return generateRandomCnn(seed, options).model;
}

/** `count` random CNNs for seeds `firstSeed`, `firstSeed + 1`, … (default from 0). */
export function randomCnns(count: number, firstSeed = 0, options: RandomCnnOptions = {}): TfjsModelJson[] {
  if (!Number.isInteger(count) || count < 0) throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `random CNN count must be a non-negative integer, got ${JSON.stringify(count)}`);
  return Array.from({ length: count }, (_, i) => randomCnn(firstSeed + i, options));
}
