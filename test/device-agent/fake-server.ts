/**
 * A minimal stand-in for the server's agent hub: a real `ws` WebSocketServer on 127.0.0.1, port
 * 0, that records what each connection sends and lets a test answer by hand. Every wait has a
 * timeout, so a test that goes wrong fails instead of hanging.
 */
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { PROTOCOL_VERSION, type WorkItem } from '../../src/protocol/agent-protocol.ts';

/** A parsed message from the agent (loosely typed: tests check it against the schemas). */
export type Frame = { type: string; [key: string]: unknown };

const DEFAULT_WAIT_MS = 15_000;

function deadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export class FakeConnection {
  readonly ws: WebSocket;
  /** Every frame received, raw text, in order. */
  readonly raw: string[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  #pending: Frame[] = [];
  #waiters: Array<{ type: string | undefined; resolve: (f: Frame) => void }> = [];

  constructor(ws: WebSocket) {
    this.ws = ws;
    this.closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
    ws.on('message', (data) => {
      const text = data.toString();
      this.raw.push(text);
      const frame = JSON.parse(text) as Frame;
      const i = this.#waiters.findIndex((w) => w.type === undefined || w.type === frame.type);
      if (i >= 0) this.#waiters.splice(i, 1)[0].resolve(frame);
      else this.#pending.push(frame);
    });
  }

  /** The next frame not yet taken (of `type`, if given); frames of other types stay queued. */
  next(type?: string, ms = DEFAULT_WAIT_MS): Promise<Frame> {
    const i = this.#pending.findIndex((f) => type === undefined || f.type === type);
    if (i >= 0) return Promise.resolve(this.#pending.splice(i, 1)[0]);
    const waiter = { type, resolve: (_: Frame) => {} };
    const got = new Promise<Frame>((resolve) => {
      waiter.resolve = resolve;
      this.#waiters.push(waiter);
    });
    // A waiter that timed out must not swallow a later frame.
    return deadline(got, ms, `a ${type ?? 'any'} frame`).catch((err: unknown) => {
      this.#waiters = this.#waiters.filter((w) => w !== waiter);
      throw err;
    });
  }

  /** Frames received and not yet taken. */
  get pending(): readonly Frame[] {
    return this.#pending;
  }

  send(message: object | string): void {
    this.ws.send(typeof message === 'string' ? message : JSON.stringify(message));
  }

  welcome(deviceId = 'dev-1', agentId = 'agent-1'): void {
    this.send({ v: PROTOCOL_VERSION, type: 'welcome', deviceId, agentId, serverVersion: '0.1.0-test' });
  }

  work(leaseId: string, runtime: string, items: WorkItem[] | object[], measure: object = QUICK_MEASURE): void {
    this.send({ v: PROTOCOL_VERSION, type: 'work', leaseId, jobId: `job-${leaseId}`, runtime, leaseMs: 60_000, measure, items });
  }

  /** Waits for one `result` or `item-failed` per item of a lease; returns them by itemId. */
  async answers(leaseId: string, count: number, ms = 60_000): Promise<Map<number, Frame>> {
    const out = new Map<number, Frame>();
    const end = Date.now() + ms;
    while (out.size < count) {
      const frame = await this.next(undefined, Math.max(1, end - Date.now()));
      if ((frame.type === 'result' || frame.type === 'item-failed') && frame.leaseId === leaseId) out.set(frame.itemId as number, frame);
    }
    return out;
  }
}

/** Quick protocol options for tests: a handful of samples, at most 2 s per item. */
export const QUICK_MEASURE = { warmupRuns: 1, warmupMs: 0, minSamples: 3, minWindowMs: 0, maxMs: 2000 } as const;

export class FakeServer {
  readonly wss: WebSocketServer;
  readonly port: number;
  readonly connections: FakeConnection[] = [];
  #waiters: Array<(c: FakeConnection) => void> = [];
  #taken = 0;

  private constructor(wss: WebSocketServer) {
    this.wss = wss;
    this.port = (wss.address() as AddressInfo).port;
    wss.on('connection', (ws) => {
      const c = new FakeConnection(ws);
      this.connections.push(c);
      const w = this.#waiters.shift();
      if (w) {
        this.#taken++;
        w(c);
      }
    });
  }

  static async start(): Promise<FakeServer> {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, path: '/agents' });
    await new Promise<void>((resolve, reject) => {
      wss.once('listening', resolve);
      wss.once('error', reject);
    });
    return new FakeServer(wss);
  }

  get url(): string {
    return `ws://127.0.0.1:${this.port}/agents`;
  }

  /** The next connection not yet taken by a test. */
  nextConnection(ms = DEFAULT_WAIT_MS): Promise<FakeConnection> {
    if (this.#taken < this.connections.length) return Promise.resolve(this.connections[this.#taken++]);
    let waiter: (c: FakeConnection) => void = () => {};
    const got = new Promise<FakeConnection>((resolve) => {
      waiter = resolve;
      this.#waiters.push(waiter);
    });
    return deadline(got, ms, 'an agent connection').catch((err: unknown) => {
      this.#waiters = this.#waiters.filter((w) => w !== waiter);
      throw err;
    });
  }

  async close(): Promise<void> {
    for (const c of this.wss.clients) c.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }
}
