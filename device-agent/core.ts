/**
 * The device agent's protocol loop, shared by the Node agent and the browser agent page (so:
 * no Node imports here). It connects, says hello, runs the leases the server sends one item at a
 * time on the named runtime adapter, sends a `result` or `item-failed` per item, and reconnects
 * after any close with jittered exponential backoff, except when the server refused the token
 * (4401) or the hello (4400): retrying cannot fix those, so the agent stops and says why.
 *
 * Lifecycle: `new DeviceAgent(options)` → `start()` → … → `stop()`; `finished` resolves once, with
 * why the agent ended. States: idle → running → closing → closed; `stop()` is safe to call twice.
 *
 * Measuring blocks the event loop for one item (the runs are synchronous), so the loop yields to
 * it between items: a `cancel` that arrived meanwhile skips the rest of its lease.
 */
import { isMorphError, MorphError } from '../src/errors.ts';
import { measurePaired } from '../src/measure/interleaved.ts';
import { clockTickMs, measure, withClockFloor } from '../src/measure/timing.ts';
import {
  CLOSE_CODES,
  helloSchema,
  parseServerMessage,
  PROTOCOL_VERSION,
  resultSchema,
  toWireMeasurement,
  type AgentEnv,
  type HelloMessage,
  type ItemFailedMessage,
  type ResultMessage,
  type RuntimeName,
  type ServerMessage,
  type WorkItem,
  type WorkMessage,
} from '../src/protocol/agent-protocol.ts';
import type { Runnable, RuntimeAdapter } from './runtime.ts';
import { reconnectDelay, type ReconnectOptions, type SocketFactory, type SocketLike } from './socket.ts';

export { DEFAULT_RECONNECT, reconnectDelay, socketFromWebSocket, type ReconnectOptions, type SocketFactory, type SocketLike, type StandardWebSocket } from './socket.ts';

// ───────────────────────────── options and reports ─────────────────────────────

/** What the agent says about itself in its hello; `runtimes` come from the adapters. */
export interface AgentIdentity {
  readonly token: string;
  /** Stable per physical device; 8–128 of A–Z a–z 0–9 _ -. */
  readonly deviceKey: string;
  /** Human name of the device, 1–100 characters. */
  readonly name: string;
  readonly agentVersion: string;
  readonly env: AgentEnv;
}

export interface AgentLogger {
  debug?(message: string): void;
  info(message: string): void;
  warn(message: string): void;
}

export type ConnectionState = 'idle' | 'connecting' | 'connected' | 'disconnected' | 'stopped';

/** A snapshot for a status display (the browser page shows it); a new object each time. */
export interface AgentStatus {
  /** `connecting`: socket opening or hello sent; `connected`: welcomed; `disconnected`: waiting to retry. */
  readonly connection: ConnectionState;
  readonly activity: 'idle' | 'working';
  /** From the last welcome; null before the first. */
  readonly deviceId: string | null;
  readonly agentId: string | null;
  /** The lease being measured. */
  readonly lease: { readonly leaseId: string; readonly jobId: string; readonly runtime: RuntimeName; readonly total: number; readonly done: number; readonly failed: number } | null;
  readonly queuedLeases: number;
  /** Totals since start. */
  readonly itemsDone: number;
  readonly itemsFailed: number;
  readonly leasesDone: number;
  /** Connections opened after the first. */
  readonly reconnects: number;
  /** When disconnected: ms until the next attempt. */
  readonly retryInMs: number | null;
  readonly lastError: string | null;
}

/** Why the agent ended. `stopped` is the normal end (`stop()`); the others are fatal. */
export interface AgentExit {
  readonly reason: 'stopped' | 'unauthorized' | 'bad-hello' | 'connect-failed';
  /** The close code that ended it, null when none did. */
  readonly closeCode: number | null;
  readonly message: string;
}

/** One thing that happened, for log lines (the Node agent prints one per event). */
export type AgentEvent =
  | { readonly type: 'connecting'; readonly url: string; readonly attempt: number }
  | { readonly type: 'welcome'; readonly deviceId: string; readonly agentId: string; readonly serverVersion: string }
  | { readonly type: 'disconnected'; readonly code: number; readonly reason: string; readonly retryInMs: number | null }
  | { readonly type: 'lease-start'; readonly leaseId: string; readonly jobId: string; readonly runtime: RuntimeName; readonly items: number }
  | { readonly type: 'item-done'; readonly leaseId: string; readonly itemId: number; readonly index: number; readonly total: number; readonly medianMs: number; readonly stable: boolean }
  | { readonly type: 'item-failed'; readonly leaseId: string; readonly itemId: number; readonly index: number; readonly total: number; readonly code: string; readonly message: string }
  | { readonly type: 'lease-end'; readonly leaseId: string; readonly done: number; readonly failed: number; readonly skipped: number; readonly cancelled: boolean; readonly ms: number }
  | { readonly type: 'cancel'; readonly leaseId: string; readonly reason: string; readonly known: boolean }
  | { readonly type: 'server-error'; readonly code: string; readonly message: string }
  | { readonly type: 'invalid-message'; readonly message: string }
  | { readonly type: 'exit'; readonly exit: AgentExit };

export interface DeviceAgentOptions {
  /** The server's agent endpoint, e.g. `ws://host:8080/agents`. */
  readonly url: string;
  readonly connect: SocketFactory;
  readonly identity: AgentIdentity;
  /** One adapter per runtime served (names must differ); the hello lists their `info()`. */
  readonly adapters: readonly RuntimeAdapter[];
  readonly logger?: AgentLogger;
  /** Called with a fresh snapshot after every change. */
  readonly onStatus?: (status: AgentStatus) => void;
  readonly onEvent?: (event: AgentEvent) => void;
  readonly reconnect?: ReconnectOptions;
  /** How long `stop()` waits for the close handshake, ms. Default 2000. */
  readonly closeTimeoutMs?: number;
  /** Lets incoming frames be handled between items. Default: a 0 ms timer. */
  readonly yieldToEventLoop?: () => Promise<void>;
}

// ───────────────────────────── the loop ─────────────────────────────

interface Lease {
  readonly work: WorkMessage;
  readonly socket: SocketLike;
  cancelled: boolean;
  done: number;
  failed: number;
}

type ItemOutcome = { ok: true; message: ResultMessage; medianMs: number; stable: boolean } | { ok: false; message: ItemFailedMessage };

/** Largest error message an `item-failed` may carry (protocol bound). */
const MAX_FAILURE_MESSAGE = 2000;
const NORMAL_CLOSE = 1000;

const SILENT: AgentLogger = { info() {}, warn() {} };

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/** Why the agent cannot continue after a fatal close, in words for the user. */
function fatalExit(code: number, reason: string): AgentExit | null {
  const said = reason ? `: ${reason}` : '';
  if (code === CLOSE_CODES.unauthorized) {
    return { reason: 'unauthorized', closeCode: code, message: `the server refused the agent token (close ${code}${said}); use the agent token the server was started with` };
  }
  if (code === CLOSE_CODES.badHello) {
    return { reason: 'bad-hello', closeCode: code, message: `the server refused the hello (close ${code}${said}); the agent and the server must speak protocol v${PROTOCOL_VERSION} and the device key and name must be valid` };
  }
  return null;
}

export class DeviceAgent {
  readonly #options: DeviceAgentOptions;
  /** This agent's clock step, ms, read before the first measurement. */
  #clockTick: number | undefined;
  readonly #logger: AgentLogger;
  readonly #adapters: ReadonlyMap<RuntimeName, RuntimeAdapter>;
  readonly #hello: HelloMessage;
  readonly #finished: Promise<AgentExit>;
  #resolveFinished!: (exit: AgentExit) => void;

  #state: 'idle' | 'running' | 'closing' | 'closed' = 'idle';
  #socket: SocketLike | null = null;
  #connection: ConnectionState = 'idle';
  #retryTimer: ReturnType<typeof setTimeout> | null = null;
  #retryInMs: number | null = null;
  /** Failed connection attempts since the last welcome. */
  #failures = 0;
  #connections = 0;
  #deviceId: string | null = null;
  #agentId: string | null = null;
  #queue: Lease[] = [];
  #current: Lease | null = null;
  #busy = false;
  #idle: Promise<void> = Promise.resolve();
  #itemsDone = 0;
  #itemsFailed = 0;
  #leasesDone = 0;
  #lastError: string | null = null;

  /**
   * @throws MorphError `MORPH_ERR_BAD_ARGUMENT` when the identity or the adapters do not make a
   *   valid hello (the message lists every problem), or two adapters share a runtime name.
   */
  constructor(options: DeviceAgentOptions) {
    this.#options = options;
    this.#logger = options.logger ?? SILENT;
    const adapters = new Map<RuntimeName, RuntimeAdapter>();
    for (const a of options.adapters) {
      if (adapters.has(a.name)) throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `two adapters serve runtime ${a.name}; give one per runtime`);
      adapters.set(a.name, a);
    }
    this.#adapters = adapters;
    const hello = { v: PROTOCOL_VERSION, type: 'hello', ...options.identity, runtimes: options.adapters.map((a) => a.info()) };
    const checked = helloSchema.safeParse(hello);
    if (!checked.success) {
      const problems = checked.error.issues.map((i) => `${i.path.join('.') || '(hello)'}: ${i.message}`);
      throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `the agent cannot say a valid hello: ${problems.join('; ')}`, { problems });
    }
    this.#hello = checked.data;
    this.#finished = new Promise((resolve) => {
      this.#resolveFinished = resolve;
    });
  }

  /** Resolves once, when the agent has ended (after `stop()` or a fatal close); never rejects. */
  get finished(): Promise<AgentExit> {
    return this.#finished;
  }

  get status(): AgentStatus {
    const lease = this.#current;
    return {
      connection: this.#connection,
      activity: this.#busy ? 'working' : 'idle',
      deviceId: this.#deviceId,
      agentId: this.#agentId,
      lease: lease ? { leaseId: lease.work.leaseId, jobId: lease.work.jobId, runtime: lease.work.runtime, total: lease.work.items.length, done: lease.done, failed: lease.failed } : null,
      queuedLeases: this.#queue.length,
      itemsDone: this.#itemsDone,
      itemsFailed: this.#itemsFailed,
      leasesDone: this.#leasesDone,
      reconnects: Math.max(0, this.#connections - 1),
      retryInMs: this.#retryInMs,
      lastError: this.#lastError,
    };
  }

  /** Starts connecting; returns `finished`. Calling it again does nothing more. */
  start(): Promise<AgentExit> {
    if (this.#state === 'idle') {
      this.#state = 'running';
      this.#connect();
    }
    return this.#finished;
  }

  /** Closes the socket (code 1000) and ends the loop without reconnecting; resolves with the exit. Safe to call twice. */
  stop(): Promise<AgentExit> {
    if (this.#state === 'idle' || this.#state === 'running') {
      const wasIdle = this.#state === 'idle';
      this.#state = 'closing';
      this.#clearRetry();
      this.#dropWork();
      const socket = this.#socket;
      if (wasIdle || socket === null) {
        this.#finish({ reason: 'stopped', closeCode: null, message: 'stopped' });
      } else {
        try {
          socket.close(NORMAL_CLOSE, 'agent stopping');
        } catch (err) {
          this.#logger.warn(`closing the socket failed: ${errorText(err)}`);
        }
        // A server that never completes the close handshake must not keep us waiting.
        const timer = setTimeout(() => {
          if (this.#socket === socket) this.#detach(socket);
          this.#finish({ reason: 'stopped', closeCode: null, message: 'stopped (the server did not complete the close handshake)' });
        }, this.#options.closeTimeoutMs ?? 2000);
        void this.#finished.then(() => clearTimeout(timer));
      }
    }
    return this.#finished;
  }

  #emit(event: AgentEvent): void {
    try {
      this.#options.onEvent?.(event);
    } catch (err) {
      this.#logger.warn(`onEvent threw: ${errorText(err)}`);
    }
  }

  #report(): void {
    if (!this.#options.onStatus) return;
    try {
      this.#options.onStatus(this.status);
    } catch (err) {
      this.#logger.warn(`onStatus threw: ${errorText(err)}`);
    }
  }

  #connect(): void {
    this.#retryTimer = null;
    this.#retryInMs = null;
    if (this.#state !== 'running') return;
    this.#connections++;
    this.#connection = 'connecting';
    this.#emit({ type: 'connecting', url: this.#options.url, attempt: this.#failures + 1 });
    this.#report();
    let socket: SocketLike;
    try {
      socket = this.#options.connect(this.#options.url);
    } catch (err) {
      // A URL the socket refuses will not work on the next try either.
      this.#state = 'closing';
      this.#finish({ reason: 'connect-failed', closeCode: null, message: `cannot open a WebSocket to ${this.#options.url}: ${errorText(err)}` });
      return;
    }
    this.#socket = socket;
    socket.onopen = () => {
      if (this.#socket !== socket) return;
      this.#send(socket, this.#hello);
    };
    socket.onmessage = (data) => this.#onMessage(socket, data);
    socket.onerror = (message) => {
      if (this.#socket !== socket) return;
      this.#lastError = message;
      this.#logger.debug?.(`socket error: ${message}`);
    };
    socket.onclose = (code, reason) => this.#onClose(socket, code, reason);
  }

  #detach(socket: SocketLike): void {
    socket.onopen = socket.onmessage = socket.onerror = socket.onclose = null;
    if (this.#socket === socket) this.#socket = null;
  }

  #onClose(socket: SocketLike, code: number, reason: string): void {
    if (this.#socket !== socket) return;
    this.#detach(socket);
    this.#connection = 'disconnected';
    // The server re-leases the items of a closed connection; results sent later would be refused.
    this.#dropWork();
    if (this.#state !== 'running') {
      this.#emit({ type: 'disconnected', code, reason, retryInMs: null });
      this.#finish({ reason: 'stopped', closeCode: code, message: 'stopped' });
      return;
    }
    const fatal = fatalExit(code, reason);
    if (fatal) {
      this.#lastError = fatal.message;
      this.#emit({ type: 'disconnected', code, reason, retryInMs: null });
      this.#state = 'closing';
      this.#finish(fatal);
      return;
    }
    const delay = reconnectDelay(this.#failures++, this.#options.reconnect);
    if (code !== NORMAL_CLOSE) this.#lastError = `connection closed (${code}${reason ? `: ${reason}` : ''})`;
    this.#retryInMs = delay;
    this.#emit({ type: 'disconnected', code, reason, retryInMs: delay });
    this.#report();
    this.#retryTimer = setTimeout(() => this.#connect(), delay);
  }

  #finish(exit: AgentExit): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#clearRetry();
    this.#connection = 'stopped';
    if (this.#socket) {
      const socket = this.#socket;
      this.#detach(socket);
      try {
        socket.close(NORMAL_CLOSE, 'agent stopping');
      } catch {
        // Already closing.
      }
    }
    this.#emit({ type: 'exit', exit });
    this.#report();
    // The item being measured (if any) ends first: nothing runs after `finished` resolves.
    void this.#idle.then(() => this.#resolveFinished(exit));
  }

  #clearRetry(): void {
    if (this.#retryTimer !== null) clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
    this.#retryInMs = null;
  }

  #dropWork(): void {
    this.#queue = [];
    if (this.#current) this.#current.cancelled = true;
  }

  #send(socket: SocketLike, message: object): boolean {
    if (this.#socket !== socket) return false;
    try {
      socket.send(JSON.stringify(message));
      return true;
    } catch (err) {
      this.#lastError = `send failed: ${errorText(err)}`;
      this.#logger.warn(this.#lastError);
      return false;
    }
  }

  #onMessage(socket: SocketLike, data: unknown): void {
    // While stopping, nothing new is started.
    if (this.#socket !== socket || this.#state !== 'running') return;
    if (typeof data !== 'string') {
      this.#invalid('a binary frame; the protocol uses JSON text frames');
      return;
    }
    const parsed = parseServerMessage(data);
    if (!parsed.ok) {
      this.#invalid(`${parsed.code}: ${parsed.message}`);
      return;
    }
    this.#handle(socket, parsed.message);
  }

  /** Invalid frames are reported and ignored: the server's own checks decide whether to close. */
  #invalid(message: string): void {
    this.#lastError = `invalid server message: ${message}`;
    this.#logger.debug?.(`ignored an invalid server message: ${message}`);
    this.#emit({ type: 'invalid-message', message });
    this.#report();
  }

  #handle(socket: SocketLike, m: ServerMessage): void {
    switch (m.type) {
      case 'welcome':
        this.#deviceId = m.deviceId;
        this.#agentId = m.agentId;
        this.#failures = 0;
        this.#connection = 'connected';
        this.#emit({ type: 'welcome', deviceId: m.deviceId, agentId: m.agentId, serverVersion: m.serverVersion });
        this.#report();
        return;
      case 'work': {
        const known = this.#current?.work.leaseId === m.leaseId || this.#queue.some((l) => l.work.leaseId === m.leaseId);
        if (known) {
          this.#logger.warn(`ignored a second work message for lease ${m.leaseId}`);
          return;
        }
        this.#queue.push({ work: m, socket, cancelled: false, done: 0, failed: 0 });
        this.#report();
        this.#kick();
        return;
      }
      case 'cancel': {
        const before = this.#queue.length;
        this.#queue = this.#queue.filter((l) => l.work.leaseId !== m.leaseId);
        let known = this.#queue.length !== before;
        if (this.#current?.work.leaseId === m.leaseId) {
          this.#current.cancelled = true;
          known = true;
        }
        this.#emit({ type: 'cancel', leaseId: m.leaseId, reason: m.reason, known });
        this.#report();
        return;
      }
      case 'ack':
        this.#logger.debug?.(`ack ${m.leaseId}/${m.itemId}: ${m.status}`);
        return;
      case 'error':
        this.#lastError = `server: ${m.code}: ${m.message}`;
        this.#logger.debug?.(`the server refused a message: ${m.code}: ${m.message}`);
        this.#emit({ type: 'server-error', code: m.code, message: m.message });
        this.#report();
        return;
    }
  }

  #kick(): void {
    if (this.#busy) return;
    this.#busy = true;
    this.#idle = this.#drain();
  }

  async #drain(): Promise<void> {
    // Start on a later turn, so `#idle` is set before this can end.
    await Promise.resolve();
    try {
      while (this.#state === 'running' && this.#queue.length > 0) {
        const lease = this.#queue.shift()!;
        await this.#runLease(lease);
      }
    } finally {
      this.#busy = false;
      this.#current = null;
      this.#report();
    }
  }

  async #runLease(lease: Lease): Promise<void> {
    const { work } = lease;
    const total = work.items.length;
    const started = Date.now();
    this.#current = lease;
    this.#emit({ type: 'lease-start', leaseId: work.leaseId, jobId: work.jobId, runtime: work.runtime, items: total });
    this.#report();
    const adapter = this.#adapters.get(work.runtime);
    // The reference op every op of a profile job is timed against is prepared once per lease, not
    // once per item: half the model loads, which a runtime that leaks a little per load (TFLite in
    // a browser) cannot afford over a long job.
    const references = new Map<string, Runnable>();
    try {
      for (let index = 0; index < total; index++) {
        if (lease.cancelled || this.#state !== 'running') break;
        const item = work.items[index];
        const outcome = await this.#runItem(adapter, work, item, references);
        // A cancel or a close that came while measuring: the server no longer wants this result.
        if (lease.cancelled || this.#state !== 'running') break;
        if (!this.#send(lease.socket, outcome.message)) break;
        if (outcome.ok) {
          lease.done++;
          this.#itemsDone++;
          this.#emit({ type: 'item-done', leaseId: work.leaseId, itemId: item.itemId, index, total, medianMs: outcome.medianMs, stable: outcome.stable });
        } else {
          lease.failed++;
          this.#itemsFailed++;
          this.#lastError = `item ${item.itemId}: ${outcome.message.error.code}: ${outcome.message.error.message}`;
          this.#emit({ type: 'item-failed', leaseId: work.leaseId, itemId: item.itemId, index, total, code: outcome.message.error.code, message: outcome.message.error.message });
        }
        this.#report();
        await (this.#options.yieldToEventLoop ?? defaultYield)();
      }
    } finally {
      for (const r of references.values()) {
        try {
          r.dispose();
        } catch (err) {
          this.#logger.warn(`disposing a reference op of lease ${work.leaseId} failed: ${errorText(err)}`);
        }
      }
    }
    this.#leasesDone++;
    this.#current = null;
    this.#emit({ type: 'lease-end', leaseId: work.leaseId, done: lease.done, failed: lease.failed, skipped: total - lease.done - lease.failed, cancelled: lease.cancelled, ms: Date.now() - started });
    this.#report();
  }

  async #runItem(adapter: RuntimeAdapter | undefined, work: WorkMessage, item: WorkItem, references: Map<string, Runnable>): Promise<ItemOutcome> {
    const failed = (code: string, message: string): ItemOutcome => ({
      ok: false,
      message: { v: PROTOCOL_VERSION, type: 'item-failed', leaseId: work.leaseId, itemId: item.itemId, error: { code: clip(code, 64), message: clip(message, MAX_FAILURE_MESSAGE) } },
    });
    if (!adapter) {
      return failed('MORPH_ERR_BACKEND', `this agent does not serve runtime ${work.runtime}; it serves ${[...this.#adapters.keys()].join(', ')}`);
    }
    let runnable: Runnable | null = null;
    let reference: Runnable | null = null;
    try {
      runnable = item.kind === 'op' ? await adapter.prepareOp(item.spec) : await adapter.prepareNetwork(item);
      const prepared = runnable;
      // An item with a reference is timed interleaved with it, so that the ratio between the two
      // holds whatever speed the machine runs at meanwhile (src/measure/interleaved.ts).
      if (item.kind === 'network' && item.reference) reference = await adapter.prepareNetwork(item.reference);
      let ref = reference;
      if (item.kind === 'op' && item.reference) {
        const key = JSON.stringify(item.reference);
        ref = references.get(key) ?? null;
        if (!ref) {
          ref = await adapter.prepareOp(item.reference);
          references.set(key, ref);
        }
      }
      const paired = ref;
      // A coarse clock (a browser page: 100 µs steps) needs longer samples than the server asks.
      this.#clockTick ??= clockTickMs();
      const options = withClockFloor(work.measure, this.#clockTick);
      const m = paired ? await measurePaired(() => paired.run(), () => prepared.run(), options) : await measure(() => prepared.run(), options);
      const message: ResultMessage = { v: PROTOCOL_VERSION, type: 'result', leaseId: work.leaseId, itemId: item.itemId, measurement: toWireMeasurement({ ...m }) };
      const checked = resultSchema.safeParse(message);
      if (!checked.success) {
        return failed('MORPH_ERR_MEASUREMENT', `the measurement does not fit the protocol (${checked.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}); median ${m.medianMs} ms over ${m.n} samples`);
      }
      return { ok: true, message, medianMs: m.medianMs, stable: m.stable };
    } catch (err) {
      return failed(isMorphError(err) ? err.code : 'MORPH_ERR_INTERNAL', `${adapter.name}: ${errorText(err)}`);
    } finally {
      for (const r of [runnable, reference]) {
        try {
          r?.dispose();
        } catch (err) {
          this.#logger.warn(`disposing item ${item.itemId} failed: ${errorText(err)}`);
        }
      }
    }
  }
}

function defaultYield(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}
