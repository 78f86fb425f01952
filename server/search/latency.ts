/**
 * Where `cost: 'latency'` joins a device's measured tables: the target check at POST time, the
 * preparation (profile what the table lacks, measure the seed), and (in the worker,
 * `worker.ts`) the cost hooks built from what preparation returns.
 *
 * Call order for one latency search:
 * 1. POST /api/searches → `resolveLatencyTarget` (on the HTTP thread, before anything is stored):
 *    check the target against the seed's predicted latency; throw
 *    a 4xx MorphError (MORPH_ERR_TARGET, MORPH_ERR_MISSING_OPS…) to refuse the search. What it
 *    returns is stored in the search's config as `latency` (so it must be JSON).
 * 2. When the search leaves the queue (state `preparing`) → `prepareLatencySearch` (main thread):
 *    profile the ops the table lacks and wait for that job, measure the seed and the smallest
 *    reachable network, check the target against them; return the JSON the worker needs
 *    (the table points, the calibration). It must honour `signal` (the search was cancelled or
 *    the server is stopping) and may report progress through `note`.
 * 3. In the worker, `latencyHooks` (server/search/worker.ts) turns that JSON into the cost the
 *    search runs with.
 */
import { networkLatencyAt, planNetworkLatency, type NetworkLatencyPlan } from '../../src/cost/latency-locate.ts';
import type { CalibrationTerms } from '../../src/cost/calibration.ts';
import type { LatencyPoint, LatencyTable } from '../../src/cost/latency-table.ts';
import { isMorphError, MorphError } from '../../src/errors.ts';
import type { Graph } from '../../src/graph/graph.ts';
import { rebuild } from '../../src/graph/rebuild.ts';
import { selectionFromWidths } from '../../src/graph/widths.ts';
import type { Target } from '../../src/morph/search.ts';
import { lowestAgreeing, referencedMs, settledLow } from '../../src/morph/closed-loop.ts';
import { floorWidths } from '../../src/morph/expand.ts';
import type { RuntimeName, WireMeasureOptions } from '../../src/protocol/agent-protocol.ts';
import { PAIRED_MEASURE_OPTIONS } from '../../src/measure/interleaved.ts';
import type { JobView, MeasureJobView, MeasureResult } from '../contract/devices.ts';
import type { LatencyTargetResolution } from '../contract/searches.ts';
import type { Fleet } from '../fleet.ts';
import { resolveModel, type ResolvedModel } from '../models.ts';
import type { StoredTable, TableReader } from '../tables.ts';

export interface LatencyTargetRequest {
  readonly model: ResolvedModel;
  readonly deviceId: string;
  readonly runtime: RuntimeName;
  /** Absolute target, ms per run; exactly one of `targetMs` and `target` is set. */
  readonly targetMs: number | null;
  /** A fraction of the seed's latency (`{fraction}`) or an absolute value in ms (`{value}`). */
  readonly target: Target | null;
  /**
   * Move a target below the smallest reachable latency up to a reachable one (`clampedTarget`),
   * saying so, instead of failing: for a target the user did not choose (the default job's 50%).
   */
  readonly clamp?: boolean;
  readonly fleet: Fleet;
  readonly tables: TableReader;
}

/** The 'quick' protocol: fewer samples (a first look, tests). */
export const QUICK_PROTOCOL = { warmupRuns: 3, warmupMs: 20, minSamples: 10, minWindowMs: 100, maxAttempts: 2, maxMs: 3000 } as const;

/** The measure options of a closed-loop (paired) measurement for a search's `measureProtocol`. */
export function pairedProtocol(measureProtocol: string | undefined): WireMeasureOptions {
  return measureProtocol === 'quick' ? QUICK_PROTOCOL : PAIRED_MEASURE_OPTIONS;
}

/** What the worker gets: the device's tables and calibration, the target resolved in ms. */
export interface PreparedLatency {
  readonly deviceId: string;
  readonly runtime: RuntimeName;
  readonly targetMs: number;
  /** The target asked for, when it was below the smallest reachable and moved (a clamped default); else null. */
  readonly requestedTargetMs: number | null;
  /** The seed's latency measured end to end on the device, ms. */
  readonly seedMeasuredMs: number;
  /** The seed's predicted (calibrated) latency, ms; the worker scales every prediction by measured/predicted of the seed. */
  readonly seedPredictedMs: number;
  readonly minimumMs: number;
  readonly tables: readonly { readonly signature: string; readonly points: readonly LatencyPoint[] }[];
  readonly calibration: CalibrationTerms | null;
  readonly profiledPoints: number;
  readonly measureProtocol: 'default' | 'quick';
}

function tableOfStored(stored: readonly StoredTable[]): (signature: string) => LatencyTable | undefined {
  const m = new Map(stored.filter((t) => t.table).map((t) => [t.signature, t.table as LatencyTable]));
  return (s) => m.get(s);
}

/**
 * Validates and resolves a latency target at POST time. When the device's table already covers
 * the seed, the target is checked against the seed's predicted latency; otherwise after profiling
 * (in `prepareLatencySearch`), where a `{fraction}` target is resolved against the seed's measured
 * latency (`targetMs` is 0 until then). The smallest reachable latency is checked there too,
 * measured: a prediction extrapolated to the smallest widths was 5× off (see below).
 * @throws MorphError MORPH_ERR_TARGET for a target the network cannot meet.
 */
export async function resolveLatencyTarget(req: LatencyTargetRequest): Promise<LatencyTargetResolution> {
  const fraction = req.target && 'fraction' in req.target ? req.target.fraction : null;
  const absolute = req.targetMs ?? (req.target && 'value' in req.target ? req.target.value : null);
  if (fraction !== null && !(fraction > 0 && fraction < 1)) throw new MorphError('MORPH_ERR_TARGET', `target.fraction must be between 0 and 1 (a share of the seed's latency), got ${fraction}`, { field: 'target' });
  if (absolute !== null && !(Number.isFinite(absolute) && absolute > 0)) throw new MorphError('MORPH_ERR_TARGET', `targetMs must be a positive number of ms, got ${absolute}`, { field: 'targetMs' });
  const stored = await req.tables.tables(req.deviceId, req.runtime);
  const calibration = await req.tables.calibration(req.deviceId, req.runtime, stored);
  const plan = planNetworkLatency(req.model.graph);
  const seedWidths = plan.analysis.groups.map((g) => g.channels);
  let seedMs: number;
  try {
    seedMs = networkLatencyAt(plan, seedWidths, tableOfStored(stored), calibration ?? undefined).predictedMs;
  } catch (err) {
    if (isMorphError(err) && err.code === 'MORPH_ERR_MISSING_OPS') return { targetMs: absolute ?? 0, seedMs: null, minimumMs: null, plan: { fraction, clamp: req.clamp === true } };
    throw err;
  }
  const targetMs = absolute ?? (fraction as number) * seedMs;
  // The device's own word where it has one: the Search form offers a share of the seed's last
  // measurement, which may lie above the prediction (preparation measures the seed again and
  // checks the target against that).
  const lastMeasuredMs = await req.tables.lastMeasuredMs(req.deviceId, req.runtime, req.model.id);
  const ceilingMs = Math.max(seedMs, lastMeasuredMs ?? 0);
  if (targetMs >= ceilingMs) {
    const measured = lastMeasuredMs !== null ? ` (last measured ${lastMeasuredMs.toFixed(3)} ms)` : '';
    throw new MorphError('MORPH_ERR_TARGET', `target ${targetMs.toFixed(3)} ms is not below the seed's predicted ${seedMs.toFixed(3)} ms${measured} on ${req.deviceId}/${req.runtime}; give a smaller targetMs`, { field: 'targetMs', seedMs });
  }
  return { targetMs, seedMs, minimumMs: null, plan: { fraction, clamp: req.clamp === true } };
}

/**
 * Where a clamped target goes when it is below the smallest reachable latency: 10% of the way from
 * the smallest reachable to the seed, so that several networks lie below it and the closed loop can
 * reach ±3% (at the minimum itself only one network, every group at 8, fits).
 */
export function clampedTarget(minimumMs: number, seedMs: number): number {
  return minimumMs + 0.1 * (seedMs - minimumMs);
}

export interface LatencyPrepareContext {
  readonly searchId: string;
  readonly modelId: string;
  readonly deviceId: string;
  readonly runtime: RuntimeName;
  /** What `resolveLatencyTarget` returned. */
  readonly latency: LatencyTargetResolution;
  /** The search's options (profiling grid and protocol). */
  readonly options: { readonly profileGrid: number; readonly measureProtocol: 'default' | 'quick'; readonly divisor: number };
  readonly fleet: Fleet;
  readonly tables: TableReader;
  /** Aborted when the search is cancelled or the server stops. */
  readonly signal: AbortSignal;
  /** Shows a line in the search's progress (`phase: 'prepare'`) and its event stream, with a job's progress. */
  readonly note: (message: string, progress?: { label: string; done: number; total: number }) => void;
}

async function waitJob<J extends JobView>(ctx: LatencyPrepareContext, jobId: string, label: string): Promise<J> {
  let last = '';
  for (;;) {
    if (ctx.signal.aborted) {
      await ctx.fleet.cancelJob(jobId).catch(() => undefined);
      throw new MorphError('MORPH_ERR_INTERNAL', 'stopped');
    }
    const job = (await ctx.fleet.job(jobId)) as J;
    const line = `${label}: ${job.progress.done}/${job.progress.total}${job.waiting ? ` (${job.waiting})` : ''}`;
    if (line !== last) ctx.note(line, { label, done: job.progress.done, total: job.progress.total });
    last = line;
    if (job.state === 'done') return job;
    if (job.state === 'failed' || job.state === 'cancelled') {
      throw new MorphError('MORPH_ERR_JOB_FAILED', `${label} job ${jobId} ${job.state}: ${job.error?.message ?? 'no reason given'}`);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** How close two readings of the seed must be to settle it (as `settledLow`). */
const SEED_SPREAD = 0.03;

/**
 * Runs in state `preparing`: profiles every point the search may need that the device's table
 * lacks (the grid of `requiredPoints`), measures the seed end to end (the calibration's anchor and
 * the reference of a `{fraction}` target), checks the target, and hands the worker the tables,
 * the calibration and the target in ms. A device that is offline keeps the jobs queued: the
 * search says so in its progress and waits.
 */
export async function prepareLatencySearch(ctx: LatencyPrepareContext): Promise<PreparedLatency> {
  const model = await ctx.tables.model(ctx.modelId);
  if (!model) throw new MorphError('MORPH_ERR_NOT_FOUND', `the search's model ${ctx.modelId} is no longer stored`);
  const measure = ctx.options.measureProtocol === 'quick' ? QUICK_PROTOCOL : undefined;
  const profile = await ctx.fleet.createProfileJob({ deviceId: ctx.deviceId, runtime: ctx.runtime, model, forSearch: true, grid: { maxPerAxis: ctx.options.profileGrid }, measure, purpose: `search ${ctx.searchId}` });
  const profiledPoints = profile.progress.total;
  if (profiledPoints > 0) {
    ctx.note(`profiling ${profiledPoints} op timing(s) the ${ctx.runtime} table of ${ctx.deviceId} lacks`);
    await waitJob(ctx, profile.id, 'profiling');
  }
  // The target's reference, and the floor: both measured like every closed-loop candidate
  // (settledLow). The floor is measured, not predicted: fitted on networks near the seed, the
  // calibration extrapolated the smallest MobileNetV2 on Node tflite to 0.55 ms where it runs in
  // 0.1 ms, and refused a reachable 30% target; measured, it also anchors the calibration at the
  // low end for every prediction that follows.
  const measureOnce = async (what: ResolvedModel, label: string, reference?: ResolvedModel, protocol: WireMeasureOptions | undefined = measure): Promise<MeasureResult> => {
    const job = await ctx.fleet.createMeasureJob({ deviceId: ctx.deviceId, runtime: ctx.runtime, model: what, measure: protocol, reference });
    const done = await waitJob<MeasureJobView>(ctx, job.id, label);
    if (!done.result) throw new MorphError('MORPH_ERR_JOB_FAILED', `${label}: measure job ${job.id} finished without a result`);
    return done.result;
  };
  // Every reading of the seed: its own measure jobs, and its median beside the smallest network
  // in each paired job below (≥ 100 rounds over ≥ 2 s). A slow phase of the machine only slows a
  // reading, so the seed settles at the lowest pair of them that agree: one plain reading taken
  // in a slow phase inflated every figure of a search by up to ×2.5 (docs/benchmarks.md).
  const seedReadings: number[] = [];
  const seedPlain = await settledLow(async (run) => {
    const ms = (await measureOnce(model, `measuring the seed end to end (${run})`)).medianMs;
    seedReadings.push(ms);
    return ms;
  });
  const plan = planNetworkLatency(model.graph);
  const smallest = smallestNetwork(plan, model.graph, ctx.options.divisor);
  // Interleaved with the seed, as every closed-loop candidate is (`referencedMs`): settled as a ratio.
  const floorRatio = (
    await settledLow(async (run) => {
      const r = await measureOnce(smallest, `measuring the smallest reachable network end to end, interleaved with the seed (${run})`, model, pairedProtocol(ctx.options.measureProtocol));
      if (!r.reference) throw new MorphError('MORPH_ERR_JOB_FAILED', 'the measurement of the smallest reachable network came back without its reference figures');
      seedReadings.push(r.reference.medianMs);
      return r.reference.ratio;
    })
  ).measured;
  const seedMeasuredMs = Math.min(seedPlain.measured, lowestAgreeing(seedReadings, SEED_SPREAD) ?? seedPlain.measured);
  const minimum = referencedMs(floorRatio, seedMeasuredMs);
  const stored = await ctx.tables.tables(ctx.deviceId, ctx.runtime);
  const calibration = await ctx.tables.calibration(ctx.deviceId, ctx.runtime, stored);
  const seedWidths = plan.analysis.groups.map((g) => g.channels);
  const tableOf = tableOfStored(stored);
  const seedPredictedMs = networkLatencyAt(plan, seedWidths, tableOf, calibration ?? undefined).predictedMs;
  const planned = (ctx.latency.plan ?? {}) as { fraction?: number | null; clamp?: boolean };
  const fraction = planned.fraction ?? null;
  let targetMs = fraction !== null ? fraction * seedMeasuredMs : ctx.latency.targetMs;
  let requestedTargetMs: number | null = null;
  // Against the measurement: the closed loop reads every candidate in the terms of this same
  // measurement, and the worker scales the prediction to it (`anchorScale`).
  if (targetMs >= seedMeasuredMs) {
    throw new MorphError('MORPH_ERR_TARGET', `target ${targetMs.toFixed(3)} ms is not below the seed's measured ${seedMeasuredMs.toFixed(3)} ms (predicted ${seedPredictedMs.toFixed(3)} ms) on ${ctx.deviceId}/${ctx.runtime}; give a smaller targetMs`, { seedMs: seedMeasuredMs });
  }
  if (targetMs < minimum && planned.clamp === true && minimum < seedMeasuredMs) {
    requestedTargetMs = targetMs;
    targetMs = clampedTarget(minimum, seedMeasuredMs);
    ctx.note(`the default target ${requestedTargetMs.toFixed(3)} ms is below the smallest reachable ${minimum.toFixed(3)} ms (measured) on ${ctx.deviceId}/${ctx.runtime}: searching for ${targetMs.toFixed(3)} ms instead (10% of the way from the smallest reachable to the seed)`);
  }
  if (targetMs < minimum) {
    throw new MorphError('MORPH_ERR_TARGET', `target ${targetMs.toFixed(3)} ms is below the smallest reachable ${minimum.toFixed(3)} ms, measured on ${ctx.deviceId}/${ctx.runtime} (every resizable group at ${ctx.options.divisor} channels); raise the target`, { minimum });
  }
  ctx.note(`target ${targetMs.toFixed(3)} ms; seed measured ${seedMeasuredMs.toFixed(3)} ms, predicted ${seedPredictedMs.toFixed(3)} ms; smallest reachable ${minimum.toFixed(3)} ms`);
  return {
    deviceId: ctx.deviceId,
    runtime: ctx.runtime,
    targetMs,
    requestedTargetMs,
    seedMeasuredMs,
    seedPredictedMs,
    minimumMs: minimum,
    tables: stored.map((t) => ({ signature: t.signature, points: t.points.map((p) => ({ cIn: p.cIn, cOut: p.cOut, medianMs: p.medianMs, p10Ms: p.p10Ms, p90Ms: p.p90Ms, n: p.n })) })),
    calibration: calibration ? { a: calibration.a, b: calibration.b, c: calibration.c, d: calibration.d, e: calibration.e } : null,
    profiledPoints,
    measureProtocol: ctx.options.measureProtocol,
  };
}

/** The seed at `floorWidths`: the smallest network the search's expand can reach at its divisor. */
function smallestNetwork(plan: NetworkLatencyPlan, graph: Graph, divisor: number): ResolvedModel {
  const topology = rebuild(graph, plan.analysis, selectionFromWidths(plan.analysis, floorWidths(plan.analysis, divisor)), null).modelTopology;
  return resolveModel(topology, 'the smallest reachable network');
}
