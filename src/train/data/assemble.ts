/**
 * Turns what a loader read (a training source and maybe a test source) into a `Dataset`:
 * optional reshaping, limits, the seeded train/val split and lazy batching. Every loader goes
 * through here so that splits and batches behave the same for all of them.
 */
import { MorphError } from '../../errors.ts';
import type { Batch, BatchOptions, Dataset, ImageShape, Split } from './dataset.ts';
import { reshapeSource, type ResizeMethod } from './image-ops.ts';
import { createRng, mixSeed, shuffled } from './rng.ts';
import type { SampleSource } from './sample-source.ts';
import { selectSubset, splitTrainVal } from './split.ts';

/** What a loader returns: the parts of a dataset before splitting. */
export interface LoadedData {
  readonly name: string;
  readonly numClasses: number;
  readonly classNames?: readonly string[];
  /** The training file: train and val are both carved out of it. */
  readonly trainPool: SampleSource;
  readonly test?: SampleSource;
}

export interface AssembleOptions {
  /** Share of the training pool held out for validation, in [0, 1). Default 0.1. */
  valFraction?: number;
  /** Seed of the train/val split and of limited subsets. Default 0. */
  seed?: number;
  /** Use at most this many training-file samples (train + val) and test samples. */
  limit?: { train?: number; test?: number };
  /** Convert and resize every image to this shape. Default: the source's own shape. */
  imageShape?: ImageShape;
  /** How to resize when `imageShape` differs in size. Default 'bilinear'. */
  resize?: ResizeMethod;
}

/** A source with the indices of one split. */
interface SplitView {
  readonly source: SampleSource;
  readonly indices: Uint32Array;
}

// Distinct shuffle streams per split, so val order is not a prefix of train order.
const SPLIT_SALT: Readonly<Record<Split, number>> = { train: 0x7a1, val: 0x7a2, test: 0x7a3 };

export function assembleDataset(data: LoadedData, opts: AssembleOptions = {}): Dataset {
  const seed = opts.seed ?? 0;
  const resize = opts.resize ?? 'bilinear';
  const shape = opts.imageShape ?? data.trainPool.imageShape;
  const trainPool = reshapeSource(data.trainPool, shape, resize);
  const test = data.test && reshapeSource(data.test, shape, resize);
  const plan = splitTrainVal(trainPool.size, { valFraction: opts.valFraction, seed, limit: opts.limit?.train });
  const views: Partial<Record<Split, SplitView>> = {
    train: { source: trainPool, indices: plan.train },
    val: { source: trainPool, indices: plan.val },
  };
  if (test) views.test = { source: test, indices: selectSubset(test.size, opts.limit?.test, seed) };

  const viewOf = (split: Split): SplitView => {
    const view = views[split];
    if (!view) {
      const why = split === 'test' ? `has no test set` : `has no split "${String(split)}"`;
      throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `Dataset ${data.name} ${why}; splits here: ${Object.keys(views).join(', ')}.`);
    }
    return view;
  };
  const splitRng = (split: Split, o: BatchOptions) => createRng(mixSeed(o.seed ?? 0, o.epoch ?? 0, SPLIT_SALT[split]));

  return {
    name: data.name,
    imageShape: [shape[0], shape[1], shape[2]],
    numClasses: data.numClasses,
    ...(data.classNames ? { classNames: data.classNames } : {}),
    trainSize: plan.train.length,
    valSize: plan.val.length,
    ...(views.test ? { testSize: views.test.indices.length } : {}),
    batches(split: Split, batchSize: number, batchOpts: BatchOptions = {}): AsyncIterable<Batch> {
      const view = viewOf(split);
      if (!(Number.isInteger(batchSize) && batchSize > 0)) {
        throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `batchSize must be a positive integer; got ${String(batchSize)}.`);
      }
      const order = batchOpts.shuffle ? shuffled(view.indices, splitRng(split, batchOpts)) : view.indices;
      return iterateBatches(view.source, order, batchSize);
    },
    order(split: Split, batchOpts: BatchOptions = {}): Uint32Array {
      const view = viewOf(split);
      const positions = Uint32Array.from({ length: view.indices.length }, (_, i) => i);
      // The same Fisher–Yates draws as `batches`: a shuffle's permutation does not depend on the values.
      return batchOpts.shuffle ? shuffled(positions, splitRng(split, batchOpts)) : positions;
    },
  };
}

/** Yields one freshly allocated batch at a time: only `batchSize` images are decoded at once. */
async function* iterateBatches(source: SampleSource, order: Uint32Array, batchSize: number): AsyncGenerator<Batch> {
  const [h, w, c] = source.imageShape;
  const sampleLength = h * w * c;
  for (let start = 0; start < order.length; start += batchSize) {
    const ids = order.subarray(start, Math.min(start + batchSize, order.length));
    const x = new Float32Array(ids.length * sampleLength);
    const y = new Int32Array(ids.length);
    await source.read(ids, x);
    for (let k = 0; k < ids.length; k++) y[k] = source.label(ids[k]);
    yield { x, y, n: ids.length };
  }
}
