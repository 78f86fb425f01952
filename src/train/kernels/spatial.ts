/**
 * Spatial helpers shared by the gradient kernels (NHWC tensors only). They express the index
 * arithmetic of a strided, padded convolution as plain slicing and padding, so each kernel can be
 * written as one forward convolution over a re-arranged tensor.
 */

import * as tf from '@tensorflow/tfjs';

/** A window along one spatial axis: `start` may be negative (zeros before the data). */
export interface AxisWindow {
  start: number;
  length: number;
}

/**
 * Take rows `[rows.start, rows.start + rows.length)` and the same for columns of an NHWC tensor,
 * where positions outside the tensor read as zero. Negative padding (a window that stops before
 * the data ends) becomes a slice, which a plain `tf.pad` cannot express.
 */
export function padOrCrop(t: tf.Tensor4D, rows: AxisWindow, cols: AxisWindow): tf.Tensor4D {
  const [, h, w] = t.shape;
  const cropTop = Math.max(0, rows.start);
  const cropLeft = Math.max(0, cols.start);
  const cropBottom = Math.max(0, h - (rows.start + rows.length));
  const cropRight = Math.max(0, w - (cols.start + cols.length));
  let out = t;
  if (cropTop + cropBottom + cropLeft + cropRight > 0) {
    out = tf.slice(out, [0, cropTop, cropLeft, 0], [-1, h - cropTop - cropBottom, w - cropLeft - cropRight, -1]);
  }
  const padTop = Math.max(0, -rows.start);
  const padLeft = Math.max(0, -cols.start);
  const padBottom = Math.max(0, rows.start + rows.length - h);
  const padRight = Math.max(0, cols.start + cols.length - w);
  if (padTop + padBottom + padLeft + padRight > 0) {
    out = tf.pad(out, [[0, 0], [padTop, padBottom], [padLeft, padRight], [0, 0]]);
  }
  return out;
}

/**
 * Spread the spatial positions of an NHWC tensor `stride` apart, with zeros between them
 * (`[N, H, W, C]` → `[N, H·sh, W·sw, C]`; the last `s - 1` rows and columns are zeros). This turns
 * the gradient of a strided convolution into one with stride 1. Done as reshape → pad → reshape
 * so it runs on any backend that has `PadV2`.
 */
export function spreadByStride(t: tf.Tensor4D, strideHeight: number, strideWidth: number): tf.Tensor4D {
  if (strideHeight === 1 && strideWidth === 1) return t;
  const [n, h, w, c] = t.shape;
  const six = tf.reshape(t, [n, h, 1, w, 1, c]);
  const padded = tf.pad(six, [[0, 0], [0, 0], [0, strideHeight - 1], [0, 0], [0, strideWidth - 1], [0, 0]]);
  return tf.reshape(padded, [n, h * strideHeight, w * strideWidth, c]);
}
