/**
 * The one definition of a search's options: their defaults, their validation (a zod schema the REST
 * API applies to `options` and the CLI to its flags), the flat form a server stores
 * (`searches.config_json.options`) and the nested form `runSearch` takes. The CLI, the REST API,
 * the search form and the search worker all read them from here.
 *
 * This module loads no tfjs (the server's HTTP thread imports it): the optimizer and backend names
 * are spelled out here and checked against their modules' lists by the type system.
 */
import { z } from 'zod';
import { VALID_ENGINES } from '../train/engine.ts';
import { VALID_SCHEDULES } from '../train/schedule.ts';
import type { CostName, SearchOptions, Target } from './search.ts';

export { SEARCH_OPTIMIZERS, SEARCH_BACKENDS, MEASURE_PROTOCOLS, SEARCH_PROFILE_GRID, SEARCH_OPTION_DEFAULTS, type SearchOptionValues } from './search-defaults.ts';
import { MEASURE_PROTOCOLS, SEARCH_BACKENDS, SEARCH_OPTIMIZERS, SEARCH_OPTION_DEFAULTS, type SearchOptionValues } from './search-defaults.ts';

/** Any subset of the options, each checked (unknown keys refused). */
export const searchOptionsSchema = z
  .object({
    strength: z.number().finite().min(0).max(1e6).nullable(),
    threshold: z.number().finite().min(0).max(10),
    shrinkEpochs: z.number().int().min(1).max(200),
    finalEpochs: z.number().int().min(1).max(500),
    rounds: z.number().int().min(1).max(10),
    seed: z.number().int().min(0).max(2 ** 31 - 1),
    baseline: z.boolean(),
    keepWeights: z.boolean(),
    divisor: z.number().int().min(1).max(256),
    batchSize: z.number().int().min(1).max(4096),
    optimizer: z.enum(SEARCH_OPTIMIZERS),
    learningRate: z.number().finite().positive().max(10),
    schedule: z.enum(VALID_SCHEDULES),
    maxStepsPerEpoch: z.number().int().min(1).max(1_000_000),
    engine: z.enum(VALID_ENGINES),
    backend: z.enum(SEARCH_BACKENDS),
    profileGrid: z.number().int().min(2).max(16),
    measureProtocol: z.enum(MEASURE_PROTOCOLS),
  })
  .partial()
  .strict();

export type SearchOptionsInput = z.infer<typeof searchOptionsSchema>;

/** The given options over the defaults. The input must have passed `searchOptionsSchema`. */
export function withDefaults(given: SearchOptionsInput | Partial<SearchOptionValues> = {}): SearchOptionValues {
  return { ...SEARCH_OPTION_DEFAULTS, ...given };
}

/** The nested form `runSearch` takes, for a named cost (latency searches name 'flops' and price with hooks). */
export function runOptionsOf(o: SearchOptionValues, cost: CostName, target: Target): SearchOptions {
  return {
    cost,
    target,
    strength: o.strength,
    threshold: o.threshold,
    shrinkEpochs: o.shrinkEpochs,
    finalEpochs: o.finalEpochs,
    rounds: o.rounds,
    seed: o.seed,
    baseline: o.baseline,
    keepWeights: o.keepWeights,
    divisor: o.divisor,
    train: {
      batchSize: o.batchSize,
      optimizer: { kind: o.optimizer, ...(o.learningRate !== null ? { lr: o.learningRate } : {}) },
      schedule: o.schedule,
      ...(o.maxStepsPerEpoch !== null ? { maxStepsPerEpoch: o.maxStepsPerEpoch } : {}),
    },
  };
}
