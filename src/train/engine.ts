/**
 * The one training interface the search calls for every training it does: shrink (with the
 * MorphNet proximal step), final and baseline training, precise-BN recalibration and evaluation.
 * A `TrainingEngine` takes a network as our topology JSON plus weights in the tfjs layout, trains
 * it on a `Dataset` the TypeScript side owns (the same seeded split and batch order reach every
 * engine), and gives the weights back in the tfjs layout. Everything MorphNet-specific (cost
 * models, coefficients, alive structure, expand, reports) stays in TypeScript: an engine only
 * applies the proximal step whose per-group thresholds it is handed, refreshed between epochs.
 *
 * Two implementations: `tfjs` (tfjs-node → wasm → cpu, in this process; src/train/tfjs-engine.ts)
 * and `torch` (a PyTorch worker process; src/train/torch/torch-engine.ts).
 */
import type { ModelConfigJson } from '../graph/keras-json.ts';
import type { GammaPlan } from '../graph/gamma-plan.ts';
import type { NamedWeight } from '../graph/rebuild.ts';
import type { WeightMap } from '../graph/weights.ts';
import type { Dataset, Split } from './data/dataset.ts';
import type { EvaluateResult } from './evaluate.ts';
import type { EpochEvent, HookResult, StepEvent, TrainOptions, TrainResult } from './loop.ts';

export const VALID_ENGINES = ['auto', 'torch', 'tfjs'] as const;
/** `auto`: torch when a Python with torch is found, else tfjs. */
export type EngineChoice = (typeof VALID_ENGINES)[number];
export type EngineName = Exclude<EngineChoice, 'auto'>;

export function isEngineChoice(v: unknown): v is EngineChoice {
  return typeof v === 'string' && (VALID_ENGINES as readonly string[]).includes(v);
}

/** The MorphNet proximal step: after every optimizer step, group g's gammas get prox of lr·λ·w_g·max|γ|. */
export interface ProxOptions {
  readonly plan: GammaPlan;
  readonly lambda: number;
  /** w_g per group at the start; `FitHooks.onEpochGammas` may replace them between epochs. */
  readonly coefficients: ArrayLike<number>;
}

export interface FitRequest {
  readonly modelTopology: ModelConfigJson;
  /** Every weight of the network (batch-norm statistics included), tfjs layout. */
  readonly weights: WeightMap | readonly NamedWeight[];
  readonly dataset: Dataset;
  readonly train: TrainOptions;
  readonly prox?: ProxOptions;
  /** After training, replace the batch-norm moving statistics by exact ones (bn-recalibrate.ts). */
  readonly recalibrate?: { readonly seed: number; readonly batches?: number; readonly batchSize?: number };
  /** After training (and recalibration), evaluate on this split in inference mode. */
  readonly evaluate?: { readonly split: Split; readonly batchSize: number };
}

export interface FitHooks {
  onStep?: (e: StepEvent) => HookResult | Promise<HookResult>;
  onEpochEnd?: (e: EpochEvent) => HookResult | Promise<HookResult>;
  /**
   * With `prox`: after every epoch (after `onEpochEnd`), the current max |γ| per channel of every
   * group (see `groupMaxAbs`); the coefficients it returns apply from the next epoch on.
   */
  onEpochGammas?: (gammas: Float32Array[], epoch: number) => ArrayLike<number> | void;
}

export interface FitResult {
  /** The trained weights, tfjs layout, keyed by layer then kind. */
  readonly weights: WeightMap;
  readonly train: TrainResult;
  readonly evaluation: EvaluateResult | null;
  /** Which engine (and backend or device) trained it, e.g. "torch 1.13.0 on cpu, 2 threads". */
  readonly engine: string;
}

export interface TrainingEngine {
  readonly name: EngineName;
  /** One line for logs and reports. */
  readonly description: string;
  /**
   * Trains one network. Throws MorphError: `MORPH_ERR_BAD_ARGUMENT` (options),
   * `MORPH_ERR_DATASET_MISMATCH`, `MORPH_ERR_NAN` (with the epoch and step), `MORPH_ERR_ENGINE`
   * (a layer the engine cannot build, a worker that died: with its last stderr lines).
   */
  fit(request: FitRequest, hooks?: FitHooks): Promise<FitResult>;
  /** Releases the engine (ends a worker process). Safe to call twice. */
  close(): Promise<void>;
}

/** What `doctor` and reports say about an engine choice. */
export interface EngineReport {
  readonly choice: EngineChoice;
  readonly name: EngineName;
  readonly description: string;
  /** `auto` chose tfjs: why torch was not used. */
  readonly fellBack?: string;
  readonly torch?: TorchInfo;
}

/** What the torch worker said about itself when it started. */
export interface TorchInfo {
  readonly torch: string;
  readonly python: string;
  readonly executable: string;
  readonly threads: number;
  readonly device: string;
  readonly cuda: boolean;
  readonly cudaDevice: string | null;
}
