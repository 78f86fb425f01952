/** Where a command's model comes from: a file on disk or a built-in seed. */
import { MorphError } from '../src/errors.ts';
import { analyzeChannels, type ChannelAnalysis } from '../src/graph/channel-groups.ts';
import { loadModelFile, type LoadedModel } from '../src/graph/load.ts';
import { parseModel } from '../src/graph/parse.ts';
import { isSeedName, seedModel, VALID_SEEDS } from '../src/seeds/index.ts';

export interface ModelInput extends LoadedModel {
  readonly analysis: ChannelAnalysis;
}

export interface ModelInputOptions {
  /** `--input-shape H,W,C`: replaces a declared input shape with free sizes. */
  readonly inputShape?: string;
}

/** `--input-shape` as the parser takes it. */
export function parseInputShape(text: string | undefined): number[] | undefined {
  if (text === undefined) return undefined;
  const dims = text.split(/[x,]/).map((d) => Number(d.trim()));
  if (dims.length === 0 || dims.some((d) => !Number.isInteger(d) || d <= 0)) {
    throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `--input-shape ${JSON.stringify(text)} must be positive integers separated by commas, e.g. 416,416,3`);
  }
  return dims;
}

/**
 * Loads `path`, or the seed named by `seed`; exactly one must be given. A model.json whose weight
 * files are not beside it is read as topology only, with a note in the graph's warnings.
 */
export async function loadModelInput(command: string, path: string | undefined, seed: string | boolean | undefined, options: ModelInputOptions = {}): Promise<ModelInput> {
  const inputShape = parseInputShape(options.inputShape);
  if (path !== undefined && seed !== undefined) {
    throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `morphnet ${command}: give either a MODEL.json or --seed, not both`);
  }
  let loaded: LoadedModel;
  if (seed !== undefined) {
    if (!isSeedName(seed)) {
      throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `morphnet ${command}: --seed ${JSON.stringify(seed)} is not a built-in seed; use one of ${VALID_SEEDS.join(', ')}`);
    }
    loaded = { ...parseModel(seedModel(seed), { source: `seed:${seed}`, inputShape }), path: `seed:${seed}`, weights: null };
  } else if (path !== undefined) {
    loaded = await loadModelFile(path, { weights: 'if-present', inputShape });
  } else {
    throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `morphnet ${command}: give a MODEL.json path (or --seed ${VALID_SEEDS.join('|')}); see "morphnet ${command} --help"`);
  }
  return { ...loaded, analysis: analyzeChannels(loaded.graph) };
}
