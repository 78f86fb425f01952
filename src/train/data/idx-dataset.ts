/**
 * Loads an MNIST-style directory of IDX files: `train-images-idx3-ubyte`,
 * `train-labels-idx1-ubyte` and optionally `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`,
 * each gzipped (`.gz`) or not. Images are decoded once into one byte array (47 MB for 60k
 * 28×28); float batches are made lazily from it.
 */
import { access, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { MorphError } from '../../errors.ts';
import type { LoadedData } from './assemble.ts';
import { readIdxFile, type IdxArray } from './idx.ts';
import { arraySource, type SampleSource } from './sample-source.ts';

/** Where Debian's `dataset-fashion-mnist` package installs the gzipped IDX files. */
export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';
/** The Debian package that provides Fashion-MNIST at FASHION_MNIST_DIR. */
export const FASHION_MNIST_APT_PACKAGE = 'dataset-fashion-mnist';

/** Fashion-MNIST's label names, index = label (github.com/zalandoresearch/fashion-mnist#labels). */
export const FASHION_MNIST_CLASSES: readonly string[] = [
  'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot',
];

export interface IdxDatasetOptions {
  /** Name for logs. Default `idx:DIR`. */
  name?: string;
  /** Number of classes; every label must be below it. Default: the largest training label + 1. */
  numClasses?: number;
  classNames?: readonly string[];
  /** Largest IDX file read, compressed or not. Default 1 GiB. */
  maxBytes?: number;
  /** Extra hint appended to the not-found error (e.g. which package to install). */
  missingHint?: string;
}

/** File names tried for each part, in order: the canonical names, then the `.`-separated variant some mirrors use. */
function candidates(prefix: 'train' | 't10k', kind: 'images' | 'labels'): string[] {
  const rank = kind === 'images' ? 'idx3' : 'idx1';
  const bases = [`${prefix}-${kind}-${rank}-ubyte`, `${prefix}-${kind}.${rank}-ubyte`];
  return bases.flatMap((b) => [b, `${b}.gz`]);
}

async function findFile(dir: string, names: readonly string[]): Promise<string | undefined> {
  for (const name of names) {
    const path = join(dir, name);
    try {
      await access(path);
      return path;
    } catch {
      // try the next name
    }
  }
  return undefined;
}

/**
 * Reads an IDX directory. Throws MORPH_ERR_NOT_FOUND when the directory or its training files
 * are missing, MORPH_ERR_DATASET when files are malformed, disagree with each other, or hold
 * labels out of range.
 */
export async function loadIdxDataset(dir: string, opts: IdxDatasetOptions = {}): Promise<LoadedData> {
  const hint = opts.missingHint ? ` ${opts.missingHint}` : '';
  const isDir = await stat(dir).then((s) => s.isDirectory(), () => false);
  if (!isDir) {
    throw new MorphError('MORPH_ERR_NOT_FOUND', `IDX dataset directory ${dir} does not exist or is not a directory.${hint}`, { dir });
  }
  const trainImagesFile = await findFile(dir, candidates('train', 'images'));
  const trainLabelsFile = await findFile(dir, candidates('train', 'labels'));
  if (!trainImagesFile || !trainLabelsFile) {
    const missing = [trainImagesFile ? undefined : candidates('train', 'images'), trainLabelsFile ? undefined : candidates('train', 'labels')]
      .filter((c): c is string[] => c !== undefined)
      .map((c) => c.join(' or '));
    throw new MorphError('MORPH_ERR_NOT_FOUND', `IDX dataset directory ${dir} lacks ${missing.join(', and ')}.${hint}`, { dir });
  }
  const testImagesFile = await findFile(dir, candidates('t10k', 'images'));
  const testLabelsFile = await findFile(dir, candidates('t10k', 'labels'));
  if (Boolean(testImagesFile) !== Boolean(testLabelsFile)) {
    const have = testImagesFile ?? testLabelsFile;
    const lacks = testImagesFile ? candidates('t10k', 'labels') : candidates('t10k', 'images');
    throw new MorphError('MORPH_ERR_DATASET', `IDX dataset directory ${dir} has ${have} but not its partner ${lacks.join(' or ')}; add it or remove both test files.`, { dir });
  }

  const readOpts = { maxBytes: opts.maxBytes };
  const train = await readPair(trainImagesFile, trainLabelsFile, readOpts);
  const test = testImagesFile && testLabelsFile ? await readPair(testImagesFile, testLabelsFile, readOpts) : undefined;
  if (test && (test.shape[0] !== train.shape[0] || test.shape[1] !== train.shape[1])) {
    throw new MorphError('MORPH_ERR_DATASET', `IDX test images ${testImagesFile} are ${test.shape[0]}×${test.shape[1]} but training images ${trainImagesFile} are ${train.shape[0]}×${train.shape[1]}; both must have the same size.`, { file: testImagesFile });
  }

  let numClasses = opts.numClasses;
  if (numClasses === undefined) {
    numClasses = maxOf(train.labels) + 1;
  } else if (!(Number.isInteger(numClasses) && numClasses > 0)) {
    throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `numClasses must be a positive integer; got ${String(numClasses)}.`);
  }
  const inferred = opts.numClasses === undefined;
  checkLabels(train.labels, trainLabelsFile, numClasses, inferred ? 'the training labels' : 'the dataset');
  if (test && testLabelsFile) checkLabels(test.labels, testLabelsFile, numClasses, inferred ? `the training labels (${trainLabelsFile})` : 'the dataset');

  return {
    name: opts.name ?? `idx:${dir}`,
    numClasses,
    ...(opts.classNames ? { classNames: opts.classNames } : {}),
    trainPool: train.source,
    ...(test ? { test: test.source } : {}),
  };
}

interface Pair {
  readonly shape: readonly [number, number];
  readonly labels: Uint8Array;
  readonly source: SampleSource;
}

async function readPair(imagesFile: string, labelsFile: string, opts: { maxBytes?: number }): Promise<Pair> {
  const images = await readIdxFile(imagesFile, opts);
  const labels = await readIdxFile(labelsFile, opts);
  expectDims(images, 3, imagesFile, 'images (count, rows, columns)');
  expectDims(labels, 1, labelsFile, 'labels (count)');
  const [count, rows, cols] = images.dims;
  if (count !== labels.dims[0]) {
    throw new MorphError('MORPH_ERR_DATASET', `IDX image/label count mismatch: ${imagesFile} holds ${count} images but ${labelsFile} holds ${labels.dims[0]} labels; they must be the same pair of files.`, { file: imagesFile, labelsFile });
  }
  if (count === 0 || rows === 0 || cols === 0) {
    throw new MorphError('MORPH_ERR_DATASET', `IDX file ${imagesFile} is empty: ${images.dims.join('×')} images.`, { file: imagesFile });
  }
  return {
    shape: [rows, cols],
    labels: labels.data,
    source: arraySource(images.data, labels.data, [rows, cols, 1], 1 / 255),
  };
}

function expectDims(arr: IdxArray, n: number, file: string, what: string): void {
  if (arr.dims.length !== n) {
    throw new MorphError('MORPH_ERR_DATASET', `IDX file ${file} has ${arr.dims.length} dimensions (${arr.dims.join('×')}); ${what} need ${n}. Is it the right file?`, { file });
  }
}

function maxOf(values: Uint8Array): number {
  let max = 0;
  for (const v of values) if (v > max) max = v;
  return max;
}

function checkLabels(labels: Uint8Array, file: string, numClasses: number, source: string): void {
  for (let i = 0; i < labels.length; i++) {
    if (labels[i] >= numClasses) {
      throw new MorphError('MORPH_ERR_DATASET', `IDX file ${file} has label ${labels[i]} at index ${i}, out of range [0, ${numClasses - 1}] given by ${source} (${numClasses} classes).`, { file, index: i, label: labels[i], numClasses });
    }
  }
}
