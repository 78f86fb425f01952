/**
 * What every engine's training loop checks and reports the same way: the options with their
 * defaults, and the error of a run that diverged. No tfjs here (the torch engine uses it).
 */
import { MorphError } from '../errors.ts';
import { resolveOptimizerOptions, type ResolvedOptimizerOptions } from './optimizer-options.ts';
import { checkSchedule, type ScheduleKind } from './schedule.ts';
import type { TrainOptions } from './loop.ts';

export function positiveInt(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) {
    throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `training option ${name} must be a positive integer, got ${JSON.stringify(v)}`);
  }
  return v;
}

/** The options every engine's loop checks the same way, with their defaults. @throws MORPH_ERR_BAD_ARGUMENT */
export function resolveTrainOptions(options: TrainOptions): { epochs: number; batchSize: number; opt: ResolvedOptimizerOptions; schedule: ScheduleKind; seed: number; evalBatchSize: number } {
  const seed = options.seed ?? 0;
  if (!Number.isFinite(seed)) throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `training option seed must be a finite number, got ${String(seed)}`);
  return {
    epochs: positiveInt('epochs', options.epochs),
    batchSize: positiveInt('batchSize', options.batchSize ?? 64),
    opt: resolveOptimizerOptions(options.optimizer),
    schedule: checkSchedule(options.schedule ?? 'constant'),
    seed,
    evalBatchSize: positiveInt('evalBatchSize', options.evalBatchSize ?? 256),
  };
}

/** The error of a run that diverged (shared by every engine's loop). */
export function nanError(epoch: number, step: number, globalStep: number, problem: string, checkpoint: string | null, configured: boolean): MorphError {
  const where = checkpoint
    ? `the last good checkpoint is kept at ${checkpoint}`
    : configured
      ? 'no checkpoint had been written yet'
      : 'no checkpoint directory was configured';
  return new MorphError(
    'MORPH_ERR_NAN',
    `training diverged at epoch ${epoch}, step ${step} (global step ${globalStep}): ${problem}; stopped without applying this step, ${where}. Lower the learning rate or the regularizer strength.`,
    { epoch, step, globalStep, problem, checkpoint },
  );
}

