/**
 * The files a finished search offers for download, under fixed public names that map to fixed
 * places in its directory (`DATA_DIR/searches/<id>/`, written by server/search/worker.ts). A name
 * from a request is only ever looked up in this table, never joined onto a path.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Response } from 'express';
import yazl from 'yazl';
import { MorphError } from '../../src/errors.ts';
import type { ArtifactInfo } from '../contract/searches.ts';

export interface ArtifactSpec {
  /** File (or, for a zip, tfjs model directory) relative to the search's directory. */
  readonly path: string;
  /** A zip of the tfjs model directory `path` (model.json + weights.bin), built on request. */
  readonly zip: boolean;
  readonly type: string;
  readonly what: string;
}

/** Downloadable files by public name. */
export const SEARCH_ARTIFACTS: Readonly<Record<string, ArtifactSpec>> = Object.freeze({
  'structure.json': { path: 'structure.json', zip: false, type: 'application/json', what: 'the learned widths, {layer: channels}' },
  'report.json': { path: 'report.json', zip: false, type: 'application/json', what: 'the search report: seed, target, rounds, learned and baseline networks' },
  'model.tflite': { path: 'model.tflite', zip: false, type: 'application/octet-stream', what: 'the learned network as float32 TFLite (batch norms folded)' },
  'model.zip': { path: 'model', zip: true, type: 'application/zip', what: 'the learned network as a tfjs model (model.json + weights.bin)' },
  'model.json': { path: 'model/model.json', zip: false, type: 'application/json', what: 'the tfjs model.json of the learned network (its weights are weights.bin beside it)' },
  'weights.bin': { path: 'model/weights.bin', zip: false, type: 'application/octet-stream', what: 'the weights of model.json' },
  'baseline-structure.json': { path: 'baseline-structure.json', zip: false, type: 'application/json', what: "the uniform baseline's widths" },
  'baseline.tflite': { path: 'baseline.tflite', zip: false, type: 'application/octet-stream', what: 'the uniform baseline as float32 TFLite' },
  'flop-structure.json': { path: 'flop-structure.json', zip: false, type: 'application/json', what: "a latency search's FLOP-MorphNet baseline widths" },
  'flop.tflite': { path: 'flop.tflite', zip: false, type: 'application/octet-stream', what: "a latency search's FLOP-MorphNet baseline as float32 TFLite" },
  'baseline.zip': { path: 'baseline', zip: true, type: 'application/zip', what: 'the uniform baseline as a tfjs model' },
});

const MODEL_FILES = ['model.json', 'weights.bin'] as const;

async function isFile(path: string): Promise<number | null> {
  const s = await stat(path).catch(() => null);
  return s?.isFile() ? s.size : null;
}

/** The artifacts present in a search's directory, in table order. */
export async function listArtifacts(dir: string): Promise<ArtifactInfo[]> {
  const out: ArtifactInfo[] = [];
  for (const [name, a] of Object.entries(SEARCH_ARTIFACTS)) {
    if (a.zip) {
      const sizes = await Promise.all(MODEL_FILES.map((f) => isFile(join(dir, a.path, f))));
      if (sizes.every((s) => s !== null)) out.push({ name, bytes: null, type: a.type, what: a.what });
    } else {
      const size = await isFile(join(dir, a.path));
      if (size !== null) out.push({ name, bytes: size, type: a.type, what: a.what });
    }
  }
  return out;
}

/**
 * Streams one artifact of search `id` (directory `dir`) as an attachment named `<id>-<name>`.
 * @throws MorphError MORPH_ERR_NOT_FOUND for a name not in the table or a file not written.
 */
export async function sendArtifact(res: Response, dir: string, id: string, name: string): Promise<void> {
  if (!Object.hasOwn(SEARCH_ARTIFACTS, name)) {
    throw new MorphError('MORPH_ERR_NOT_FOUND', `no artifact named ${JSON.stringify(name)}; the names are ${Object.keys(SEARCH_ARTIFACTS).join(', ')} (GET /api/searches/${id}/artifacts lists those written)`, { field: 'name' });
  }
  const a = SEARCH_ARTIFACTS[name];
  const path = join(dir, a.path);
  const missing = (): MorphError =>
    new MorphError('MORPH_ERR_NOT_FOUND', `search ${id} has no ${name} (yet): artifacts are written when the search is done; GET /api/searches/${id}/artifacts lists those written`, { field: 'name' });
  const filename = `${id}-${name}`;
  if (a.zip) {
    for (const f of MODEL_FILES) if ((await isFile(join(path, f))) === null) throw missing();
    const zip = new yazl.ZipFile();
    for (const f of MODEL_FILES) zip.addFile(join(path, f), f);
    zip.end();
    res.status(200).attachment(filename).type('application/zip');
    await pipeline(zip.outputStream, res);
    return;
  }
  const size = await isFile(path);
  if (size === null) throw missing();
  res.status(200).attachment(filename).type(a.type).set('Content-Length', String(size));
  await pipeline(createReadStream(path), res);
}
