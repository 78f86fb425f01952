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
import type { BackendChoice } from '../train/backend.ts';
import { VALID_ENGINES, type EngineChoice } from '../train/engine.ts';
import { VALID_OPTIMIZERS, type OptimizerKind } from '../train/optimizer-options.ts';
import { VALID_SCHEDULES, type ScheduleKind } from '../train/schedule.ts';
import type { CostName, SearchOptions, Target } from './search.ts';

export const SEARCH_OPTIMIZERS = VALID_OPTIMIZERS;
export const SEARCH_BACKENDS = ['auto', 'tfjs-node', 'wasm', 'cpu'] as const satisfies readonly BackendChoice[];
export const MEASURE_PROTOCOLS = ['default', 'quick'] as const;

/** Channel counts per table axis a latency search profiles by default. */
export const SEARCH_PROFILE_GRID = 6;

/** A search's options, flat, with every default applied (what a server stores). */
export interface SearchOptionValues {
  /** k in λ = k / seed cost. */
  readonly strength: number;
  /** Alive threshold on |γ|. */
  readonly threshold: number;
  readonly shrinkEpochs: number;
  /** Epochs of the final and baseline training. */
  readonly finalEpochs: number;
  readonly rounds: number;
  /** Random seed of shuffles, splits and initialisation. */
  readonly seed: number;
  /** Also train the uniform-multiplier network at the same target. */
  readonly baseline: boolean;
  /** Fine-tune the found network from the shrunk weights instead of from scratch. */
  readonly keepWeights: boolean;
  /** Round widths to a multiple of this. */
  readonly divisor: number;
  readonly batchSize: number;
  readonly optimizer: OptimizerKind;
  /** null: the optimizer's default (sgd 0.05, adam 1e-3). */
  readonly learningRate: number | null;
  /** Final and baseline training (shrink always runs at a constant rate). */
  readonly schedule: ScheduleKind;
  readonly maxStepsPerEpoch: number | null;
  /** The training engine: torch when it imports (auto), torch, or tfjs. */
  readonly engine: EngineChoice;
  /** The tfjs backend when tfjs trains. */
  readonly backend: BackendChoice;
  /** Latency searches: channel counts per table axis to profile. */
  readonly profileGrid: number;
  /** Latency searches: the timing protocol of profiling and measuring ('quick': fewer samples). */
  readonly measureProtocol: (typeof MEASURE_PROTOCOLS)[number];
}

export const SEARCH_OPTION_DEFAULTS: Readonly<SearchOptionValues> = Object.freeze({
  strength: 20,
  threshold: 0.01,
  shrinkEpochs: 3,
  finalEpochs: 5,
  rounds: 1,
  seed: 0,
  baseline: false,
  keepWeights: false,
  divisor: 4,
  batchSize: 64,
  // SGD: its steps scale with the gradient, so the regularizer's per-channel cost weights act as
  // intended; Adam normalises them away (README, known limits).
  optimizer: 'sgd',
  learningRate: null,
  schedule: 'cosine',
  maxStepsPerEpoch: null,
  engine: 'auto',
  backend: 'auto',
  profileGrid: SEARCH_PROFILE_GRID,
  measureProtocol: 'default',
});

/** Any subset of the options, each checked (unknown keys refused). */
export const searchOptionsSchema = z
  .object({
    strength: z.number().finite().min(0).max(1e6),
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
