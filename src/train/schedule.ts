/**
 * Learning-rate schedules, evaluated per step (not per epoch) so that short runs and runs with
 * few large epochs decay just as smoothly. A pure function of the global step, so a resumed run
 * continues the schedule exactly where the checkpoint left it.
 */
import { MorphError } from '../errors.ts';

export const VALID_SCHEDULES = ['constant', 'cosine', 'step'] as const;
export type ScheduleKind = (typeof VALID_SCHEDULES)[number];

/** `step`: the rate is multiplied by this at each milestone. */
export const STEP_DECAY = 0.1;
/** `step`: milestones as fractions of the run (the classic ×0.1 at 50% and 75%). */
export const STEP_MILESTONES: readonly number[] = [0.5, 0.75];

export function checkSchedule(kind: unknown): ScheduleKind {
  if (typeof kind !== 'string' || !(VALID_SCHEDULES as readonly string[]).includes(kind)) {
    throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `unknown learning-rate schedule ${JSON.stringify(kind)}; expected one of ${VALID_SCHEDULES.join(', ')}`);
  }
  return kind as ScheduleKind;
}

/**
 * The learning rate for step `step` (0-based) of `totalSteps`:
 * - `constant`: `baseLr`;
 * - `cosine`: `baseLr · ½(1 + cos(π·step/totalSteps))`, from `baseLr` down towards 0;
 * - `step`: `baseLr`, times 0.1 from 50% of the run, times 0.01 from 75%.
 */
export function learningRateAt(kind: ScheduleKind, baseLr: number, step: number, totalSteps: number): number {
  const t = totalSteps > 0 ? Math.min(Math.max(step / totalSteps, 0), 1) : 0;
  if (kind === 'cosine') return baseLr * 0.5 * (1 + Math.cos(Math.PI * t));
  if (kind === 'step') return baseLr * STEP_DECAY ** STEP_MILESTONES.filter((m) => t >= m).length;
  return baseLr;
}
