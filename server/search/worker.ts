/**
 * One server-side search, in a `worker_threads` Worker so that training never blocks the HTTP
 * event loop. The SearchService (server/search/service.ts) starts it through a small bootstrap that
 * registers tsx first (as cli/bin.js does), since a worker does not inherit the main thread's
 * loader hooks. The worker opens the dataset, runs `runSearch`, writes the artifacts under server-
 * chosen names into its directory, and posts back:
 *
 * - `{type: 'event', event}` for every search event (src/morph/search.ts) and its own `ready`,
 *   `groups` and `export` events (server/contract/search-events.ts);
 * - `{type: 'done', result}` once every artifact is written, or `{type: 'failed', error}`.
 *
 * The service terminates the worker after either message, or at once on cancel.
 */
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import { isMorphError, MorphError } from '../../src/errors.ts';
import { writeTfjsModel } from '../../src/export/tfjs-model.ts';
import { writeNetworkTflite } from '../../src/export/tflite/network.ts';
import { analyzeChannels } from '../../src/graph/channel-groups.ts';
import type { ModelConfigJson } from '../../src/graph/keras-json.ts';
import { parseModel } from '../../src/graph/parse.ts';
import type { RebuiltModel } from '../../src/graph/rebuild.ts';
import type { WeightMap } from '../../src/graph/weights.ts';
import { runSearch, type CostName, type NetworkSummary, type SearchCostHooks, type SearchOptions } from '../../src/morph/search.ts';
import { runOptionsOf, withDefaults } from '../../src/morph/search-options.ts';
import type { EngineReport, TrainingEngine } from '../../src/train/engine.ts';
import { selectEngine } from '../../src/train/select-engine.ts';
import type { TorchEngineOptions } from '../../src/train/torch/torch-engine.ts';
import { modelDataShape, openDataset } from '../../src/train/data/index.ts';
import type { PreparedLatency } from './latency.ts';
import { latencyHooks } from '../../src/morph/latency-hooks.ts';
import type { ExportOutcome, SearchConfig, SearchError, SearchResultSummary } from '../contract/searches.ts';
import type { ProgressEvent } from '../contract/search-events.ts';

export interface SearchWorkerData {
  readonly searchId: string;
  readonly attempt: number;
  readonly config: SearchConfig;
  readonly modelTopology: ModelConfigJson;
  /** Absolute directory the artifacts go to (created and emptied by the service). */
  readonly artifactsDir: string;
  /** What `prepareLatencySearch` returned (cost `latency` only). */
  readonly prepared: unknown;
  /** The torch engine's settings (the serve command reads MORPHNET_PYTHON and friends). */
  readonly torch?: TorchEngineOptions;
}

export type WorkerMessage =
  | { readonly type: 'event'; readonly event: ProgressEvent }
  | { readonly type: 'done'; readonly result: SearchResultSummary }
  | { readonly type: 'failed'; readonly error: SearchError }
  | { readonly type: 'measure'; readonly id: number; readonly modelTopology: ModelConfigJson; readonly label: string };

/** A request to measure a candidate network on the device (closed-loop expand), answered by the service. */
export type MeasureReply = { readonly type: 'measured'; readonly id: number; readonly medianMs: number } | { readonly type: 'measure-failed'; readonly id: number; readonly error: SearchError };

/** `verify` through the parent: posts a `measure` request and waits for its reply. */
function verifyThroughParent(post: (m: WorkerMessage) => void): NonNullable<SearchCostHooks['verify']> {
  let next = 1;
  const waiting = new Map<number, { resolve: (ms: number) => void; reject: (e: Error) => void }>();
  parentPort?.on('message', (m: MeasureReply) => {
    const w = waiting.get(m.id);
    if (!w) return;
    waiting.delete(m.id);
    if (m.type === 'measured') w.resolve(m.medianMs);
    else w.reject(new MorphError((m.error.code.startsWith('MORPH_ERR_') ? m.error.code : 'MORPH_ERR_INTERNAL') as 'MORPH_ERR_INTERNAL', m.error.message));
  });
  return (modelTopology, label) =>
    new Promise<number>((resolve, reject) => {
      const id = next++;
      waiting.set(id, { resolve, reject });
      post({ type: 'measure', id, modelTopology, label });
    });
}

/** `runSearch` options from a stored config. */
export function searchOptionsOf(config: SearchConfig, prepared: unknown): SearchOptions {
  // A latency search prices with its hooks; the named cost only fills the options' field.
  const cost: CostName = config.cost === 'latency' ? 'flops' : config.cost;
  const target = config.cost === 'latency' ? { value: (prepared as PreparedLatency).targetMs } : { value: config.resolvedTarget.value };
  return runOptionsOf(withDefaults(config.options), cost, target);
}

/** NamedWeight (`layer/kind`) list → the WeightMap the .tflite writer reads. */
function weightMapOf(model: RebuiltModel): WeightMap {
  const out: WeightMap = new Map();
  for (const w of model.weights) {
    const slash = w.name.lastIndexOf('/');
    const layer = w.name.slice(0, slash);
    if (!out.has(layer)) out.set(layer, new Map());
    out.get(layer)!.set(w.name.slice(slash + 1), { shape: w.shape, data: w.data });
  }
  return out;
}

/** Writes a file whole or not at all (a reader never sees half of it). */
async function writeAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, data);
  await rename(tmp, path);
}

const json = (v: unknown): string => `${JSON.stringify(v, null, 2)}\n`;

/** The network's `.tflite`; an unsupported layer is reported, not fatal (the tfjs model stands). */
async function exportTflite(model: RebuiltModel, path: string): Promise<ExportOutcome> {
  try {
    const graph = parseModel({ format: 'layers-model', modelTopology: model.modelTopology }, { source: 'searched model' }).graph;
    const r = writeNetworkTflite(graph, weightMapOf(model));
    await writeAtomic(path, r.bytes);
    return { tflite: { ok: true, bytes: r.bytes.length, operators: r.operators } };
  } catch (err) {
    if (!isMorphError(err)) throw err;
    return { tflite: { ok: false, code: err.code, message: err.message } };
  }
}

export function serializeError(err: unknown): SearchError {
  if (isMorphError(err)) return { code: err.code, message: err.message, ...(Object.keys(err.details).length > 0 ? { details: err.details } : {}) };
  const e = err as Error;
  return { code: 'MORPH_ERR_INTERNAL', message: `the search failed: ${e?.message ?? String(err)}`, details: { stack: e?.stack?.split('\n').slice(0, 8).join('\n') } };
}

/** Runs the search of `data`, posting every event through `post`. */
export async function runSearchJob(data: SearchWorkerData, post: (m: WorkerMessage) => void): Promise<SearchResultSummary> {
  const started = Date.now();
  const { config, artifactsDir: dir } = data;
  const emit = (event: ProgressEvent): void => post({ type: 'event', event });
  const options = searchOptionsOf(config, data.prepared);

  const { engine, report: engineReport } = await selectEngine({
    engine: config.options.engine ?? 'auto',
    backend: config.options.backend,
    torch: data.torch,
    onNotice: (message) => emit({ type: 'phase', phase: 'shrink', message }),
  });
  try {
    return await runWithEngine(data, post, emit, options, engine, engineReport, started);
  } finally {
    await engine.close();
  }
}

async function runWithEngine(
  data: SearchWorkerData,
  post: (m: WorkerMessage) => void,
  emit: (event: ProgressEvent) => void,
  options: SearchOptions,
  engine: TrainingEngine,
  engineReport: EngineReport,
  started: number,
): Promise<SearchResultSummary> {
  const { config, artifactsDir: dir } = data;
  const backendText = engineReport.description;
  const d = config.data;
  const graph = parseModel({ format: 'layers-model', modelTopology: data.modelTopology }, { source: `model ${config.model.id}` }).graph;
  const dataset = await openDataset(d.dataset, {
    seed: config.options.seed,
    limit: { train: d.trainLimit ?? undefined, test: d.testLimit ?? undefined },
    model: modelDataShape(graph),
    ...(d.imageShape ? { imageShape: [...d.imageShape] as [number, number, number] } : {}),
  });
  emit({ type: 'ready', backend: backendText, dataset: { name: dataset.name, trainSize: dataset.trainSize, valSize: dataset.valSize, testSize: dataset.testSize ?? 0 } });
  emit({ type: 'groups', groups: analyzeChannels(graph).groups.map((g) => ({ id: g.id, layers: [...g.layers], channels: g.channels })) });

  const latency = config.cost === 'latency' ? (data.prepared as PreparedLatency) : null;
  const verify = latency ? verifyThroughParent(post) : undefined;
  const hooks = latency ? { cost: latencyHooks(latency, verify) } : {};
  const result = await runSearch({ graph, weights: null }, dataset, options, emit, { ...hooks, engine });
  // The FLOP-MorphNet baseline of a latency search: shrink with FLOPs, expand (closed loop) to the same ms.
  let flopSearch: NetworkSummary | null = null;
  if (latency && config.options.baseline) {
    emit({ type: 'phase', phase: 'baseline', message: 'FLOP-MorphNet baseline: shrinking with the FLOP regularizer, expanding to the same target in ms' });
    const flop = await runSearch({ graph, weights: null }, dataset, { ...options, baseline: false }, (e) => emit({ ...(e.type === 'phase' ? { ...e, message: `[FLOP-MorphNet] ${e.message}` } : e), run: 'flop' }), {
      cost: latencyHooks(latency, verify, 'flops'),
      engine,
    });
    flopSearch = flop.report.learned;
    await mkdir(dir, { recursive: true });
    await writeAtomic(join(dir, 'flop-structure.json'), json(flop.structure));
    await exportTflite(flop.model, join(dir, 'flop.tflite'));
  }

  emit({ type: 'export', message: 'writing structure.json, the tfjs model, the .tflite and report.json' });
  await mkdir(dir, { recursive: true });
  await writeAtomic(join(dir, 'structure.json'), json(result.structure));
  await rm(join(dir, 'model'), { recursive: true, force: true });
  await writeTfjsModel(join(dir, 'model'), result.model);
  const learnedExport = await exportTflite(result.model, join(dir, 'model.tflite'));
  let baselineExport: ExportOutcome | null = null;
  if (result.baselineModel && result.report.baseline) {
    await writeAtomic(join(dir, 'baseline-structure.json'), json(result.report.baseline.structure));
    await rm(join(dir, 'baseline'), { recursive: true, force: true });
    await writeTfjsModel(join(dir, 'baseline'), result.baselineModel);
    baselineExport = await exportTflite(result.baselineModel, join(dir, 'baseline.tflite'));
  }
  const r = result.report;
  const summary: SearchResultSummary = {
    costModel: r.costModel,
    seed: { macs: r.seed.macs, flops: r.seed.flops, params: r.seed.params, cost: r.seed.cost },
    target: r.target,
    minimumCost: r.minimumCost,
    strength: r.strength,
    learned: r.learned,
    baseline: r.baseline,
    flopSearch,
    exports: { learned: learnedExport, baseline: baselineExport },
    backend: backendText,
    seconds: (Date.now() - started) / 1000,
  };
  const report = {
    ...r,
    flopSearch,
    ...(latency ? { latency: { targetMs: latency.targetMs, requestedTargetMs: latency.requestedTargetMs, seedMeasuredMs: latency.seedMeasuredMs, seedPredictedMs: latency.seedPredictedMs, minimumMs: latency.minimumMs, profiledPoints: latency.profiledPoints, calibration: latency.calibration } } : {}),
    search: { id: data.searchId, attempt: data.attempt, cost: config.cost, deviceId: config.deviceId, runtime: config.runtime, latency: config.latency },
    model: config.model,
    engine: engineReport,
    backend: { description: backendText },
    data: { spec: d.dataset, name: dataset.name, trainSize: dataset.trainSize, valSize: dataset.valSize, testSize: dataset.testSize ?? 0 },
    exports: summary.exports,
    seconds: summary.seconds,
  };
  await writeAtomic(join(dir, 'report.json'), json(report));
  return summary;
}

if (!isMainThread && parentPort && (workerData as { searchId?: unknown } | null)?.searchId !== undefined) {
  // As in the CLI: tfjs's "looks like you are running TensorFlow.js in Node.js" banner is not for
  // the daemon's log (the search reports its engine itself).
  tf.enableProdMode();
  const port = parentPort;
  const post = (m: WorkerMessage): void => port.postMessage(m);
  runSearchJob(workerData as SearchWorkerData, post).then(
    (result) => post({ type: 'done', result }),
    (err: unknown) => post({ type: 'failed', error: serializeError(err) }),
  );
}
