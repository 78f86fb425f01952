/**
 * What a search reports while it runs, as the server keeps it: the events the search worker
 * posts (src/morph/search.ts `SearchEvent`, plus the worker's own `ready`/`groups`), folded into
 * one `SearchProgress` (curves per phase, the alive count of every channel group after each
 * shrink epoch, the last step, an overall fraction). Pure: the service stores the result as
 * `searches.progress_json` and streams the events themselves over SSE. The shapes of both are the
 * REST contract's (server/contract/search-events.ts).
 */
import type { SearchEvent } from '../../src/morph/search.ts';
import type { CurvePoint, FlopRunProgress, ProgressEvent, SearchProgress, SearchProgressSummary } from '../contract/search-events.ts';

/** The epochs the search will train, from its options (for `fraction`). */
export interface ProgressPlan {
  readonly rounds: number;
  readonly shrinkEpochs: number;
  readonly finalEpochs: number;
  readonly baseline: boolean;
  /** A FLOP-MorphNet baseline run follows (latency searches with `baseline`). */
  readonly flopRun?: boolean;
}

export function emptyProgress(): SearchProgress {
  return {
    phase: null,
    round: null,
    message: null,
    fraction: 0,
    step: null,
    curves: { shrink: [], final: [], baseline: [] },
    groups: [],
    shrink: [],
    accuracy: { final: null, baseline: null },
    flop: null,
    backend: null,
    dataset: null,
    prepare: null,
  };
}

/** Epochs trained before the given phase starts (shrink rounds, then final, then baseline). */
function epochOffset(plan: ProgressPlan, phase: 'shrink' | 'final' | 'baseline', round: number): number {
  if (phase === 'shrink') return (round - 1) * plan.shrinkEpochs;
  if (phase === 'final') return plan.rounds * plan.shrinkEpochs;
  return plan.rounds * plan.shrinkEpochs + plan.finalEpochs;
}

function totalEpochs(plan: ProgressPlan): number {
  return plan.rounds * plan.shrinkEpochs + plan.finalEpochs * (plan.baseline ? 2 : 1) + (plan.flopRun ? flopEpochs(plan) : 0);
}

/** The FLOP-MorphNet run trains like the search's own, without a uniform baseline. */
function flopEpochs(plan: ProgressPlan): number {
  return plan.rounds * plan.shrinkEpochs + plan.finalEpochs;
}

/** The FLOP run's events: its own lists; the overall phase, message and fraction as for any event. */
function applyFlopEvent(p: SearchProgress, e: SearchEvent, plan: ProgressPlan): SearchProgress {
  const f: FlopRunProgress = p.flop ?? { curves: { shrink: [], final: [] }, shrink: [], accuracy: null };
  // Its epochs come after everything of the search's own run.
  const before = totalEpochs({ ...plan, flopRun: false });
  const offset = (phase: 'shrink' | 'final' | 'baseline', round: number): number => before + (phase === 'shrink' ? (round - 1) * plan.shrinkEpochs : plan.rounds * plan.shrinkEpochs);
  switch (e.type) {
    case 'phase':
      return { ...p, phase: 'baseline', message: e.message, flop: f };
    case 'step': {
      const s = e.step;
      const done = offset(e.phase, p.round ?? 1) * s.stepsPerEpoch + s.globalStep;
      const fraction = Math.min(1, done / Math.max(1, totalEpochs(plan) * s.stepsPerEpoch));
      return { ...p, fraction: Math.max(p.fraction, fraction), flop: f };
    }
    case 'epoch': {
      const x = e.epoch;
      const point: CurvePoint = { epoch: x.epoch, trainLoss: x.trainLoss, valLoss: x.valLoss, valAccuracy: x.valAccuracy, seconds: x.seconds };
      const fraction = Math.min(1, (offset(e.phase, 1) + x.epoch) / Math.max(1, totalEpochs(plan)));
      const key = e.phase === 'shrink' ? 'shrink' : 'final';
      return { ...p, fraction: Math.max(p.fraction, fraction), flop: { ...f, curves: { ...f.curves, [key]: [...f.curves[key], point] } } };
    }
    case 'shrink-epoch': {
      const x = e.epoch;
      return { ...p, flop: { ...f, shrink: [...f.shrink, { round: e.round, epoch: x.epoch, alive: [...x.alive], aliveCost: x.aliveCost, regularizer: x.regularizer, trainLoss: x.trainLoss, valAccuracy: x.valAccuracy }] } };
    }
    case 'evaluated':
      return { ...p, flop: { ...f, accuracy: e.accuracy } };
  }
}

/** The progress after one more event (a new object; `p` is not changed). */
export function applyEvent(p: SearchProgress, e: ProgressEvent, plan: ProgressPlan): SearchProgress {
  if ('run' in e && e.run === 'flop') return applyFlopEvent(p, e, plan);
  switch (e.type) {
    case 'ready':
      return { ...p, phase: 'prepare', backend: e.backend, dataset: e.dataset };
    case 'groups':
      return { ...p, groups: e.groups };
    case 'export':
      return { ...p, phase: 'export', message: e.message };
    case 'note':
      return { ...p, phase: 'prepare', message: e.message, prepare: e.progress ?? p.prepare };
    case 'phase':
      return { ...p, phase: e.phase, round: e.round ?? p.round, message: e.message };
    case 'step': {
      const s = e.step;
      const round = e.phase === 'shrink' ? (p.round ?? 1) : 1;
      const done = epochOffset(plan, e.phase, round) * s.stepsPerEpoch + s.globalStep;
      const fraction = Math.min(1, done / Math.max(1, totalEpochs(plan) * s.stepsPerEpoch));
      return {
        ...p,
        fraction: Math.max(p.fraction, fraction),
        step: { phase: e.phase, epoch: s.epoch, epochs: s.epochs, step: s.step, stepsPerEpoch: s.stepsPerEpoch, loss: s.loss, lr: s.lr, imagesPerSec: s.imagesPerSec },
      };
    }
    case 'epoch': {
      const x = e.epoch;
      const point: CurvePoint = { epoch: x.epoch, trainLoss: x.trainLoss, valLoss: x.valLoss, valAccuracy: x.valAccuracy, seconds: x.seconds };
      const round = e.phase === 'shrink' ? (p.round ?? 1) : 1;
      const fraction = Math.min(1, (epochOffset(plan, e.phase, round) + x.epoch) / Math.max(1, totalEpochs(plan)));
      return { ...p, fraction: Math.max(p.fraction, fraction), curves: { ...p.curves, [e.phase]: [...p.curves[e.phase], point] } };
    }
    case 'shrink-epoch': {
      const x = e.epoch;
      return {
        ...p,
        shrink: [...p.shrink, { round: e.round, epoch: x.epoch, alive: [...x.alive], aliveCost: x.aliveCost, regularizer: x.regularizer, trainLoss: x.trainLoss, valAccuracy: x.valAccuracy }],
      };
    }
    case 'evaluated':
      return { ...p, accuracy: { ...p.accuracy, [e.phase]: e.accuracy } };
  }
}

/** A short form for lists: phase, fraction, message and the last accuracies. */
export function progressSummary(p: SearchProgress): SearchProgressSummary {
  return { phase: p.phase, fraction: p.fraction, message: p.message, accuracy: p.accuracy };
}
