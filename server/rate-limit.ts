/**
 * Wrong-token limiting per client address: after `maxFailures` wrong tokens within `windowMs`,
 * further *wrong* tokens from that address are answered 429 (HTTP) or 4429 (WebSocket) instead of
 * 401/4401 until its window ends. Fixed windows, in memory, bounded in the number of addresses kept.
 *
 * A right token is never refused, blocked address or not: the key is the TCP peer address, and
 * behind a same-host proxy or Docker's gateway every client shares one, as do the built-in local
 * agent and any web page that opens ws://127.0.0.1:PORT/agents. Refusing right tokens there would
 * let one anonymous client lock out every agent, CLI user and login. Nor is it needed: the
 * tokens are at least 16 random characters and pairing codes 128 random bits, far beyond
 * guessing at any rate a socket allows. The limiter only keeps noise (a misconfigured agent
 * retrying, a scanner) short and visible (see docs/security.md).
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

  /** ms until `key`'s wrong tokens get 401/4401 again; 0 when they do now. */
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

  /**
   * Counts a wrong token from `key`. Returns the refusal to give instead of the usual 401/4401
   * when `key` is over its limit already (that token is then not counted again), else null.
   * Call it only for wrong tokens: a right one is accepted whatever the count.
   */
  refuse(key: string): RateLimited | null {
    const waitMs = this.blockedFor(key);
    if (waitMs > 0) return rateLimited(waitMs);
    this.fail(key);
    return null;
  }
}

/** The answer to a wrong token from a blocked address: 429 with Retry-After, or close 4429. */
export interface RateLimited {
  readonly code: 'MORPH_ERR_RATE_LIMITED';
  readonly message: string;
  /** Seconds until the address's window ends (the Retry-After value). */
  readonly retryAfterS: number;
}

function rateLimited(waitMs: number): RateLimited {
  const retryAfterS = Math.max(1, Math.ceil(waitMs / 1000));
  return { code: 'MORPH_ERR_RATE_LIMITED', message: `too many wrong tokens from this address; try again in ${retryAfterS} s (a right token is still accepted)`, retryAfterS };
}
