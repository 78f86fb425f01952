/**
 * A sample source is random access to the images and labels of one file or folder: the part
 * each loader provides. Splitting, limiting and batching are built on top of it once
 * (see `assemble.ts`), so loaders only know how to read sample `i`.
 */
import type { ImageShape } from './dataset.ts';

export interface SampleSource {
  /** Number of samples, addressed `0 … size-1`. */
  readonly size: number;
  readonly imageShape: ImageShape;
  /** Label of sample `index`; labels are known up front (they are small). */
  label(index: number): number;
  /**
   * Writes the pixels of samples `indices`, in that order, into `out` (NHWC, [0, 1]), which
   * holds exactly `indices.length · h · w · c` floats. Async so that a source may read files.
   */
  read(indices: ArrayLike<number>, out: Float32Array): Promise<void>;
}

/**
 * A source over pixels already in memory (a decoded IDX file, the `mnist` package's JSON).
 * `scale` maps stored values to [0, 1]: 1/255 for bytes, 1 for floats.
 */
export function arraySource(
  pixels: Uint8Array | Float32Array,
  labels: Uint8Array | Int32Array,
  imageShape: ImageShape,
  scale: number,
): SampleSource {
  const sampleLength = imageShape[0] * imageShape[1] * imageShape[2];
  return {
    size: labels.length,
    imageShape,
    label: (index) => labels[index],
    read: async (indices, out) => {
      for (let k = 0; k < indices.length; k++) {
        const from = indices[k] * sampleLength;
        const to = k * sampleLength;
        for (let p = 0; p < sampleLength; p++) out[to + p] = pixels[from + p] * scale;
      }
    },
  };
}
