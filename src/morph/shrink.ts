/**
 * One shrink phase: train the network on task loss + λ·R by proximal SGD (the optimizer steps on
 * the task loss, then every gamma is soft-thresholded by lr·λ·w_g), refreshing R's per-group
 * coefficients w_g from the alive counts after every epoch (the marginals depend on them), then
 * read off which channels survived (max |γ| of their group above the threshold).
 *
 * For a group covered by several batch norms (a residual add) the step is the proximal map of the
 * max over them (DESIGN), so it lowers the largest members first.
 */
import type { CostModel, CostOp } from '../cost/cost-model.ts';
import type { ChannelAnalysis } from '../graph/channel-groups.ts';
import type { Graph } from '../graph/graph.ts';
import type { RebuiltModel } from '../graph/rebuild.ts';
import { weightsByName, type WeightMap } from '../graph/weights.ts';
import type { Dataset } from '../train/data/index.ts';
import type { FitHooks, TrainingEngine } from '../train/engine.ts';
import type { EpochEvent, TrainOptions } from '../train/loop.ts';
import { groupMaxAbs, planGammas, type GammaPlan } from '../graph/gamma-plan.ts';
import { aliveFromGammas, widthOf } from '../graph/widths.ts';
import { costAt } from './network-cost.ts';
import { groupCoefficients, regularizerValue } from './regularizer.ts';

export interface ShrinkOptions {
  /** λ: the regularizer's weight in the loss. */
  readonly lambda: number;
  /** |γ| at or below this is a dead channel (default 1e-2). */
  readonly threshold: number;
  readonly train: TrainOptions;
}

export interface ShrinkEpoch {
  readonly epoch: number;
  readonly trainLoss: number;
  readonly valAccuracy: number | null;
  /** λ·R at the end of the epoch. */
  readonly regularizer: number;
  readonly alive: number[];
  /** Cost of the alive structure under the search's cost model. */
  readonly aliveCost: number;
}

export interface ShrinkResult {
  /** Max |γ| per channel of every group after shrinking (empty for unregularized groups). */
  readonly gammas: Float32Array[];
  readonly gammasBefore: Float32Array[];
  /** Alive channel count of every group (full width for unregularized groups). */
  readonly alive: number[];
  readonly coefficients: Float64Array;
  readonly epochs: readonly ShrinkEpoch[];
  readonly seconds: number;
}

export function aliveCounts(analysis: ChannelAnalysis, gammas: readonly ArrayLike<number>[], threshold: number): number[] {
  return aliveFromGammas(analysis, gammas, threshold).selection.map(widthOf);
}

/** Max |γ| per channel of every group, read from a weight list or map. */
function gammasOf(plan: GammaPlan, weights: WeightMap | RebuiltModel['weights']): Float32Array[] {
  const byName = weightsByName(weights);
  return groupMaxAbs(plan, (layer) => byName.get(`${layer}/gamma`)?.data);
}

/**
 * Shrinks `start` (a network of `graph`) on `engine`. The engine applies the proximal step after
 * every optimizer step; the coefficients are refreshed here after every epoch.
 */
export async function shrink(
  engine: TrainingEngine,
  start: RebuiltModel,
  graph: Graph,
  analysis: ChannelAnalysis,
  ops: readonly CostOp[],
  costModel: CostModel,
  dataset: Dataset,
  options: ShrinkOptions,
  hooks: Pick<FitHooks, 'onStep' | 'onEpochEnd'> & { onEpoch?: (e: ShrinkEpoch) => void } = {},
): Promise<ShrinkResult & { weights: WeightMap; engine: string }> {
  const started = Date.now();
  const plan = planGammas(graph, analysis);
  const gammasBefore = gammasOf(plan, start.weights);
  let alive = aliveCounts(analysis, gammasBefore, options.threshold);
  let coefficients = groupCoefficients(ops, analysis, costModel, alive);
  const epochs: ShrinkEpoch[] = [];
  let last: EpochEvent | null = null;
  const fit = await engine.fit(
    { modelTopology: start.modelTopology, weights: start.weights, dataset, train: options.train, prox: { plan, lambda: options.lambda, coefficients } },
    {
      onStep: hooks.onStep,
      onEpochEnd: async (e) => {
        last = e;
        return hooks.onEpochEnd?.(e);
      },
      onEpochGammas: (gammas, epoch) => {
        alive = aliveCounts(analysis, gammas, options.threshold);
        coefficients = groupCoefficients(ops, analysis, costModel, alive);
        const e = last as EpochEvent | null;
        const record: ShrinkEpoch = {
          epoch,
          trainLoss: e?.trainLoss ?? Number.NaN,
          valAccuracy: e?.valAccuracy ?? null,
          regularizer: options.lambda * regularizerValue(coefficients, gammas),
          alive: [...alive],
          aliveCost: costAt(ops, costModel, alive),
        };
        epochs.push(record);
        hooks.onEpoch?.(record);
        return coefficients;
      },
    },
  );
  const gammas = gammasOf(plan, fit.weights);
  return {
    gammas,
    gammasBefore,
    alive: aliveCounts(analysis, gammas, options.threshold),
    coefficients,
    epochs,
    seconds: (Date.now() - started) / 1000,
    weights: fit.weights,
    engine: fit.engine,
  };
}
