/**
 * The fleet: devices, the agents connected for them, and the jobs leased to those agents.
 *
 * Scheduling rules:
 * - A device times one thing at a time: at most one lease per device, whatever the number of
 *   agents serving it (two timings at once on one CPU would corrupt both).
 * - A lease is a batch of pending items of the oldest job the device can run. Items go back to
 *   pending when the agent drops, when the lease expires (no result for `leaseMs`), or when the
 *   server restarts; so a job finishes on whichever agent of the device is left.
 * - A result is accepted only from the device the item was leased to, and only for an item of a
 *   lease issued to it; it is stored once (the first copy wins, later copies are acknowledged as
 *   duplicates and change nothing). Storing an item, its table point and the job's completion is
 *   one transaction.
 */
import { SEARCH_PROFILE_GRID } from '../src/morph/search-options.ts';
import { createHash, randomBytes } from 'node:crypto';
import { MorphError } from '../src/errors.ts';
import { requiredPoints } from '../src/cost/latency-locate.ts';
import { tableGrid, type GridOptions } from '../src/ops/graph-specs.ts';
import { signature, withChannels, type OpSpec } from '../src/ops/op-spec.ts';
import { REFERENCE_OP } from '../src/ops/reference-op.ts';
import {
  PROTOCOL_VERSION,
  type AckMessage,
  type ErrorMessage,
  type HelloMessage,
  type ItemFailedMessage,
  type ResultMessage,
  type RuntimeName,
  type ServerMessage,
  type NetworkPayload,
  type WireMeasureOptions,
  type WireMeasurement,
  type WorkItem,
} from '../src/protocol/agent-protocol.ts';
import type { Db, Tx } from './db.ts';
import { networkTflite, resolveModel, type ResolvedModel } from './models.ts';
import { inferenceTopology } from '../src/export/inference-topology.ts';

/** One connected agent, as the hub hands it to the fleet. */
export interface AgentLink {
  send(message: ServerMessage): void;
}

export interface AgentSession {
  readonly agentId: string;
  readonly deviceId: string;
  readonly name: string;
  readonly runtimes: ReadonlySet<RuntimeName>;
  readonly connectedAt: string;
  readonly link: AgentLink;
  lease: Lease | null;
  itemsDone: number;
}

interface Lease {
  readonly id: string;
  readonly jobId: string;
  readonly deviceId: string;
  readonly agent: AgentSession;
  readonly items: Set<number>;
  readonly perItemMs: number;
  timer: NodeJS.Timeout | null;
}

export type JobKind = 'profile' | 'measure';
export type JobState = 'queued' | 'running' | 'done' | 'failed' | 'cancelled';

export interface JobView {
  readonly id: string;
  readonly kind: JobKind;
  readonly state: JobState;
  readonly deviceId: string;
  readonly runtime: string;
  readonly modelId: string;
  readonly modelName: string;
  readonly progress: { readonly total: number; readonly done: number; readonly failed: number; readonly leased: number; readonly pending: number };
  /** Why a queued job is not moving, when it is not. */
  readonly waiting: string | null;
  readonly result: unknown;
  readonly error: unknown;
  readonly options: unknown;
  readonly createdAt: string;
  readonly updatedAt: string;
  readonly finishedAt: string | null;
}

export interface DeviceView {
  readonly id: string;
  readonly name: string;
  readonly platform: string;
  readonly online: boolean;
  readonly runtimes: unknown;
  readonly env: unknown;
  readonly agentVersion: string;
  readonly firstSeen: string;
  readonly lastSeen: string;
  readonly agents: readonly { readonly id: string; readonly name: string; readonly connectedAt: string; readonly busy: boolean; readonly itemsDone: number }[];
  readonly busy: boolean;
}

export interface FleetOptions {
  /** Items per lease. Default 8. */
  readonly leaseItems?: number;
  /** Failures of one item before it is given up. Default 3. */
  readonly maxItemAttempts?: number;
  /** Slack added to a lease's deadline, ms. Default 30 000. */
  readonly leaseSlackMs?: number;
  /** Called when devices or jobs change (for live views). */
  readonly onChange?: (what: { kind: 'device' | 'job'; id: string }) => void;
  /** Called once when a job reaches done or failed (after its transaction committed). */
  readonly onJobFinished?: (jobId: string) => void;
  /** Queued or running jobs one device may have at once. Default MAX_OPEN_JOBS_PER_DEVICE. */
  readonly maxOpenJobsPerDevice?: number;
  /** Items (timings) one job may hold. Default MAX_JOB_ITEMS. */
  readonly maxJobItems?: number;
}

/** Default cap on the queued and running jobs of one device. */
export const MAX_OPEN_JOBS_PER_DEVICE = 100;
/** Default cap on the items of one job (a 2000-layer model on an 8×8 grid stays well under it). */
export const MAX_JOB_ITEMS = 50_000;


export interface ProfileRequest {
  readonly deviceId: string;
  readonly runtime: RuntimeName;
  readonly model: ResolvedModel;
  readonly grid?: GridOptions;
  readonly measure?: WireMeasureOptions;
  /** Re-measure points the table already has. Default false. */
  readonly force?: boolean;
  /** When done, measure extra points where the table's interpolation is poor. Default true (false with seedOnly). */
  readonly refine?: boolean;
  /**
   * Profile the points a search of the model may price (`requiredPoints`, up to `grid.maxPerAxis`
   * values per axis, default 6) instead of the table grid around each op. Default false.
   */
  readonly forSearch?: boolean;
  /** Why the job exists (e.g. `search s-…`), shown in its options. */
  readonly purpose?: string;
  /**
   * Time every op against the reference op (`REFERENCE_OP`), interleaved, so that the table holds
   * ratios the machine's speed does not move (server/tables.ts reads them back in ms). Default true.
   */
  readonly paired?: boolean;
}

export interface MeasureRequest {
  readonly deviceId: string;
  readonly runtime: RuntimeName;
  readonly model: ResolvedModel;
  readonly measure?: WireMeasureOptions;
  /**
   * A network to time interleaved with `model` (sample by sample); the result then carries the
   * ratio model/reference, which the machine's speed phases move much less than either time.
   */
  readonly reference?: ResolvedModel;
}

/** A finished measure job's `result`. */
export interface MeasureResult {
  readonly medianMs: number;
  readonly p10Ms: number;
  readonly p90Ms: number;
  readonly n: number;
  readonly cv: number;
  readonly stable: boolean;
  /** With a reference (`MeasureRequest.reference`): its median and the ratio model/reference, timed interleaved. */
  readonly reference?: WireMeasurement['reference'];
}

/** What a job's `options_json` holds. */
interface JobOptions {
  readonly measure: WireMeasureOptions;
  /** Measure jobs: the model every network item is timed against. */
  readonly referenceModelId?: string;
  /** Profile jobs: the op every op item is timed against. */
  readonly referenceOp?: OpSpec;
}

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
  state: 'pending' | 'leased' | 'done' | 'failed';
  attempts: number;
}

interface DeviceRow {
  id: string;
  name: string;
  platform: string;
  env_json: string;
  runtimes_json: string;
  agent_version: string;
  first_seen: string;
  last_seen: string;
}

/** Default protocol for profiling, DESIGN "Measuring latency". */
export const DEFAULT_JOB_MEASURE: Readonly<WireMeasureOptions> = Object.freeze({ maxMs: 5000 });

const nowIso = (): string => new Date().toISOString();
const newId = (prefix: string): string => `${prefix}-${randomBytes(6).toString('hex')}`;

export function deviceIdOf(deviceKey: string): string {
  return `d-${createHash('sha256').update(`device:${deviceKey}`).digest('hex').slice(0, 12)}`;
}

function keyHashOf(deviceKey: string): string {
  return createHash('sha256').update(`key:${deviceKey}`).digest('hex');
}

function json<T>(text: string | null): T | null {
  return text === null ? null : (JSON.parse(text) as T);
}

export class Fleet {
  readonly #db: Db;
  readonly #leaseItems: number;
  readonly #maxAttempts: number;
  readonly #slackMs: number;
  readonly #onChange: FleetOptions['onChange'];
  readonly #onJobFinished: FleetOptions['onJobFinished'];
  readonly #maxOpenJobs: number;
  readonly #maxJobItems: number;
  /** Jobs finished inside the current write, announced once it commits. */
  #justFinished: string[] = [];
  readonly #agents = new Map<string, AgentSession>();
  readonly #leases = new Map<string, Lease>();
  /** Every lease issued since start, for accepting late results: leaseId → device and items. */
  readonly #issued = new Map<string, { deviceId: string; jobId: string; items: ReadonlySet<number> }>();
  /** Devices whose agents must not take work (e.g. the local host while it trains). */
  readonly #paused = new Map<string, string>();
  readonly #tflite = new Map<string, Promise<string>>();
  #dispatching = false;
  /** The dispatch loop under way, awaited by `close()`. */
  #dispatchRun: Promise<void> | null = null;
  readonly #toDispatch = new Set<string>();
  /** `pointEnv` per "device runtime"; dropped when an agent of the device says hello. */
  readonly #envCache = new Map<string, string>();
  #closed = false;

  constructor(db: Db, options: FleetOptions = {}) {
    this.#db = db;
    this.#leaseItems = options.leaseItems ?? 8;
    this.#maxAttempts = options.maxItemAttempts ?? 3;
    this.#slackMs = options.leaseSlackMs ?? 30_000;
    this.#onChange = options.onChange;
    this.#onJobFinished = options.onJobFinished;
    this.#maxOpenJobs = options.maxOpenJobsPerDevice ?? MAX_OPEN_JOBS_PER_DEVICE;
    this.#maxJobItems = options.maxJobItems ?? MAX_JOB_ITEMS;
  }

  /** Puts items leased before a restart back in the queue. */
  async recover(): Promise<number> {
    const r = await this.#db.write((tx) => tx.run("UPDATE job_items SET state = 'pending', agent_id = NULL WHERE state = 'leased'"));
    return r.changes;
  }

  // ── devices and agents ──────────────────────────────────────────────────────────────────

  /** Records the device of a hello and the agent's session; returns the ids for the welcome. */
  async connect(hello: HelloMessage, link: AgentLink): Promise<AgentSession> {
    const deviceId = deviceIdOf(hello.deviceKey);
    const now = nowIso();
    await this.#db.write(async (tx) => {
      const existing = await tx.get<{ key_hash: string; runtimes_json: string }>('SELECT key_hash, runtimes_json FROM devices WHERE id = ?', [deviceId]);
      if (existing && existing.key_hash !== keyHashOf(hello.deviceKey)) {
        throw new MorphError('MORPH_ERR_INTERNAL', `device id collision for ${deviceId}`);
      }
      // Agents of one device may serve different runtimes: the device serves the union (newest info per runtime).
      const runtimes = new Map<string, unknown>((existing ? (JSON.parse(existing.runtimes_json) as { name: string }[]) : []).map((r) => [r.name, r]));
      for (const r of hello.runtimes) runtimes.set(r.name, r);
      await tx.run(
        `INSERT INTO devices (id, key_hash, name, platform, env_json, runtimes_json, agent_version, first_seen, last_seen)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET name = excluded.name, platform = excluded.platform, env_json = excluded.env_json,
           runtimes_json = excluded.runtimes_json, agent_version = excluded.agent_version, last_seen = excluded.last_seen`,
        [deviceId, keyHashOf(hello.deviceKey), hello.name, hello.env.platform, JSON.stringify(hello.env), JSON.stringify([...runtimes.values()]), hello.agentVersion, now, now],
      );
    });
    const session: AgentSession = {
      agentId: newId('a'),
      deviceId,
      name: hello.name,
      runtimes: new Set(hello.runtimes.map((r) => r.name)),
      connectedAt: now,
      link,
      lease: null,
      itemsDone: 0,
    };
    for (const key of this.#envCache.keys()) if (key.startsWith(`${deviceId} `)) this.#envCache.delete(key);
    this.#agents.set(session.agentId, session);
    this.#onChange?.({ kind: 'device', id: deviceId });
    this.dispatch(deviceId);
    return session;
  }

  /** The agent's connection closed: its lease goes back to the queue. */
  async disconnect(agentId: string): Promise<void> {
    const session = this.#agents.get(agentId);
    if (!session) return;
    this.#agents.delete(agentId);
    if (session.lease) await this.#release(session.lease, 'agent disconnected');
    await this.#db.write((tx) => tx.run('UPDATE devices SET last_seen = ? WHERE id = ?', [nowIso(), session.deviceId])).catch(() => undefined);
    this.#onChange?.({ kind: 'device', id: session.deviceId });
    this.dispatch(session.deviceId);
  }

  isOnline(deviceId: string): boolean {
    for (const a of this.#agents.values()) if (a.deviceId === deviceId) return true;
    return false;
  }

  /** Runtimes the device's connected agents serve (empty when offline). */
  onlineRuntimes(deviceId: string): Set<RuntimeName> {
    const out = new Set<RuntimeName>();
    for (const a of this.#agents.values()) if (a.deviceId === deviceId) for (const r of a.runtimes) out.add(r);
    return out;
  }

  /** Stops giving the device work (a lease in progress finishes) until `resume`. */
  pause(deviceId: string, reason: string): void {
    this.#paused.set(deviceId, reason);
  }

  resume(deviceId: string): void {
    this.#paused.delete(deviceId);
    this.dispatch(deviceId);
  }

  async devices(): Promise<DeviceView[]> {
    const rows = await this.#db.all<DeviceRow>('SELECT * FROM devices ORDER BY first_seen');
    return rows.map((r) => this.#deviceView(r));
  }

  async device(id: string): Promise<DeviceView | undefined> {
    const row = await this.#db.get<DeviceRow>('SELECT * FROM devices WHERE id = ?', [id]);
    return row ? this.#deviceView(row) : undefined;
  }

  /** The device and the runtimes it has reported (online or not). */
  async requireDevice(id: unknown, field = 'deviceId'): Promise<DeviceView> {
    if (typeof id !== 'string' || id.length === 0 || id.length > 64) {
      throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `${field} is required: the id of a device from GET /api/devices`, { field });
    }
    const d = await this.device(id);
    if (!d) throw new MorphError('MORPH_ERR_NOT_FOUND', `no device ${JSON.stringify(id)}; GET /api/devices lists the known devices (a device appears when its agent first connects)`, { field });
    return d;
  }

  #deviceView(r: DeviceRow): DeviceView {
    const agents = [...this.#agents.values()].filter((a) => a.deviceId === r.id);
    return {
      id: r.id,
      name: r.name,
      platform: r.platform,
      online: agents.length > 0,
      runtimes: JSON.parse(r.runtimes_json),
      env: JSON.parse(r.env_json),
      agentVersion: r.agent_version,
      firstSeen: r.first_seen,
      lastSeen: agents.length > 0 ? nowIso() : r.last_seen,
      agents: agents.map((a) => ({ id: a.agentId, name: a.name, connectedAt: a.connectedAt, busy: a.lease !== null, itemsDone: a.itemsDone })),
      busy: agents.some((a) => a.lease !== null),
    };
  }

  // ── jobs ────────────────────────────────────────────────────────────────────────────────

  /**
   * A job that measures every table point the model needs on the device and runtime (the grid of
   * `tableGrid` for each of its ops) that the table does not have yet. A job with nothing left to
   * measure is done at once.
   */
  async createProfileJob(req: ProfileRequest): Promise<JobView> {
    const have = new Set(
      (await this.#db.all<{ signature: string; c_in: number; c_out: number }>('SELECT signature, c_in, c_out FROM points WHERE device_id = ? AND runtime = ?', [req.deviceId, req.runtime])).map(
        (p) => `${p.signature}@${p.c_in}x${p.c_out}`,
      ),
    );
    const candidates = req.forSearch
      ? requiredPoints(req.model.graph, undefined, { ...req.grid, maxPerAxis: req.grid?.maxPerAxis ?? SEARCH_PROFILE_GRID }).map((p) => p.spec)
      : req.model.specs.specs.flatMap((entry) => tableGrid(entry, req.grid).map(({ cIn, cOut }) => withChannels(entry.spec, cIn, cOut)));
    const wanted = new Map<string, OpSpec>();
    for (const spec of candidates) {
      const key = `${signature(spec)}@${spec.cIn}x${spec.cOut}`;
      if (req.force || !have.has(key)) wanted.set(key, spec);
    }
    // A search's grid already holds every point it prices; refinement would add ones it never reads.
    const refine = req.refine ?? !(req.grid?.seedOnly || req.forSearch);
    const options = {
      grid: req.grid ?? {},
      forSearch: req.forSearch ?? false,
      ...(req.purpose ? { purpose: req.purpose } : {}),
      measure: { ...DEFAULT_JOB_MEASURE, ...req.measure },
      force: req.force ?? false,
      refine,
      ...((req.paired ?? true) ? { referenceOp: REFERENCE_OP } : {}),
    };
    return this.#createJob('profile', req.deviceId, req.runtime, req.model, options, [...wanted.values()].map((spec) => ({ kind: 'op' as const, spec })));
  }

  /**
   * A profile job for explicit ops (the refinement points of a finished profile job), on the
   * same device, runtime and model as `parent`.
   */
  async createRefinementJob(parent: JobView, specs: readonly OpSpec[]): Promise<JobView> {
    const model = await this.#db.get<{ id: string; name: string; topology_json: string }>('SELECT * FROM models WHERE id = ?', [parent.modelId]);
    if (!model) throw new MorphError('MORPH_ERR_NOT_FOUND', `the model of job ${parent.id} is gone`);
    const { measure, referenceOp } = parent.options as Partial<JobOptions>;
    const options = { measure: measure ?? DEFAULT_JOB_MEASURE, refinementOf: parent.id, ...(referenceOp ? { referenceOp } : {}) };
    const resolved = { id: model.id, name: model.name, modelConfig: JSON.parse(model.topology_json) } as ResolvedModel;
    return this.#createJob('profile', parent.deviceId, parent.runtime as RuntimeName, resolved, options, specs.map((spec) => ({ kind: 'op' as const, spec })));
  }

  /** The op specs a job measured, one per signature (a template to vary the channels of). */
  async jobSignatureSpecs(jobId: string): Promise<Map<string, OpSpec>> {
    const rows = await this.#db.all<{ signature: string; spec_json: string }>("SELECT signature, MIN(spec_json) AS spec_json FROM job_items WHERE job_id = ? AND kind = 'op' GROUP BY signature", [jobId]);
    return new Map(rows.map((r) => [r.signature, JSON.parse(r.spec_json) as OpSpec]));
  }

  /** A job that times the whole model end to end on the device and runtime. */
  async createMeasureJob(req: MeasureRequest): Promise<JobView> {
    const options: JobOptions = { measure: { ...DEFAULT_JOB_MEASURE, maxMs: 20_000, ...req.measure }, ...(req.reference ? { referenceModelId: req.reference.id } : {}) };
    return this.#createJob('measure', req.deviceId, req.runtime, req.model, options, [{ kind: 'network' as const }], req.reference);
  }

  async #createJob(
    kind: JobKind,
    deviceId: string,
    runtime: RuntimeName,
    model: ResolvedModel,
    options: JobOptions,
    items: ({ kind: 'op'; spec: OpSpec } | { kind: 'network' })[],
    reference?: ResolvedModel,
  ): Promise<JobView> {
    if (items.length > this.#maxJobItems) {
      throw new MorphError('MORPH_ERR_LIMIT', `this job would time ${items.length} op points, over the limit of ${this.#maxJobItems}; use a coarser grid (grid.maxPerAxis, grid.seedOnly) or a smaller model`, {
        limit: this.#maxJobItems,
        items: items.length,
      });
    }
    const id = newId('j');
    const now = nowIso();
    await this.#db.write(async (tx) => {
      const open = (await tx.get<{ n: number }>("SELECT COUNT(*) AS n FROM jobs WHERE device_id = ? AND state IN ('queued', 'running')", [deviceId]))?.n ?? 0;
      if (open >= this.#maxOpenJobs) {
        throw new MorphError('MORPH_ERR_QUOTA', `device ${deviceId} has ${open} queued or running jobs already (the limit); wait for some to finish or cancel some (DELETE /api/jobs/:id)`, { limit: this.#maxOpenJobs });
      }
      for (const m of reference ? [model, reference] : [model]) {
        await tx.run('INSERT OR IGNORE INTO models (id, name, topology_json, created_at) VALUES (?, ?, ?, ?)', [m.id, m.name, JSON.stringify(m.modelConfig), now]);
      }
      await tx.run('INSERT INTO jobs (id, kind, device_id, runtime, model_id, state, options_json, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)', [
        id,
        kind,
        deviceId,
        runtime,
        model.id,
        'queued',
        JSON.stringify(options),
        now,
        now,
      ]);
      // 100 rows per statement: one round trip per row held the write lock long enough to slow storing results.
      for (let start = 0; start < items.length; start += 100) {
        const chunk = items.slice(start, start + 100);
        const params = chunk.flatMap((item, k) => {
          const spec = item.kind === 'op' ? item.spec : null;
          return [id, start + k, item.kind, spec ? JSON.stringify(spec) : null, spec ? signature(spec) : null, spec?.cIn ?? null, spec?.cOut ?? null, 'pending'];
        });
        await tx.run(`INSERT INTO job_items (job_id, idx, kind, spec_json, signature, c_in, c_out, state) VALUES ${chunk.map(() => '(?, ?, ?, ?, ?, ?, ?, ?)').join(', ')}`, params);
      }
      if (items.length === 0) await this.#finishJob(tx, id);
    });
    this.#announceFinished();
    this.#onChange?.({ kind: 'job', id });
    this.dispatch(deviceId);
    return (await this.job(id)) as JobView;
  }

  async job(id: string): Promise<JobView | undefined> {
    const row = await this.#db.get<JobRow>('SELECT * FROM jobs WHERE id = ?', [id]);
    return row ? this.#jobView(row) : undefined;
  }

  async jobs(filter: { deviceId?: string; state?: JobState; limit?: number } = {}): Promise<JobView[]> {
    const where: string[] = [];
    const params: (string | number)[] = [];
    if (filter.deviceId) {
      where.push('device_id = ?');
      params.push(filter.deviceId);
    }
    if (filter.state) {
      where.push('state = ?');
      params.push(filter.state);
    }
    const rows = await this.#db.all<JobRow>(`SELECT * FROM jobs ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY created_at DESC LIMIT ?`, [...params, filter.limit ?? 100]);
    return Promise.all(rows.map((r) => this.#jobView(r)));
  }

  async #jobView(row: JobRow): Promise<JobView> {
    const counts = await this.#db.all<{ state: string; n: number }>('SELECT state, COUNT(*) AS n FROM job_items WHERE job_id = ? GROUP BY state', [row.id]);
    const c = (s: string): number => counts.find((x) => x.state === s)?.n ?? 0;
    const model = await this.#db.get<{ name: string }>('SELECT name FROM models WHERE id = ?', [row.model_id]);
    let waiting: string | null = null;
    if (row.state === 'queued' || row.state === 'running') {
      const runtimes = this.onlineRuntimes(row.device_id);
      if (runtimes.size === 0) waiting = 'the device is offline; the job runs when one of its agents connects';
      else if (!runtimes.has(row.runtime)) waiting = `no connected agent of the device serves runtime ${row.runtime}`;
      else if (this.#paused.has(row.device_id)) waiting = `the device is paused: ${this.#paused.get(row.device_id)}`;
    }
    return {
      id: row.id,
      kind: row.kind,
      state: row.state,
      deviceId: row.device_id,
      runtime: row.runtime,
      modelId: row.model_id,
      modelName: model?.name ?? row.model_id,
      progress: { total: counts.reduce((s, x) => s + x.n, 0), done: c('done'), failed: c('failed'), leased: c('leased'), pending: c('pending') },
      waiting,
      result: json(row.result_json),
      error: json(row.error_json),
      options: JSON.parse(row.options_json),
      createdAt: row.created_at,
      updatedAt: row.updated_at,
      finishedAt: row.finished_at,
    };
  }

  /** Cancels a queued or running job; its leases are withdrawn. */
  async cancelJob(id: string): Promise<JobView | undefined> {
    const changed = await this.#db.write(async (tx) => {
      const r = await tx.run("UPDATE jobs SET state = 'cancelled', updated_at = ?, finished_at = ? WHERE id = ? AND state IN ('queued', 'running')", [nowIso(), nowIso(), id]);
      if (r.changes > 0) await tx.run("UPDATE job_items SET state = 'pending', agent_id = NULL WHERE job_id = ? AND state = 'leased'", [id]);
      return r.changes > 0;
    });
    if (changed) {
      for (const lease of [...this.#leases.values()]) {
        if (lease.jobId !== id) continue;
        this.#dropLease(lease);
        lease.agent.link.send({ v: PROTOCOL_VERSION, type: 'cancel', leaseId: lease.id, reason: 'the job was cancelled' });
      }
      this.#onChange?.({ kind: 'job', id });
      this.dispatch();
    }
    return this.job(id);
  }

  // ── leasing ─────────────────────────────────────────────────────────────────────────────

  /**
   * Gives idle devices work: the one named, or every device with an agent. Safe to call any time;
   * calls coalesce into one loop that serves the devices waiting, each checked for being busy
   * when its turn comes (not when the loop began), so a device freed meanwhile is not skipped.
   */
  dispatch(deviceId?: string): void {
    if (this.#closed) return;
    if (deviceId !== undefined) this.#toDispatch.add(deviceId);
    else for (const a of this.#agents.values()) this.#toDispatch.add(a.deviceId);
    if (this.#dispatching) return;
    this.#dispatching = true;
    this.#dispatchRun = (async () => {
      try {
        while (this.#toDispatch.size > 0 && !this.#closed) {
          const next = this.#toDispatch.values().next().value as string;
          this.#toDispatch.delete(next);
          await this.#dispatchDevice(next);
        }
      } catch (err) {
        if (!this.#closed) console.error(`morphnet serve: dispatch failed: ${err instanceof Error ? err.stack : String(err)}`);
      } finally {
        this.#dispatching = false;
        // A call that came in while the last device was being served.
        if (this.#toDispatch.size > 0 && !this.#closed) this.dispatch([...this.#toDispatch][0]);
      }
    })();
  }

  #deviceBusy(deviceId: string): boolean {
    for (const l of this.#leases.values()) if (l.deviceId === deviceId) return true;
    return false;
  }

  async #dispatchDevice(deviceId: string): Promise<void> {
    if (this.#paused.has(deviceId) || this.#deviceBusy(deviceId)) return;
    const agents = [...this.#agents.values()].filter((a) => a.deviceId === deviceId);
    if (agents.length === 0) return;
    const jobs = await this.#db.all<JobRow>("SELECT * FROM jobs WHERE device_id = ? AND state IN ('queued', 'running') ORDER BY created_at", [deviceId]);
    for (const job of jobs) {
      if (this.#deviceBusy(deviceId)) return;
      const agent = agents.find((a) => a.runtimes.has(job.runtime) && this.#agents.has(a.agentId) && a.lease === null);
      if (!agent) continue;
      if (await this.#lease(job, agent)) return;
    }
  }

  async #lease(job: JobRow, agent: AgentSession): Promise<boolean> {
    const leaseId = newId('l');
    const rows = await this.#db.write(async (tx) => {
      const items = await tx.all<ItemRow>("SELECT * FROM job_items WHERE job_id = ? AND state = 'pending' ORDER BY idx LIMIT ?", [job.id, this.#leaseItems]);
      if (items.length === 0) return items;
      for (const it of items) await tx.run("UPDATE job_items SET state = 'leased', agent_id = ? WHERE id = ?", [agent.agentId, it.id]);
      await tx.run("UPDATE jobs SET state = 'running', updated_at = ? WHERE id = ? AND state = 'queued'", [nowIso(), job.id]);
      return items;
    });
    if (rows.length === 0) return false;
    if (this.#agents.get(agent.agentId) !== agent) {
      // The agent went while the items were being marked: its disconnect saw no lease to release,
      // so put them back here, or they would stay leased (and the device busy) until expiry.
      await this.#requeue(rows.map((r) => r.id));
      return false;
    }
    const options = JSON.parse(job.options_json) as JobOptions;
    const perItemMs = (options.measure.maxMs ?? 5000) * 1.5 + 2000;
    const lease: Lease = { id: leaseId, jobId: job.id, deviceId: agent.deviceId, agent, items: new Set(rows.map((r) => r.id)), perItemMs, timer: null };
    agent.lease = lease;
    this.#leases.set(leaseId, lease);
    this.#issued.set(leaseId, { deviceId: agent.deviceId, jobId: job.id, items: new Set(lease.items) });
    try {
      const items = await Promise.all(rows.map((r) => this.#workItem(r, job)));
      if (agent.lease !== lease) return true; // dropped while the payload was built
      this.#armLease(lease);
      agent.link.send({ v: PROTOCOL_VERSION, type: 'work', leaseId, jobId: job.id, runtime: job.runtime, leaseMs: this.#leaseDeadline(lease), measure: options.measure, items });
    } catch (err) {
      // The payload could not be built (e.g. the model cannot be written as .tflite): fail the items.
      const message = err instanceof Error ? err.message : String(err);
      const code = err instanceof MorphError ? err.code : 'MORPH_ERR_INTERNAL';
      this.#dropLease(lease);
      await this.#db.write(async (tx) => {
        for (const r of rows) await tx.run("UPDATE job_items SET state = 'failed', error_json = ? WHERE id = ?", [JSON.stringify({ code, message }), r.id]);
        await this.#finishIfComplete(tx, job.id);
      });
      this.#announceFinished();
      this.#onChange?.({ kind: 'job', id: job.id });
    }
    this.#onChange?.({ kind: 'device', id: agent.deviceId });
    return true;
  }

  async #workItem(row: ItemRow, job: JobRow): Promise<WorkItem> {
    const { referenceModelId, referenceOp } = JSON.parse(job.options_json) as JobOptions;
    if (row.kind === 'op') return { itemId: row.id, kind: 'op', spec: JSON.parse(row.spec_json as string) as OpSpec, ...(referenceOp ? { reference: referenceOp } : {}) };
    const reference = referenceModelId === undefined ? undefined : await this.#networkPayload(referenceModelId, job.runtime);
    return { itemId: row.id, kind: 'network', ...(await this.#networkPayload(job.model_id, job.runtime)), ...(reference ? { reference } : {}) };
  }

  /** A stored model as an agent of `runtime` times it. */
  async #networkPayload(modelId: string, runtime: RuntimeName): Promise<NetworkPayload> {
    const model = await this.#db.get<{ name: string; topology_json: string }>('SELECT name, topology_json FROM models WHERE id = ?', [modelId]);
    if (!model) throw new MorphError('MORPH_ERR_NOT_FOUND', `model ${modelId} is no longer stored`);
    const resolved = resolveModel(JSON.parse(model.topology_json));
    if (runtime !== 'tflite') {
      // The network as it runs at inference (batch norms folded, activations fused): the ops the table holds.
      const { modelConfig } = inferenceTopology(resolved.graph, resolved.modelConfig);
      return { name: model.name, modelTopology: modelConfig as unknown as Record<string, unknown> };
    }
    let bytes = this.#tflite.get(modelId);
    if (!bytes) {
      bytes = networkTflite(resolved).then((b) => Buffer.from(b).toString('base64'));
      this.#tflite.set(modelId, bytes);
      bytes.catch(() => this.#tflite.delete(modelId));
      if (this.#tflite.size > 16) this.#tflite.delete(this.#tflite.keys().next().value as string);
    }
    return { name: model.name, tfliteBase64: await bytes };
  }

  #leaseDeadline(lease: Lease): number {
    return lease.items.size * lease.perItemMs + this.#slackMs;
  }

  /** (Re)starts the lease's expiry timer from now, for the items it still has. */
  #armLease(lease: Lease): void {
    if (lease.timer) clearTimeout(lease.timer);
    lease.timer = setTimeout(() => {
      if (this.#leases.get(lease.id) !== lease) return;
      lease.agent.link.send({ v: PROTOCOL_VERSION, type: 'cancel', leaseId: lease.id, reason: 'the lease expired without results; its items were put back in the queue' });
      void this.#release(lease, 'lease expired').then(() => this.dispatch(lease.deviceId));
    }, this.#leaseDeadline(lease));
    lease.timer.unref?.();
  }

  #dropLease(lease: Lease): void {
    if (lease.timer) clearTimeout(lease.timer);
    lease.timer = null;
    this.#leases.delete(lease.id);
    if (lease.agent.lease === lease) lease.agent.lease = null;
  }

  /** Puts the lease's unfinished items back in the queue. */
  async #release(lease: Lease, _why: string): Promise<void> {
    this.#dropLease(lease);
    const ids = [...lease.items];
    if (ids.length === 0 || this.#closed) return;
    await this.#requeue(ids);
    this.#onChange?.({ kind: 'job', id: lease.jobId });
  }

  /** Puts leased items back in the queue (those still leased: a result may have come in). */
  async #requeue(ids: readonly number[]): Promise<void> {
    await this.#db.write(async (tx) => {
      for (const id of ids) await tx.run("UPDATE job_items SET state = 'pending', agent_id = NULL WHERE id = ? AND state = 'leased'", [id]);
    });
  }

  // ── results ─────────────────────────────────────────────────────────────────────────────

  #checkIssued(session: AgentSession, leaseId: string, itemId: number): ErrorMessage | undefined {
    const issued = this.#issued.get(leaseId);
    if (!issued || issued.deviceId !== session.deviceId || !issued.items.has(itemId)) {
      return {
        v: PROTOCOL_VERSION,
        type: 'error',
        code: 'MORPH_ERR_UNKNOWN_ITEM',
        message: `item ${itemId} of lease ${leaseId} was not leased to this device; nothing stored`,
        ref: { leaseId, itemId },
      };
    }
    return undefined;
  }

  /** Stores one result (once) and answers the agent with an ack or an error. */
  async result(agentId: string, msg: ResultMessage): Promise<AckMessage | ErrorMessage> {
    const session = this.#agents.get(agentId);
    if (!session) return { v: PROTOCOL_VERSION, type: 'error', code: 'MORPH_ERR_UNKNOWN_ITEM', message: 'this agent is not registered' };
    const refused = this.#checkIssued(session, msg.leaseId, msg.itemId);
    if (refused) return refused;
    const m = msg.measurement;
    const outcome = await this.#db.write(async (tx) => {
      const item = await tx.get<ItemRow & { signature: string | null; c_in: number | null; c_out: number | null }>('SELECT * FROM job_items WHERE id = ?', [msg.itemId]);
      if (!item) return { status: 'unknown' as const };
      const job = (await tx.get<JobRow>('SELECT * FROM jobs WHERE id = ?', [item.job_id])) as JobRow;
      if (job.state === 'cancelled') return { status: 'cancelled' as const, jobId: job.id };
      if (item.state === 'done') return { status: 'duplicate' as const, jobId: job.id };
      const now = nowIso();
      await tx.run("UPDATE job_items SET state = 'done', agent_id = ?, result_json = ?, error_json = NULL, done_at = ? WHERE id = ?", [agentId, JSON.stringify(m), now, item.id]);
      if (item.kind === 'op') {
        const env = await this.#pointEnv(tx, job.device_id, job.runtime);
        await tx.run(
          `INSERT INTO points (device_id, runtime, signature, c_in, c_out, median_ms, p10_ms, p90_ms, n, cv, stable, spec_json, env_json, job_id, item_id, measured_at, ref_ratio, ref_ms)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (device_id, runtime, signature, c_in, c_out) DO UPDATE SET median_ms = excluded.median_ms, p10_ms = excluded.p10_ms,
             p90_ms = excluded.p90_ms, n = excluded.n, cv = excluded.cv, stable = excluded.stable, spec_json = excluded.spec_json,
             env_json = excluded.env_json, job_id = excluded.job_id, item_id = excluded.item_id, measured_at = excluded.measured_at,
             ref_ratio = excluded.ref_ratio, ref_ms = excluded.ref_ms`,
          [job.device_id, job.runtime, item.signature, item.c_in, item.c_out, m.medianMs, m.p10Ms, m.p90Ms, m.n, m.cv, m.stable ? 1 : 0, item.spec_json, env, job.id, item.id, now, m.reference?.ratio ?? null, m.reference?.medianMs ?? null],
        );
      } else {
        await tx.run('INSERT INTO networks (device_id, runtime, model_id, job_id, median_ms, p10_ms, p90_ms, n, measured_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)', [
          job.device_id,
          job.runtime,
          job.model_id,
          job.id,
          m.medianMs,
          m.p10Ms,
          m.p90Ms,
          m.n,
          now,
        ]);
      }
      await tx.run('UPDATE jobs SET updated_at = ? WHERE id = ?', [now, job.id]);
      await this.#finishIfComplete(tx, job.id);
      return { status: 'stored' as const, jobId: job.id };
    });
    this.#announceFinished();
    if (outcome.status === 'unknown') {
      return { v: PROTOCOL_VERSION, type: 'error', code: 'MORPH_ERR_UNKNOWN_ITEM', message: `item ${msg.itemId} does not exist; nothing stored`, ref: { leaseId: msg.leaseId, itemId: msg.itemId } };
    }
    if (outcome.status === 'cancelled') {
      this.#settleItem(session, msg.leaseId, msg.itemId, false);
      return { v: PROTOCOL_VERSION, type: 'error', code: 'MORPH_ERR_UNKNOWN_ITEM', message: `job ${outcome.jobId} was cancelled; the result was not stored`, ref: { leaseId: msg.leaseId, itemId: msg.itemId } };
    }
    this.#settleItem(session, msg.leaseId, msg.itemId, outcome.status === 'stored');
    if (outcome.status === 'stored') this.#settleElsewhere(msg.leaseId, msg.itemId);
    this.#onChange?.({ kind: 'job', id: outcome.jobId });
    return { v: PROTOCOL_VERSION, type: 'ack', leaseId: msg.leaseId, itemId: msg.itemId, status: outcome.status };
  }

  /** Records that the agent could not run an item: it is retried (elsewhere) or given up. */
  async itemFailed(agentId: string, msg: ItemFailedMessage): Promise<AckMessage | ErrorMessage> {
    const session = this.#agents.get(agentId);
    if (!session) return { v: PROTOCOL_VERSION, type: 'error', code: 'MORPH_ERR_UNKNOWN_ITEM', message: 'this agent is not registered' };
    const refused = this.#checkIssued(session, msg.leaseId, msg.itemId);
    if (refused) return refused;
    const jobId = await this.#db.write(async (tx) => {
      const item = (await tx.get<ItemRow & { agent_id: string | null }>('SELECT * FROM job_items WHERE id = ?', [msg.itemId])) as ItemRow & { agent_id: string | null };
      // Only a failure of the item's current lease counts: a replay, or a report on an old lease
      // while another agent holds the item, changes nothing.
      if (item.state !== 'leased' || item.agent_id !== agentId) return item.job_id;
      const attempts = item.attempts + 1;
      const state = attempts >= this.#maxAttempts ? 'failed' : 'pending';
      await tx.run('UPDATE job_items SET state = ?, attempts = ?, agent_id = NULL, error_json = ? WHERE id = ?', [state, attempts, JSON.stringify({ ...msg.error, agentId, attempts }), item.id]);
      await this.#finishIfComplete(tx, item.job_id);
      return item.job_id;
    });
    this.#announceFinished();
    this.#settleItem(session, msg.leaseId, msg.itemId, false);
    this.#onChange?.({ kind: 'job', id: jobId });
    return { v: PROTOCOL_VERSION, type: 'ack', leaseId: msg.leaseId, itemId: msg.itemId, status: 'failed-noted' };
  }

  /** Takes the item out of its live lease; an emptied lease frees the device. */
  #settleItem(session: AgentSession, leaseId: string, itemId: number, counted: boolean): void {
    if (counted) session.itemsDone++;
    const lease = this.#leases.get(leaseId);
    if (!lease || !lease.items.delete(itemId)) return;
    if (lease.items.size === 0) {
      this.#dropLease(lease);
      this.#onChange?.({ kind: 'device', id: lease.deviceId });
      this.dispatch(lease.deviceId);
    } else {
      this.#armLease(lease);
    }
  }

  /** The environment stored with each point (device, runtime version, agent), cached per device and runtime. */
  async #pointEnv(tx: Tx, deviceId: string, runtime: string): Promise<string> {
    const key = `${deviceId} ${runtime}`;
    const cached = this.#envCache.get(key);
    if (cached !== undefined) return cached;
    const device = (await tx.get<{ env_json: string; runtimes_json: string; agent_version: string }>('SELECT env_json, runtimes_json, agent_version FROM devices WHERE id = ?', [deviceId])) as {
      env_json: string;
      runtimes_json: string;
      agent_version: string;
    };
    const runtimeInfo = (JSON.parse(device.runtimes_json) as { name: string }[]).find((r) => r.name === runtime) ?? null;
    const env = JSON.stringify({ env: JSON.parse(device.env_json), runtime: runtimeInfo, agentVersion: device.agent_version });
    this.#envCache.set(key, env);
    return env;
  }

  /** Announces the jobs the last committed write finished. */
  #announceFinished(): void {
    const done = this.#justFinished;
    this.#justFinished = [];
    for (const id of done) this.#onJobFinished?.(id);
  }

  /** A late result of a re-leased item: the item's newer lease no longer waits for it. */
  #settleElsewhere(leaseId: string, itemId: number): void {
    for (const lease of [...this.#leases.values()]) {
      if (lease.id === leaseId || !lease.items.has(itemId)) continue;
      this.#settleItem(lease.agent, lease.id, itemId, false);
    }
  }

  async #finishIfComplete(tx: Tx, jobId: string): Promise<void> {
    const open = await tx.get<{ n: number }>("SELECT COUNT(*) AS n FROM job_items WHERE job_id = ? AND state IN ('pending', 'leased')", [jobId]);
    if ((open?.n ?? 0) === 0) await this.#finishJob(tx, jobId);
  }

  async #finishJob(tx: Tx, jobId: string): Promise<void> {
    const job = (await tx.get<JobRow>('SELECT * FROM jobs WHERE id = ?', [jobId])) as JobRow;
    if (job.state === 'done' || job.state === 'failed' || job.state === 'cancelled') return;
    const items = await tx.all<{ state: string; kind: string; result_json: string | null; error_json: string | null; idx: number; signature: string | null; c_in: number | null; c_out: number | null }>(
      'SELECT state, kind, result_json, error_json, idx, signature, c_in, c_out FROM job_items WHERE job_id = ? ORDER BY idx',
      [jobId],
    );
    const failed = items.filter((i) => i.state === 'failed');
    const now = nowIso();
    let result: unknown;
    if (job.kind === 'measure') {
      const m = items[0]?.result_json ? (JSON.parse(items[0].result_json) as WireMeasurement) : null;
      result = m ? ({ medianMs: m.medianMs, p10Ms: m.p10Ms, p90Ms: m.p90Ms, n: m.n, cv: m.cv, stable: m.stable, ...(m.reference ? { reference: m.reference } : {}) } satisfies MeasureResult) : null;
    } else {
      // Time inside timed runs (samples), time measuring (with warm-up) and the job's wall time.
      let sampledMs = 0;
      let measuringMs = 0;
      for (const i of items) {
        if (!i.result_json) continue;
        const m = JSON.parse(i.result_json) as { n: number; runsPerSample: number; meanMs: number; totalMs: number };
        sampledMs += m.n * m.runsPerSample * m.meanMs;
        measuringMs += m.totalMs;
      }
      const wallMs = Date.parse(now) - Date.parse(job.created_at);
      result = { measured: items.length - failed.length, failed: failed.length, signatures: new Set(items.map((i) => i.signature)).size, sampledMs, measuringMs, wallMs };
    }
    const error =
      failed.length > 0
        ? {
            code: 'MORPH_ERR_JOB_FAILED',
            message: `${failed.length} of ${items.length} item(s) could not be run on the device`,
            items: failed.slice(0, 20).map((i) => ({ idx: i.idx, signature: i.signature, cIn: i.c_in, cOut: i.c_out, error: json(i.error_json) })),
          }
        : null;
    this.#justFinished.push(jobId);
    // Leases of a finished job can no longer deliver anything: forget them.
    for (const [leaseId, issued] of this.#issued) if (issued.jobId === jobId && !this.#leases.has(leaseId)) this.#issued.delete(leaseId);
    await tx.run('UPDATE jobs SET state = ?, result_json = ?, error_json = ?, updated_at = ?, finished_at = ? WHERE id = ?', [
      failed.length > 0 ? 'failed' : 'done',
      JSON.stringify(result),
      error ? JSON.stringify(error) : null,
      now,
      now,
      jobId,
    ]);
  }

  /** Stops leasing and puts every live lease's items back (graceful shutdown). */
  async close(): Promise<void> {
    // Closed first, and the dispatch under way awaited: one that was writing a lease while the
    // leases were collected would leave its items leased in the database.
    this.#closed = true;
    await this.#dispatchRun;
    const leases = [...this.#leases.values()];
    for (const l of leases) this.#dropLease(l);
    await this.#db.write(async (tx) => {
      for (const l of leases) for (const id of l.items) await tx.run("UPDATE job_items SET state = 'pending', agent_id = NULL WHERE id = ? AND state = 'leased'", [id]);
    });
    this.#agents.clear();
  }
}
