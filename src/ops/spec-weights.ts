/**
 * Deterministic random weights and inputs for an OpSpec, shared by the tfjs builder and the
 * single-op `.tflite` writer, so that both run the same op on the same numbers.
 */
import type { OpSpec } from './op-spec.ts';
import { depthMultiplier, inputShapes } from './op-spec.ts';
import { createRng } from '../util/random.ts';

/** Weights in tfjs layouts: conv `[kh, kw, cIn, cOut]`, depthwise `[kh, kw, cIn, m]`, dense `[cIn, cOut]`, transposed conv `[kh, kw, cOut, cIn]`. */
export interface SpecWeights {
  readonly filter: Float32Array;
  readonly filterShape: readonly number[];
  readonly bias: Float32Array;
}

/** A seeded uniform [0, 1) generator (mulberry32). */
export const seededRandom = createRng;

/** `n` values uniform in [-scale, scale). */
export function randomArray(n: number, scale: number, rand: () => number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (rand() * 2 - 1) * scale;
  return out;
}

/** The weights of a conv/depthwise/dense spec (null for weightless kinds), scaled like Glorot. */
export function specWeights(spec: OpSpec, seed = 1): SpecWeights | null {
  const rand = seededRandom(seed);
  const [kh, kw] = spec.kernel;
  let filterShape: number[];
  let fanIn: number;
  if (spec.kind === 'conv2d') {
    filterShape = [kh, kw, spec.cIn, spec.cOut];
    fanIn = kh * kw * spec.cIn;
  } else if (spec.kind === 'depthwise') {
    filterShape = [kh, kw, spec.cIn, depthMultiplier(spec)];
    fanIn = kh * kw;
  } else if (spec.kind === 'dense') {
    filterShape = [spec.cIn, spec.cOut];
    fanIn = spec.cIn;
  } else if (spec.kind === 'transposeconv') {
    filterShape = [kh, kw, spec.cOut, spec.cIn];
    fanIn = kh * kw * spec.cIn;
  } else {
    return null;
  }
  const n = filterShape.reduce((a, b) => a * b, 1);
  const filter = randomArray(n, Math.sqrt(3 / fanIn), rand);
  const bias = randomArray(spec.cOut, 0.1, rand);
  return { filter, filterShape, bias };
}

/** Random inputs in [-1, 1) for every input of the spec, with a seed distinct from the weights'. */
export function specInputs(spec: OpSpec, seed = 2): Float32Array[] {
  const rand = seededRandom(seed * 7919 + 13);
  return inputShapes(spec).map((s) => randomArray(s.reduce((a, b) => a * b, 1), 1, rand));
}
