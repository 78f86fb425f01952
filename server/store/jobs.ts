/**
 * The `jobs` and `job_items` tables: profiling and measuring work. A job is queued, running, done,
 * failed or cancelled; each of its items (one op point, or one whole network) is pending, leased,
 * done or failed. Leases themselves live in memory (server/fleet.ts): a leased item is only marked
 * with the agent holding it. Functions over a `Tx` (see devices.ts); a lease, a result and a job's
 * completion each join several of them in one transaction.
 */
import { signature, type OpSpec } from '../../src/ops/op-spec.ts';
import type { RuntimeName, WireMeasurement } from '../../src/protocol/agent-protocol.ts';
import type { ItemError, JobError, JobKind, JobOptions, JobState, MeasureResult, ProfileJobResult } from '../contract/devices.ts';
import type { SqlValue, Tx } from '../db.ts';

export type ItemState = 'pending' | 'leased' | 'done' | 'failed';

export interface JobRecord {
  readonly id: string;
  readonly kind: JobKind;
  readonly deviceId: string;
  readonly runtime: RuntimeName;
  readonly modelId: string;
  readonly state: JobState;
  readonly options: JobOptions;
  /** Set when the job finished (done or failed). */
  readonly result: ProfileJobResult | MeasureResult | null;
  readonly error: JobError | null;
  readonly createdAt: string;
  readonly updatedAt: string;
  readonly finishedAt: string | null;
}

export interface ItemRecord {
  readonly id: number;
  readonly jobId: string;
  /** Its place in the job, from 0. */
  readonly idx: number;
  readonly kind: 'op' | 'network';
  /** Op items: the op, its signature and channels; null for a network item. */
  readonly spec: OpSpec | null;
  readonly signature: string | null;
  readonly cIn: number | null;
  readonly cOut: number | null;
  readonly state: ItemState;
  /** Failures reported so far. */
  readonly attempts: number;
  /** The agent holding (or that stored) the item. */
  readonly agentId: string | null;
  readonly result: WireMeasurement | null;
  readonly error: ItemError | null;
  readonly doneAt: string | null;
}

export type NewJobItem = { readonly kind: 'op'; readonly spec: OpSpec } | { readonly kind: 'network' };

interface JobRow {
  id: string;
  kind: JobKind;
  device_id: string;
  runtime: RuntimeName;
  model_id: string;
  state: JobState;
  options_json: string;
  result_json: string | null;
  error_json: string | null;
  created_at: string;
  updated_at: string;
  finished_at: string | null;
}

interface ItemRow {
  id: number;
  job_id: string;
  idx: number;
  kind: 'op' | 'network';
  spec_json: string | null;
  signature: string | null;
  c_in: number | null;
  c_out: number | null;
  state: ItemState;
  attempts: number;
  agent_id: string | null;
  result_json: string | null;
  error_json: string | null;
  done_at: string | null;
}

const parsed = <T>(text: string | null): T | null => (text === null ? null : (JSON.parse(text) as T));

function jobFromRow(r: JobRow): JobRecord {
  return {
    id: r.id,
    kind: r.kind,
    deviceId: r.device_id,
    runtime: r.runtime,
    modelId: r.model_id,
    state: r.state,
    options: JSON.parse(r.options_json) as JobOptions,
    result: parsed<ProfileJobResult | MeasureResult>(r.result_json),
    error: parsed<JobError>(r.error_json),
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    finishedAt: r.finished_at,
  };
}

function itemFromRow(r: ItemRow): ItemRecord {
  return {
    id: r.id,
    jobId: r.job_id,
    idx: r.idx,
    kind: r.kind,
    spec: parsed<OpSpec>(r.spec_json),
    signature: r.signature,
    cIn: r.c_in,
    cOut: r.c_out,
    state: r.state,
    attempts: r.attempts,
    agentId: r.agent_id,
    result: parsed<WireMeasurement>(r.result_json),
    error: parsed<ItemError>(r.error_json),
    doneAt: r.done_at,
  };
}

// ── jobs ──────────────────────────────────────────────────────────────────────────────────

/** Stores a new job, queued. */
export async function insertJob(tx: Tx, job: { id: string; kind: JobKind; deviceId: string; runtime: RuntimeName; modelId: string; options: JobOptions; createdAt: string }): Promise<void> {
  await tx.run('INSERT INTO jobs (id, kind, device_id, runtime, model_id, state, options_json, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)', [
    job.id,
    job.kind,
    job.deviceId,
    job.runtime,
    job.modelId,
    'queued',
    JSON.stringify(job.options),
    job.createdAt,
    job.createdAt,
  ]);
}

export async function findJob(q: Tx, id: string): Promise<JobRecord | undefined> {
  const row = await q.get<JobRow>('SELECT * FROM jobs WHERE id = ?', [id]);
  return row ? jobFromRow(row) : undefined;
}

/** The newest jobs first, of one device and in one state when given; 100 unless `limit`. */
export async function listJobs(q: Tx, filter: { deviceId?: string; state?: JobState; limit?: number } = {}): Promise<JobRecord[]> {
  const where: string[] = [];
  const params: SqlValue[] = [];
  if (filter.deviceId) {
    where.push('device_id = ?');
    params.push(filter.deviceId);
  }
  if (filter.state) {
    where.push('state = ?');
    params.push(filter.state);
  }
  const rows = await q.all<JobRow>(`SELECT * FROM jobs ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY created_at DESC LIMIT ?`, [...params, filter.limit ?? 100]);
  return rows.map(jobFromRow);
}

/** The device's queued and running jobs, the oldest first (the order they are served in). */
export async function openJobs(q: Tx, deviceId: string): Promise<JobRecord[]> {
  return (await q.all<JobRow>("SELECT * FROM jobs WHERE device_id = ? AND state IN ('queued', 'running') ORDER BY created_at", [deviceId])).map(jobFromRow);
}

export async function countOpenJobs(q: Tx, deviceId: string): Promise<number> {
  return (await q.get<{ n: number }>("SELECT COUNT(*) AS n FROM jobs WHERE device_id = ? AND state IN ('queued', 'running')", [deviceId]))?.n ?? 0;
}

export async function touchJob(tx: Tx, id: string, at: string): Promise<void> {
  await tx.run('UPDATE jobs SET updated_at = ? WHERE id = ?', [at, id]);
}

/** Stores a job's end: its state (done or failed), result and error. */
export async function finishJobRow(tx: Tx, id: string, end: { state: 'done' | 'failed'; result: ProfileJobResult | MeasureResult | null; error: JobError | null; at: string }): Promise<void> {
  await tx.run('UPDATE jobs SET state = ?, result_json = ?, error_json = ?, updated_at = ?, finished_at = ? WHERE id = ?', [
    end.state,
    JSON.stringify(end.result),
    end.error === null ? null : JSON.stringify(end.error),
    end.at,
    end.at,
    id,
  ]);
}

/**
 * Cancels a queued or running job and puts its leased items back to pending.
 * @returns false when the job was in another state (nothing changed).
 */
export async function cancelJobRow(tx: Tx, id: string, at: string): Promise<boolean> {
  const r = await tx.run("UPDATE jobs SET state = 'cancelled', updated_at = ?, finished_at = ? WHERE id = ? AND state IN ('queued', 'running')", [at, at, id]);
  if (r.changes > 0) await tx.run("UPDATE job_items SET state = 'pending', agent_id = NULL WHERE job_id = ? AND state = 'leased'", [id]);
  return r.changes > 0;
}

// ── items ─────────────────────────────────────────────────────────────────────────────────

/** Stores the job's items, pending, numbered from 0 in the order given. */
export async function insertJobItems(tx: Tx, jobId: string, items: readonly NewJobItem[]): Promise<void> {
  // 100 rows per statement: one round trip per row held the write lock long enough to slow storing results.
  for (let start = 0; start < items.length; start += 100) {
    const chunk = items.slice(start, start + 100);
    const params = chunk.flatMap((item, k) => {
      const spec = item.kind === 'op' ? item.spec : null;
      return [jobId, start + k, item.kind, spec ? JSON.stringify(spec) : null, spec ? signature(spec) : null, spec?.cIn ?? null, spec?.cOut ?? null, 'pending'];
    });
    await tx.run(`INSERT INTO job_items (job_id, idx, kind, spec_json, signature, c_in, c_out, state) VALUES ${chunk.map(() => '(?, ?, ?, ?, ?, ?, ?, ?)').join(', ')}`, params);
  }
}

export async function findItem(q: Tx, id: number): Promise<ItemRecord | undefined> {
  const row = await q.get<ItemRow>('SELECT * FROM job_items WHERE id = ?', [id]);
  return row ? itemFromRow(row) : undefined;
}

/** The job's items in order. */
export async function listItems(q: Tx, jobId: string): Promise<ItemRecord[]> {
  return (await q.all<ItemRow>('SELECT * FROM job_items WHERE job_id = ? ORDER BY idx', [jobId])).map(itemFromRow);
}

/** How many of the job's items are in each state, and in all. */
export async function itemCounts(q: Tx, jobId: string): Promise<Record<ItemState, number> & { total: number }> {
  const rows = await q.all<{ state: ItemState; n: number }>('SELECT state, COUNT(*) AS n FROM job_items WHERE job_id = ? GROUP BY state', [jobId]);
  const c = (s: ItemState): number => rows.find((x) => x.state === s)?.n ?? 0;
  return { total: rows.reduce((s, x) => s + x.n, 0), pending: c('pending'), leased: c('leased'), done: c('done'), failed: c('failed') };
}

/** Items still to be measured (pending or leased). */
export async function countOpenItems(q: Tx, jobId: string): Promise<number> {
  return (await q.get<{ n: number }>("SELECT COUNT(*) AS n FROM job_items WHERE job_id = ? AND state IN ('pending', 'leased')", [jobId]))?.n ?? 0;
}

/** One op spec per signature the job measured (a template to vary the channels of). */
export async function signatureSpecs(q: Tx, jobId: string): Promise<Map<string, OpSpec>> {
  const rows = await q.all<{ signature: string; spec_json: string }>("SELECT signature, MIN(spec_json) AS spec_json FROM job_items WHERE job_id = ? AND kind = 'op' GROUP BY signature", [jobId]);
  return new Map(rows.map((r) => [r.signature, JSON.parse(r.spec_json) as OpSpec]));
}

/**
 * Leases up to `limit` pending items of the job to the agent (the first by index) and marks the
 * job running. Returns the items leased (none: nothing pending).
 */
export async function leaseItems(tx: Tx, jobId: string, agentId: string, limit: number, at: string): Promise<ItemRecord[]> {
  const items = (await tx.all<ItemRow>("SELECT * FROM job_items WHERE job_id = ? AND state = 'pending' ORDER BY idx LIMIT ?", [jobId, limit])).map(itemFromRow);
  if (items.length === 0) return items;
  for (const it of items) await tx.run("UPDATE job_items SET state = 'leased', agent_id = ? WHERE id = ?", [agentId, it.id]);
  await tx.run("UPDATE jobs SET state = 'running', updated_at = ? WHERE id = ? AND state = 'queued'", [at, jobId]);
  return items.map((it) => ({ ...it, state: 'leased', agentId }));
}

/** Puts the items back to pending, those still leased (a result may have come in meanwhile). */
export async function requeueItems(tx: Tx, ids: readonly number[]): Promise<void> {
  for (const id of ids) await tx.run("UPDATE job_items SET state = 'pending', agent_id = NULL WHERE id = ? AND state = 'leased'", [id]);
}

/** Puts every leased item of every job back to pending (leases do not survive a restart). Returns how many. */
export async function requeueAllLeased(tx: Tx): Promise<number> {
  return (await tx.run("UPDATE job_items SET state = 'pending', agent_id = NULL WHERE state = 'leased'")).changes;
}

/** Stores the item's measurement: done, by `agentId`. */
export async function completeItem(tx: Tx, id: number, done: { agentId: string; result: WireMeasurement; at: string }): Promise<void> {
  await tx.run("UPDATE job_items SET state = 'done', agent_id = ?, result_json = ?, error_json = NULL, done_at = ? WHERE id = ?", [done.agentId, JSON.stringify(done.result), done.at, id]);
}

/** Records a failed attempt: the item goes back to pending for another try, or is failed for good. */
export async function recordItemFailure(tx: Tx, id: number, failure: { state: 'pending' | 'failed'; attempts: number; error: ItemError }): Promise<void> {
  await tx.run('UPDATE job_items SET state = ?, attempts = ?, agent_id = NULL, error_json = ? WHERE id = ?', [failure.state, failure.attempts, JSON.stringify(failure.error), id]);
}

/** Fails the items at once (their payload could not be built), whatever their attempts. */
export async function failItems(tx: Tx, ids: readonly number[], error: ItemError): Promise<void> {
  for (const id of ids) await tx.run("UPDATE job_items SET state = 'failed', error_json = ? WHERE id = ?", [JSON.stringify(error), id]);
}
