/**
 * The agent's transport: the minimal WebSocket surface the protocol loop uses, a wrapper that
 * fits both the browser's `WebSocket` and `ws`'s, and the reconnection backoff. No Node imports.
 */

/**
 * The little of a WebSocket the loop needs. Handlers are set by the agent right after the
 * factory returns (before the connection can open). `onmessage` gets a text frame's string (any
 * other value is refused as invalid); `onclose` comes exactly once per socket, also after a
 * failed connection (code 1006), as browsers and `ws` both do.
 */
export interface SocketLike {
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: (() => void) | null;
  onmessage: ((data: unknown) => void) | null;
  onclose: ((code: number, reason: string) => void) | null;
  onerror: ((message: string) => void) | null;
}

/** Opens a socket to `url`; may throw for a URL it cannot use (the agent then stops). */
export type SocketFactory = (url: string) => SocketLike;

/**
 * The WHATWG WebSocket surface that both the browser's `WebSocket` and `ws`'s `WebSocket` (its
 * `onopen`/`onmessage`/`onclose`/`onerror` event API) have. The handler fields are `unknown`
 * here so that either class is accepted as it is; `socketFromWebSocket` sets them.
 */
export interface StandardWebSocket {
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: unknown;
  onmessage: unknown;
  onclose: unknown;
  onerror: unknown;
}

/** Wraps a browser `WebSocket` or a `ws` `WebSocket` as a `SocketLike`. */
export function socketFromWebSocket(ws: StandardWebSocket): SocketLike {
  const socket: SocketLike = {
    send: (data) => ws.send(data),
    close: (code, reason) => ws.close(code, reason),
    onopen: null,
    onmessage: null,
    onclose: null,
    onerror: null,
  };
  const target = ws as unknown as {
    onopen: () => void;
    onmessage: (event: { data: unknown }) => void;
    onclose: (event: { code: number; reason: string }) => void;
    onerror: (event: { message?: unknown }) => void;
  };
  target.onopen = () => socket.onopen?.();
  target.onmessage = (event) => socket.onmessage?.(event.data);
  target.onclose = (event) => socket.onclose?.(event.code, String(event.reason ?? ''));
  // Browsers give no detail on purpose; `ws` puts the cause in `message`.
  target.onerror = (event) => socket.onerror?.(typeof event?.message === 'string' && event.message !== '' ? event.message : 'WebSocket error');
  return socket;
}

/** Reconnection backoff: `initialMs · factor^attempt`, capped at `maxMs`, then ± `jitter`. */
export interface ReconnectOptions {
  /** First delay, ms. Default 500. */
  readonly initialMs?: number;
  /** Largest delay before jitter, ms. Default 30 000. */
  readonly maxMs?: number;
  /** Growth per failed attempt. Default 2. */
  readonly factor?: number;
  /** Relative jitter: the delay is multiplied by a uniform factor in [1 − jitter, 1 + jitter]. Default 0.5. */
  readonly jitter?: number;
  /** Uniform [0, 1) source. Default `Math.random`. */
  readonly random?: () => number;
}

export const DEFAULT_RECONNECT: Readonly<Required<ReconnectOptions>> = Object.freeze({
  initialMs: 500,
  maxMs: 30_000,
  factor: 2,
  jitter: 0.5,
  random: Math.random,
});

/** The delay before reconnect attempt `attempt` (0 for the first retry after a working connection), ms. */
export function reconnectDelay(attempt: number, options: ReconnectOptions = {}): number {
  const o = { ...DEFAULT_RECONNECT, ...options };
  const base = Math.min(o.maxMs, o.initialMs * o.factor ** Math.max(0, attempt));
  const j = Math.min(1, Math.max(0, o.jitter));
  return Math.max(0, Math.round(base * (1 - j + 2 * j * o.random())));
}
