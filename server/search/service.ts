/**
 * Searches as a service: a queue of MorphNet searches kept in SQLite and run `concurrency` at a
 * time (default 1), each in a worker thread (server/search/worker.ts) so that training never
 * blocks the HTTP event loop.
 *
 * States: `queued` → `preparing` (latency hook, worker loading backend and data) → `running` →
 * `done` | `failed` | `cancelled`. A search that was `preparing` or `running` when the server
 * stopped is `interrupted` (at `close()`, or at the next start after a crash); `resume` puts an
 * interrupted, failed or cancelled search back in the queue. It runs again from the seed with
 * the same config: `runSearch` keeps no state between its phases (the shrunk gammas, the expanded
 * structure), so a training checkpoint alone could not skip the phases before it.
 *
 * Every state change and every search event except per-step ones is stored (`search_events`) with
 * a sequence number per search, so a client can replay them and then follow live (`subscribe`).
 * While any search trains, the host's own device (the built-in local agent) takes no timing jobs.
 *
 * Beside it in server/search/: the state machine (states.ts), the views (views.ts), the worker
 * thread (worker-thread.ts starts worker.ts), closed-loop measurements (candidates.ts), a latency
 * search's preparation (latency.ts), progress (progress.ts) and artifacts (artifacts.ts).
 */
import type { TorchEngineOptions } from '../../src/train/torch/torch-engine.ts';
import { randomBytes } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Worker } from 'node:worker_threads';
import { MorphError } from '../../src/errors.ts';
import type { Db } from '../db.ts';
import { Lifecycle, type LifecycleState } from '../lifecycle.ts';
import type { ProgressEvent, SearchEventRecord, SearchProgress, SearchStateChange } from '../contract/search-events.ts';
import {
  RESUMABLE_SEARCH_STATES,
  RESUME_MODE,
  TERMINAL_SEARCH_STATES,
  type ArtifactInfo,
  type SearchConfig,
  type SearchState,
  type SearchSummaryView,
  type SearchView,
} from '../contract/searches.ts';
import type { Fleet } from '../fleet.ts';
import type { ResolvedModel } from '../models.ts';
import { insertModel, findModel } from '../store/models.ts';
import {
  countQueuedAhead,
  findSearch,
  insertSearch,
  insertSearchEvent,
  lastEventSeq,
  listSearches,
  listSearchEvents,
  nextQueuedSearch,
  saveSearchProgress,
  searchIdsIn,
  transitionSearch,
  type SearchRecord,
} from '../store/searches.ts';
import type { TableReader } from '../tables.ts';
import { listArtifacts } from './artifacts.ts';
import { measureCandidate } from './candidates.ts';
import { prepareLatencySearch, type PreparedLatency } from './latency.ts';
import { applyEvent, emptyProgress, type ProgressPlan } from './progress.ts';
import { ENTERED_FROM, StaleStateError, transitionOf, type StateExtras } from './states.ts';
import { searchSummary, searchView } from './views.ts';
import type { MeasureReply, SearchWorkerData, WorkerMessage } from './worker.ts';
import { startWorker, type WorkerOutcome } from './worker-thread.ts';

/** Events kept per search (a search emits a few per epoch; this bounds a pathological one). */
export const MAX_STORED_EVENTS = 20_000;

export interface SearchServiceOptions {
  /** The server's data directory; artifacts go to `DIR/searches/<id>/`. */
  readonly dataDir: string;
  readonly fleet: Fleet;
  readonly tables: TableReader;
  /** Searches run at once. Default 1; more are queued. */
  readonly concurrency?: number;
  /** Least time between two live step events of one search, ms. Default 250. */
  readonly stepEventMs?: number;
  /**
   * The device whose agents must take no timing jobs while a search trains here (the host's own
   * device). Default: `localDeviceId` (the device of an agent named `… (local)`).
   */
  readonly hostDeviceId?: (fleet: Fleet) => Promise<string | null>;
  readonly log?: (line: string) => void;
  /** The torch engine's settings for every search (interpreters, threads, device). */
  readonly torch?: TorchEngineOptions;
}

export interface NewSearch {
  readonly config: SearchConfig;
  /** The model's topology, stored in `models` by `config.model.id` if not there yet. */
  readonly modelTopology: unknown;
}

interface Active {
  readonly id: string;
  readonly attempt: number;
  readonly config: SearchConfig;
  readonly plan: ProgressPlan;
  readonly abort: AbortController;
  worker: Worker | null;
  stop: 'cancel' | 'server' | null;
  progress: SearchProgress;
  nextSeq: number;
  /** Events of this attempt (not steps), for replays that race with their storage. */
  readonly log: SearchEventRecord[];
  lastStepAt: number;
  lastProgressWrite: number;
  finished: Promise<void>;
  /** Latency searches, once prepared: the seed and its settled latency, which every closed-loop measurement is taken against (a measure job's `reference`, read by `referencedMs`). */
  reference: { readonly model: ResolvedModel; readonly ms: number } | null;
}

const nowIso = (): string => new Date().toISOString();
const isTerminal = (s: SearchState): boolean => TERMINAL_SEARCH_STATES.includes(s);

/** The device of the built-in local agent: an agent (or device) named `… (local)`. */
export async function localDeviceId(fleet: Fleet): Promise<string | null> {
  const devices = await fleet.devices();
  const local = devices.find((d) => d.agents.some((a) => a.name.endsWith('(local)'))) ?? devices.find((d) => d.name.endsWith('(local)'));
  return local?.id ?? null;
}

export class SearchService {
  readonly #db: Db;
  readonly #o: SearchServiceOptions;
  readonly #concurrency: number;
  readonly #stepEventMs: number;
  readonly #log: (line: string) => void;
  readonly #active = new Map<string, Active>();
  readonly #listeners = new Map<string, Set<(e: SearchEventRecord, state: SearchState | null) => void>>();
  #hostDeviceId: (fleet: Fleet) => Promise<string | null>;
  #hostPaused: string | null = null;
  #pumping = false;
  #pumpAgain = false;
  readonly #life = new Lifecycle();

  constructor(db: Db, options: SearchServiceOptions) {
    this.#db = db;
    this.#o = options;
    this.#concurrency = options.concurrency ?? 1;
    if (!Number.isInteger(this.#concurrency) || this.#concurrency < 1) throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `search concurrency must be an integer ≥ 1, got ${this.#concurrency}`);
    this.#stepEventMs = options.stepEventMs ?? 250;
    this.#log = options.log ?? (() => undefined);
    this.#hostDeviceId = options.hostDeviceId ?? localDeviceId;
  }

  /** Replaces how the host's own device is found (the lead wires the local agent here). */
  setHostDeviceResolver(fn: (fleet: Fleet) => Promise<string | null>): void {
    this.#hostDeviceId = fn;
  }

  /** The absolute directory of a search's artifacts. */
  artifactsDir(id: string): string {
    if (!/^s-[0-9a-f]{12}$/.test(id)) throw new MorphError('MORPH_ERR_NOT_FOUND', `no search ${JSON.stringify(id)}`);
    return resolve(this.#o.dataDir, 'searches', id);
  }

  /**
   * Marks searches that were running when the server last stopped as `interrupted` and starts
   * the queue. Returns the ids it marked.
   */
  async start(): Promise<string[]> {
    const stale = await searchIdsIn(this.#db, ['preparing', 'running']);
    for (const id of stale) {
      await this.#record(id, { state: 'interrupted', reason: 'the server stopped while the search was running' });
    }
    this.#pump();
    return stale;
  }

  // ── queries ────────────────────────────────────────────────────────────────────────────

  async get(id: string): Promise<SearchView | undefined> {
    const row = await findSearch(this.#db, id);
    return row ? this.#view(row) : undefined;
  }

  async require(id: string): Promise<SearchView> {
    const v = await this.get(id);
    if (!v) throw new MorphError('MORPH_ERR_NOT_FOUND', `no search ${JSON.stringify(id)}; GET /api/searches lists them`, { field: 'id' });
    return v;
  }

  async list(filter: { state?: SearchState; limit?: number } = {}): Promise<SearchSummaryView[]> {
    const rows = await listSearches(this.#db, { state: filter.state, limit: filter.limit ?? 100 });
    return Promise.all(rows.map(async (r) => searchSummary(r, this.#progress(r), await this.#waiting(r))));
  }

  /** Stored events with `seq > after`, plus those of the running attempt not stored yet. */
  async events(id: string, after = 0): Promise<SearchEventRecord[]> {
    const stored = await listSearchEvents(this.#db, id, after);
    const out = new Map<number, SearchEventRecord>(stored.map((e) => [e.seq, e as SearchEventRecord]));
    for (const e of this.#active.get(id)?.log ?? []) if (e.seq !== null && e.seq > after && !out.has(e.seq)) out.set(e.seq, e);
    return [...out.values()].sort((a, b) => (a.seq as number) - (b.seq as number));
  }

  /**
   * Calls `listener` with every new event of the search (`state` is the new state on a state
   * event, else null). Returns the function that unsubscribes.
   */
  subscribe(id: string, listener: (e: SearchEventRecord, state: SearchState | null) => void): () => void {
    let set = this.#listeners.get(id);
    if (!set) this.#listeners.set(id, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0 && this.#listeners.get(id) === set) this.#listeners.delete(id);
    };
  }

  /** The fixed-name artifacts present in the search's directory. */
  artifacts(id: string): Promise<ArtifactInfo[]> {
    return listArtifacts(this.artifactsDir(id));
  }

  // ── changes ────────────────────────────────────────────────────────────────────────────

  /** Queues a validated search (all or nothing: model, search row and first event in one transaction). */
  async create(input: NewSearch): Promise<SearchView> {
    if (!this.#life.running) throw new MorphError('MORPH_ERR_INTERNAL', 'the server is stopping');
    const id = `s-${randomBytes(6).toString('hex')}`;
    const now = nowIso();
    const c = input.config;
    await this.#db.write(async (tx) => {
      await insertModel(tx, { id: c.model.id, name: c.model.name, topology: input.modelTopology, createdAt: now });
      await insertSearch(tx, { id, config: c, progress: emptyProgress(), artifactsDir: `searches/${id}`, createdAt: now });
      await insertSearchEvent(tx, id, { seq: 1, type: 'state', data: { state: 'queued', attempt: 1 }, at: now });
    });
    this.#pump();
    return this.require(id);
  }

  /**
   * Cancels a queued, preparing, running or interrupted search (the worker is terminated).
   * A search that already ended is returned unchanged.
   */
  async cancel(id: string): Promise<SearchView> {
    const view = await this.require(id);
    const active = this.#active.get(id);
    if (active) {
      if (!active.stop) active.stop = 'cancel';
      active.abort.abort();
      void active.worker?.terminate();
      await active.finished;
    } else if (view.state === 'queued' || view.state === 'interrupted') {
      try {
        await this.#record(id, { state: 'cancelled', reason: 'cancelled by DELETE /api/searches/:id' });
      } catch (err) {
        // The queue took it meanwhile: cancel the running attempt.
        if (!(err instanceof StaleStateError)) throw err;
        return this.cancel(id);
      }
    }
    return this.require(id);
  }

  /**
   * Puts an interrupted, failed or cancelled search back in the queue, from the start (see
   * `RESUME_MODE`).
   * @throws MorphError MORPH_ERR_BAD_ARGUMENT for a search in another state.
   */
  async resume(id: string): Promise<SearchView> {
    const view = await this.require(id);
    if (!RESUMABLE_SEARCH_STATES.includes(view.state) || this.#active.has(id)) {
      throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `search ${id} is ${view.state}; only ${RESUMABLE_SEARCH_STATES.join(', ')} searches can be resumed`, { state: view.state });
    }
    await rm(this.artifactsDir(id), { recursive: true, force: true });
    await this.#record(id, { state: 'queued', resumed: true, mode: RESUME_MODE, attempt: view.attempt + 1 }).catch((err: unknown) => {
      if (err instanceof StaleStateError) throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `search ${id} changed state meanwhile; GET it and try again`);
      throw err;
    });
    this.#pump();
    return this.require(id);
  }

  /** `running` until `close()`, then `closing`, then `closed`. */
  get state(): LifecycleState {
    return this.#life.state;
  }

  /** Stops every running search (they become `interrupted`); queued ones stay queued. A second call returns the first's promise. */
  close(): Promise<void> {
    return this.#life.close(async () => {
      // A search the queue is starting right now must be in #active before it is stopped.
      while (this.#pumping) await new Promise((r) => setTimeout(r, 10));
      const running = [...this.#active.values()];
      for (const a of running) {
        if (!a.stop) a.stop = 'server';
        a.abort.abort();
        void a.worker?.terminate();
      }
      await Promise.all(running.map((a) => a.finished));
    });
  }

  // ── internals ──────────────────────────────────────────────────────────────────────────

  /**
   * Stores one event (and, for a state event, the state change) and tells the listeners.
   * State changes: `{state, ...}` data; other events are progress (data = the event).
   */
  async #record(id: string, data: SearchStateChange | ProgressEvent, extra: StateExtras = {}): Promise<void> {
    const active = this.#active.get(id);
    const at = nowIso();
    const type = 'state' in data ? 'state' : data.type;
    const state = 'state' in data ? data.state : null;
    let seq = active ? active.nextSeq++ : 0;
    const record = (): SearchEventRecord => ({ seq, type, data, at }) as SearchEventRecord;
    if (active) active.log.push(record());
    const stored = this.#db.write(async (tx) => {
      if (!active) seq = (await lastEventSeq(tx, id)) + 1;
      if (seq <= MAX_STORED_EVENTS || state !== null) await insertSearchEvent(tx, id, { seq, type, data, at });
      if (state !== null) {
        if (!(await transitionSearch(tx, id, transitionOf(data as SearchStateChange, extra, at), ENTERED_FROM[state], at))) {
          throw new StaleStateError(`search ${id} cannot become ${state} from its current state`);
        }
      } else if (extra.progress) await saveSearchProgress(tx, id, extra.progress, at);
    });
    try {
      await stored;
    } catch (err) {
      const i = active ? active.log.findIndex((e) => e.seq === seq) : -1;
      if (i >= 0) active!.log.splice(i, 1);
      throw err;
    }
    if (active) active.lastProgressWrite = Date.now();
    this.#emit(id, record(), state);
  }

  #emit(id: string, e: SearchEventRecord, state: SearchState | null): void {
    for (const l of [...(this.#listeners.get(id) ?? [])]) {
      try {
        l(e, state);
      } catch (err) {
        this.#log(`search ${id}: an event listener failed: ${(err as Error).message}`);
      }
    }
  }

  #pump(): void {
    if (!this.#life.running) return;
    if (this.#pumping) {
      this.#pumpAgain = true;
      return;
    }
    this.#pumping = true;
    void (async () => {
      try {
        do {
          this.#pumpAgain = false;
          while (this.#active.size < this.#concurrency && this.#life.running) {
            const row = await nextQueuedSearch(this.#db);
            if (!row) break;
            await this.#begin(row);
          }
        } while (this.#pumpAgain && this.#life.running);
      } catch (err) {
        if (this.#life.running) this.#log(`searches: starting a queued search failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      } finally {
        this.#pumping = false;
      }
    })();
  }

  async #begin(row: SearchRecord): Promise<void> {
    const config = row.config;
    const last = await lastEventSeq(this.#db, row.id);
    let settle!: () => void;
    const active: Active = {
      id: row.id,
      attempt: row.attempt,
      config,
      plan: { rounds: config.options.rounds, shrinkEpochs: config.options.shrinkEpochs, finalEpochs: config.options.finalEpochs, baseline: config.options.baseline, flopRun: config.cost === 'latency' && config.options.baseline },
      abort: new AbortController(),
      worker: null,
      stop: null,
      progress: emptyProgress(),
      nextSeq: last + 1,
      log: [],
      lastStepAt: 0,
      lastProgressWrite: 0,
      reference: null,
      finished: new Promise<void>((r) => (settle = r)),
    };
    this.#active.set(row.id, active);
    try {
      await this.#record(row.id, { state: 'preparing', attempt: row.attempt }, { progress: active.progress });
    } catch (err) {
      // Cancelled between the queue's read and now: nothing to run.
      this.#active.delete(row.id);
      settle();
      if (!(err instanceof StaleStateError)) throw err;
      return;
    }
    void this.#drive(active).finally(() => {
      this.#active.delete(active.id);
      settle();
      void this.#releaseHost();
      this.#pump();
    });
  }

  /** Runs one attempt to its end state. Never throws. */
  async #drive(a: Active): Promise<void> {
    let outcome: WorkerOutcome;
    try {
      // The host is paused once the worker trains (its `ready` event): preparing may profile on it.
      let prepared: unknown = null;
      if (a.config.cost === 'latency') {
        const c = a.config;
        prepared = await prepareLatencySearch({
          searchId: a.id,
          modelId: c.model.id,
          deviceId: c.deviceId as string,
          runtime: c.runtime as NonNullable<SearchConfig['runtime']>,
          latency: c.latency as NonNullable<SearchConfig['latency']>,
          options: c.options,
          fleet: this.#o.fleet,
          tables: this.#o.tables,
          signal: a.abort.signal,
          note: (message, progress) => void this.#onEvent(a, { type: 'note', message, ...(progress ? { progress } : {}) }).catch(() => undefined),
        });
        const seedModel = await this.#o.tables.model(c.model.id);
        if (seedModel) a.reference = { model: seedModel, ms: (prepared as PreparedLatency).seedMeasuredMs };
      }
      if (a.stop) throw new MorphError('MORPH_ERR_INTERNAL', 'stopped');
      const model = await findModel(this.#db, a.config.model.id);
      if (!model) throw new MorphError('MORPH_ERR_NOT_FOUND', `the search's model ${a.config.model.id} is no longer stored`);
      const dir = this.artifactsDir(a.id);
      await rm(dir, { recursive: true, force: true });
      await mkdir(dir, { recursive: true });
      if (a.stop) throw new MorphError('MORPH_ERR_INTERNAL', 'stopped');
      // The torch engine's data and weight files go to a scratch directory of this search, removed
      // whatever way the worker ends: a terminated worker (cancel, shutdown) never runs the
      // engine's own clean-up, and a full training set is hundreds of MB there.
      const scratch = resolve(this.#o.dataDir, 'searches', `${a.id}.scratch`);
      await mkdir(scratch, { recursive: true });
      try {
        outcome = await this.#runWorker(a, { searchId: a.id, attempt: a.attempt, config: a.config, modelTopology: model.topology as SearchWorkerData['modelTopology'], artifactsDir: dir, prepared, torch: { ...this.#o.torch, tmpDir: scratch } });
      } finally {
        await rm(scratch, { recursive: true, force: true });
      }
    } catch (err) {
      const e = err as { code?: string; message?: string; details?: unknown };
      outcome = { type: 'failed', error: { code: typeof e?.code === 'string' && e.code.startsWith('MORPH_ERR_') ? e.code : 'MORPH_ERR_INTERNAL', message: e?.message ?? String(err), ...(e?.details ? { details: e.details } : {}) } };
    }
    try {
      // A finished search stays done even if a cancel or the shutdown came after its last file.
      if (outcome.type === 'done') {
        a.progress = { ...a.progress, fraction: 1 };
        await this.#record(a.id, { state: 'done', result: outcome.result }, { progress: a.progress, result: outcome.result });
      } else if (a.stop === 'cancel') {
        await this.#record(a.id, { state: 'cancelled', reason: 'cancelled by DELETE /api/searches/:id' }, { progress: a.progress });
      } else if (a.stop === 'server') {
        await this.#record(a.id, { state: 'interrupted', reason: 'the server stopped while the search was running', resume: `POST /api/searches/${a.id}/resume` }, { progress: a.progress });
      } else {
        if (outcome.error.code === 'MORPH_ERR_INTERNAL') this.#log(`search ${a.id} failed: ${outcome.error.message}`);
        await this.#record(a.id, { state: 'failed', error: outcome.error }, { progress: a.progress, error: outcome.error });
      }
    } catch (err) {
      this.#log(`search ${a.id}: storing its end state failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    }
  }

  #runWorker(a: Active, data: SearchWorkerData): Promise<WorkerOutcome> {
    const { worker, outcome } = startWorker(data, {
      onEvent: (event) => this.#onEvent(a, event).catch((err) => this.#log(`search ${a.id}: storing an event failed: ${(err as Error).message}`)),
      onMeasure: (m) => this.#measureForWorker(a, m),
      onOutput: (line) => this.#log(`[search ${a.id}] ${line}`),
    });
    a.worker = worker;
    worker.once('exit', () => (a.worker = null));
    // A cancel that raced with the start.
    if (a.stop) void worker.terminate();
    return outcome;
  }

  async #onEvent(a: Active, event: ProgressEvent): Promise<void> {
    a.progress = applyEvent(a.progress, event, a.plan);
    if (event.type === 'step') {
      const now = Date.now();
      if (now - a.lastStepAt >= this.#stepEventMs) {
        a.lastStepAt = now;
        this.#emit(a.id, { seq: null, type: 'step', data: event, at: nowIso() }, null);
      }
      if (now - a.lastProgressWrite >= 1000) {
        a.lastProgressWrite = now;
        await this.#db.write((tx) => saveSearchProgress(tx, a.id, a.progress, nowIso()));
      }
      return;
    }
    await this.#record(a.id, event, { progress: a.progress });
    if (event.type === 'ready') {
      await this.#record(a.id, { state: 'running', attempt: a.attempt, backend: event.backend }, { progress: a.progress });
      // The local agent may have connected since the search started.
      if (this.#hostPaused === null) await this.#pauseHost();
    }
  }

  /**
   * Closed-loop expand: times a candidate network on the search's device (candidates.ts) and
   * answers the worker. The worker waits meanwhile, so the host (if it is the device) is let time it.
   */
  async #measureForWorker(a: Active, m: Extract<WorkerMessage, { type: 'measure' }>): Promise<MeasureReply> {
    const deviceId = a.config.deviceId as string;
    const hostWasPaused = this.#hostPaused === deviceId;
    if (hostWasPaused) this.#o.fleet.resume(deviceId);
    try {
      return await measureCandidate(
        {
          fleet: this.#o.fleet,
          deviceId,
          runtime: a.config.runtime as NonNullable<SearchConfig['runtime']>,
          measureProtocol: a.config.options.measureProtocol,
          reference: a.reference,
          signal: a.abort.signal,
          note: (message) => this.#onEvent(a, { type: 'note', message }),
        },
        m,
      );
    } finally {
      if (hostWasPaused && this.#hostPaused === deviceId) this.#o.fleet.pause(deviceId, 'a search is training on this host');
    }
  }

  async #pauseHost(): Promise<void> {
    if (this.#hostPaused !== null) return;
    const id = await this.#hostDeviceId(this.#o.fleet).catch(() => null);
    if (id === null || this.#hostPaused !== null || this.#active.size === 0) return;
    this.#hostPaused = id;
    this.#o.fleet.pause(id, 'a search is training on this host');
  }

  async #releaseHost(): Promise<void> {
    if (this.#active.size > 0 || this.#hostPaused === null) return;
    const id = this.#hostPaused;
    this.#hostPaused = null;
    this.#o.fleet.resume(id);
  }

  async #waiting(row: SearchRecord): Promise<string | null> {
    if (row.state !== 'queued' || this.#active.has(row.id)) return null;
    const ahead = await countQueuedAhead(this.#db, row);
    const running = this.#active.size;
    return `queued behind ${running} running and ${ahead} queued search(es); ${this.#concurrency} run at a time`;
  }

  /** The running attempt's progress (live), else the stored one. */
  #progress(row: SearchRecord): SearchProgress {
    return this.#active.get(row.id)?.progress ?? row.progress;
  }

  async #view(row: SearchRecord): Promise<SearchView> {
    const artifacts = isTerminal(row.state) || row.state === 'running' ? (await this.artifacts(row.id)).map((x) => x.name) : [];
    return searchView(row, this.#progress(row), await this.#waiting(row), artifacts);
  }
}
