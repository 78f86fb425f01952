/**
 * Writes a rebuilt model as a tfjs `model.json` + `weights.bin` directory. The directory appears
 * whole or not at all: files go to a temporary sibling that is renamed into place, so a failure
 * never leaves a half-written model behind.
 */
import { mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { MorphError } from '../errors.ts';
import type { JsonValue } from '../graph/keras-json.ts';
import { toModelJson, type RebuiltModel } from '../graph/rebuild.ts';

export interface WriteModelOptions {
  /** Replace a non-empty output directory (default false: refuse). */
  readonly overwrite?: boolean;
  /** Extra files to write beside model.json, e.g. a report. */
  readonly extraFiles?: Readonly<Record<string, JsonValue | object>>;
  /** Further models written into subdirectories (e.g. `baseline/`), inside the same atomic write. */
  readonly subModels?: Readonly<Record<string, RebuiltModel>>;
}

/**
 * Refuses an output path that holds anything: a non-empty directory (unless `overwrite`) or a
 * file of any kind (never replaced: a mistyped --out must not delete a user's file). Commands
 * call this before their work so that a long search does not fail at its very end.
 * @throws MorphError `MORPH_ERR_OUTPUT_EXISTS`.
 */
export async function checkOutputDir(dir: string, overwrite = false): Promise<string> {
  const target = resolve(dir);
  let info;
  try {
    info = await stat(target);
  } catch {
    return target; // does not exist: fine
  }
  if (!info.isDirectory()) {
    throw new MorphError('MORPH_ERR_OUTPUT_EXISTS', `output path ${target} is an existing file, not a directory; choose another --out`, { path: target });
  }
  if (!overwrite && (await readdir(target)).length > 0) {
    throw new MorphError('MORPH_ERR_OUTPUT_EXISTS', `output directory ${target} exists and is not empty; choose another --out, remove it, or pass --overwrite`, { path: target });
  }
  return target;
}

/** Concatenates float32 weights little-endian, as tfjs reads them. */
export function encodeWeights(model: RebuiltModel): Uint8Array {
  const total = model.weights.reduce((a, w) => a + w.data.length, 0);
  const out = new Float32Array(total);
  let offset = 0;
  for (const w of model.weights) {
    out.set(w.data, offset);
    offset += w.data.length;
  }
  return new Uint8Array(out.buffer);
}

async function writeModelFiles(dir: string, model: RebuiltModel): Promise<void> {
  await writeFile(join(dir, 'model.json'), JSON.stringify(toModelJson(model)));
  await writeFile(join(dir, 'weights.bin'), encodeWeights(model));
}

/**
 * @returns the absolute output directory.
 * @throws MorphError `MORPH_ERR_OUTPUT_EXISTS` (see `checkOutputDir`).
 */
export async function writeTfjsModel(dir: string, model: RebuiltModel, options: WriteModelOptions = {}): Promise<string> {
  const target = await checkOutputDir(dir, options.overwrite === true);
  await mkdir(dirname(target), { recursive: true });
  const tmp = join(dirname(target), `.${basename(target)}.tmp-${process.pid}-${Date.now()}`);
  await mkdir(tmp);
  try {
    await writeModelFiles(tmp, model);
    for (const [name, sub] of Object.entries(options.subModels ?? {})) {
      if (!/^[A-Za-z0-9_-]+$/.test(name)) throw new Error(`internal: bad submodel directory name ${name}`);
      await mkdir(join(tmp, name));
      await writeModelFiles(join(tmp, name), sub);
    }
    for (const [name, value] of Object.entries(options.extraFiles ?? {})) {
      await writeFile(join(tmp, name), `${JSON.stringify(value, null, 2)}\n`);
    }
    await rm(target, { recursive: true, force: true });
    await rename(tmp, target);
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
  return target;
}
