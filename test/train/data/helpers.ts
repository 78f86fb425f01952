/** Builders for small dataset files used by the data tests. */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import type { TestContext } from 'node:test';
import type { Batch, Dataset, Split } from '../../../src/train/data/index.ts';

/** An unsigned-byte IDX file: magic 0x000008NN, big-endian dims, then `data`. */
export function idxBytes(dims: readonly number[], data: ArrayLike<number>): Buffer {
  const header = Buffer.alloc(4 + 4 * dims.length);
  header[2] = 0x08;
  header[3] = dims.length;
  dims.forEach((d, i) => header.writeUInt32BE(d, 4 + 4 * i));
  return Buffer.concat([header, Buffer.from(Array.from(data))]);
}

/**
 * Images whose first two pixels encode their index (i % 256, i / 256), so tests can tell
 * which samples a batch holds; labels are `i % numClasses`.
 */
export function indexedImages(count: number, rows: number, cols: number, numClasses: number): { images: Buffer; labels: Buffer } {
  const px = new Uint8Array(count * rows * cols);
  for (let i = 0; i < count; i++) {
    px[i * rows * cols] = i % 256;
    px[i * rows * cols + 1] = Math.floor(i / 256);
  }
  const labels = Array.from({ length: count }, (_, i) => i % numClasses);
  return { images: idxBytes([count, rows, cols], px), labels: idxBytes([count], labels) };
}

export async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'morph-data-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Writes an MNIST-style directory: train (and test) images/labels, gzipped or not. */
export async function writeIdxDir(dir: string, opts: { train: number; test?: number; rows?: number; cols?: number; classes?: number; gzip?: boolean }): Promise<void> {
  const rows = opts.rows ?? 4;
  const cols = opts.cols ?? 3;
  const classes = opts.classes ?? 3;
  const ext = opts.gzip ? '.gz' : '';
  const pack = (b: Buffer): Buffer => (opts.gzip ? gzipSync(b) : b);
  const train = indexedImages(opts.train, rows, cols, classes);
  await writeFile(join(dir, `train-images-idx3-ubyte${ext}`), pack(train.images));
  await writeFile(join(dir, `train-labels-idx1-ubyte${ext}`), pack(train.labels));
  if (opts.test !== undefined) {
    const test = indexedImages(opts.test, rows, cols, classes);
    await writeFile(join(dir, `t10k-images-idx3-ubyte${ext}`), pack(test.images));
    await writeFile(join(dir, `t10k-labels-idx1-ubyte${ext}`), pack(test.labels));
  }
}

/** Sample index encoded by `indexedImages`, read back from a float batch. */
export function sampleIds(batch: Batch, sampleLength: number): number[] {
  const ids: number[] = [];
  for (let k = 0; k < batch.n; k++) {
    ids.push(Math.round(batch.x[k * sampleLength] * 255) + 256 * Math.round(batch.x[k * sampleLength + 1] * 255));
  }
  return ids;
}

/** Collects every batch of one epoch. */
export async function collect(ds: Dataset, split: Split, batchSize: number, opts: { shuffle?: boolean; seed?: number; epoch?: number } = {}): Promise<Batch[]> {
  const out: Batch[] = [];
  for await (const b of ds.batches(split, batchSize, opts)) out.push(b);
  return out;
}

/** Asserts `fn` rejects with a MorphError of `code` whose message matches every pattern. */
export function morphError(code: string, ...patterns: RegExp[]): (err: unknown) => boolean {
  return (err: unknown) => {
    const e = err as { code?: unknown; message?: unknown };
    if (e.code !== code) throw new Error(`expected code ${code}, got ${String(e.code)}: ${String(e.message)}`);
    for (const p of patterns) if (!p.test(String(e.message))) throw new Error(`message ${JSON.stringify(e.message)} does not match ${p}`);
    return true;
  };
}
