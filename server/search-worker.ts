/**
 * One server-side search, in a `worker_threads` Worker so that training never blocks the HTTP
 * event loop. The SearchService (server/searches.ts) starts it through a small bootstrap that
 * registers tsx first (as src/cli/bin.js does), since a worker does not inherit the main thread's
 * loader hooks. The worker opens the dataset, runs `runSearch`, writes the artifacts under server-
 * chosen names into its directory, and posts back:
 *
 * - `{type: 'event', event}` for every search event (src/morph/search.ts) and its own `ready`,
 *   `groups` and `export` events (server/search-progress.ts);
 * - `{type: 'done', result}` once every artifact is written, or `{type: 'failed', error}`.
 *
 * The service terminates the worker after either message, or at once on cancel.
 */
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { isMorphError, MorphError } from '../src/errors.ts';
import { writeTfjsModel } from '../src/export/tfjs-model.ts';
import { writeNetworkTflite } from '../src/export/tflite/network.ts';
import { analyzeChannels } from '../src/graph/channel-groups.ts';
import type { ModelConfigJson } from '../src/graph/keras-json.ts';
import { parseModel } from '../src/graph/parse.ts';
import type { RebuiltModel } from '../src/graph/rebuild.ts';
import type { WeightMap } from '../src/graph/weights.ts';
import { runSearch, type CostName, type NetworkSummary, type SearchOptions, type SearchReport, type Target } from '../src/morph/search.ts';
import type { RuntimeName } from '../src/protocol/agent-protocol.ts';
import { describeBackend, selectBackend, type BackendChoice } from '../src/train/backend.ts';
import { openDataset } from '../src/train/data/index.ts';
import type { OptimizerKind } from '../src/train/optimizer.ts';
import type { ScheduleKind } from '../src/train/schedule.ts';
import type { LatencyTargetResolution } from './search-latency.ts';
import type { ProgressEvent } from './search-progress.ts';

export const VALID_SEARCH_COSTS = ['flops', 'params', 'latency'] as const;
export type SearchCost = (typeof VALID_SEARCH_COSTS)[number];

/** The search's options with every default applied (what `config.options` holds). */
export interface SearchRunOptions {
  readonly strength: number;
  readonly threshold: number;
  readonly shrinkEpochs: number;
  readonly finalEpochs: number;
  readonly rounds: number;
  readonly seed: number;
  readonly baseline: boolean;
  readonly keepWeights: boolean;
  readonly divisor: number;
  readonly batchSize: number;
  readonly optimizer: OptimizerKind;
  /** null: the optimizer's default (sgd 0.05, adam 1e-3). */
  readonly learningRate: number | null;
  readonly schedule: ScheduleKind;
  readonly maxStepsPerEpoch: number | null;
  readonly backend: BackendChoice;
}

/** A search as it was asked for and validated (stored as `searches.config_json`). */
export interface SearchConfig {
  readonly model: { readonly id: string; readonly name: string; readonly source: 'seed' | 'upload' | 'inline' };
  readonly data: { readonly dataset: string; readonly trainLimit: number | null; readonly testLimit: number | null; readonly imageShape: readonly [number, number, number] | null };
  readonly cost: SearchCost;
  readonly deviceId: string | null;
  readonly runtime: RuntimeName | null;
  /** The target as requested (`targetMs` is the latency form). */
  readonly target: Target | null;
  readonly targetMs: number | null;
  /** The target in the cost's unit, checked against the seed's cost and the minimum reachable. */
  readonly resolvedTarget: { readonly value: number; readonly unit: string; readonly seedCost: number | null; readonly minimum: number | null };
  /** What the latency hook resolved (cost `latency` only). */
  readonly latency: LatencyTargetResolution | null;
  readonly options: SearchRunOptions;
}

export interface SearchWorkerData {
  readonly searchId: string;
  readonly attempt: number;
  readonly config: SearchConfig;
  readonly modelTopology: ModelConfigJson;
  /** Absolute directory the artifacts go to (created and emptied by the service). */
  readonly artifactsDir: string;
  /** What `prepareLatencySearch` returned (cost `latency` only). */
  readonly prepared: unknown;
}

export interface ExportOutcome {
  readonly tflite: { readonly ok: true; readonly bytes: number; readonly operators: number } | { readonly ok: false; readonly code: string; readonly message: string };
}

/** `searches.result_json`: the report without the per-round detail (that is in report.json). */
export interface SearchResultSummary {
  readonly costModel: SearchReport['costModel'];
  readonly seed: Omit<SearchReport['seed'], 'structure'>;
  readonly target: SearchReport['target'];
  readonly minimumCost: number;
  readonly learned: NetworkSummary;
  readonly baseline: NetworkSummary | null;
  readonly exports: { readonly learned: ExportOutcome; readonly baseline: ExportOutcome | null };
  readonly backend: string;
  readonly seconds: number;
}

export interface WorkerError {
  readonly code: string;
  readonly message: string;
  readonly details?: unknown;
}

export type WorkerMessage =
  | { readonly type: 'event'; readonly event: ProgressEvent }
  | { readonly type: 'done'; readonly result: SearchResultSummary }
  | { readonly type: 'failed'; readonly error: WorkerError };

/**
 * LATENCY HOOK (to fill, with server/search-latency.ts): the cost a latency search runs with,
 * built from what `prepareLatencySearch` returned. `runSearch` takes the cost by name today
 * (`flops` | `params`); a latency search needs it to accept a `CostModel` backed by the table.
 */
export function latencyCostFor(config: SearchConfig, prepared: unknown): CostName {
  void config;
  void prepared;
  throw new MorphError('MORPH_ERR_BAD_ARGUMENT', "cost 'latency' is not available in the search worker yet (the latency cost model is not wired in)");
}

/** `runSearch` options from a stored config. */
export function searchOptionsOf(config: SearchConfig, prepared: unknown): SearchOptions {
  const o = config.options;
  const cost: CostName = config.cost === 'latency' ? latencyCostFor(config, prepared) : config.cost;
  return {
    cost,
    target: { value: config.resolvedTarget.value },
    strength: o.strength,
    threshold: o.threshold,
    shrinkEpochs: o.shrinkEpochs,
    finalEpochs: o.finalEpochs,
    rounds: o.rounds,
    seed: o.seed,
    baseline: o.baseline,
    keepWeights: o.keepWeights,
    divisor: o.divisor,
    train: {
      batchSize: o.batchSize,
      optimizer: { kind: o.optimizer, ...(o.learningRate !== null ? { lr: o.learningRate } : {}) },
      schedule: o.schedule,
      ...(o.maxStepsPerEpoch !== null ? { maxStepsPerEpoch: o.maxStepsPerEpoch } : {}),
    },
  };
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

export function serializeError(err: unknown): WorkerError {
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

  const backend = await selectBackend({ backend: config.options.backend });
  const backendText = describeBackend(backend);
  const d = config.data;
  const dataset = await openDataset(d.dataset, {
    seed: config.options.seed,
    limit: { train: d.trainLimit ?? undefined, test: d.testLimit ?? undefined },
    ...(d.imageShape ? { imageShape: [...d.imageShape] as [number, number, number] } : {}),
  });
  const graph = parseModel({ format: 'layers-model', modelTopology: data.modelTopology }, { source: `model ${config.model.id}` }).graph;
  emit({ type: 'ready', backend: backendText, dataset: { name: dataset.name, trainSize: dataset.trainSize, valSize: dataset.valSize, testSize: dataset.testSize ?? 0 } });
  emit({ type: 'groups', groups: analyzeChannels(graph).groups.map((g) => ({ id: g.id, layers: [...g.layers], channels: g.channels })) });

  const result = await runSearch({ graph, weights: null }, dataset, options, emit);

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
    learned: r.learned,
    baseline: r.baseline,
    exports: { learned: learnedExport, baseline: baselineExport },
    backend: backendText,
    seconds: (Date.now() - started) / 1000,
  };
  const report = {
    ...r,
    search: { id: data.searchId, attempt: data.attempt, cost: config.cost, deviceId: config.deviceId, runtime: config.runtime, latency: config.latency },
    model: config.model,
    backend: { name: backend.name, simd: backend.simd, threads: backend.threads, description: backendText },
    data: { spec: d.dataset, name: dataset.name, trainSize: dataset.trainSize, valSize: dataset.valSize, testSize: dataset.testSize ?? 0 },
    exports: summary.exports,
    seconds: summary.seconds,
  };
  await writeAtomic(join(dir, 'report.json'), json(report));
  return summary;
}

if (!isMainThread && parentPort && (workerData as { searchId?: unknown } | null)?.searchId !== undefined) {
  const port = parentPort;
  const post = (m: WorkerMessage): void => port.postMessage(m);
  runSearchJob(workerData as SearchWorkerData, post).then(
    (result) => post({ type: 'done', result }),
    (err: unknown) => post({ type: 'failed', error: serializeError(err) }),
  );
}
