/**
 * The WebSocket hub at `/agents`: authenticates agents, validates every frame and hands valid
 * ones to the fleet. A bad frame is answered with an `error` message and stored nowhere; an agent
 * that keeps sending bad frames is disconnected. Dead peers (a dropped network) are found by
 * ping/pong and disconnected, which re-queues their lease.
 *
 * A hello authenticates with the agent token or with a pairing code (server/pairings.ts). Wrong
 * ones count against the peer's address (`FailureLimiter`): past the limit its hellos are
 * refused with 4429 until the window ends. Connections are capped (`maxConnections`); an upgrade
 * past the cap gets HTTP 503.
 */
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { CLOSE_CODES, HELLO_TIMEOUT_MS, MAX_AGENT_MESSAGE_BYTES, parseAgentMessage, PROTOCOL_VERSION, type ServerMessage } from '../src/protocol/agent-protocol.ts';
import { isMorphError } from '../src/errors.ts';
import { sameSecret } from './auth.ts';
import type { AgentSession, Fleet } from './fleet.ts';
import { PAIRING_CODE_PATTERN, type Pairings } from './pairings.ts';
import { FailureLimiter } from './rate-limit.ts';

export const AGENTS_PATH = '/agents';

export interface HubOptions {
  readonly fleet: Fleet;
  /** The agent token. */
  readonly token: string;
  readonly serverVersion: string;
  /** Ping interval, ms; a peer that misses a pong for one interval is dropped. Default 15 000. */
  readonly pingMs?: number;
  /** Invalid frames tolerated per connection before it is closed. Default 50. */
  readonly maxErrors?: number;
  /** Open connections at most (agents and not-yet-hello'd sockets). Default 1000. */
  readonly maxConnections?: number;
  /** Pairing codes browsers may present in place of the token. Default: none accepted. */
  readonly pairings?: Pairings | null;
  /** Counts wrong tokens per peer address. Default: 20 per minute. */
  readonly limiter?: FailureLimiter;
  readonly log?: (line: string) => void;
}

export interface HubStats {
  readonly connected: number;
  readonly framesIn: number;
  readonly rejected: number;
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
  #framesIn = 0;
  #rejected = 0;

  constructor(options: HubOptions) {
    this.#o = {
      fleet: options.fleet,
      token: options.token,
      serverVersion: options.serverVersion,
      pingMs: options.pingMs ?? 15_000,
      maxErrors: options.maxErrors ?? 50,
      maxConnections: options.maxConnections ?? 1000,
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
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      const path = (req.url ?? '').split('?')[0];
      if (path !== AGENTS_PATH) {
        socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
        return;
      }
      if (this.#wss.clients.size >= this.#o.maxConnections) {
        socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 30\r\n\r\n');
        return;
      }
      this.#wss.handleUpgrade(req, socket, head, (ws) => this.#wss.emit('connection', ws, req));
    });
  }

  stats(): HubStats {
    return { connected: this.#wss.clients.size, framesIn: this.#framesIn, rejected: this.#rejected };
  }

  /**
   * Checks the hello's token: the agent token, or a pairing code (bound to the hello's device
   * key). null when accepted; otherwise the error to send and the close reason.
   */
  #authenticate(ws: WebSocket, token: string, deviceKey: string, peer: string): { code: 'MORPH_ERR_UNAUTHORIZED' | 'MORPH_ERR_RATE_LIMITED'; message: string; closeCode: number; reason: string } | null {
    const waitMs = this.#limiter.blockedFor(peer);
    if (waitMs > 0) {
      return { code: 'MORPH_ERR_RATE_LIMITED', message: `too many wrong tokens from this address; try again in ${Math.ceil(waitMs / 1000)} s`, closeCode: CLOSE_CODES.tooManyErrors, reason: 'too many wrong tokens' };
    }
    if (sameSecret(token, this.#o.token)) return null;
    if (this.#pairings && PAIRING_CODE_PATTERN.test(token)) {
      const r = this.#pairings.redeem(token, deviceKey);
      if (r.ok) {
        this.#pairingOf.set(ws, r.pairingId);
        return null;
      }
      this.#limiter.fail(peer);
      return { code: 'MORPH_ERR_UNAUTHORIZED', message: r.message, closeCode: CLOSE_CODES.unauthorized, reason: r.reason === 'expired' ? 'pairing link expired' : r.reason === 'other-device' ? 'pairing link used by another device' : 'pairing link unknown' };
    }
    this.#limiter.fail(peer);
    return {
      code: 'MORPH_ERR_UNAUTHORIZED',
      message: 'wrong agent token; use the token the server printed at start (or its MORPHNET_AGENT_TOKEN), or a pairing link',
      closeCode: CLOSE_CODES.unauthorized,
      reason: 'unauthorized',
    };
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
