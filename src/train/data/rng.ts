/**
 * Small seeded random numbers for data work (splits, shuffles, synthetic images). Everything
 * here must be reproducible from a seed across runs and machines, which Math.random is not.
 */

export type { Rng } from '../../util/random.ts';
import type { Rng } from '../../util/random.ts';

/**
 * Mixes any number of integers (seed, epoch, index, salt) into one 32-bit seed. Uses the
 * murmur3 finaliser so that neighbouring inputs (epoch 1, epoch 2) give unrelated streams.
 */
export function mixSeed(...parts: readonly number[]): number {
  let h = 0x9e3779b9;
  for (const part of parts) {
    // Fold values beyond 32 bits in as well, so that seeds like Date.now() are not truncated.
    const v = Math.trunc(part);
    h = fmix(h ^ (v >>> 0));
    h = fmix(h ^ (Math.floor(v / 0x100000000) >>> 0));
  }
  return h >>> 0;
}

function fmix(x: number): number {
  let h = x >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export { createRng } from '../../util/random.ts';

/** A standard normal sample (Box–Muller). */
export function normal(rng: Rng): number {
  const u = 1 - rng(); // (0, 1]: log(0) would be -Infinity
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng());
}

/** Fisher–Yates shuffle of a copy of `values`. */
export function shuffled(values: Uint32Array, rng: Rng): Uint32Array {
  const out = values.slice();
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    const t = out[i];
    out[i] = out[j];
    out[j] = t;
  }
  return out;
}

/** `0 … n-1` in a seeded random order. */
export function permutation(n: number, rng: Rng): Uint32Array {
  const ids = new Uint32Array(n);
  for (let i = 0; i < n; i++) ids[i] = i;
  return shuffled(ids, rng);
}
