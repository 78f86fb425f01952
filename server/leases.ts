/**
 * The leases, in memory: which agent holds which items of which job, until when, and which results
 * a device may still deliver (every lease issued since start, live or ended). A lease does not
 * survive a restart: the fleet puts its items back to pending (server/fleet.ts `recover`). This
 * module never touches the database; the fleet issues and ends leases and keeps the items' rows in
 * step.
 */
import type { AgentSession } from './fleet.ts';

export interface Lease {
  readonly id: string;
  readonly jobId: string;
  readonly deviceId: string;
  readonly agent: AgentSession;
  /** The items without a result yet. */
  readonly items: Set<number>;
  /** Time allowed per item, ms. */
  readonly perItemMs: number;
  timer: NodeJS.Timeout | null;
}

export interface LeasesOptions {
  /** Slack added to every lease's deadline, ms. */
  readonly slackMs: number;
  /** Called when a live lease's deadline passes; the lease is still live then (the callee ends it). */
  readonly onExpired: (lease: Lease) => void;
}

export class Leases {
  readonly #o: LeasesOptions;
  readonly #live = new Map<string, Lease>();
  /** Every lease issued since start, for accepting late results: leaseId → device, job and items. */
  readonly #issued = new Map<string, { deviceId: string; jobId: string; items: ReadonlySet<number> }>();

  constructor(options: LeasesOptions) {
    this.#o = options;
  }

  /** A new live lease of `items` to `agent` (its `lease` from now on). Its timer starts with `arm`. */
  issue(id: string, jobId: string, agent: AgentSession, items: readonly number[], perItemMs: number): Lease {
    const lease: Lease = { id, jobId, deviceId: agent.deviceId, agent, items: new Set(items), perItemMs, timer: null };
    agent.lease = lease;
    this.#live.set(id, lease);
    this.#issued.set(id, { deviceId: agent.deviceId, jobId, items: new Set(items) });
    return lease;
  }

  /** The time the lease allows for the items it still has, ms. */
  deadlineMs(lease: Lease): number {
    return lease.items.size * lease.perItemMs + this.#o.slackMs;
  }

  /** (Re)starts the lease's expiry timer from now, for the items it still has. */
  arm(lease: Lease): void {
    if (lease.timer) clearTimeout(lease.timer);
    lease.timer = setTimeout(() => {
      if (this.#live.get(lease.id) === lease) this.#o.onExpired(lease);
    }, this.deadlineMs(lease));
    lease.timer.unref?.();
  }

  /** Ends the lease: its timer stops and its agent is free. Its late results are still accepted (`wasIssued`). */
  drop(lease: Lease): void {
    if (lease.timer) clearTimeout(lease.timer);
    lease.timer = null;
    this.#live.delete(lease.id);
    if (lease.agent.lease === lease) lease.agent.lease = null;
  }

  /** The live lease `id`. */
  get(id: string): Lease | undefined {
    return this.#live.get(id);
  }

  /** Every live lease. */
  all(): Lease[] {
    return [...this.#live.values()];
  }

  /** The live leases of a job. */
  ofJob(jobId: string): Lease[] {
    return this.all().filter((l) => l.jobId === jobId);
  }

  /** The device holds a live lease (one at a time per device). */
  busy(deviceId: string): boolean {
    for (const l of this.#live.values()) if (l.deviceId === deviceId) return true;
    return false;
  }

  /** Item `itemId` was leased to `deviceId` under `leaseId` (live or ended). */
  wasIssued(deviceId: string, leaseId: string, itemId: number): boolean {
    const issued = this.#issued.get(leaseId);
    return issued !== undefined && issued.deviceId === deviceId && issued.items.has(itemId);
  }

  /** Live leases other than `leaseId` still waiting for `itemId` (it was leased again before the first result came). */
  holding(itemId: number, leaseId: string): Lease[] {
    return this.all().filter((l) => l.id !== leaseId && l.items.has(itemId));
  }

  /** Forgets the ended leases of a finished job: they can deliver nothing any more. */
  forgetJob(jobId: string): void {
    for (const [id, issued] of this.#issued) if (issued.jobId === jobId && !this.#live.has(id)) this.#issued.delete(id);
  }
}
