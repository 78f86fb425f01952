/**
 * Failed-attempt limiting per client address: after `maxFailures` wrong tokens within
 * `windowMs`, an address gets no more token checks (429 on HTTP, close 4429 on the WebSocket)
 * until its window ends. Fixed windows, in memory, bounded in the number of addresses kept.
 *
 * The key is the peer address of the TCP connection. Behind a reverse proxy every client shares
 * the proxy's address, so one guesser locks everyone out of *new* logins for a window; sessions
 * already open keep working (see docs/security.md).
 */

export interface FailureLimitOptions {
  /** Failures allowed per window. Default 10. */
  readonly maxFailures?: number;
  /** Window length, ms; it starts at an address's first failure. Default 60 000. */
  readonly windowMs?: number;
  /** Addresses remembered at most (the oldest is dropped). Default 10 000. */
  readonly maxKeys?: number;
  /** The clock, ms (tests inject one). Default Date.now. */
  readonly now?: () => number;
}

interface Window {
  count: number;
  readonly resetAt: number;
}

export class FailureLimiter {
  readonly #max: number;
  readonly #windowMs: number;
  readonly #maxKeys: number;
  readonly #now: () => number;
  readonly #windows = new Map<string, Window>();

  constructor(options: FailureLimitOptions = {}) {
    this.#max = options.maxFailures ?? 10;
    this.#windowMs = options.windowMs ?? 60_000;
    this.#maxKeys = options.maxKeys ?? 10_000;
    this.#now = options.now ?? Date.now;
    if (!Number.isInteger(this.#max) || this.#max < 1) throw new RangeError(`maxFailures must be a positive integer, got ${this.#max}`);
    if (!(this.#windowMs > 0)) throw new RangeError(`windowMs must be positive, got ${this.#windowMs}`);
  }

  #current(key: string): Window | undefined {
    const w = this.#windows.get(key);
    if (w && w.resetAt <= this.#now()) {
      this.#windows.delete(key);
      return undefined;
    }
    return w;
  }

  /** ms until `key` may try a token again; 0 when it may now. */
  blockedFor(key: string): number {
    const w = this.#current(key);
    return w && w.count >= this.#max ? w.resetAt - this.#now() : 0;
  }

  /** Counts one failed attempt of `key`. */
  fail(key: string): void {
    const w = this.#current(key);
    if (w) {
      w.count++;
      return;
    }
    if (this.#windows.size >= this.#maxKeys) {
      for (const [k, old] of this.#windows) if (old.resetAt <= this.#now()) this.#windows.delete(k);
      if (this.#windows.size >= this.#maxKeys) this.#windows.delete(this.#windows.keys().next().value as string);
    }
    this.#windows.set(key, { count: 1, resetAt: this.#now() + this.#windowMs });
  }
}
