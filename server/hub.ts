/**
 * The WebSocket hub at `/agents`: authenticates agents, validates every frame and hands valid
 * ones to the fleet. A bad frame is answered with an `error` message and stored nowhere; an agent
 * that keeps sending bad frames is disconnected. Dead peers (a dropped network) are found by
 * ping/pong and disconnected, which re-queues their lease.
 *
 * A hello authenticates with the agent token or with a pairing code (server/pairings.ts). The
 * right one is always accepted; wrong ones count against the peer's address (`FailureLimiter`),
 * and past the limit they get 4429 instead of 4401 until the window ends.
 *
 * Before any of that, the upgrade itself is checked: a browser page of another origin is refused
 * (HTTP 403), and so is an upgrade past the cap on connections (`maxConnections`, HTTP 503) or on
 * connections from one address that have not said hello yet (`maxPendingPerAddress`, HTTP 429).
 * Both caps count a socket from the moment its upgrade is admitted, handshake included.
 */
import { STATUS_CODES, type IncomingMessage, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { CLOSE_CODES, HELLO_TIMEOUT_MS, MAX_AGENT_MESSAGE_BYTES, parseAgentMessage, PROTOCOL_VERSION, type ServerMessage } from '../src/protocol/agent-protocol.ts';
import { isMorphError } from '../src/errors.ts';
import { sameSecret, upgradeRefusal } from './auth.ts';
import type { HubStats } from './contract/devices.ts';
import type { AgentSession, Fleet } from './fleet.ts';
import { PAIRING_CODE_PATTERN, type Pairings } from './pairings.ts';
import { FailureLimiter } from './rate-limit.ts';

export const AGENTS_PATH = '/agents';
/** Default cap on the sockets of one address that have not said a valid hello yet. */
export const MAX_PENDING_PER_ADDRESS = 20;

export interface HubOptions {
  readonly fleet: Fleet;
  /** The agent token. */
  readonly token: string;
  readonly serverVersion: string;
  /** Ping interval, ms; a peer that misses a pong for one interval is dropped. Default 15 000. */
  readonly pingMs?: number;
  /** Invalid frames tolerated per connection before it is closed. Default 50. */
  readonly maxErrors?: number;
  /** Open connections at most (agents, not-yet-hello'd sockets and handshakes under way). Default 1000. */
  readonly maxConnections?: number;
  /**
   * Connections from one address that have not been accepted yet (handshake under way, or open
   * without a valid hello, for up to HELLO_TIMEOUT_MS). Default MAX_PENDING_PER_ADDRESS (20).
   */
  readonly maxPendingPerAddress?: number;
  /**
   * Whether the server has an admin token. Without one, upgrades must name a loopback `Host`, as
   * HTTP requests must (DNS rebinding). Default false.
   */
  readonly adminToken?: boolean;
  /** Pairing codes browsers may present in place of the token. Default: none accepted. */
  readonly pairings?: Pairings | null;
  /** Counts wrong tokens per peer address. Default: 20 per minute. */
  readonly limiter?: FailureLimiter;
  readonly log?: (line: string) => void;
}

export class Hub {
  readonly #wss: WebSocketServer;
  readonly #o: Required<Omit<HubOptions, 'log' | 'pairings' | 'limiter'>> & { log: (line: string) => void };
  readonly #pairings: Pairings | null;
  readonly #limiter: FailureLimiter;
  readonly #alive = new WeakMap<WebSocket, boolean>();
  /** The pairing each connection authenticated with, to close it when the pairing is revoked. */
  readonly #pairingOf = new WeakMap<WebSocket, string>();
  readonly #pinger: NodeJS.Timeout;
  /** Sockets admitted by `#upgrade` and not closed yet: handshakes under way and open connections. */
  #admitted = 0;
  /** Per peer address, admitted sockets whose hello has not been accepted yet. */
  readonly #pendingByPeer = new Map<string, number>();
  /** How each admitted upgrade stops counting as pending (once its hello is accepted). */
  readonly #settlePending = new WeakMap<IncomingMessage, () => void>();
  #framesIn = 0;
  #rejected = 0;

  constructor(options: HubOptions) {
    this.#o = {
      fleet: options.fleet,
      token: options.token,
      serverVersion: options.serverVersion,
      pingMs: options.pingMs ?? 15_000,
      maxErrors: options.maxErrors ?? 50,
      adminToken: options.adminToken ?? false,
      maxConnections: options.maxConnections ?? 1000,
      maxPendingPerAddress: options.maxPendingPerAddress ?? MAX_PENDING_PER_ADDRESS,
      log: options.log ?? (() => undefined),
    };
    this.#pairings = options.pairings ?? null;
    this.#limiter = options.limiter ?? new FailureLimiter({ maxFailures: 20, windowMs: 60_000 });
    this.#pairings?.onRevoke((id) => {
      for (const ws of this.#wss.clients) if (this.#pairingOf.get(ws) === id) ws.close(CLOSE_CODES.unauthorized, 'pairing revoked');
    });
    this.#wss = new WebSocketServer({ noServer: true, maxPayload: MAX_AGENT_MESSAGE_BYTES, perMessageDeflate: false });
    this.#wss.on('connection', (ws: WebSocket, req: IncomingMessage) => this.#accept(ws, req));
    this.#pinger = setInterval(() => {
      for (const ws of this.#wss.clients) {
        if (this.#alive.get(ws) === false) {
          ws.terminate();
          continue;
        }
        this.#alive.set(ws, false);
        ws.ping();
      }
    }, this.#o.pingMs);
    this.#pinger.unref();
  }

  /** Routes HTTP upgrades for `/agents` to the hub; others are refused. */
  attach(server: Server): void {
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.#upgrade(req, socket, head));
  }

  #upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    // Node's HTTP server removed its own error listener when it handed the socket over: without
    // one, a peer resetting the connection mid-refusal would throw from the 'error' event.
    socket.on('error', socketOnError);
    const path = (req.url ?? '').split('?')[0];
    if (path !== AGENTS_PATH) return abortUpgrade(socket, 404, `no WebSocket endpoint here; agents connect to ${AGENTS_PATH} [MORPH_ERR_NOT_FOUND]`);
    const refusal = upgradeRefusal(req, this.#o.adminToken);
    if (refusal !== null) return abortUpgrade(socket, 403, `${refusal} [MORPH_ERR_FORBIDDEN]`);
    if (this.#admitted >= this.#o.maxConnections) {
      return abortUpgrade(socket, 503, `the server holds ${this.#admitted} agent connections, its limit; retry later [MORPH_ERR_UNAVAILABLE]`, { 'Retry-After': '30' });
    }
    const peer = req.socket.remoteAddress ?? 'unknown';
    const pending = this.#pendingByPeer.get(peer) ?? 0;
    if (pending >= this.#o.maxPendingPerAddress) {
      const retryS = Math.ceil(HELLO_TIMEOUT_MS / 1000);
      return abortUpgrade(socket, 429, `${pending} connections from this address have not said hello yet, the limit; say hello at once after connecting, or retry in ${retryS} s [MORPH_ERR_RATE_LIMITED]`, { 'Retry-After': String(retryS) });
    }
    // Counted from now (the handshake is under way) until the socket closes, or until the hello is accepted for `pending`.
    this.#admitted++;
    this.#pendingByPeer.set(peer, pending + 1);
    let settled = false;
    const settle = (): void => {
      if (settled) return;
      settled = true;
      const n = (this.#pendingByPeer.get(peer) ?? 1) - 1;
      if (n > 0) this.#pendingByPeer.set(peer, n);
      else this.#pendingByPeer.delete(peer);
    };
    this.#settlePending.set(req, settle);
    socket.once('close', () => {
      this.#admitted--;
      settle();
    });
    this.#wss.handleUpgrade(req, socket, head, (ws) => this.#wss.emit('connection', ws, req));
  }

  stats(): HubStats {
    return { connected: this.#wss.clients.size, framesIn: this.#framesIn, rejected: this.#rejected };
  }

  /**
   * Checks the hello's token: the agent token, or a pairing code (bound to the hello's device
   * key). null when accepted; otherwise the error to send and the close reason. A right token is
   * accepted whatever the address's count; a wrong one is counted, and answered 4429 instead of
   * 4401 once the address is over its limit.
   */
  #authenticate(ws: WebSocket, token: string, deviceKey: string, peer: string): { code: 'MORPH_ERR_UNAUTHORIZED' | 'MORPH_ERR_RATE_LIMITED'; message: string; closeCode: number; reason: string } | null {
    if (sameSecret(token, this.#o.token)) return null;
    let reason = 'unauthorized';
    let message = 'wrong agent token; use the token the server printed at start (or its MORPHNET_AGENT_TOKEN), or a pairing link';
    if (this.#pairings && PAIRING_CODE_PATTERN.test(token)) {
      const r = this.#pairings.redeem(token, deviceKey);
      if (r.ok) {
        this.#pairingOf.set(ws, r.pairingId);
        return null;
      }
      reason = r.reason === 'expired' ? 'pairing link expired' : r.reason === 'other-device' ? 'pairing link used by another device' : 'pairing link unknown';
      message = r.message;
    }
    const limited = this.#limiter.refuse(peer);
    if (limited) return { code: limited.code, message: limited.message, closeCode: CLOSE_CODES.tooManyErrors, reason: 'too many wrong tokens' };
    return { code: 'MORPH_ERR_UNAUTHORIZED', message, closeCode: CLOSE_CODES.unauthorized, reason };
  }

  #accept(ws: WebSocket, req: IncomingMessage): void {
    const peer = req.socket.remoteAddress ?? 'unknown';
    this.#alive.set(ws, true);
    ws.on('pong', () => this.#alive.set(ws, true));
    let session: AgentSession | null = null;
    let registering = false;
    let errors = 0;
    const send = (m: ServerMessage): void => {
      if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(m));
    };
    const refuse = (code: string, message: string, ref?: { leaseId?: string; itemId?: number }): void => {
      this.#rejected++;
      send({ v: PROTOCOL_VERSION, type: 'error', code, message, ...(ref ? { ref } : {}) });
      if (++errors > this.#o.maxErrors) ws.close(CLOSE_CODES.tooManyErrors, 'too many invalid messages');
    };
    const helloTimer = setTimeout(() => ws.close(CLOSE_CODES.helloTimeout, 'no hello'), HELLO_TIMEOUT_MS);
    helloTimer.unref();

    ws.on('message', (data: RawData, isBinary: boolean) => {
      this.#framesIn++;
      if (isBinary) return refuse('MORPH_ERR_PROTOCOL', 'binary frames are not part of the protocol; send JSON text');
      const parsed = parseAgentMessage(data.toString());
      if (!parsed.ok) {
        if (!session && !registering) {
          clearTimeout(helloTimer);
          this.#rejected++;
          send({ v: PROTOCOL_VERSION, type: 'error', code: parsed.code, message: `the first message must be a valid hello: ${parsed.message}` });
          ws.close(CLOSE_CODES.badHello, 'bad hello');
          return;
        }
        return refuse(parsed.code, parsed.message);
      }
      const msg = parsed.message;
      if (msg.type === 'hello') {
        if (session || registering) return refuse('MORPH_ERR_PROTOCOL', 'hello was already received on this connection');
        clearTimeout(helloTimer);
        const refused = this.#authenticate(ws, msg.token, msg.deviceKey, peer);
        if (refused) {
          this.#rejected++;
          send({ v: PROTOCOL_VERSION, type: 'error', code: refused.code, message: refused.message });
          ws.close(refused.closeCode, refused.reason);
          return;
        }
        this.#settlePending.get(req)?.();
        registering = true;
        void this.#o.fleet
          .connect(msg, { send })
          .then((s) => {
            registering = false;
            if (ws.readyState !== ws.OPEN) {
              void this.#o.fleet.disconnect(s.agentId);
              return;
            }
            session = s;
            this.#o.log(`agent ${s.agentId} "${msg.name}" connected for device ${s.deviceId} (${msg.runtimes.map((r) => r.name).join(', ')})`);
            send({ v: PROTOCOL_VERSION, type: 'welcome', deviceId: s.deviceId, agentId: s.agentId, serverVersion: this.#o.serverVersion });
          })
          .catch((err: unknown) => {
            registering = false;
            this.#o.log(`agent registration failed: ${err instanceof Error ? err.message : String(err)}`);
            ws.close(1011, 'registration failed');
          });
        return;
      }
      if (!session && !registering) {
        clearTimeout(helloTimer);
        this.#rejected++;
        send({ v: PROTOCOL_VERSION, type: 'error', code: 'MORPH_ERR_PROTOCOL', message: `the first message must be a hello, got ${msg.type}` });
        ws.close(CLOSE_CODES.badHello, 'bad hello');
        return;
      }
      if (!session) return refuse('MORPH_ERR_PROTOCOL', 'wait for the welcome before sending results');
      const agentId = session.agentId;
      const handled = msg.type === 'result' ? this.#o.fleet.result(agentId, msg) : this.#o.fleet.itemFailed(agentId, msg);
      handled
        .then((answer) => {
          if (answer.type === 'error') refuse(answer.code, answer.message, answer.ref);
          else send(answer);
        })
        .catch((err: unknown) => {
          this.#o.log(`storing a ${msg.type} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
          refuse(isMorphError(err) ? err.code : 'MORPH_ERR_INTERNAL', 'the server could not store this message; it was not stored, send it again later');
        });
    });
    ws.on('close', () => {
      clearTimeout(helloTimer);
      if (session) {
        this.#o.log(`agent ${session.agentId} disconnected`);
        void this.#o.fleet.disconnect(session.agentId);
      }
    });
    ws.on('error', () => undefined);
  }

  /** Closes every agent connection with the shutting-down code. */
  async close(): Promise<void> {
    clearInterval(this.#pinger);
    for (const ws of this.#wss.clients) ws.close(CLOSE_CODES.shuttingDown, 'server shutting down');
    await new Promise<void>((resolve) => this.#wss.close(() => resolve()));
  }
}

function socketOnError(this: Duplex): void {
  this.destroy();
}

/** Answers a refused upgrade with a plain HTTP response, then closes the socket. */
function abortUpgrade(socket: Duplex, status: number, message: string, headers: Record<string, string> = {}): void {
  const body = `${message}\n`;
  const head = [
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}`,
    'Connection: close',
    'Content-Type: text/plain; charset=utf-8',
    `Content-Length: ${Buffer.byteLength(body)}`,
    'Cache-Control: no-store',
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
  ];
  socket.once('finish', () => socket.destroy());
  socket.end(`${head.join('\r\n')}\r\n\r\n${body}`);
}
