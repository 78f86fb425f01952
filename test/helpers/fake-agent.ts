/**
 * A simulated device agent for server tests and the hub capacity bench: it speaks protocol v1
 * over a real WebSocket and answers every work item with a fake timing (a deterministic function
 * of the item), so that the server's storing, leasing and acking can be checked exactly.
 */
import WebSocket from 'ws';
import { PROTOCOL_VERSION, type HelloMessage, type ServerMessage, type WireMeasurement, type WorkMessage } from '../../src/protocol/agent-protocol.ts';

export interface FakeAgentOptions {
  readonly url: string;
  readonly token: string;
  readonly deviceKey?: string;
  readonly name?: string;
  readonly runtimes?: HelloMessage['runtimes'][number]['name'][];
  /** ms before answering each item. Default 0. */
  readonly delayMs?: number;
  /** Do not answer work at all (to hold a lease). */
  readonly silent?: boolean;
  /** The median to report for an item (default `fakeMedian(itemId)`). */
  readonly medianOf?: (item: WorkMessage['items'][number]) => number;
  /** The whole measurement to report for an item (e.g. a simulated device's, with reference figures); wins over `medianOf`. */
  readonly measurementOf?: (item: WorkMessage['items'][number]) => WireMeasurement;
  /** Items to answer in all (see `FakeAgent.answerLimit`). Default unlimited. */
  readonly answerLimit?: number;
}

export interface AckTiming {
  readonly itemId: number;
  readonly status: string;
  /** ms from sending the result to receiving its ack. */
  readonly ms: number;
}

export const fakeMedian = (itemId: number): number => 0.5 + (itemId % 97) / 10;

export class FakeAgent {
  readonly ws: WebSocket;
  readonly messages: ServerMessage[] = [];
  readonly acks: AckTiming[] = [];
  readonly errors: ServerMessage[] = [];
  readonly leases: WorkMessage[] = [];
  deviceId: string | null = null;
  agentId: string | null = null;
  closeCode: number | null = null;
  /**
   * Items answered in all before the agent stops answering and holds its leases, as a device
   * still busy would: lets a test stop a server while a job is certainly unfinished, however
   * fast the machine runs. May be changed at any time; `answered` counts the items it answered.
   */
  answerLimit: number;
  answered = 0;
  readonly #sentAt = new Map<number, number>();
  readonly #o: FakeAgentOptions;
  readonly #waiters: { test: () => boolean; resolve: () => void }[] = [];

  constructor(options: FakeAgentOptions) {
    this.#o = options;
    this.answerLimit = options.answerLimit ?? Number.POSITIVE_INFINITY;
    this.ws = new WebSocket(options.url);
    this.ws.on('message', (data) => this.#onMessage(JSON.parse(data.toString()) as ServerMessage));
    this.ws.on('close', (code) => {
      this.closeCode = code;
      this.#poke();
    });
    this.ws.on('error', () => undefined);
  }

  static async connect(options: FakeAgentOptions): Promise<FakeAgent> {
    const a = new FakeAgent(options);
    await new Promise<void>((resolve, reject) => {
      a.ws.once('open', () => resolve());
      a.ws.once('error', reject);
    });
    a.send(a.hello());
    await a.until(() => a.deviceId !== null || a.closeCode !== null);
    return a;
  }

  hello(overrides: Partial<HelloMessage> = {}): HelloMessage {
    return {
      v: PROTOCOL_VERSION,
      type: 'hello',
      token: this.#o.token,
      deviceKey: this.#o.deviceKey ?? 'fake-device-key-0001',
      name: this.#o.name ?? 'fake agent',
      agentVersion: 'test',
      env: { platform: 'node', os: 'linux', arch: 'x64', cpuModel: 'fake cpu', cores: 4 },
      runtimes: (this.#o.runtimes ?? ['tfjs-wasm', 'tflite']).map((name) => ({ name, version: 'fake 1.0' })),
      ...overrides,
    };
  }

  send(message: unknown): void {
    this.ws.send(typeof message === 'string' ? message : JSON.stringify(message));
  }

  sendResult(leaseId: string, itemId: number, medianMs = fakeMedian(itemId)): void {
    this.sendMeasurement(leaseId, itemId, { medianMs, p10Ms: medianMs * 0.9, p90Ms: medianMs * 1.1, meanMs: medianMs, cv: 0.05, n: 20, runsPerSample: 1, stable: true, attempts: 1, totalMs: 250 });
  }

  sendMeasurement(leaseId: string, itemId: number, measurement: WireMeasurement): void {
    this.#sentAt.set(itemId, performance.now());
    this.send({ v: PROTOCOL_VERSION, type: 'result', leaseId, itemId, measurement });
  }

  #onMessage(m: ServerMessage): void {
    this.messages.push(m);
    if (m.type === 'welcome') {
      this.deviceId = m.deviceId;
      this.agentId = m.agentId;
    } else if (m.type === 'work') {
      this.leases.push(m);
      if (!this.#o.silent) void this.#answer(m);
    } else if (m.type === 'ack') {
      const t = this.#sentAt.get(m.itemId);
      this.acks.push({ itemId: m.itemId, status: m.status, ms: t === undefined ? NaN : performance.now() - t });
    } else if (m.type === 'error') {
      this.errors.push(m);
    }
    this.#poke();
  }

  async #answer(work: WorkMessage): Promise<void> {
    for (const item of work.items) {
      if (this.ws.readyState !== WebSocket.OPEN || this.answered >= this.answerLimit) return;
      if (this.#o.delayMs) await new Promise((r) => setTimeout(r, this.#o.delayMs));
      if (this.ws.readyState !== WebSocket.OPEN || this.answered >= this.answerLimit) return;
      this.answered++;
      if (this.#o.measurementOf) this.sendMeasurement(work.leaseId, item.itemId, this.#o.measurementOf(item));
      else this.sendResult(work.leaseId, item.itemId, this.#o.medianOf?.(item));
    }
  }

  #poke(): void {
    for (const w of [...this.#waiters]) {
      if (w.test()) {
        this.#waiters.splice(this.#waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  }

  /** Resolves when `test` holds (checked on every message), rejects after `timeoutMs` (a bound on the wait only). */
  until(test: () => boolean, timeoutMs = 30_000): Promise<void> {
    if (test()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const w = {
        test,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      const timer = setTimeout(() => {
        this.#waiters.splice(this.#waiters.indexOf(w), 1);
        reject(new Error(`fake agent: condition not met within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#waiters.push(w);
    });
  }

  close(): void {
    this.ws.close();
  }

  /** Drops the TCP connection without a close handshake, as a lost network would. */
  destroy(): void {
    this.ws.terminate();
  }
}
