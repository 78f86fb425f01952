/**
 * An image-folder dataset: `DIR/<class>/<image>.png|jpg|jpeg`, one subfolder per class. Class
 * names sorted (by code point, so the order does not depend on the locale) give label ids.
 * Files are listed up front; images are read and decoded per batch, so a folder far bigger
 * than memory still trains.
 */
import { readdir, readFile } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { MorphError } from '../../errors.ts';
import type { LoadedData } from './assemble.ts';
import type { ImageShape } from './dataset.ts';
import { decodeImage } from './image-decode.ts';
import { convertChannels, resizeImage, validateImageShape, VALID_CHANNELS, type ResizeMethod } from './image-ops.ts';
import type { SampleSource } from './sample-source.ts';

export const IMAGE_EXTENSIONS: readonly string[] = ['.png', '.jpg', '.jpeg'];

export interface FolderDatasetOptions {
  /** Decode every image to this shape (resized, channels converted). Default: the first image's size, `channels` channels, and then every image must have that size. */
  imageShape?: ImageShape;
  /** Channels when `imageShape` is not given: 1 (grey) or 3 (RGB). Default 3. */
  channels?: number;
  /** Resize method when `imageShape` is given. Default 'bilinear'. */
  resize?: ResizeMethod;
  /** Largest image accepted, in pixels. Default 50 megapixels. */
  maxPixels?: number;
  /** Files read at once while filling a batch. Default 16. */
  concurrency?: number;
}

interface Entry {
  readonly file: string;
  readonly label: number;
}

/**
 * Lists an image folder and returns its (lazy) training source; folders have no test set.
 * Throws MORPH_ERR_NOT_FOUND if DIR cannot be read, MORPH_ERR_DATASET for a layout problem
 * (fewer than two classes, an empty class) or, from the batches, an image that cannot be decoded
 * or has the wrong size.
 */
export async function loadFolderDataset(dir: string, opts: FolderDatasetOptions = {}): Promise<LoadedData> {
  let top;
  try {
    top = await readdir(dir, { withFileTypes: true });
  } catch (err) {
    throw new MorphError('MORPH_ERR_NOT_FOUND', `Cannot read image folder ${dir}: ${(err as Error).message}`, { dir });
  }
  const classNames = top.filter((e) => e.isDirectory() && !e.name.startsWith('.')).map((e) => e.name).sort(byCodePoint);
  if (classNames.length < 2) {
    throw new MorphError('MORPH_ERR_DATASET', `Image folder ${dir} has ${classNames.length} class subfolder(s); it needs one subfolder per class (at least 2), each holding ${IMAGE_EXTENSIONS.join('/')} images.`, { dir });
  }
  const entries: Entry[] = [];
  for (const [label, name] of classNames.entries()) {
    const classDir = join(dir, name);
    const files = (await readdir(classDir, { withFileTypes: true }))
      .filter((e) => e.isFile() && IMAGE_EXTENSIONS.includes(extname(e.name).toLowerCase()))
      .map((e) => e.name)
      .sort(byCodePoint);
    if (files.length === 0) {
      throw new MorphError('MORPH_ERR_DATASET', `Class folder ${classDir} has no ${IMAGE_EXTENSIONS.join('/')} images; add some or remove the folder.`, { dir: classDir });
    }
    for (const f of files) entries.push({ file: join(classDir, f), label });
  }

  const resize = opts.resize ?? 'bilinear';
  const maxPixels = opts.maxPixels;
  let shape: ImageShape;
  let fixedSize: boolean;
  if (opts.imageShape) {
    shape = validateImageShape(opts.imageShape);
    fixedSize = false;
  } else {
    const channels = opts.channels ?? 3;
    if (!VALID_CHANNELS.includes(channels)) {
      throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `channels must be ${VALID_CHANNELS.join(' or ')}; got ${String(channels)}.`);
    }
    const first = decodeImage(await readImageFile(entries[0].file), entries[0].file, { maxPixels });
    shape = [first.height, first.width, channels];
    fixedSize = true;
  }

  return {
    name: `folder:${dir}`,
    numClasses: classNames.length,
    classNames,
    trainPool: folderSource(entries, shape, fixedSize, resize, maxPixels, opts.concurrency ?? 16),
  };
}

function folderSource(entries: readonly Entry[], shape: ImageShape, fixedSize: boolean, resize: ResizeMethod, maxPixels: number | undefined, concurrency: number): SampleSource {
  const [h, w, c] = shape;
  const sampleLength = h * w * c;
  const decodeInto = (bytes: Uint8Array, file: string, out: Float32Array): void => {
    const img = decodeImage(bytes, file, { maxPixels });
    if (fixedSize && (img.width !== w || img.height !== h)) {
      throw new MorphError('MORPH_ERR_DATASET', `Image ${file} is ${img.width}×${img.height} (w×h) but the folder's first image is ${w}×${h}; pass imageShape [height, width, channels] to resize all images.`, { file });
    }
    const converted = new Float32Array(img.width * img.height * c);
    convertChannels(img.rgba, img.width * img.height, 4, c, converted, 1 / 255);
    resizeImage(converted, img.height, img.width, c, h, w, resize, out);
  };
  return {
    size: entries.length,
    imageShape: shape,
    label: (index) => entries[index].label,
    read: async (indices, out) => {
      // A small pool of readers: a batch of 256 files should not open 256 descriptors at once.
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < indices.length) {
          const k = next++;
          const file = entries[indices[k]].file;
          decodeInto(await readImageFile(file), file, out.subarray(k * sampleLength, (k + 1) * sampleLength));
        }
      };
      await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, indices.length)) }, worker));
    },
  };
}

async function readImageFile(file: string): Promise<Uint8Array> {
  try {
    return await readFile(file);
  } catch (err) {
    throw new MorphError('MORPH_ERR_DATASET', `Cannot read image ${file}: ${(err as Error).message}`, { file });
  }
}

function byCodePoint(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
