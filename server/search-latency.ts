/**
 * LATENCY HOOKS of server-side searches: the points where `cost: 'latency'` joins the device's
 * measured tables (issue 5, parts 1, 3 and 4). They are stubs: the latency cost model is being
 * written in src/cost/latency-locate.ts, and these functions are to be filled once it lands.
 * Everything else about a latency search (the REST body, queueing, the `preparing` state, the
 * worker, events, artifacts, cancel and resume) already works, so filling them is all it takes.
 *
 * Call order for one latency search:
 * 1. POST /api/searches → `resolveLatencyTarget` (on the HTTP thread, before anything is stored):
 *    check the target against the seed's predicted latency and the smallest reachable one; throw
 *    a 4xx MorphError (MORPH_ERR_TARGET, MORPH_ERR_MISSING_OPS…) to refuse the search. What it
 *    returns is stored in the search's config as `latency` (so it must be JSON).
 * 2. When the search leaves the queue (state `preparing`) → `prepareLatencySearch` (main thread):
 *    profile the ops the table lacks and wait for that job; return the JSON the worker needs
 *    (the table points, the calibration). It must honour `signal` (the search was cancelled or
 *    the server is stopping) and may report progress through `note`.
 * 3. In the worker, `latencyCostFor` (server/search-worker.ts) turns that JSON into the cost the
 *    search runs with.
 */
import { MorphError } from '../src/errors.ts';
import type { Target } from '../src/morph/search.ts';
import type { RuntimeName } from '../src/protocol/agent-protocol.ts';
import type { Fleet } from './fleet.ts';
import type { ResolvedModel } from './models.ts';
import type { TableReader } from './tables.ts';

export interface LatencyTargetRequest {
  readonly model: ResolvedModel;
  readonly deviceId: string;
  readonly runtime: RuntimeName;
  /** Absolute target, ms per run; exactly one of `targetMs` and `target` is set. */
  readonly targetMs: number | null;
  /** A fraction of the seed's latency (`{fraction}`) or an absolute value in ms (`{value}`). */
  readonly target: Target | null;
  readonly fleet: Fleet;
  readonly tables: TableReader;
}

export interface LatencyTargetResolution {
  /** The target in ms per run. */
  readonly targetMs: number;
  /** The seed's predicted (or measured) latency, ms; null where not known yet (table not profiled). */
  readonly seedMs: number | null;
  /** The smallest reachable latency, ms; null where not known yet. */
  readonly minimumMs: number | null;
  /** Anything else the later hooks need (JSON). */
  readonly plan?: unknown;
}

/**
 * LATENCY HOOK (to fill): validates and resolves a latency target at POST time.
 * @throws MorphError a 4xx code to refuse the search; nothing has been stored yet.
 */
export async function resolveLatencyTarget(req: LatencyTargetRequest): Promise<LatencyTargetResolution> {
  void req;
  throw new MorphError('MORPH_ERR_BAD_ARGUMENT', "cost 'latency' is not available on this server yet (the latency cost model is not wired in); use cost 'flops' or 'params'", { field: 'cost' });
}

export interface LatencyPrepareContext {
  readonly searchId: string;
  readonly modelId: string;
  readonly deviceId: string;
  readonly runtime: RuntimeName;
  /** What `resolveLatencyTarget` returned. */
  readonly latency: LatencyTargetResolution;
  readonly fleet: Fleet;
  readonly tables: TableReader;
  /** Aborted when the search is cancelled or the server stops. */
  readonly signal: AbortSignal;
  /** Shows a line in the search's progress (`phase: 'prepare'`) and its event stream. */
  readonly note: (message: string) => void;
}

/**
 * LATENCY HOOK (to fill): runs in state `preparing`, before the worker starts: profile what the
 * device's table lacks, wait for it, and return the JSON the worker's `latencyCostFor` reads.
 * @throws MorphError to fail the search (its code and message become the search's error).
 */
export async function prepareLatencySearch(ctx: LatencyPrepareContext): Promise<unknown> {
  void ctx;
  throw new MorphError('MORPH_ERR_BAD_ARGUMENT', "cost 'latency' is not available on this server yet (the latency cost model is not wired in)");
}
