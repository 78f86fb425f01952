/**
 * The model loader: the one place that reads a model.json and its weight files from disk.
 */
import { access, readFile, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { MorphError } from '../errors.ts';
import { parseModel, type ParsedModel, type ParseOptions } from './parse.ts';
import type { WeightsGroupJson } from './keras-json.ts';
import { decodeWeights, type WeightMap } from './weights.ts';

export interface LoadOptions extends ParseOptions {
  /** Refuse model.json files larger than this many bytes (default 64 MiB). */
  readonly maxJsonBytes?: number;
  /**
   * Read the weights named by the manifest: `true` (default) requires every weight file; `false`
   * reads the topology alone; `'if-present'` reads them when all are beside the model.json and
   * otherwise goes on with the topology alone, saying so in the graph's warnings.
   */
  readonly weights?: boolean | 'if-present';
}

export interface LoadedModel extends ParsedModel {
  readonly path: string;
  /** The decoded weights, or null when the file has no weightsManifest or weights were not asked for. */
  readonly weights: WeightMap | null;
}

export const DEFAULT_MAX_JSON_BYTES = 64 * 1024 * 1024;

/**
 * Reads and parses a model file, and its weights when it has a manifest.
 * @throws MorphError `MORPH_ERR_NOT_FOUND`, `MORPH_ERR_NOT_JSON`, `MORPH_ERR_LIMIT`,
 *   `MORPH_ERR_WEIGHTS_MISSING`, and every error of `parseModel` and `decodeWeights`.
 */
export async function loadModelFile(path: string, options: LoadOptions = {}): Promise<LoadedModel> {
  const maxBytes = options.maxJsonBytes ?? DEFAULT_MAX_JSON_BYTES;
  let size: number;
  try {
    const s = await stat(path);
    if (!s.isFile()) throw new MorphError('MORPH_ERR_NOT_FOUND', `${path} is not a file; give the path of a model.json`, { path });
    size = s.size;
  } catch (err) {
    if (err instanceof MorphError) throw err;
    throw new MorphError('MORPH_ERR_NOT_FOUND', `cannot read ${path}: no such file; give the path of a model.json`, { path });
  }
  if (size > maxBytes) {
    throw new MorphError('MORPH_ERR_LIMIT', `${path} is ${size} bytes, over the ${maxBytes}-byte limit for a model.json`, { path, limit: maxBytes });
  }
  const text = await readFile(path, 'utf8');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new MorphError('MORPH_ERR_NOT_JSON', `${path} is not JSON (${(err as Error).message}); give a TensorFlow.js model.json or a Keras model config`, { path });
  }
  const parsed = parseModel(json, { ...options, source: options.source ?? path });
  let weights: WeightMap | null = null;
  if (parsed.weightsManifest && options.weights !== false) {
    const dir = dirname(resolve(path));
    if (options.weights === 'if-present') {
      const missing = await missingWeightFiles(parsed.weightsManifest, dir);
      if (missing.length > 0) {
        const note = `weights file${missing.length > 1 ? 's' : ''} ${missing.slice(0, 3).join(', ')}${missing.length > 3 ? ', …' : ''} not beside ${path}: read as topology only (counts are exact; weights are fresh where a command needs them)`;
        return { ...parsed, graph: { ...parsed.graph, warnings: [note, ...parsed.graph.warnings] }, path, weights: null };
      }
    }
    const groups: Uint8Array[] = [];
    for (const group of parsed.weightsManifest) {
      if (!group || !Array.isArray(group.paths) || !Array.isArray(group.weights)) {
        throw new MorphError('MORPH_ERR_NOT_A_MODEL', `${path}: a weightsManifest entry lacks "paths" or "weights"`, { path });
      }
      const badEntry = group.weights.find((w) => !w || typeof w.name !== 'string' || !Array.isArray(w.shape) || typeof w.dtype !== 'string');
      if (badEntry !== undefined) {
        throw new MorphError('MORPH_ERR_NOT_A_MODEL', `${path}: weightsManifest entry ${JSON.stringify(badEntry)} is not {"name", "shape", "dtype"}`, { path });
      }
      const parts: Buffer[] = [];
      for (const p of group.paths) {
        // Weight paths are relative to model.json; an absolute path or ../ escape is refused.
        if (typeof p !== 'string' || p.startsWith('/') || p.split(/[\\/]/).includes('..')) {
          throw new MorphError('MORPH_ERR_NOT_A_MODEL', `${path}: weight path ${JSON.stringify(p)} must be a file name relative to the model.json`, { path });
        }
        try {
          parts.push(await readFile(resolve(dir, p)));
        } catch {
          throw new MorphError(
            'MORPH_ERR_WEIGHTS_MISSING',
            `${path}: weights file ${resolve(dir, p)} cannot be read; put it next to the model.json, or remove "weightsManifest" to use the topology alone`,
            { path, file: p },
          );
        }
      }
      groups.push(new Uint8Array(Buffer.concat(parts)));
    }
    weights = decodeWeights(parsed.graph, parsed.weightsManifest, groups, path);
  }
  return { ...parsed, path, weights };
}

/** The manifest's weight files that cannot be read from `dir`. */
async function missingWeightFiles(manifest: readonly WeightsGroupJson[], dir: string): Promise<string[]> {
  const missing: string[] = [];
  for (const group of manifest) {
    for (const p of Array.isArray(group?.paths) ? group.paths : []) {
      if (typeof p !== 'string' || p.startsWith('/') || p.split(/[\\/]/).includes('..')) continue; // refused below, by name
      try {
        await access(resolve(dir, p));
      } catch {
        missing.push(p);
      }
    }
  }
  return missing;
}
