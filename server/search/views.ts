/**
 * A stored search as the API shows it (server/contract/searches.ts): the summary of lists and the
 * full view. Pure: the service passes the live progress of a running search, why a queued one
 * waits and the artifacts present.
 */
import type { SearchProgress } from '../contract/search-events.ts';
import { RESUMABLE_SEARCH_STATES, RESUME_MODE, type SearchError, type SearchSummaryView, type SearchView } from '../contract/searches.ts';
import type { SearchRecord } from '../store/searches.ts';
import { progressSummary } from './progress.ts';

/** Why a resumed search restarts from the seed (`RESUME_MODE`), as a view's `resume.note` says. */
const RESUME_NOTE = 'a resumed search runs again from the seed with the same config (runSearch keeps no state between its phases, so there is no checkpoint to continue from)';

/** `progress`: the running attempt's (live), else the stored one. */
export function searchSummary(row: SearchRecord, progress: SearchProgress, waiting: string | null): SearchSummaryView {
  return {
    id: row.id,
    state: row.state,
    attempt: row.attempt,
    model: row.config.model,
    cost: row.config.cost,
    deviceId: row.deviceId,
    runtime: row.runtime,
    target: row.config.resolvedTarget,
    progress: progressSummary(progress),
    waiting,
    createdAt: row.createdAt,
    startedAt: row.startedAt,
    finishedAt: row.finishedAt,
  };
}

/** `artifacts`: the names of the files present (`GET …/artifacts/:name`). */
export function searchView(row: SearchRecord, progress: SearchProgress, waiting: string | null, artifacts: readonly string[]): SearchView {
  const resumable = RESUMABLE_SEARCH_STATES.includes(row.state);
  const stored = row.error;
  // A cancelled or interrupted search's stored error is why and when it stopped, not a failure.
  const interrupted = row.state === 'interrupted' || row.state === 'cancelled';
  return {
    ...searchSummary(row, progress, waiting),
    config: row.config,
    progress,
    result: row.result,
    error: interrupted ? null : (stored as SearchError | null),
    interruption: interrupted && stored ? { reason: String(stored.reason), at: String(stored.at) } : null,
    resume: { available: resumable, mode: RESUME_MODE, action: resumable ? `POST /api/searches/${row.id}/resume` : null, note: RESUME_NOTE },
    artifacts,
    updatedAt: row.updatedAt,
  };
}
