/**
 * What a job is made of and what it comes to, apart from who runs it (server/fleet.ts): the items
 * and options of a profile, refinement or measure job, a finished job's result and error from its
 * items, and its view. Pure: the fleet reads what it needs from the store and writes what these
 * return.
 */
import { requiredPoints } from '../src/cost/latency-locate.ts';
import { SEARCH_PROFILE_GRID } from '../src/morph/search-options.ts';
import { tableGrid, type GridOptions } from '../src/ops/graph-specs.ts';
import { signature, withChannels, type OpSpec } from '../src/ops/op-spec.ts';
import { REFERENCE_OP } from '../src/ops/reference-op.ts';
import type { RuntimeName, WireMeasureOptions } from '../src/protocol/agent-protocol.ts';
import type { JobError, JobOptions, JobView, MeasureResult, ProfileJobResult } from './contract/devices.ts';
import type { ResolvedModel } from './models.ts';
import type { ItemRecord, ItemState, JobRecord, NewJobItem } from './store/jobs.ts';

export interface ProfileRequest {
  readonly deviceId: string;
  readonly runtime: RuntimeName;
  readonly model: ResolvedModel;
  readonly grid?: GridOptions;
  readonly measure?: WireMeasureOptions;
  /** Re-measure points the table already has. Default false. */
  readonly force?: boolean;
  /** When done, measure extra points where the table's interpolation is poor. Default true (false with seedOnly). */
  readonly refine?: boolean;
  /**
   * Profile the points a search of the model may price (`requiredPoints`, up to `grid.maxPerAxis`
   * values per axis, default 6) instead of the table grid around each op. Default false.
   */
  readonly forSearch?: boolean;
  /** Why the job exists (e.g. `search s-…`), shown in its options. */
  readonly purpose?: string;
  /**
   * Time every op against the reference op (`REFERENCE_OP`), interleaved, so that the table holds
   * ratios the machine's speed does not move (server/tables.ts reads them back in ms). Default true.
   */
  readonly paired?: boolean;
}

export interface MeasureRequest {
  readonly deviceId: string;
  readonly runtime: RuntimeName;
  readonly model: ResolvedModel;
  readonly measure?: WireMeasureOptions;
  /**
   * A network to time interleaved with `model` (sample by sample); the result then carries the
   * ratio model/reference, which the machine's speed phases move much less than either time.
   */
  readonly reference?: ResolvedModel;
}

/** A job to create: its options and its items (none: it is done at once). */
export interface JobPlan {
  readonly options: JobOptions;
  readonly items: readonly NewJobItem[];
}

/** Default protocol for profiling, DESIGN "Measuring latency". */
export const DEFAULT_JOB_MEASURE: Readonly<WireMeasureOptions> = Object.freeze({ maxMs: 5000 });

/** `signature@cInxcOut`: one table point. */
export const pointKey = (sig: string, cIn: number, cOut: number): string => `${sig}@${cIn}x${cOut}`;

/**
 * Every table point the model needs on the device and runtime (the grid of `tableGrid` for each of
 * its ops, or a search's `requiredPoints`) that `have` (point keys) lacks, or all of them with `force`.
 */
export function profileJobPlan(req: ProfileRequest, have: ReadonlySet<string>): JobPlan {
  const candidates = req.forSearch
    ? requiredPoints(req.model.graph, undefined, { ...req.grid, maxPerAxis: req.grid?.maxPerAxis ?? SEARCH_PROFILE_GRID }).map((p) => p.spec)
    : req.model.specs.specs.flatMap((entry) => tableGrid(entry, req.grid).map(({ cIn, cOut }) => withChannels(entry.spec, cIn, cOut)));
  const wanted = new Map<string, OpSpec>();
  for (const spec of candidates) {
    const key = pointKey(signature(spec), spec.cIn, spec.cOut);
    if (req.force || !have.has(key)) wanted.set(key, spec);
  }
  // A search's grid already holds every point it prices; refinement would add ones it never reads.
  const refine = req.refine ?? !(req.grid?.seedOnly || req.forSearch);
  const options: JobOptions = {
    grid: req.grid ?? {},
    forSearch: req.forSearch ?? false,
    ...(req.purpose ? { purpose: req.purpose } : {}),
    measure: { ...DEFAULT_JOB_MEASURE, ...req.measure },
    force: req.force ?? false,
    refine,
    ...((req.paired ?? true) ? { referenceOp: REFERENCE_OP } : {}),
  };
  return { options, items: [...wanted.values()].map((spec) => ({ kind: 'op' as const, spec })) };
}

/** Explicit ops (the refinement points of the finished profile job `parent`), timed as `parent` timed its own. */
export function refinementJobPlan(parent: JobView, specs: readonly OpSpec[]): JobPlan {
  const { measure, referenceOp } = parent.options;
  return { options: { measure: measure ?? DEFAULT_JOB_MEASURE, refinementOf: parent.id, ...(referenceOp ? { referenceOp } : {}) }, items: specs.map((spec) => ({ kind: 'op' as const, spec })) };
}

/** The whole model end to end: one network item (20 s of timing at most unless `measure` says). */
export function measureJobPlan(req: MeasureRequest): JobPlan {
  return {
    options: { measure: { ...DEFAULT_JOB_MEASURE, maxMs: 20_000, ...req.measure }, ...(req.reference ? { referenceModelId: req.reference.id } : {}) },
    items: [{ kind: 'network' }],
  };
}

/**
 * A job whose items all ended: done, or failed when any item was given up; a measure job's result
 * is its network's timing, a profile job's what it measured and how long that took; the error
 * lists the first 20 items given up.
 */
export function jobOutcome(job: JobRecord, items: readonly ItemRecord[], now: string): { state: 'done' | 'failed'; result: MeasureResult | ProfileJobResult | null; error: JobError | null } {
  const failed = items.filter((i) => i.state === 'failed');
  let result: MeasureResult | ProfileJobResult | null;
  if (job.kind === 'measure') {
    const m = items[0]?.result ?? null;
    result = m ? ({ medianMs: m.medianMs, p10Ms: m.p10Ms, p90Ms: m.p90Ms, n: m.n, cv: m.cv, stable: m.stable, ...(m.reference ? { reference: m.reference } : {}) } satisfies MeasureResult) : null;
  } else {
    // Time inside timed runs (samples), time measuring (with warm-up) and the job's wall time.
    let sampledMs = 0;
    let measuringMs = 0;
    for (const i of items) {
      const m = i.result;
      if (!m) continue;
      sampledMs += m.n * m.runsPerSample * m.meanMs;
      measuringMs += m.totalMs;
    }
    const wallMs = Date.parse(now) - Date.parse(job.createdAt);
    result = { measured: items.length - failed.length, failed: failed.length, signatures: new Set(items.map((i) => i.signature)).size, sampledMs, measuringMs, wallMs } satisfies ProfileJobResult;
  }
  const error: JobError | null =
    failed.length > 0
      ? {
          code: 'MORPH_ERR_JOB_FAILED',
          message: `${failed.length} of ${items.length} item(s) could not be run on the device`,
          items: failed.slice(0, 20).map((i) => ({ idx: i.idx, signature: i.signature, cIn: i.cIn, cOut: i.cOut, error: i.error })),
        }
      : null;
  return { state: failed.length > 0 ? 'failed' : 'done', result, error };
}

/** The job as the API shows it: its items counted by state, its model's name, and why it waits (null: it does not). */
export function jobView(row: JobRecord, counts: Record<ItemState, number> & { total: number }, modelName: string, waiting: string | null): JobView {
  // The record's kind goes with its result (one job wrote both).
  return {
    id: row.id,
    kind: row.kind,
    state: row.state,
    deviceId: row.deviceId,
    runtime: row.runtime,
    modelId: row.modelId,
    modelName,
    progress: { total: counts.total, done: counts.done, failed: counts.failed, leased: counts.leased, pending: counts.pending },
    waiting,
    result: row.result,
    error: row.error,
    options: row.options,
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
    finishedAt: row.finishedAt,
  } as JobView;
}
