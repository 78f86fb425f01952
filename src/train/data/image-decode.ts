/**
 * Decodes one PNG or JPEG file to RGBA bytes with pure-JS decoders (pngjs, jpeg-js), so that
 * image folders work everywhere Node runs, with no native build. The format is sniffed from
 * the file's magic bytes, not its extension.
 */
import { decode as decodeJpeg } from 'jpeg-js';
import { PNG } from 'pngjs';
import { MorphError } from '../../errors.ts';

export interface DecodedImage {
  readonly width: number;
  readonly height: number;
  /** `width·height·4` bytes, RGBA, row-major. */
  readonly rgba: Uint8Array;
}

export interface DecodeOptions {
  /** Refuse images with more pixels than this (decompression bombs). Default 50 megapixels. */
  maxPixels?: number;
}

export const DEFAULT_MAX_IMAGE_PIXELS = 50_000_000;

const PNG_MAGIC = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const JPEG_MAGIC = [0xff, 0xd8, 0xff];

function startsWith(bytes: Uint8Array, magic: readonly number[]): boolean {
  return bytes.length >= magic.length && magic.every((b, i) => bytes[i] === b);
}

/** Decodes `bytes` read from `file`. Throws MORPH_ERR_DATASET naming the file when it cannot. */
export function decodeImage(bytes: Uint8Array, file: string, opts: DecodeOptions = {}): DecodedImage {
  const maxPixels = opts.maxPixels ?? DEFAULT_MAX_IMAGE_PIXELS;
  let image: DecodedImage;
  if (startsWith(bytes, PNG_MAGIC)) {
    checkPngSize(bytes, file, maxPixels);
    try {
      const png = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
      image = { width: png.width, height: png.height, rgba: new Uint8Array(png.data.buffer, png.data.byteOffset, png.data.byteLength) };
    } catch (err) {
      throw unreadable(file, `PNG: ${(err as Error).message}`);
    }
  } else if (startsWith(bytes, JPEG_MAGIC)) {
    try {
      const jpg = decodeJpeg(bytes, {
        useTArray: true,
        formatAsRGBA: true,
        maxResolutionInMP: maxPixels / 1e6,
        maxMemoryUsageInMB: Math.ceil((maxPixels * 8) / 1e6) + 64,
      });
      image = { width: jpg.width, height: jpg.height, rgba: jpg.data };
    } catch (err) {
      throw unreadable(file, `JPEG: ${err instanceof Error ? err.message : String(err)}`);
    }
  } else {
    throw unreadable(file, 'it is neither a PNG nor a JPEG (unknown magic bytes)');
  }
  if (image.width < 1 || image.height < 1 || image.rgba.length < image.width * image.height * 4) {
    throw unreadable(file, `decoded to an empty or short ${image.width}×${image.height} image`);
  }
  return image;
}

/** Reads the IHDR size before decoding, so a huge PNG is refused before pngjs allocates it. */
function checkPngSize(bytes: Uint8Array, file: string, maxPixels: number): void {
  if (bytes.length < 24) throw unreadable(file, 'PNG: truncated before its IHDR header');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const w = view.getUint32(16, false);
  const h = view.getUint32(20, false);
  if (w * h > maxPixels) {
    throw new MorphError('MORPH_ERR_LIMIT', `Image ${file} is ${w}×${h}, over the limit of ${maxPixels} pixels.`, { file, limit: maxPixels });
  }
}

function unreadable(file: string, why: string): MorphError {
  return new MorphError('MORPH_ERR_DATASET', `Cannot decode image ${file}: ${why}.`, { file });
}
