/**
 * Pixel-level conversions shared by the loaders: channel count (grey ↔ RGB) and size.
 * They work on one float image (HWC, [0, 1]) at a time so that no loader holds more than a batch.
 */
import { MorphError } from '../../errors.ts';
import type { ImageShape } from './dataset.ts';
import type { SampleSource } from './sample-source.ts';

export type ResizeMethod = 'nearest' | 'bilinear';
export const VALID_RESIZE_METHODS: readonly ResizeMethod[] = ['nearest', 'bilinear'];

/** Channel counts the loaders can produce: grey or RGB. */
export const VALID_CHANNELS: readonly number[] = [1, 3];

/** ITU-R BT.601 luma weights, the usual RGB → grey conversion (PIL's `convert('L')` uses them). */
const LUMA = [0.299, 0.587, 0.114] as const;

/**
 * Converts `h·w` pixels of `cIn` channels to `cOut` channels. Supported: equal counts, 1 → 3
 * (replicate), 3 → 1 (luma), 4 → 1 or 3 (alpha dropped: RGBA from the decoders).
 */
export function convertChannels(src: ArrayLike<number>, pixels: number, cIn: number, cOut: number, out: Float32Array, scale = 1): void {
  if (cIn === cOut) {
    for (let i = 0; i < pixels * cIn; i++) out[i] = src[i] * scale;
  } else if (cIn === 1 && cOut === 3) {
    for (let i = 0; i < pixels; i++) {
      const v = src[i] * scale;
      out[3 * i] = v;
      out[3 * i + 1] = v;
      out[3 * i + 2] = v;
    }
  } else if ((cIn === 3 || cIn === 4) && cOut === 1) {
    for (let i = 0; i < pixels; i++) {
      const o = cIn * i;
      out[i] = (LUMA[0] * src[o] + LUMA[1] * src[o + 1] + LUMA[2] * src[o + 2]) * scale;
    }
  } else if (cIn === 4 && cOut === 3) {
    for (let i = 0; i < pixels; i++) {
      out[3 * i] = src[4 * i] * scale;
      out[3 * i + 1] = src[4 * i + 1] * scale;
      out[3 * i + 2] = src[4 * i + 2] * scale;
    }
  } else {
    throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `Cannot convert images with ${cIn} channels to ${cOut} channels; accepted target channel counts: ${VALID_CHANNELS.join(', ')}.`);
  }
}

/**
 * Resizes one HWC image. Bilinear uses half-pixel centres (as tf.image.resizeBilinear with
 * `halfPixelCenters: true` and PIL), so that a 2× upscale does not shift the image.
 */
export function resizeImage(
  src: Float32Array,
  h: number,
  w: number,
  c: number,
  outH: number,
  outW: number,
  method: ResizeMethod,
  out: Float32Array,
): void {
  if (h === outH && w === outW) {
    out.set(src.subarray(0, h * w * c));
    return;
  }
  const sy = h / outH;
  const sx = w / outW;
  for (let y = 0; y < outH; y++) {
    for (let x = 0; x < outW; x++) {
      const o = (y * outW + x) * c;
      if (method === 'nearest') {
        const iy = Math.min(h - 1, Math.floor((y + 0.5) * sy));
        const ix = Math.min(w - 1, Math.floor((x + 0.5) * sx));
        const i = (iy * w + ix) * c;
        for (let ch = 0; ch < c; ch++) out[o + ch] = src[i + ch];
      } else {
        const fy = Math.min(h - 1, Math.max(0, (y + 0.5) * sy - 0.5));
        const fx = Math.min(w - 1, Math.max(0, (x + 0.5) * sx - 0.5));
        const y0 = Math.floor(fy);
        const x0 = Math.floor(fx);
        const y1 = Math.min(h - 1, y0 + 1);
        const x1 = Math.min(w - 1, x0 + 1);
        const dy = fy - y0;
        const dx = fx - x0;
        for (let ch = 0; ch < c; ch++) {
          const a = src[(y0 * w + x0) * c + ch];
          const b = src[(y0 * w + x1) * c + ch];
          const d = src[(y1 * w + x0) * c + ch];
          const e = src[(y1 * w + x1) * c + ch];
          out[o + ch] = (a * (1 - dx) + b * dx) * (1 - dy) + (d * (1 - dx) + e * dx) * dy;
        }
      }
    }
  }
}

/** Checks a requested image shape: three positive integers, 1 or 3 channels. */
export function validateImageShape(shape: unknown, what = 'imageShape'): ImageShape {
  if (
    !Array.isArray(shape) ||
    shape.length !== 3 ||
    !shape.every((d) => Number.isInteger(d) && d > 0)
  ) {
    throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `${what} must be [height, width, channels] of positive integers; got ${JSON.stringify(shape)}.`);
  }
  if (!VALID_CHANNELS.includes(shape[2] as number)) {
    throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `${what} must have ${VALID_CHANNELS.join(' or ')} channels; got ${shape[2] as number}.`);
  }
  return [shape[0] as number, shape[1] as number, shape[2] as number];
}

/**
 * Wraps a source so that it yields images of `target` shape: channels converted, then resized.
 * Returns the source itself when it already has that shape.
 */
export function reshapeSource(source: SampleSource, target: ImageShape, method: ResizeMethod): SampleSource {
  const [h, w, c] = source.imageShape;
  const [outH, outW, outC] = target;
  if (h === outH && w === outW && c === outC) return source;
  const inLength = h * w * c;
  const outLength = outH * outW * outC;
  const converted = new Float32Array(h * w * outC);
  return {
    size: source.size,
    imageShape: target,
    label: (index) => source.label(index),
    read: async (indices, out) => {
      const raw = new Float32Array(indices.length * inLength);
      await source.read(indices, raw);
      for (let k = 0; k < indices.length; k++) {
        convertChannels(raw.subarray(k * inLength, (k + 1) * inLength), h * w, c, outC, converted);
        resizeImage(converted, h, w, outC, outH, outW, method, out.subarray(k * outLength, (k + 1) * outLength));
      }
    },
  };
}
