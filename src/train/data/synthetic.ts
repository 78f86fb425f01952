/**
 * Synthetic images for fast tests: each class has a smooth random template (a coarse random
 * grid upsampled bilinearly, so it has spatial structure a CNN can pick up), and each sample is
 * its class's template plus Gaussian noise. Fully determined by the seed; generated per batch,
 * so the size costs nothing until read.
 */
import { MorphError } from '../../errors.ts';
import type { LoadedData } from './assemble.ts';
import type { ImageShape } from './dataset.ts';
import { resizeImage, validateImageShape } from './image-ops.ts';
import { createRng, mixSeed, normal } from './rng.ts';
import type { SampleSource } from './sample-source.ts';

export interface SyntheticOptions {
  /** Default [16, 16, 1]. */
  imageShape?: ImageShape;
  /** Number of classes, ≥ 2. Default 4. */
  numClasses?: number;
  /** Training-pool size (train + val). Default 1000. */
  trainSize?: number;
  /** Test-set size. Default 200. */
  testSize?: number;
  /** Standard deviation of the per-pixel noise (pixels are clipped to [0, 1]). Default 0.25. */
  noise?: number;
  /** Seed of templates and noise. Default 0. */
  seed?: number;
}

/** The `synthetic:k=v,…` keys, mapped to what they set. */
export const SYNTHETIC_KEYS: readonly string[] = ['h', 'w', 'c', 'classes', 'train', 'test', 'noise', 'seed'];

const TEMPLATE_GRID = 4;
const SALT_TEMPLATE = 0x7e3;
const SALT_SAMPLE = 0x5a3;

/**
 * Parses the part after `synthetic:`, e.g. `h=8,w=8,c=1,classes=3,train=300,test=60,noise=0.2,seed=7`.
 * Throws MORPH_ERR_BAD_ARGUMENT naming a bad key or value and listing the accepted keys.
 */
export function parseSyntheticParams(text: string): SyntheticOptions {
  const values: Record<string, number> = {};
  for (const part of text.split(',').map((p) => p.trim()).filter((p) => p !== '')) {
    const eq = part.indexOf('=');
    const key = eq < 0 ? part : part.slice(0, eq).trim();
    const raw = eq < 0 ? '' : part.slice(eq + 1).trim();
    if (!SYNTHETIC_KEYS.includes(key)) {
      throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `Unknown synthetic dataset parameter "${key}"; accepted: ${SYNTHETIC_KEYS.map((k) => `${k}=…`).join(', ')}.`);
    }
    const v = Number(raw);
    if (raw === '' || !Number.isFinite(v)) {
      throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `Synthetic dataset parameter ${key} needs a number; got "${raw}".`);
    }
    values[key] = v;
  }
  const opts: SyntheticOptions = {};
  if ('h' in values || 'w' in values || 'c' in values) {
    opts.imageShape = [values.h ?? 16, values.w ?? 16, values.c ?? 1];
  }
  if ('classes' in values) opts.numClasses = values.classes;
  if ('train' in values) opts.trainSize = values.train;
  if ('test' in values) opts.testSize = values.test;
  if ('noise' in values) opts.noise = values.noise;
  if ('seed' in values) opts.seed = values.seed;
  return opts;
}

/** Builds a synthetic dataset. Throws MORPH_ERR_BAD_ARGUMENT for out-of-range options. */
export function createSynthetic(opts: SyntheticOptions = {}): LoadedData {
  const shape = validateImageShape(opts.imageShape ?? [16, 16, 1], 'synthetic image shape');
  const numClasses = positiveInt(opts.numClasses ?? 4, 'classes', 2);
  const trainSize = positiveInt(opts.trainSize ?? 1000, 'train', 1);
  const testSize = positiveInt(opts.testSize ?? 200, 'test', 1);
  const noise = opts.noise ?? 0.25;
  if (!(noise >= 0)) throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `synthetic noise must be ≥ 0; got ${noise}.`);
  const seed = opts.seed ?? 0;
  const templates = makeTemplates(shape, numClasses, seed);
  const [h, w, c] = shape;
  return {
    name: `synthetic:h=${h},w=${w},c=${c},classes=${numClasses},train=${trainSize},test=${testSize},noise=${noise},seed=${seed}`,
    numClasses,
    classNames: Array.from({ length: numClasses }, (_, k) => `class${k}`),
    trainPool: syntheticSource(templates, shape, numClasses, noise, seed, 0, trainSize),
    // Test samples use indices after the training pool's, so their noise is fresh.
    test: syntheticSource(templates, shape, numClasses, noise, seed, trainSize, testSize),
  };
}

function makeTemplates(shape: ImageShape, numClasses: number, seed: number): Float32Array[] {
  const [h, w, c] = shape;
  const gh = Math.min(TEMPLATE_GRID, h);
  const gw = Math.min(TEMPLATE_GRID, w);
  return Array.from({ length: numClasses }, (_, k) => {
    const rng = createRng(mixSeed(seed, SALT_TEMPLATE, k));
    const coarse = new Float32Array(gh * gw * c);
    for (let i = 0; i < coarse.length; i++) coarse[i] = rng();
    const full = new Float32Array(h * w * c);
    resizeImage(coarse, gh, gw, c, h, w, 'bilinear', full);
    return full;
  });
}

function syntheticSource(templates: readonly Float32Array[], shape: ImageShape, numClasses: number, noise: number, seed: number, offset: number, size: number): SampleSource {
  const sampleLength = shape[0] * shape[1] * shape[2];
  // Round-robin labels keep the classes balanced; the split permutation mixes them.
  const label = (index: number): number => (offset + index) % numClasses;
  return {
    size,
    imageShape: shape,
    label,
    read: async (indices, out) => {
      for (let k = 0; k < indices.length; k++) {
        const template = templates[label(indices[k])];
        const rng = createRng(mixSeed(seed, SALT_SAMPLE, offset + indices[k]));
        const o = k * sampleLength;
        for (let p = 0; p < sampleLength; p++) {
          const v = template[p] + noise * normal(rng);
          out[o + p] = v < 0 ? 0 : v > 1 ? 1 : v;
        }
      }
    },
  };
}

function positiveInt(v: number, what: string, min: number): number {
  if (!(Number.isInteger(v) && v >= min)) {
    throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `synthetic ${what} must be an integer ≥ ${min}; got ${String(v)}.`);
  }
  return v;
}
