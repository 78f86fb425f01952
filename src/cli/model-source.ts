/** Where a command's model comes from: a file on disk or a built-in seed. */
import { MorphError } from '../errors.ts';
import { analyzeChannels, type ChannelAnalysis } from '../graph/channel-groups.ts';
import { loadModelFile, type LoadedModel } from '../graph/load.ts';
import { parseModel } from '../graph/parse.ts';
import { isSeedName, seedModel, VALID_SEEDS } from '../seeds/index.ts';

export interface ModelInput extends LoadedModel {
  readonly analysis: ChannelAnalysis;
}

/** Loads `path`, or the seed named by `seed`; exactly one must be given. */
export async function loadModelInput(command: string, path: string | undefined, seed: string | boolean | undefined): Promise<ModelInput> {
  if (path !== undefined && seed !== undefined) {
    throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `morphnet ${command}: give either a MODEL.json or --seed, not both`);
  }
  let loaded: LoadedModel;
  if (seed !== undefined) {
    if (!isSeedName(seed)) {
      throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `morphnet ${command}: --seed ${JSON.stringify(seed)} is not a built-in seed; use one of ${VALID_SEEDS.join(', ')}`);
    }
    loaded = { ...parseModel(seedModel(seed), { source: `seed:${seed}` }), path: `seed:${seed}`, weights: null };
  } else if (path !== undefined) {
    loaded = await loadModelFile(path);
  } else {
    throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `morphnet ${command}: give a MODEL.json path (or --seed ${VALID_SEEDS.join('|')}); see "morphnet ${command} --help"`);
  }
  return { ...loaded, analysis: analyzeChannels(loaded.graph) };
}
