/**
 * The REST contract of a search's progress and events (docs/api.md, "Searches and models"): the
 * `progress` of a search view, and the events of `GET /api/searches/:id/events` (SSE: each
 * message's `data` is a `SearchEventRecord`; the stream ends with `event: end`, data
 * `{state}`). See index.ts; server/search/progress.ts folds the events into the progress.
 */
import type { SearchEvent } from '../../src/morph/search.ts';
import type { RESUME_MODE, SearchError, SearchResultSummary, SearchState } from './searches.ts';

/** One point of a training curve (the end of an epoch). */
export interface CurvePoint {
  readonly epoch: number;
  readonly trainLoss: number;
  readonly valLoss: number | null;
  readonly valAccuracy: number | null;
  readonly seconds: number;
}

export interface ShrinkPoint {
  readonly round: number;
  readonly epoch: number;
  /** Alive channels of every group (index = group id; unregularized groups keep their width). */
  readonly alive: readonly number[];
  readonly aliveCost: number;
  readonly regularizer: number;
  readonly trainLoss: number;
  readonly valAccuracy: number | null;
}

export interface GroupInfo {
  readonly id: number;
  readonly layers: readonly string[];
  readonly channels: number;
}

export interface LastStep {
  readonly phase: 'shrink' | 'final' | 'baseline';
  readonly epoch: number;
  readonly epochs: number;
  readonly step: number;
  readonly stepsPerEpoch: number;
  readonly loss: number;
  readonly lr: number;
  readonly imagesPerSec: number;
}

export interface FlopRunProgress {
  readonly curves: { readonly shrink: readonly CurvePoint[]; readonly final: readonly CurvePoint[] };
  readonly shrink: readonly ShrinkPoint[];
  readonly accuracy: number | null;
}

/** A search's progress: the events so far, folded (server/search/progress.ts `applyEvent`). */
export interface SearchProgress {
  /** The phase running now (`prepare` before training starts). */
  readonly phase: 'prepare' | 'shrink' | 'expand' | 'final' | 'baseline' | 'export' | null;
  readonly round: number | null;
  /** The last phase message, e.g. `round 1: shrinking with λ = …`. */
  readonly message: string | null;
  /** Share of the planned training steps done, 0–1 (1 once the search is done). */
  readonly fraction: number;
  readonly step: LastStep | null;
  readonly curves: { readonly shrink: readonly CurvePoint[]; readonly final: readonly CurvePoint[]; readonly baseline: readonly CurvePoint[] };
  readonly groups: readonly GroupInfo[];
  readonly shrink: readonly ShrinkPoint[];
  readonly accuracy: { readonly final: number | null; readonly baseline: number | null };
  /**
   * The FLOP-MorphNet baseline's run of a latency search (a second shrink/expand/train after the
   * search's own), kept apart so its curves and accuracy never pass for the search's; null until it starts.
   */
  readonly flop: FlopRunProgress | null;
  /** The tfjs backend the worker trains on, e.g. `backend wasm (SIMD on, threads off) tfjs 4.22.0`. */
  readonly backend: string | null;
  readonly dataset: { readonly name: string; readonly trainSize: number; readonly valSize: number; readonly testSize: number } | null;
  /** The preparation's job in progress (a latency search profiling the device, measuring the seed); null otherwise. */
  readonly prepare: { readonly label: string; readonly done: number; readonly total: number } | null;
}

/** The short form of the progress in lists: phase, fraction, message and the last accuracies. */
export interface SearchProgressSummary {
  readonly phase: SearchProgress['phase'];
  readonly fraction: number;
  readonly message: string | null;
  readonly accuracy: SearchProgress['accuracy'];
}

/** Events of the search worker that are not search events. */
export type WorkerInfoEvent =
  | { readonly type: 'ready'; readonly backend: string; readonly dataset: NonNullable<SearchProgress['dataset']> }
  | { readonly type: 'groups'; readonly groups: readonly GroupInfo[] }
  | { readonly type: 'export'; readonly message: string }
  /** A line from the preparation (e.g. the latency hook profiling the device), with its job's progress when it has one. */
  | { readonly type: 'note'; readonly message: string; readonly progress?: { readonly label: string; readonly done: number; readonly total: number } };

/** A search event (src/morph/search.ts) or one of the worker's; `run: 'flop'` marks the events of the FLOP-MorphNet baseline's run. */
export type ProgressEvent = (SearchEvent & { readonly run?: 'flop' }) | WorkerInfoEvent;

/** The data of a `state` event: the new state and what came with the change. */
export interface SearchStateChange {
  readonly state: SearchState;
  readonly attempt?: number;
  /** Cancelled or interrupted: why. */
  readonly reason?: string;
  /** Interrupted: the request that runs it again. */
  readonly resume?: string;
  /** Queued again by a resume, and how it restarts. */
  readonly resumed?: boolean;
  readonly mode?: typeof RESUME_MODE;
  /** Running: the backend the worker trains on. */
  readonly backend?: string;
  readonly result?: SearchResultSummary;
  readonly error?: SearchError;
}

interface EventRecordOf<T extends string, D> {
  /** The event's number within the search (`id:` of the SSE message); null for step events, which are not stored. */
  readonly seq: number | null;
  readonly type: T;
  readonly data: D;
  readonly at: string;
}

/** One event of a search: `type` says what `data` is (a state change, or the progress event of that type). */
export type SearchEventRecord =
  | EventRecordOf<'state', SearchStateChange>
  | { [K in ProgressEvent['type']]: EventRecordOf<K, Extract<ProgressEvent, { readonly type: K }>> }[ProgressEvent['type']];

/** The data of the stream's last message, `event: end`. */
export interface SearchEventsEnd {
  readonly state: SearchState;
}
