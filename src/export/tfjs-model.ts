/**
 * Writes a rebuilt model as a tfjs `model.json` + `weights.bin` directory. The directory appears
 * whole or not at all: files go to a temporary sibling that is renamed into place, so a failure
 * never leaves a half-written model behind.
 */
import { mkdir, readdir, rename, rm, writeFile } from 'node:fs/promises';
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

async function isNonEmptyDir(path: string): Promise<boolean> {
  try {
    return (await readdir(path)).length > 0;
  } catch {
    return false;
  }
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
 * @throws MorphError `MORPH_ERR_OUTPUT_EXISTS` if `dir` is a non-empty directory and not `overwrite`.
 */
export async function writeTfjsModel(dir: string, model: RebuiltModel, options: WriteModelOptions = {}): Promise<string> {
  const target = resolve(dir);
  if (!options.overwrite && (await isNonEmptyDir(target))) {
    throw new MorphError('MORPH_ERR_OUTPUT_EXISTS', `output directory ${target} exists and is not empty; choose another --out or remove it`, { path: target });
  }
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
