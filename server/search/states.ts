/**
 * A search's state machine: `queued` → `preparing` → `running` → `done` | `failed` | `cancelled`,
 * `interrupted` when the server stopped under it, and back to `queued` on a resume (see
 * service.ts). Which state may follow which, and what each change writes to the search's row.
 */
import type { SearchProgress, SearchStateChange } from '../contract/search-events.ts';
import type { SearchError, SearchResultSummary, SearchState } from '../contract/searches.ts';
import type { SearchTransition } from '../store/searches.ts';
import { emptyProgress } from './progress.ts';

/** The states each state may be entered from; any other transition is a race that lost. */
export const ENTERED_FROM: Readonly<Record<SearchState, readonly SearchState[]>> = {
  queued: ['interrupted', 'failed', 'cancelled'],
  preparing: ['queued'],
  running: ['preparing'],
  done: ['preparing', 'running'],
  failed: ['preparing', 'running'],
  cancelled: ['queued', 'interrupted', 'preparing', 'running'],
  interrupted: ['preparing', 'running'],
};

/** A state change whose search was no longer in a state it may come from (another change won). */
export class StaleStateError extends Error {
  override name = 'StaleStateError';
}

/** What a state change stores besides the state: the progress so far, a done search's result, a failed one's error. */
export interface StateExtras {
  readonly progress?: SearchProgress;
  readonly result?: SearchResultSummary;
  readonly error?: SearchError;
}

/**
 * The row change of a state event (`data`): a resume starts a fresh attempt; preparing starts the
 * clock; an end stores the result, or the error (a cancelled or interrupted search's: why and when).
 */
export function transitionOf(data: SearchStateChange, extra: StateExtras, at: string): SearchTransition {
  const state = data.state;
  const progress = extra.progress ?? null;
  switch (state) {
    case 'queued':
      return { state, attempt: data.attempt ?? 1, progress: emptyProgress() };
    case 'preparing':
      return { state, progress: progress ?? emptyProgress() };
    case 'running':
      return { state, progress };
    default: {
      const error = state === 'interrupted' || state === 'cancelled' ? { reason: data.reason, at } : ((extra.error ?? null) as Record<string, unknown> | null);
      return { state, progress, result: extra.result ?? null, error };
    }
  }
}
