/**
 * Closed-loop expand's measurements: a candidate network the search worker asks about is timed on
 * the search's device as one measure job, interleaved with the seed (sample by sample) once the
 * seed's settled latency is known, and read in terms of it: the ratio candidate/seed × the seed's
 * settled ms (the machine's speed drifts between phases, and within one measurement too).
 */
import { MorphError } from '../../src/errors.ts';
import { referencedMs } from '../../src/morph/closed-loop.ts';
import type { RuntimeName } from '../../src/protocol/agent-protocol.ts';
import type { MeasureJobView, MeasureResult } from '../contract/devices.ts';
import type { SearchOptionValues } from '../../src/morph/search-options.ts';
import type { Fleet } from '../fleet.ts';
import { resolveModel, type ResolvedModel } from '../models.ts';
import { pairedProtocol, QUICK_PROTOCOL } from './latency.ts';
import type { MeasureReply } from './worker.ts';

export interface CandidateContext {
  readonly fleet: Fleet;
  readonly deviceId: string;
  readonly runtime: RuntimeName;
  readonly measureProtocol: SearchOptionValues['measureProtocol'];
  /** The seed and its settled latency (latency searches, once prepared); null: the candidate is timed alone. */
  readonly reference: { readonly model: ResolvedModel; readonly ms: number } | null;
  /** Aborted when the search stops: the job is cancelled. */
  readonly signal: AbortSignal;
  /** A line for the search's progress and event stream. */
  readonly note: (message: string) => Promise<void>;
}

/** Times the candidate `request.modelTopology` and answers the worker; a failure is answered too, never thrown. */
export async function measureCandidate(ctx: CandidateContext, request: { id: number; modelTopology: unknown; label: string }): Promise<MeasureReply> {
  const { deviceId, runtime, reference } = ctx;
  try {
    const candidate = resolveModel(request.modelTopology, 'candidate network');
    const measure = reference ? pairedProtocol(ctx.measureProtocol) : ctx.measureProtocol === 'quick' ? QUICK_PROTOCOL : undefined;
    const job = await ctx.fleet.createMeasureJob({ deviceId, runtime, model: candidate, measure, reference: reference?.model });
    await ctx.note(`${request.label}: measuring the candidate${reference ? ' interleaved with the seed' : ''} on ${deviceId}/${runtime} (job ${job.id})`).catch(() => undefined);
    const r = await waitMeasure(ctx, job.id);
    if (!reference) return { type: 'measured', id: request.id, medianMs: r.medianMs };
    if (!r.reference) throw new MorphError('MORPH_ERR_JOB_FAILED', `measure job ${job.id} came back without its reference figures`);
    const ms = referencedMs(r.reference.ratio, reference.ms);
    const note = `${request.label}: ${r.medianMs.toFixed(3)} ms with the seed at ${r.reference.medianMs.toFixed(3)} ms alongside (ratio ${r.reference.ratio.toFixed(4)}, p10–p90 ${r.reference.ratioP10.toFixed(4)}–${r.reference.ratioP90.toFixed(4)}; seed settled ${reference.ms.toFixed(3)} ms): ${ms.toFixed(3)} ms`;
    await ctx.note(note).catch(() => undefined);
    return { type: 'measured', id: request.id, medianMs: ms };
  } catch (err) {
    const e = err as { code?: string; message?: string };
    return { type: 'measure-failed', id: request.id, error: { code: typeof e?.code === 'string' ? e.code : 'MORPH_ERR_INTERNAL', message: e?.message ?? String(err) } };
  }
}

/** Waits for the measure job, cancelling it when the search stops. */
async function waitMeasure(ctx: CandidateContext, jobId: string): Promise<MeasureResult> {
  for (;;) {
    if (ctx.signal.aborted) {
      await ctx.fleet.cancelJob(jobId).catch(() => undefined);
      throw new MorphError('MORPH_ERR_INTERNAL', 'stopped');
    }
    const j = (await ctx.fleet.job(jobId)) as MeasureJobView | undefined;
    if (j?.state === 'done' && j.result) return j.result;
    if (!j || j.state === 'failed' || j.state === 'cancelled' || j.state === 'done') {
      throw new MorphError('MORPH_ERR_JOB_FAILED', `measuring the candidate failed: ${j?.error?.message ?? (j?.state === 'done' ? 'done without a result' : j?.state) ?? 'job gone'}`);
    }
    await new Promise((r) => setTimeout(r, 300));
  }
}
