/**
 * The IDX file format of MNIST and Fashion-MNIST (http://yann.lecun.com/exdb/mnist/, "FILE
 * FORMATS"): two zero bytes, a type byte, a dimension count, big-endian uint32 sizes, then the
 * data. Files may be gzipped (as shipped) or not (as unpacked by many tools); we sniff the gzip
 * magic rather than trust the file name.
 */
import { readFile, stat } from 'node:fs/promises';
import { gunzip } from 'node:zlib';
import { promisify } from 'node:util';
import { MorphError } from '../../errors.ts';

const gunzipAsync = promisify(gunzip);

/** IDX type byte for unsigned bytes, the only type image and label files use. */
const IDX_UBYTE = 0x08;
const IDX_TYPE_NAMES: Readonly<Record<number, string>> = {
  0x08: 'unsigned byte', 0x09: 'signed byte', 0x0b: 'short', 0x0c: 'int', 0x0d: 'float', 0x0e: 'double',
};

/** Largest IDX payload read by default: 1 GiB (Fashion-MNIST's training images are 47 MB). */
export const DEFAULT_MAX_IDX_BYTES = 1024 * 1024 * 1024;

export interface IdxArray {
  /** Sizes of each dimension, outermost (sample count) first. */
  readonly dims: readonly number[];
  /** The payload, a view into the file's bytes (no copy). */
  readonly data: Uint8Array;
}

export interface ReadIdxOptions {
  /** Refuse files (compressed or, after gunzip, decompressed) over this many bytes. Default 1 GiB. */
  maxBytes?: number;
}

/**
 * Parses an unsigned-byte IDX buffer. `file` names it in errors. Throws MORPH_ERR_DATASET for a
 * wrong magic number, an unsupported type, a truncated file or trailing bytes.
 */
export function parseIdx(bytes: Uint8Array, file: string): IdxArray {
  if (bytes.length < 4) {
    throw datasetError(file, `is truncated: ${bytes.length} bytes, shorter than the 4-byte IDX magic number`);
  }
  if (bytes[0] !== 0 || bytes[1] !== 0) {
    const magic = Array.from(bytes.subarray(0, 4), (b) => b.toString(16).padStart(2, '0')).join('');
    throw datasetError(file, `has a wrong magic number 0x${magic}: an IDX file starts with 0x0000, then a type byte and a dimension count (e.g. 0x00000803 for images)`);
  }
  const type = bytes[2];
  if (type !== IDX_UBYTE) {
    const name = IDX_TYPE_NAMES[type] ?? 'unknown';
    throw datasetError(file, `has IDX data type 0x${type.toString(16).padStart(2, '0')} (${name}); only unsigned byte (0x08) image and label files are supported`);
  }
  const ndims = bytes[3];
  if (ndims < 1) throw datasetError(file, 'has a wrong magic number: it declares 0 dimensions');
  const headerLength = 4 + 4 * ndims;
  if (bytes.length < headerLength) {
    throw datasetError(file, `is truncated: ${bytes.length} bytes, shorter than its ${headerLength}-byte header`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims: number[] = [];
  let expected = 1;
  for (let i = 0; i < ndims; i++) {
    const d = view.getUint32(4 + 4 * i, false);
    dims.push(d);
    expected *= d;
  }
  const found = bytes.length - headerLength;
  if (found < expected) {
    throw datasetError(file, `is truncated: its header declares ${dims.join('×')} = ${expected} bytes of data but only ${found} follow`);
  }
  if (found > expected) {
    throw datasetError(file, `has ${found - expected} bytes after the ${dims.join('×')} data its header declares; is it the right file?`);
  }
  return { dims, data: bytes.subarray(headerLength) };
}

/**
 * Reads and parses an IDX file, gunzipping it when it starts with the gzip magic (1f 8b).
 * Throws MORPH_ERR_NOT_FOUND if it cannot be read, MORPH_ERR_LIMIT over `maxBytes`,
 * MORPH_ERR_DATASET for bad gzip or IDX content.
 */
export async function readIdxFile(file: string, opts: ReadIdxOptions = {}): Promise<IdxArray> {
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_IDX_BYTES;
  let bytes: Uint8Array;
  try {
    const info = await stat(file);
    if (info.size > maxBytes) {
      throw new MorphError('MORPH_ERR_LIMIT', `IDX file ${file} is ${info.size} bytes, over the limit of ${maxBytes} bytes.`, { file, limit: maxBytes });
    }
    bytes = await readFile(file);
  } catch (err) {
    if (err instanceof MorphError) throw err;
    throw new MorphError('MORPH_ERR_NOT_FOUND', `Cannot read IDX file ${file}: ${(err as Error).message}`, { file });
  }
  if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      bytes = await gunzipAsync(bytes, { maxOutputLength: maxBytes });
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (e.code === 'ERR_BUFFER_TOO_LARGE' || e instanceof RangeError) {
        throw new MorphError('MORPH_ERR_LIMIT', `IDX file ${file} decompresses to more than the limit of ${maxBytes} bytes.`, { file, limit: maxBytes });
      }
      throw datasetError(file, `is not valid gzip (truncated or corrupt): ${e.message}`);
    }
  }
  return parseIdx(bytes, file);
}

function datasetError(file: string, what: string): MorphError {
  return new MorphError('MORPH_ERR_DATASET', `IDX file ${file} ${what}.`, { file });
}
