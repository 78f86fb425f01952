/**
 * The `searches` and `search_events` tables: server-side searches (their state, config, progress,
 * result or error) and their stored events, numbered per search from 1, for replays. Which state
 * may follow which is the SearchService's rule (server/search/service.ts); a state change here is
 * guarded by the states the caller says it may come from. Functions over a `Tx` (see devices.ts).
 */
import type { SearchProgress } from '../contract/search-events.ts';
import type { SearchConfig, SearchResultSummary, SearchState } from '../contract/searches.ts';
import type { Tx } from '../db.ts';

export interface SearchRecord {
  readonly id: string;
  readonly state: SearchState;
  readonly modelId: string;
  readonly cost: string;
  readonly deviceId: string | null;
  readonly runtime: string | null;
  readonly config: SearchConfig;
  readonly progress: SearchProgress;
  readonly result: SearchResultSummary | null;
  /**
   * A failed search's error (`{code, message, details?}`); an interrupted or cancelled one's
   * `{reason, at}`; null otherwise.
   */
  readonly error: Record<string, unknown> | null;
  /** Relative to the data directory. */
  readonly artifactsDir: string;
  /** 1, then one more at every resume. */
  readonly attempt: number;
  readonly createdAt: string;
  readonly updatedAt: string;
  readonly startedAt: string | null;
  readonly finishedAt: string | null;
}

/** One stored event: `data` is the event (a state change: `{state, ...}`). */
export interface StoredSearchEvent {
  readonly seq: number;
  readonly type: string;
  readonly data: unknown;
  readonly at: string;
}

/** A state change and what it stores with it. */
export type SearchTransition =
  /** A resume: a fresh attempt, with its progress, result, error and times cleared. */
  | { readonly state: 'queued'; readonly attempt: number; readonly progress: SearchProgress }
  | { readonly state: 'preparing'; readonly progress: SearchProgress }
  /** `progress` null keeps the stored one. */
  | { readonly state: 'running'; readonly progress: SearchProgress | null }
  | {
      readonly state: 'done' | 'failed' | 'cancelled' | 'interrupted';
      readonly progress: SearchProgress | null;
      readonly result: SearchResultSummary | null;
      readonly error: Record<string, unknown> | null;
    };

interface SearchRow {
  id: string;
  state: SearchState;
  model_id: string;
  cost: string;
  device_id: string | null;
  runtime: string | null;
  config_json: string;
  progress_json: string;
  result_json: string | null;
  error_json: string | null;
  artifacts_dir: string;
  attempt: number;
  created_at: string;
  updated_at: string;
  started_at: string | null;
  finished_at: string | null;
}

function fromRow(r: SearchRow): SearchRecord {
  return {
    id: r.id,
    state: r.state,
    modelId: r.model_id,
    cost: r.cost,
    deviceId: r.device_id,
    runtime: r.runtime,
    config: JSON.parse(r.config_json) as SearchConfig,
    progress: JSON.parse(r.progress_json) as SearchProgress,
    result: r.result_json === null ? null : (JSON.parse(r.result_json) as SearchResultSummary),
    error: r.error_json === null ? null : (JSON.parse(r.error_json) as Record<string, unknown>),
    artifactsDir: r.artifacts_dir,
    attempt: r.attempt,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
  };
}

// ── searches ──────────────────────────────────────────────────────────────────────────────

/** Stores a new search, queued, first attempt; its model must be in `models` already. */
export async function insertSearch(tx: Tx, s: { id: string; config: SearchConfig; progress: SearchProgress; artifactsDir: string; createdAt: string }): Promise<void> {
  const c = s.config;
  await tx.run(
    `INSERT INTO searches (id, state, model_id, cost, device_id, runtime, config_json, progress_json, artifacts_dir, attempt, created_at, updated_at)
     VALUES (?, 'queued', ?, ?, ?, ?, ?, ?, ?, 1, ?, ?)`,
    [s.id, c.model.id, c.cost, c.deviceId, c.runtime, JSON.stringify(c), JSON.stringify(s.progress), s.artifactsDir, s.createdAt, s.createdAt],
  );
}

export async function findSearch(q: Tx, id: string): Promise<SearchRecord | undefined> {
  const row = await q.get<SearchRow>('SELECT * FROM searches WHERE id = ?', [id]);
  return row ? fromRow(row) : undefined;
}

/** The newest searches first (then by id), in one state when given. */
export async function listSearches(q: Tx, filter: { state?: SearchState; limit: number }): Promise<SearchRecord[]> {
  const rows = filter.state
    ? await q.all<SearchRow>('SELECT * FROM searches WHERE state = ? ORDER BY created_at DESC, id LIMIT ?', [filter.state, filter.limit])
    : await q.all<SearchRow>('SELECT * FROM searches ORDER BY created_at DESC, id LIMIT ?', [filter.limit]);
  return rows.map(fromRow);
}

/** The ids of the searches in any of `states`, the oldest first. */
export async function searchIdsIn(q: Tx, states: readonly SearchState[]): Promise<string[]> {
  const rows = await q.all<{ id: string }>(`SELECT id FROM searches WHERE state IN (${states.map(() => '?').join(', ')}) ORDER BY created_at, id`, [...states]);
  return rows.map((r) => r.id);
}

/** The queued search to start next: the oldest (then by id). */
export async function nextQueuedSearch(q: Tx): Promise<SearchRecord | undefined> {
  const row = await q.get<SearchRow>("SELECT * FROM searches WHERE state = 'queued' ORDER BY created_at, id LIMIT 1");
  return row ? fromRow(row) : undefined;
}

/** Queued searches ahead of `s` in the queue. */
export async function countQueuedAhead(q: Tx, s: { id: string; createdAt: string }): Promise<number> {
  return (await q.get<{ n: number }>("SELECT COUNT(*) AS n FROM searches WHERE state = 'queued' AND (created_at < ? OR (created_at = ? AND id < ?))", [s.createdAt, s.createdAt, s.id]))?.n ?? 0;
}

export async function saveSearchProgress(tx: Tx, id: string, progress: SearchProgress, at: string): Promise<void> {
  await tx.run('UPDATE searches SET progress_json = ?, updated_at = ? WHERE id = ?', [JSON.stringify(progress), at, id]);
}

/**
 * Moves the search to `t.state` if it is in one of `from`, storing what the change carries.
 * @returns false when it was in another state (nothing changed: another change came first).
 */
export async function transitionSearch(tx: Tx, id: string, t: SearchTransition, from: readonly SearchState[], at: string): Promise<boolean> {
  const guard = `AND state IN (${from.map(() => '?').join(', ')})`;
  const progress = t.progress === null ? null : JSON.stringify(t.progress);
  let r;
  if (t.state === 'queued') {
    r = await tx.run(
      `UPDATE searches SET state = 'queued', attempt = ?, progress_json = ?, result_json = NULL, error_json = NULL, started_at = NULL, finished_at = NULL, updated_at = ? WHERE id = ? ${guard}`,
      [t.attempt, progress, at, id, ...from],
    );
  } else if (t.state === 'preparing') {
    r = await tx.run(`UPDATE searches SET state = 'preparing', progress_json = ?, started_at = ?, updated_at = ? WHERE id = ? ${guard}`, [progress, at, at, id, ...from]);
  } else if (t.state === 'running') {
    r = await tx.run(`UPDATE searches SET state = 'running', progress_json = COALESCE(?, progress_json), updated_at = ? WHERE id = ? ${guard}`, [progress, at, id, ...from]);
  } else {
    r = await tx.run(
      `UPDATE searches SET state = ?, progress_json = COALESCE(?, progress_json), result_json = ?, error_json = ?, finished_at = ?, updated_at = ? WHERE id = ? ${guard}`,
      [t.state, progress, t.result === null ? null : JSON.stringify(t.result), t.error === null ? null : JSON.stringify(t.error), at, at, id, ...from],
    );
  }
  return r.changes > 0;
}

// ── events ────────────────────────────────────────────────────────────────────────────────

export async function insertSearchEvent(tx: Tx, searchId: string, e: StoredSearchEvent): Promise<void> {
  await tx.run('INSERT INTO search_events (search_id, seq, type, data_json, at) VALUES (?, ?, ?, ?, ?)', [searchId, e.seq, e.type, JSON.stringify(e.data), e.at]);
}

/** The highest event number of the search; 0 when it has none. */
export async function lastEventSeq(q: Tx, searchId: string): Promise<number> {
  return (await q.get<{ n: number }>('SELECT COALESCE(MAX(seq), 0) AS n FROM search_events WHERE search_id = ?', [searchId]))?.n ?? 0;
}

/** The search's events with `seq > after`, in order. */
export async function listSearchEvents(q: Tx, searchId: string, after: number): Promise<StoredSearchEvent[]> {
  const rows = await q.all<{ seq: number; type: string; data_json: string; at: string }>('SELECT seq, type, data_json, at FROM search_events WHERE search_id = ? AND seq > ? ORDER BY seq', [searchId, after]);
  return rows.map((r) => ({ seq: r.seq, type: r.type, data: JSON.parse(r.data_json), at: r.at }));
}
