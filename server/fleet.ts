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
 *
 * The fleet keeps the agents' sessions, leasing, dispatch and storing results; what a job holds and
 * comes to is server/jobs.ts, the leases' bookkeeping server/leases.ts, what an agent is sent
 * server/work-payloads.ts, and every statement server/store/.
 */
import { createHash, randomBytes } from 'node:crypto';
import { MorphError } from '../src/errors.ts';
import type { OpSpec } from '../src/ops/op-spec.ts';
import {
  PROTOCOL_VERSION,
  type AckMessage,
  type ErrorMessage,
  type HelloMessage,
  type ItemFailedMessage,
  type ResultMessage,
  type RuntimeName,
  type ServerMessage,
} from '../src/protocol/agent-protocol.ts';
import type { DeviceView, JobKind, JobState, JobView, MeasureJobView, ProfileJobView } from './contract/devices.ts';
import type { Db, Tx } from './db.ts';
import { jobOutcome, jobView, measureJobPlan, pointKey, profileJobPlan, refinementJobPlan, type JobPlan, type MeasureRequest, type ProfileRequest } from './jobs.ts';
import { Leases, type Lease } from './leases.ts';
import { Lifecycle, type LifecycleState } from './lifecycle.ts';
import type { ResolvedModel } from './models.ts';
import { findDevice, listDevices, touchDevice, upsertDevice, type DeviceRecord } from './store/devices.ts';
import {
  cancelJobRow,
  completeItem,
  countOpenItems,
  countOpenJobs,
  failItems,
  findItem,
  findJob,
  finishJobRow,
  insertJob,
  insertJobItems,
  itemCounts,
  leaseItems,
  listItems,
  listJobs,
  openJobs,
  recordItemFailure,
  requeueAllLeased,
  requeueItems,
  signatureSpecs,
  touchJob,
  type ItemRecord,
  type JobRecord,
} from './store/jobs.ts';
import { findModel, insertModel, modelName } from './store/models.ts';
import { insertNetwork } from './store/networks.ts';
import { pointKeys, upsertPoint, type PointEnv } from './store/points.ts';
import { WorkPayloads } from './work-payloads.ts';

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


const nowIso = (): string => new Date().toISOString();
const newId = (prefix: string): string => `${prefix}-${randomBytes(6).toString('hex')}`;

export function deviceIdOf(deviceKey: string): string {
  return `d-${createHash('sha256').update(`device:${deviceKey}`).digest('hex').slice(0, 12)}`;
}

function keyHashOf(deviceKey: string): string {
  return createHash('sha256').update(`key:${deviceKey}`).digest('hex');
}

export class Fleet {
  readonly #db: Db;
  readonly #leaseItems: number;
  readonly #maxAttempts: number;
  readonly #onChange: FleetOptions['onChange'];
  readonly #onJobFinished: FleetOptions['onJobFinished'];
  readonly #maxOpenJobs: number;
  readonly #maxJobItems: number;
  /** Jobs finished inside the current write, announced once it commits. */
  #justFinished: string[] = [];
  readonly #agents = new Map<string, AgentSession>();
  readonly #leases: Leases;
  /** Devices whose agents must not take work (e.g. the local host while it trains). */
  readonly #paused = new Map<string, string>();
  readonly #payloads: WorkPayloads;
  #dispatching = false;
  /** The dispatch loop under way, awaited by `close()`. */
  #dispatchRun: Promise<void> | null = null;
  readonly #toDispatch = new Set<string>();
  /** `pointEnv` per "device runtime"; dropped when an agent of the device says hello. */
  readonly #envCache = new Map<string, PointEnv>();
  readonly #life = new Lifecycle();

  constructor(db: Db, options: FleetOptions = {}) {
    this.#db = db;
    this.#leaseItems = options.leaseItems ?? 8;
    this.#maxAttempts = options.maxItemAttempts ?? 3;
    this.#leases = new Leases({ slackMs: options.leaseSlackMs ?? 30_000, onExpired: (lease) => this.#expired(lease) });
    this.#payloads = new WorkPayloads(db);
    this.#onChange = options.onChange;
    this.#onJobFinished = options.onJobFinished;
    this.#maxOpenJobs = options.maxOpenJobsPerDevice ?? MAX_OPEN_JOBS_PER_DEVICE;
    this.#maxJobItems = options.maxJobItems ?? MAX_JOB_ITEMS;
  }

  /** Puts items leased before a restart back in the queue. */
  async recover(): Promise<number> {
    return this.#db.write((tx) => requeueAllLeased(tx));
  }

  // ── devices and agents ──────────────────────────────────────────────────────────────────

  /** Records the device of a hello and the agent's session; returns the ids for the welcome. */
  async connect(hello: HelloMessage, link: AgentLink): Promise<AgentSession> {
    const deviceId = deviceIdOf(hello.deviceKey);
    const now = nowIso();
    const keyHash = keyHashOf(hello.deviceKey);
    await this.#db.write(async (tx) => {
      const existing = await findDevice(tx, deviceId);
      if (existing && existing.keyHash !== keyHash) {
        throw new MorphError('MORPH_ERR_INTERNAL', `device id collision for ${deviceId}`);
      }
      // Agents of one device may serve different runtimes: the device serves the union (newest info per runtime).
      const runtimes = new Map((existing?.runtimes ?? []).map((r) => [r.name, r]));
      for (const r of hello.runtimes) runtimes.set(r.name, r);
      await upsertDevice(tx, {
        id: deviceId,
        keyHash,
        name: hello.name,
        platform: hello.env.platform,
        env: hello.env,
        runtimes: [...runtimes.values()],
        agentVersion: hello.agentVersion,
        firstSeen: now,
        lastSeen: now,
      });
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
    await this.#db.write((tx) => touchDevice(tx, session.deviceId, nowIso())).catch(() => undefined);
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
    return (await listDevices(this.#db)).map((r) => this.#deviceView(r));
  }

  async device(id: string): Promise<DeviceView | undefined> {
    const row = await findDevice(this.#db, id);
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

  #deviceView(r: DeviceRecord): DeviceView {
    const agents = [...this.#agents.values()].filter((a) => a.deviceId === r.id);
    return {
      id: r.id,
      name: r.name,
      platform: r.platform,
      online: agents.length > 0,
      runtimes: r.runtimes,
      env: r.env,
      agentVersion: r.agentVersion,
      firstSeen: r.firstSeen,
      lastSeen: agents.length > 0 ? nowIso() : r.lastSeen,
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
  async createProfileJob(req: ProfileRequest): Promise<ProfileJobView> {
    const have = new Set((await pointKeys(this.#db, req.deviceId, req.runtime)).map((p) => pointKey(p.signature, p.cIn, p.cOut)));
    return (await this.#createJob('profile', req.deviceId, req.runtime, req.model, profileJobPlan(req, have))) as ProfileJobView;
  }

  /**
   * A profile job for explicit ops (the refinement points of a finished profile job), on the
   * same device, runtime and model as `parent`.
   */
  async createRefinementJob(parent: JobView, specs: readonly OpSpec[]): Promise<ProfileJobView> {
    const model = await findModel(this.#db, parent.modelId);
    if (!model) throw new MorphError('MORPH_ERR_NOT_FOUND', `the model of job ${parent.id} is gone`);
    const resolved = { id: model.id, name: model.name, modelConfig: model.topology } as ResolvedModel;
    return (await this.#createJob('profile', parent.deviceId, parent.runtime, resolved, refinementJobPlan(parent, specs))) as ProfileJobView;
  }

  /** The op specs a job measured, one per signature (a template to vary the channels of). */
  async jobSignatureSpecs(jobId: string): Promise<Map<string, OpSpec>> {
    return signatureSpecs(this.#db, jobId);
  }

  /** A job that times the whole model end to end on the device and runtime. */
  async createMeasureJob(req: MeasureRequest): Promise<MeasureJobView> {
    return (await this.#createJob('measure', req.deviceId, req.runtime, req.model, measureJobPlan(req), req.reference)) as MeasureJobView;
  }

  async #createJob(kind: JobKind, deviceId: string, runtime: RuntimeName, model: ResolvedModel, { options, items }: JobPlan, reference?: ResolvedModel): Promise<JobView> {
    if (items.length > this.#maxJobItems) {
      throw new MorphError('MORPH_ERR_LIMIT', `this job would time ${items.length} op points, over the limit of ${this.#maxJobItems}; use a coarser grid (grid.maxPerAxis, grid.seedOnly) or a smaller model`, {
        limit: this.#maxJobItems,
        items: items.length,
      });
    }
    const id = newId('j');
    const now = nowIso();
    await this.#db.write(async (tx) => {
      const open = await countOpenJobs(tx, deviceId);
      if (open >= this.#maxOpenJobs) {
        throw new MorphError('MORPH_ERR_QUOTA', `device ${deviceId} has ${open} queued or running jobs already (the limit); wait for some to finish or cancel some (DELETE /api/jobs/:id)`, { limit: this.#maxOpenJobs });
      }
      for (const m of reference ? [model, reference] : [model]) await insertModel(tx, { id: m.id, name: m.name, topology: m.modelConfig, createdAt: now });
      await insertJob(tx, { id, kind, deviceId, runtime, modelId: model.id, options, createdAt: now });
      await insertJobItems(tx, id, items);
      if (items.length === 0) await this.#finishJob(tx, id);
    });
    this.#announceFinished();
    this.#onChange?.({ kind: 'job', id });
    this.dispatch(deviceId);
    return (await this.job(id)) as JobView;
  }

  async job(id: string): Promise<JobView | undefined> {
    const row = await findJob(this.#db, id);
    return row ? this.#jobView(row) : undefined;
  }

  async jobs(filter: { deviceId?: string; state?: JobState; limit?: number } = {}): Promise<JobView[]> {
    return Promise.all((await listJobs(this.#db, filter)).map((r) => this.#jobView(r)));
  }

  async #jobView(row: JobRecord): Promise<JobView> {
    const name = await modelName(this.#db, row.modelId);
    let waiting: string | null = null;
    if (row.state === 'queued' || row.state === 'running') {
      const runtimes = this.onlineRuntimes(row.deviceId);
      if (runtimes.size === 0) waiting = 'the device is offline; the job runs when one of its agents connects';
      else if (!runtimes.has(row.runtime)) waiting = `no connected agent of the device serves runtime ${row.runtime}`;
      else if (this.#paused.has(row.deviceId)) waiting = `the device is paused: ${this.#paused.get(row.deviceId)}`;
    }
    return jobView(row, await itemCounts(this.#db, row.id), name ?? row.modelId, waiting);
  }

  /** Cancels a queued or running job; its leases are withdrawn. */
  async cancelJob(id: string): Promise<JobView | undefined> {
    const changed = await this.#db.write((tx) => cancelJobRow(tx, id, nowIso()));
    if (changed) {
      for (const lease of this.#leases.ofJob(id)) {
        this.#leases.drop(lease);
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
    if (!this.#life.running) return;
    if (deviceId !== undefined) this.#toDispatch.add(deviceId);
    else for (const a of this.#agents.values()) this.#toDispatch.add(a.deviceId);
    if (this.#dispatching) return;
    this.#dispatching = true;
    this.#dispatchRun = (async () => {
      try {
        while (this.#toDispatch.size > 0 && this.#life.running) {
          const next = this.#toDispatch.values().next().value as string;
          this.#toDispatch.delete(next);
          await this.#dispatchDevice(next);
        }
      } catch (err) {
        if (this.#life.running) console.error(`morphnet serve: dispatch failed: ${err instanceof Error ? err.stack : String(err)}`);
      } finally {
        this.#dispatching = false;
        // A call that came in while the last device was being served.
        if (this.#toDispatch.size > 0 && this.#life.running) this.dispatch([...this.#toDispatch][0]);
      }
    })();
  }

  async #dispatchDevice(deviceId: string): Promise<void> {
    if (this.#paused.has(deviceId) || this.#leases.busy(deviceId)) return;
    const agents = [...this.#agents.values()].filter((a) => a.deviceId === deviceId);
    if (agents.length === 0) return;
    const jobs = await openJobs(this.#db, deviceId);
    for (const job of jobs) {
      if (this.#leases.busy(deviceId)) return;
      const agent = agents.find((a) => a.runtimes.has(job.runtime) && this.#agents.has(a.agentId) && a.lease === null);
      if (!agent) continue;
      if (await this.#lease(job, agent)) return;
    }
  }

  async #lease(job: JobRecord, agent: AgentSession): Promise<boolean> {
    const leaseId = newId('l');
    const rows = await this.#db.write((tx) => leaseItems(tx, job.id, agent.agentId, this.#leaseItems, nowIso()));
    if (rows.length === 0) return false;
    if (this.#agents.get(agent.agentId) !== agent) {
      // The agent went while the items were being marked: its disconnect saw no lease to release,
      // so put them back here, or they would stay leased (and the device busy) until expiry.
      await this.#requeue(rows.map((r) => r.id));
      return false;
    }
    const { measure } = job.options;
    const lease = this.#leases.issue(leaseId, job.id, agent, rows.map((r) => r.id), (measure.maxMs ?? 5000) * 1.5 + 2000);
    try {
      const items = await Promise.all(rows.map((r) => this.#payloads.workItem(r, job)));
      if (agent.lease !== lease) return true; // dropped while the payload was built
      this.#leases.arm(lease);
      agent.link.send({ v: PROTOCOL_VERSION, type: 'work', leaseId, jobId: job.id, runtime: job.runtime, leaseMs: this.#leases.deadlineMs(lease), measure, items });
    } catch (err) {
      // The payload could not be built (e.g. the model cannot be written as .tflite): fail the items.
      const message = err instanceof Error ? err.message : String(err);
      const code = err instanceof MorphError ? err.code : 'MORPH_ERR_INTERNAL';
      this.#leases.drop(lease);
      await this.#db.write(async (tx) => {
        await failItems(tx, rows.map((r) => r.id), { code, message });
        await this.#finishIfComplete(tx, job.id);
      });
      this.#announceFinished();
      this.#onChange?.({ kind: 'job', id: job.id });
    }
    this.#onChange?.({ kind: 'device', id: agent.deviceId });
    return true;
  }

  /** A lease past its deadline: the agent is told, its items go back to the queue. */
  #expired(lease: Lease): void {
    lease.agent.link.send({ v: PROTOCOL_VERSION, type: 'cancel', leaseId: lease.id, reason: 'the lease expired without results; its items were put back in the queue' });
    void this.#release(lease, 'lease expired').then(() => this.dispatch(lease.deviceId));
  }

  /** Puts the lease's unfinished items back in the queue. */
  async #release(lease: Lease, _why: string): Promise<void> {
    this.#leases.drop(lease);
    const ids = [...lease.items];
    if (ids.length === 0 || !this.#life.running) return;
    await this.#requeue(ids);
    this.#onChange?.({ kind: 'job', id: lease.jobId });
  }

  /** Puts leased items back in the queue (those still leased: a result may have come in). */
  async #requeue(ids: readonly number[]): Promise<void> {
    await this.#db.write((tx) => requeueItems(tx, ids));
  }

  // ── results ─────────────────────────────────────────────────────────────────────────────

  #checkIssued(session: AgentSession, leaseId: string, itemId: number): ErrorMessage | undefined {
    if (!this.#leases.wasIssued(session.deviceId, leaseId, itemId)) {
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
      const item = await findItem(tx, msg.itemId);
      if (!item) return { status: 'unknown' as const };
      const job = (await findJob(tx, item.jobId)) as JobRecord;
      if (job.state === 'cancelled') return { status: 'cancelled' as const, jobId: job.id };
      if (item.state === 'done') return { status: 'duplicate' as const, jobId: job.id };
      const now = nowIso();
      await completeItem(tx, item.id, { agentId, result: m, at: now });
      if (item.kind === 'op') {
        await upsertPoint(tx, {
          deviceId: job.deviceId,
          runtime: job.runtime,
          signature: item.signature as string,
          cIn: item.cIn as number,
          cOut: item.cOut as number,
          medianMs: m.medianMs,
          p10Ms: m.p10Ms,
          p90Ms: m.p90Ms,
          n: m.n,
          cv: m.cv,
          stable: m.stable,
          spec: item.spec as OpSpec,
          env: await this.#pointEnv(tx, job.deviceId, job.runtime),
          jobId: job.id,
          itemId: item.id,
          measuredAt: now,
          refRatio: m.reference?.ratio ?? null,
          refMs: m.reference?.medianMs ?? null,
        });
      } else {
        await insertNetwork(tx, { deviceId: job.deviceId, runtime: job.runtime, modelId: job.modelId, jobId: job.id, medianMs: m.medianMs, p10Ms: m.p10Ms, p90Ms: m.p90Ms, n: m.n, measuredAt: now });
      }
      await touchJob(tx, job.id, now);
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
      const item = (await findItem(tx, msg.itemId)) as ItemRecord;
      // Only a failure of the item's current lease counts: a replay, or a report on an old lease
      // while another agent holds the item, changes nothing.
      if (item.state !== 'leased' || item.agentId !== agentId) return item.jobId;
      const attempts = item.attempts + 1;
      await recordItemFailure(tx, item.id, { state: attempts >= this.#maxAttempts ? 'failed' : 'pending', attempts, error: { ...msg.error, agentId, attempts } });
      await this.#finishIfComplete(tx, item.jobId);
      return item.jobId;
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
      this.#leases.drop(lease);
      this.#onChange?.({ kind: 'device', id: lease.deviceId });
      this.dispatch(lease.deviceId);
    } else {
      this.#leases.arm(lease);
    }
  }

  /** The environment stored with each point (device, runtime version, agent), cached per device and runtime. */
  async #pointEnv(tx: Tx, deviceId: string, runtime: string): Promise<PointEnv> {
    const key = `${deviceId} ${runtime}`;
    const cached = this.#envCache.get(key);
    if (cached !== undefined) return cached;
    const device = (await findDevice(tx, deviceId)) as DeviceRecord;
    const env: PointEnv = { env: device.env, runtime: device.runtimes.find((r) => r.name === runtime) ?? null, agentVersion: device.agentVersion };
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
    for (const lease of this.#leases.holding(itemId, leaseId)) this.#settleItem(lease.agent, lease.id, itemId, false);
  }

  async #finishIfComplete(tx: Tx, jobId: string): Promise<void> {
    if ((await countOpenItems(tx, jobId)) === 0) await this.#finishJob(tx, jobId);
  }

  async #finishJob(tx: Tx, jobId: string): Promise<void> {
    const job = (await findJob(tx, jobId)) as JobRecord;
    if (job.state === 'done' || job.state === 'failed' || job.state === 'cancelled') return;
    const now = nowIso();
    const outcome = jobOutcome(job, await listItems(tx, jobId), now);
    this.#justFinished.push(jobId);
    // Leases of a finished job can no longer deliver anything: forget them.
    this.#leases.forgetJob(jobId);
    await finishJobRow(tx, jobId, { ...outcome, at: now });
  }

  /** `running` until `close()`, then `closing`, then `closed`. */
  get state(): LifecycleState {
    return this.#life.state;
  }

  /** Stops leasing and puts every live lease's items back (graceful shutdown). A second call returns the first's promise. */
  close(): Promise<void> {
    // Closing first (no more dispatch), and the dispatch under way awaited: one that was writing a
    // lease while the leases were collected would leave its items leased in the database.
    return this.#life.close(async () => {
      await this.#dispatchRun;
      const leases = this.#leases.all();
      for (const l of leases) this.#leases.drop(l);
      await this.#db.write((tx) => requeueItems(tx, leases.flatMap((l) => [...l.items])));
      this.#agents.clear();
    });
  }
}
