/**
 * Deterministic train/val splits and subsets. The validation set is carved out of the training
 * file by a seeded permutation, so the same seed gives the same split on every run, and a
 * different seed a different one; the test file is never touched by the split.
 */
import { MorphError } from '../../errors.ts';
import { createRng, mixSeed, permutation } from './rng.ts';

/** Default share of the training file held out for validation. */
export const DEFAULT_VAL_FRACTION = 0.1;

// Salts keep the streams of the split and the test subset independent for one seed.
const SALT_SPLIT = 0x5b11;
const SALT_TEST = 0x7e57;

export interface SplitOptions {
  /** Share of the (limited) training pool used for validation, in [0, 1). Default 0.1. */
  valFraction?: number;
  /** Seed of the split. Default 0. */
  seed?: number;
  /** Use at most this many samples of the training file (train + val together). */
  limit?: number;
}

export interface SplitPlan {
  /** Indices into the training source, ascending. */
  readonly train: Uint32Array;
  /** Indices into the training source, ascending, disjoint from `train`. */
  readonly val: Uint32Array;
}

/** Splits a training file of `poolSize` samples into train and val index sets. */
export function splitTrainVal(poolSize: number, opts: SplitOptions = {}): SplitPlan {
  const valFraction = opts.valFraction ?? DEFAULT_VAL_FRACTION;
  if (!(typeof valFraction === 'number' && valFraction >= 0 && valFraction < 1)) {
    throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `valFraction must be a number in [0, 1); got ${String(valFraction)}.`);
  }
  const seed = opts.seed ?? 0;
  const order = permutation(poolSize, createRng(mixSeed(seed, SALT_SPLIT)));
  const used = Math.min(poolSize, checkLimit(opts.limit, 'limit.train') ?? poolSize);
  const valCount = Math.round(used * valFraction);
  if (used - valCount < 1) {
    throw new MorphError('MORPH_ERR_DATASET', `The training set has ${used} samples: too few to hold out ${valCount} for validation and keep any for training; lower valFraction or raise limit.train.`);
  }
  return {
    val: order.slice(0, valCount).sort(),
    train: order.slice(valCount, used).sort(),
  };
}

/** A seeded subset of at most `limit` of `0 … size-1`, ascending; all of them without a limit. */
export function selectSubset(size: number, limit: number | undefined, seed = 0): Uint32Array {
  const n = checkLimit(limit, 'limit.test');
  if (n === undefined || n >= size) {
    const all = new Uint32Array(size);
    for (let i = 0; i < size; i++) all[i] = i;
    return all;
  }
  return permutation(size, createRng(mixSeed(seed, SALT_TEST))).slice(0, n).sort();
}

function checkLimit(limit: number | undefined, what: string): number | undefined {
  if (limit === undefined) return undefined;
  if (!(Number.isInteger(limit) && limit > 0)) {
    throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `${what} must be a positive integer; got ${String(limit)}.`);
  }
  return limit;
}
