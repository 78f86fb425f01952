/**
 * Progress of a training run for people and for programs. On a terminal: one line, redrawn in
 * place, with epoch, step, loss, images/s and the time left. Otherwise (a pipe, a log file, the
 * server reading a child process): one JSON object per line — `{"event":"step",…}` at most about
 * once a second so logs stay small, `{"event":"epoch",…}` after every epoch. It is just a pair of
 * training hooks, so the loop knows nothing about it.
 */
import type { EpochEvent, StepEvent, TrainHooks } from './loop.ts';

export interface ProgressOptions {
  /** Draw an updating line (true) or write JSON lines (false). */
  tty: boolean;
  /** Raw output, no newline added (e.g. `(t) => process.stderr.write(t)`). */
  write: (text: string) => void;
  /** Minimum time between two `step` events or redraws, ms. Default 1000 (JSON), 100 (TTY). */
  throttleMs?: number;
  /** Terminal width to truncate the line to. Default 120. */
  columns?: number;
  /** Clock in ms, for tests. Default `performance.now`. */
  now?: () => number;
  /** Prefix of every line (TTY) or `phase` field (JSON), e.g. `shrink`, `final`. */
  label?: string;
}

export interface ProgressReporter extends Required<Pick<TrainHooks, 'onStep' | 'onEpochEnd'>> {
  /** Ends the updating line (TTY) so that later output starts on a fresh line. Idempotent. */
  close(): void;
}

/** `93` → `1m33s`, `4000` → `1h06m`. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

function round(v: number, digits = 4): number {
  return Number.isFinite(v) ? Number(v.toPrecision(digits)) : v;
}

export function createProgressReporter(o: ProgressOptions): ProgressReporter {
  const now = o.now ?? (() => performance.now());
  const throttle = o.throttleMs ?? (o.tty ? 100 : 1000);
  const columns = o.columns ?? 120;
  let lastEmit = Number.NEGATIVE_INFINITY;
  let lastStepAt: number | null = null;
  /** Exponential moving average of seconds per step, for the ETA. */
  let secPerStep: number | null = null;
  let lineOpen = false;

  const eta = (e: StepEvent): number => (secPerStep === null ? Number.NaN : secPerStep * (e.totalSteps - e.globalStep));
  const label = o.label ? `${o.label} ` : '';

  return {
    onStep(e) {
      const t = now();
      if (lastStepAt !== null) {
        // Step to step, so data loading counts; the evaluation pause does not (see onEpochEnd).
        const dt = (t - lastStepAt) / 1000;
        secPerStep = secPerStep === null ? dt : 0.9 * secPerStep + 0.1 * dt;
      }
      lastStepAt = t;
      const last = e.globalStep === e.totalSteps;
      if (t - lastEmit < throttle && !last) return;
      lastEmit = t;
      const etaSeconds = eta(e);
      if (o.tty) {
        const text =
          `${label}epoch ${e.epoch}/${e.epochs} step ${e.step}/${e.stepsPerEpoch} loss ${round(e.loss)}` +
          (e.extraLoss !== 0 ? ` +reg ${round(e.extraLoss)}` : '') +
          ` lr ${round(e.lr, 3)} ${Math.round(e.imagesPerSec)} img/s ETA ${formatDuration(etaSeconds)}`;
        o.write(`\r${text.slice(0, columns - 1)}\x1b[K`);
        lineOpen = true;
      } else {
        o.write(
          `${JSON.stringify({
            event: 'step',
            ...(o.label ? { phase: o.label } : {}),
            epoch: e.epoch,
            epochs: e.epochs,
            step: e.step,
            stepsPerEpoch: e.stepsPerEpoch,
            globalStep: e.globalStep,
            totalSteps: e.totalSteps,
            loss: round(e.loss, 6),
            extraLoss: round(e.extraLoss, 6),
            lr: e.lr,
            imagesPerSec: Math.round(e.imagesPerSec),
            etaSeconds: Number.isFinite(etaSeconds) ? Math.round(etaSeconds) : null,
          })}\n`,
        );
      }
    },
    onEpochEnd(e: EpochEvent) {
      // Evaluation and checkpointing happen between the last step and the next epoch's first.
      lastStepAt = null;
      if (o.tty) {
        const val = e.valAccuracy === null ? '' : ` val loss ${round(e.valLoss ?? Number.NaN)} acc ${(e.valAccuracy * 100).toFixed(1)}%`;
        o.write(`\r${label}epoch ${e.epoch}/${e.epochs} loss ${round(e.trainLoss)}${val} (${formatDuration(e.seconds)})\x1b[K\n`);
        lineOpen = false;
      } else {
        o.write(`${JSON.stringify({ event: 'epoch', ...(o.label ? { phase: o.label } : {}), ...e, seconds: round(e.seconds) })}\n`);
      }
    },
    close() {
      if (o.tty && lineOpen) o.write('\n');
      lineOpen = false;
    },
  };
}
