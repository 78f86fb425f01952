/**
 * A search's options and their defaults, without their validation (search-options.ts adds the
 * schema): small and dependency-free, so the web UI's bundle shows the same defaults.
 */
import type { BackendChoice } from '../train/backend.ts';
import type { EngineChoice } from '../train/engine.ts';
import { VALID_OPTIMIZERS, type OptimizerKind } from '../train/optimizer-options.ts';
import type { ScheduleKind } from '../train/schedule.ts';

export const SEARCH_OPTIMIZERS = VALID_OPTIMIZERS;
export const SEARCH_BACKENDS = ['auto', 'tfjs-node', 'wasm', 'cpu'] as const satisfies readonly BackendChoice[];
export const MEASURE_PROTOCOLS = ['default', 'quick'] as const;

/** Channel counts per table axis a latency search profiles by default. */
export const SEARCH_PROFILE_GRID = 6;

/** A search's options, flat, with every default applied (what a server stores). */
export interface SearchOptionValues {
  /** k in λ = k / seed cost; null: chosen by the strength procedure (src/morph/strength.ts). */
  readonly strength: number | null;
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
  strength: null,
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

