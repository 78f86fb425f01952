/**
 * One shrink phase: train the network on task loss + λ·R by proximal SGD (the optimizer steps on
 * the task loss, then every gamma is soft-thresholded by lr·λ·w_g), refreshing R's per-group
 * coefficients w_g from the alive counts after every epoch (the marginals depend on them), then
 * read off which channels survived (max |γ| of their group above the threshold).
 *
 * For a group covered by several batch norms (a residual add) the step is the proximal map of the
 * max over them (DESIGN), so it lowers the largest members first.
 */
import type * as tf from '@tensorflow/tfjs';
import type { CostModel, CostOp } from '../cost/cost-model.ts';
import type { ChannelAnalysis } from '../graph/channel-groups.ts';
import type { Graph } from '../graph/graph.ts';
import type { Dataset } from '../train/data/index.ts';
import { train, type TrainHooks, type TrainOptions } from '../train/loop.ts';
import { planGammas } from '../graph/gamma-plan.ts';
import { aliveFromGammas, widthOf } from '../graph/widths.ts';
import { applyProx, gammaVariables, groupGammaValues } from './gamma-tensors.ts';
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

export async function shrink(
  model: tf.LayersModel,
  graph: Graph,
  analysis: ChannelAnalysis,
  ops: readonly CostOp[],
  costModel: CostModel,
  dataset: Dataset,
  options: ShrinkOptions,
  hooks: Pick<TrainHooks, 'onStep' | 'onEpochEnd'> & { onEpoch?: (e: ShrinkEpoch) => void } = {},
): Promise<ShrinkResult> {
  const started = Date.now();
  const plan = planGammas(graph, analysis);
  const vars = gammaVariables(model);
  const gammasBefore = groupGammaValues(plan, vars);
  let alive = aliveCounts(analysis, gammasBefore, options.threshold);
  let coefficients = groupCoefficients(ops, analysis, costModel, alive);
  const epochs: ShrinkEpoch[] = [];
  await train(model, dataset, options.train, {
    // The optimizer takes the task gradient; λ·R is applied as a proximal step after each update.
    onStep: (e) => {
      applyProx(plan, vars, coefficients, options.lambda, e.lr);
      return hooks.onStep?.(e);
    },
    onEpochEnd: async (e) => {
      await hooks.onEpochEnd?.(e);
      const gammas = groupGammaValues(plan, vars);
      alive = aliveCounts(analysis, gammas, options.threshold);
      coefficients = groupCoefficients(ops, analysis, costModel, alive);
      const record: ShrinkEpoch = {
        epoch: e.epoch,
        trainLoss: e.trainLoss,
        valAccuracy: e.valAccuracy ?? null,
        regularizer: options.lambda * regularizerValue(coefficients, gammas),
        alive: [...alive],
        aliveCost: costAt(ops, costModel, alive),
      };
      epochs.push(record);
      hooks.onEpoch?.(record);
      return undefined;
    },
  });
  const gammas = groupGammaValues(plan, vars);
  return {
    gammas,
    gammasBefore,
    alive: aliveCounts(analysis, gammas, options.threshold),
    coefficients,
    epochs,
    seconds: (Date.now() - started) / 1000,
  };
}
