/**
 * The device side of an offline latency search (`morphnet search --cost latency --device D
 * --server URL --local`): the search trains on this machine, and the server supplies what only it
 * has: the device's latency tables (profiled first where they lack a point the search may price),
 * the seed's end-to-end latency, the calibration, and the closed-loop measurements of candidates.
 */
import { MorphError } from '../src/errors.ts';
import type { CalibrationTerms } from '../src/cost/latency-locate.ts';
import { analyzeChannels } from '../src/graph/channel-groups.ts';
import type { Graph } from '../src/graph/graph.ts';
import type { ModelConfigJson } from '../src/graph/keras-json.ts';
import { rebuild } from '../src/graph/rebuild.ts';
import { identitySelection } from '../src/graph/widths.ts';
import { referencedMs, settledLow } from '../src/morph/closed-loop.ts';
import { PAIRED_MEASURE_OPTIONS } from '../src/measure/interleaved.ts';
import { latencyHooks, predictedLatencyMs, type DeviceLatencyData } from '../src/morph/latency-hooks.ts';
import type { SearchCostHooks } from '../src/morph/search.ts';
import type { CommandIo } from './args.ts';
import type { MeasureJobView, MeasureResult, ProfileJobView, TablesResponse } from '../server/contract/index.ts';
import { call, findDevice, waitJob } from './server-client.ts';

/** The short timing protocol of `--quick-measure` (the server's QUICK_PROTOCOL). */
const QUICK_MEASURE = { warmupRuns: 3, warmupMs: 20, minSamples: 10, minWindowMs: 100, maxAttempts: 2, maxMs: 3000 };

export interface LocalLatencyRequest {
  readonly base: string;
  readonly device: string;
  readonly runtime: string | undefined;
  readonly graph: Graph;
  /** Values per channel axis to profile (the server's `profileGrid`). */
  readonly profileGrid: number;
  readonly quick: boolean;
  /** Exactly one: an absolute target in ms, or a fraction of the seed's measured latency. */
  readonly targetMs?: number;
  readonly fraction?: number;
  readonly json: boolean;
  readonly timeoutS: number;
}

export interface LocalLatencySetup {
  readonly deviceId: string;
  readonly deviceName: string;
  readonly runtime: string;
  readonly targetMs: number;
  readonly seedMeasuredMs: number;
  readonly seedPredictedMs: number;
  readonly profiledPoints: number;
  readonly calibration: CalibrationTerms | null;
  readonly hooks: SearchCostHooks;
}

/**
 * Profiles what the device's table lacks, measures the seed, reads the tables and returns the
 * search's latency cost hooks with closed-loop verification through the server.
 * @throws MorphError for an unknown device or runtime, a failed job, or a target the seed cannot meet.
 */
export async function prepareLocalLatency(req: LocalLatencyRequest, io: CommandIo): Promise<LocalLatencySetup> {
  const { device, runtime } = await findDevice(req.base, 'search', req.device, req.runtime);
  if (!device.online) io.err(`device ${device.name} (${device.id}) is offline: its jobs wait until its agent connects`);
  const seedTopology = rebuild(req.graph, analyzeChannels(req.graph), identitySelection(analyzeChannels(req.graph)), null).modelTopology;
  const measure = req.quick ? { measure: QUICK_MEASURE } : {};
  const profile = await call<ProfileJobView>(req.base, 'POST', '/api/profile', { deviceId: device.id, runtime, model: seedTopology, forSearch: true, grid: { maxPerAxis: req.profileGrid }, ...measure });
  if (profile.progress.total > 0) await waitJob(req.base, profile.id, `profiling ${profile.progress.total} op timing(s) on ${device.name}/${runtime}`, io, req.json, req.timeoutS);
  const measureOnce = async (modelTopology: unknown, label: string, reference?: unknown, protocol?: object): Promise<MeasureResult> => {
    const job = await call<MeasureJobView>(req.base, 'POST', '/api/measure', { deviceId: device.id, runtime, model: modelTopology, ...(reference === undefined ? {} : { reference }), ...(protocol ? { measure: protocol } : measure) });
    const done = await waitJob<MeasureJobView>(req.base, job.id, `measuring ${label}`, io, req.json, req.timeoutS);
    if (!done.result) throw new MorphError('MORPH_ERR_JOB_FAILED', `measure job ${job.id} (${label}) finished without a result`);
    return done.result;
  };
  // Until two measurements agree (settledLow), as the server's latency search does.
  const seedMeasuredMs = (await settledLow(async (run) => (await measureOnce(seedTopology, `the seed end to end (${run})`)).medianMs)).measured;
  const q = new URLSearchParams({ deviceId: device.id, runtime });
  const { tables, calibration } = await call<TablesResponse>(req.base, 'GET', `/api/tables?${q}`);
  const data = { deviceId: device.id, runtime, tables, calibration: calibration ? { a: calibration.a, b: calibration.b, c: calibration.c, d: calibration.d, e: calibration.e } : null };
  const seedPredictedMs = predictedLatencyMs(data, req.graph);
  const targetMs = req.targetMs ?? (req.fraction as number) * seedMeasuredMs;
  // Against the measurement, as the server's searches check it (the hooks scale the prediction to it).
  if (!(targetMs < seedMeasuredMs)) {
    throw new MorphError('MORPH_ERR_TARGET', `target ${targetMs.toFixed(3)} ms is not below the seed's measured ${seedMeasuredMs.toFixed(3)} ms (predicted ${seedPredictedMs.toFixed(3)} ms) on ${device.name}/${runtime}; give a smaller --target-ms`);
  }
  const full: DeviceLatencyData = { ...data, seedPredictedMs, seedMeasuredMs };
  // Each candidate interleaved with the seed, read in the seed's settled terms, as the server's searches do (`referencedMs`).
  const verify = async (modelTopology: ModelConfigJson, label: string): Promise<number> => {
    const r = await measureOnce(modelTopology, `${label}, interleaved with the seed`, seedTopology, req.quick ? QUICK_MEASURE : PAIRED_MEASURE_OPTIONS);
    if (!r.reference) throw new MorphError('MORPH_ERR_JOB_FAILED', `the measurement of ${label} came back without its reference figures; is the server older than this CLI?`);
    return referencedMs(r.reference.ratio, seedMeasuredMs);
  };
  return { deviceId: device.id, deviceName: device.name, runtime, targetMs, seedMeasuredMs, seedPredictedMs, profiledPoints: profile.progress.total, calibration: data.calibration, hooks: latencyHooks(full, verify) };
}
