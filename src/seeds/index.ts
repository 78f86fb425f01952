/**
 * Built-in seed models: small MobileNet-, ResNet- and VGG-style CNNs for 28×28×1 inputs (MNIST,
 * Fashion-MNIST), so a user can start a search without bringing a model. Each is an ordinary tfjs
 * `model.json` (topology only, no weights: tfjs initialises them). Every conv and depthwise conv is
 * followed by BatchNormalization then ReLU (ReLU6 in mobilenetv2), with no conv bias, so MorphNet
 * can regularise the batch-norm gammas of every channel group.
 *
 * Parameter counts at the defaults (28×28×1, 10 classes, width 1): mobilenet ~145k, resnet ~176k,
 * vgg ~437k, mobilenetv2 ~232k, wideresnet ~698k.
 *
 * `mobilenetv2` and `wideresnet` are sized so that widths matter for latency: on a 2-core AMD EPYC,
 * the network with every resizable group at 8 channels runs in ≤ 20% of the seed's time on both
 * tflite and tfjs-wasm (`test/bench/seed-regime.ts`), where the small seeds are mostly per-op
 * overhead on tfjs-wasm (mobilenet: 47%).
 */

import { MorphError } from '../errors.ts';
import type { ModelConfigJson, TfjsModelJson } from '../graph/keras-json.ts';
import { FunctionalBuilder } from './builder.ts';

/**
 * Seeds train for few steps on small data; a batch-norm momentum of 0.9 (Keras's default is 0.99)
 * lets the moving statistics catch up within an epoch, so evaluation is meaningful early.
 */
const SEED_BN = { momentum: 0.9 } as const;

export const VALID_SEEDS = ['mobilenet', 'resnet', 'vgg', 'mobilenetv2', 'wideresnet'] as const;
export type SeedName = (typeof VALID_SEEDS)[number];

export interface SeedOptions {
  /** `[H, W, C]` of one input image. Default `[28, 28, 1]`. */
  inputShape?: [number, number, number];
  /** Units of the softmax head. Default 10. */
  numClasses?: number;
  /** Multiplies every conv width (and vgg's hidden dense width), rounded, at least 1. Default 1. */
  widthMultiplier?: number;
}

interface ResolvedSeedOptions {
  inputShape: [number, number, number];
  numClasses: number;
  widthMultiplier: number;
}

export const SEED_GENERATED_BY = 'morphnet-edge seeds';

export function isSeedName(v: unknown): v is SeedName {
  return typeof v === 'string' && (VALID_SEEDS as readonly string[]).includes(v);
}

/**
 * The seed model `name` as a tfjs `model.json` without `weightsManifest`.
 * Throws `MORPH_ERR_BAD_ARGUMENT` for an unknown name or a bad option.
 */
export function seedModel(name: SeedName, opts: SeedOptions = {}): TfjsModelJson {
  if (!isSeedName(name)) {
    throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `unknown seed model ${JSON.stringify(name)}; expected one of ${VALID_SEEDS.join(', ')}`, { seed: name });
  }
  const o = resolveOptions(name, opts);
  const modelTopology =
    name === 'mobilenet' ? mobilenet(o) : name === 'resnet' ? resnet(o, 'resnet_seed') : name === 'wideresnet' ? resnet({ ...o, widthMultiplier: 2 * o.widthMultiplier }, 'wideresnet_seed') : name === 'mobilenetv2' ? mobilenetV2(o) : vgg(o);
  return { format: 'layers-model', generatedBy: SEED_GENERATED_BY, convertedBy: null, modelTopology };
}

function resolveOptions(name: SeedName, opts: SeedOptions): ResolvedSeedOptions {
  const inputShape = opts.inputShape ?? [28, 28, 1];
  const numClasses = opts.numClasses ?? 10;
  const widthMultiplier = opts.widthMultiplier ?? 1;
  if (!Array.isArray(inputShape) || inputShape.length !== 3 || !inputShape.every((d) => Number.isInteger(d) && d > 0)) {
    throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `seed inputShape must be [H, W, C] of positive integers, got ${JSON.stringify(inputShape)}`);
  }
  // vgg pools three times with 2×2 'valid' windows: smaller inputs would pool to nothing.
  if (name === 'vgg' && (inputShape[0] < 8 || inputShape[1] < 8)) {
    throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `seed vgg needs an input of at least 8×8, got ${inputShape[0]}×${inputShape[1]}`);
  }
  if (!Number.isInteger(numClasses) || numClasses < 1) {
    throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `seed numClasses must be a positive integer, got ${JSON.stringify(numClasses)}`);
  }
  if (typeof widthMultiplier !== 'number' || !Number.isFinite(widthMultiplier) || widthMultiplier <= 0) {
    throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `seed widthMultiplier must be a positive number, got ${JSON.stringify(widthMultiplier)}`);
  }
  return { inputShape: [...inputShape], numClasses, widthMultiplier };
}

function scaled(width: number, multiplier: number): number {
  return Math.max(1, Math.round(width * multiplier));
}

/** Adds conv (no bias) → BN → ReLU and returns the ReLU's output. */
function convBnRelu(b: FunctionalBuilder, name: string, x: string, filters: number, kernelSize: number, strides: number): string {
  const c = b.conv2d(name, x, { filters, kernelSize, strides, padding: 'same', useBias: false });
  const n = b.batchNorm(`${name}_bn`, c);
  return b.relu(`${name}_relu`, n);
}

/** Depthwise-separable blocks: (pointwise width, depthwise stride). */
const MOBILENET_BLOCKS: readonly [number, number][] = [
  [32, 1],
  [64, 2],
  [64, 1],
  [128, 2],
  [128, 1],
  [256, 2],
  [256, 1],
];

function mobilenet(o: ResolvedSeedOptions): ModelConfigJson {
  const b = new FunctionalBuilder('mobilenet_seed', SEED_BN);
  let x = b.input('input', o.inputShape);
  x = convBnRelu(b, 'conv1', x, scaled(16, o.widthMultiplier), 3, 1);
  MOBILENET_BLOCKS.forEach(([width, stride], i) => {
    const p = `block${i + 1}`;
    const dw = b.depthwiseConv2d(`${p}_dw`, x, { kernelSize: 3, strides: stride, padding: 'same', useBias: false });
    x = b.relu(`${p}_dw_relu`, b.batchNorm(`${p}_dw_bn`, dw));
    x = convBnRelu(b, `${p}_pw`, x, scaled(width, o.widthMultiplier), 1, 1);
  });
  x = b.globalAveragePooling2d('gap', x);
  x = b.dense('predictions', x, { units: o.numClasses, activation: 'softmax' });
  return b.build([x]);
}

const RESNET_STAGES: readonly number[] = [16, 32, 64];
const RESNET_BLOCKS_PER_STAGE = 2;

function resnet(o: ResolvedSeedOptions, name: string): ModelConfigJson {
  const b = new FunctionalBuilder(name, SEED_BN);
  let x = b.input('input', o.inputShape);
  x = convBnRelu(b, 'stem_conv', x, scaled(16, o.widthMultiplier), 3, 1);
  let width = scaled(16, o.widthMultiplier);
  RESNET_STAGES.forEach((stageWidth, s) => {
    const w = scaled(stageWidth, o.widthMultiplier);
    for (let k = 0; k < RESNET_BLOCKS_PER_STAGE; k++) {
      const p = `stage${s + 1}_block${k + 1}`;
      // The first block of every stage after the first halves H×W; it, or any width change,
      // needs a 1×1 projection so that both sides of the Add have the same shape.
      const stride = s > 0 && k === 0 ? 2 : 1;
      const h = convBnRelu(b, `${p}_conv1`, x, w, 3, stride);
      const y = b.batchNorm(`${p}_conv2_bn`, b.conv2d(`${p}_conv2`, h, { filters: w, kernelSize: 3, padding: 'same', useBias: false }));
      let shortcut = x;
      if (stride !== 1 || w !== width) {
        const proj = b.conv2d(`${p}_proj`, x, { filters: w, kernelSize: 1, strides: stride, padding: 'same', useBias: false });
        shortcut = b.batchNorm(`${p}_proj_bn`, proj);
      }
      x = b.relu(`${p}_out`, b.add(`${p}_add`, [y, shortcut]));
      width = w;
    }
  });
  x = b.globalAveragePooling2d('gap', x);
  x = b.dense('predictions', x, { units: o.numClasses, activation: 'softmax' });
  return b.build([x]);
}

/**
 * Inverted-residual stages (Sandler et al. 2018, Table 2, shortened for 28×28): expansion t,
 * output width c, blocks n, stride of the first block s.
 */
const MOBILENETV2_STAGES: readonly { t: number; c: number; n: number; s: number }[] = [
  { t: 1, c: 24, n: 1, s: 1 },
  { t: 4, c: 40, n: 2, s: 2 },
  { t: 4, c: 80, n: 2, s: 2 },
  { t: 4, c: 128, n: 1, s: 1 },
];

/** Conv (no bias) → BN → ReLU6. */
function convBnRelu6(b: FunctionalBuilder, name: string, x: string, filters: number, kernelSize: number, strides: number): string {
  const c = b.conv2d(name, x, { filters, kernelSize, strides, padding: 'same', useBias: false });
  return b.relu(`${name}_relu`, b.batchNorm(`${name}_bn`, c), 6);
}

function mobilenetV2(o: ResolvedSeedOptions): ModelConfigJson {
  const b = new FunctionalBuilder('mobilenetv2_seed', SEED_BN);
  let x = b.input('input', o.inputShape);
  let width = scaled(32, o.widthMultiplier);
  x = convBnRelu6(b, 'stem', x, width, 3, 1);
  let block = 0;
  for (const stage of MOBILENETV2_STAGES) {
    const out = scaled(stage.c, o.widthMultiplier);
    for (let k = 0; k < stage.n; k++) {
      const p = `block${++block}`;
      const stride = k === 0 ? stage.s : 1;
      // Expand (1×1, ReLU6) → depthwise 3×3 (ReLU6) → project (1×1, linear), + the input when shapes match.
      let y = stage.t === 1 ? x : convBnRelu6(b, `${p}_expand`, x, width * stage.t, 1, 1);
      const dw = b.depthwiseConv2d(`${p}_dw`, y, { kernelSize: 3, strides: stride, padding: 'same', useBias: false });
      y = b.relu(`${p}_dw_relu`, b.batchNorm(`${p}_dw_bn`, dw), 6);
      y = b.batchNorm(`${p}_project_bn`, b.conv2d(`${p}_project`, y, { filters: out, kernelSize: 1, padding: 'same', useBias: false }));
      x = stride === 1 && out === width ? b.add(`${p}_add`, [y, x]) : y;
      width = out;
    }
  }
  x = convBnRelu6(b, 'head', x, scaled(384, o.widthMultiplier), 1, 1);
  x = b.globalAveragePooling2d('gap', x);
  x = b.dense('predictions', x, { units: o.numClasses, activation: 'softmax' });
  return b.build([x]);
}

const VGG_STAGES: readonly number[] = [32, 64, 128];

function vgg(o: ResolvedSeedOptions): ModelConfigJson {
  const b = new FunctionalBuilder('vgg_seed', SEED_BN);
  let x = b.input('input', o.inputShape);
  VGG_STAGES.forEach((stageWidth, s) => {
    const w = scaled(stageWidth, o.widthMultiplier);
    x = convBnRelu(b, `block${s + 1}_conv1`, x, w, 3, 1);
    x = convBnRelu(b, `block${s + 1}_conv2`, x, w, 3, 1);
    x = b.maxPooling2d(`block${s + 1}_pool`, x, { poolSize: 2 });
  });
  x = b.flatten('flatten', x);
  // The hidden dense has a BN too, so its units form a regularisable group like a conv's.
  x = b.dense('fc1', x, { units: scaled(128, o.widthMultiplier), useBias: false });
  x = b.relu('fc1_relu', b.batchNorm('fc1_bn', x));
  x = b.dropout('fc1_dropout', x, 0.5);
  x = b.dense('predictions', x, { units: o.numClasses, activation: 'softmax' });
  return b.build([x]);
}
