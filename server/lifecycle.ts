/**
 * A running → closing → closed state machine for the server's long-lived parts (the server, the
 * fleet, the search service), after ws's WebSocketServer: `close()` runs the shutdown once, and a
 * second call (during or after it) returns the same promise instead of running it again.
 */

export const VALID_LIFECYCLE_STATES = ['running', 'closing', 'closed'] as const;
export type LifecycleState = (typeof VALID_LIFECYCLE_STATES)[number];

export class Lifecycle {
  #state: LifecycleState = 'running';
  #closed: Promise<void> | null = null;

  /** `running` until `close` is first called, `closing` while the shutdown runs, `closed` once it ended (even if it failed). */
  get state(): LifecycleState {
    return this.#state;
  }

  get running(): boolean {
    return this.#state === 'running';
  }

  /**
   * Runs `shutdown` on the first call and returns its promise; every later call returns that same
   * promise (so a failed shutdown reports the same failure, and nothing runs twice). The state is
   * `closing` as soon as this returns, before `shutdown`'s first await.
   */
  close(shutdown: () => Promise<void>): Promise<void> {
    if (this.#closed) return this.#closed;
    this.#state = 'closing';
    const run = async (): Promise<void> => {
      try {
        await shutdown();
      } finally {
        this.#state = 'closed';
      }
    };
    this.#closed = run();
    return this.#closed;
  }
}
