/**
 * The PyTorch implementation of the training interface (engine.ts): one worker process
 * (worker.py) per engine, driven epoch by epoch. This side keeps everything but the arithmetic:
 * options and their checks, the learning-rate schedule (each epoch's rates are sent), the batch
 * order (`Dataset.order`, the same seeded order the tfjs loop walks), the NaN stop, the epoch
 * records and hooks, and the coefficients of the proximal step. The dataset's splits are written
 * once per engine to files the worker loads whole (uint8 when every pixel is an exact byte/255).
 */
import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MorphError } from '../../errors.ts';
import { groupMaxAbs, plannedLayers, type GammaPlan } from '../../graph/gamma-plan.ts';
import type { Graph } from '../../graph/graph.ts';
import { parseModel } from '../../graph/parse.ts';
import type { NamedWeight } from '../../graph/rebuild.ts';
import { sizeOf, weightsByName, type WeightMap } from '../../graph/weights.ts';
import { checkDatasetFitsModel, type Dataset, type Split } from '../data/index.ts';
import type { EngineReport, FitHooks, FitRequest, FitResult, TorchInfo, TrainingEngine } from '../engine.ts';
import type { EpochRecord, TrainResult } from '../loop.ts';
import { nanError, positiveInt, resolveTrainOptions } from '../train-options.ts';
import { learningRateAt } from '../schedule.ts';
import { netSpecOf, unsupportedLayers, type NetSpec } from './net-spec.ts';
import type { ProxGroupSpec } from './protocol.ts';
import { TorchWorker, type WorkerOptions } from './worker-process.ts';

export interface TorchEngineOptions {
  /**
   * Interpreters to try, in order; the first whose worker imports torch is used. Default
   * `['python3', '/usr/bin/python3', 'python']` (on Debian the `python3` first on PATH may be a
   * pyenv build without torch while `python3-torch` belongs to /usr/bin/python3).
   */
  readonly pythons?: readonly string[];
  readonly threads?: number;
  /** `auto` (CUDA when available), `cpu`, `cuda`. Default auto. */
  readonly device?: string;
  /** Where the data and weight files go (a fresh directory inside it). Default the OS temp dir. */
  readonly tmpDir?: string;
  readonly helloTimeoutMs?: number;
}

export const DEFAULT_PYTHONS: readonly string[] = ['python3', '/usr/bin/python3', 'python'];

export interface TorchEngine extends TrainingEngine {
  readonly name: 'torch';
  readonly info: TorchInfo;
  /** The worker's pid (tests check that it ends with us). */
  readonly pid: number | undefined;
  /** The underlying worker, for benchmarks and equivalence probes. */
  readonly worker: TorchWorker;
  /** Builds `graph` with `weights` in the worker (what `fit` does first); for probes. */
  load(graph: Graph, weights: WeightMap | readonly NamedWeight[]): Promise<NetSpec>;
  /** Writes a float32 file in the engine's directory; for probes. */
  tempFile(name: string, data?: Float32Array): Promise<string>;
  readWeights(spec: NetSpec): Promise<WeightMap>;
}

/**
 * Starts a worker with the first interpreter that imports torch.
 * @throws MorphError `MORPH_ERR_ENGINE` listing each interpreter tried and why it failed.
 */
export async function startTorchEngine(o: TorchEngineOptions = {}): Promise<TorchEngine> {
  const pythons = [...new Set(o.pythons ?? DEFAULT_PYTHONS)];
  const failures: string[] = [];
  for (const python of pythons) {
    const w: WorkerOptions = { python, threads: o.threads, device: o.device, helloTimeoutMs: o.helloTimeoutMs };
    try {
      const worker = await TorchWorker.start(w);
      const dir = await mkdtemp(join(o.tmpDir ?? tmpdir(), 'morphnet-torch-'));
      return createEngine(worker, dir);
    } catch (err) {
      if (!(err instanceof MorphError)) throw err;
      failures.push(`${python}: ${err.message}`);
    }
  }
  throw new MorphError('MORPH_ERR_ENGINE', `no Python with torch found (tried ${pythons.join(', ')}). Install PyTorch (Debian: apt install python3-torch) or set MORPHNET_PYTHON to a python that imports torch; use --engine tfjs to train without it.\n${failures.join('\n')}`, { tried: pythons });
}

export function describeTorch(info: TorchInfo): string {
  return `torch engine, PyTorch ${info.torch} on ${info.device}${info.cudaDevice ? ` (${info.cudaDevice})` : ''}, ${info.threads} thread(s), Python ${info.python} (${info.executable})`;
}

/** The engine report of a started torch engine (doctor, reports). */
export function torchReport(engine: TorchEngine, choice: EngineReport['choice']): EngineReport {
  return { choice, name: 'torch', description: engine.description, torch: engine.info };
}

/** The spec's weights, in its order, as one float32 buffer; all-or-nothing like assignWeights. */
function packWeights(spec: NetSpec, weights: WeightMap | readonly NamedWeight[]): Float32Array {
  const given = weightsByName(weights);
  const need = spec.layers.flatMap((l) => l.weights.map((w) => ({ name: `${l.name}/${w.kind}`, shape: w.shape })));
  const missing = need.filter((w) => !given.has(w.name)).map((w) => w.name);
  const wrong = need.filter((w) => given.has(w.name) && given.get(w.name)!.data.length !== sizeOf(w.shape)).map((w) => `${w.name} has ${given.get(w.name)!.data.length} values, the model ${JSON.stringify(w.shape)}`);
  const extra = [...given.keys()].filter((n) => !need.some((w) => w.name === n));
  if (missing.length + wrong.length + extra.length > 0) {
    const parts = [missing.length ? `missing ${missing.join(', ')}` : '', extra.length ? `not in the model: ${extra.join(', ')}` : '', wrong.length ? `wrong size: ${wrong.join('; ')}` : ''].filter(Boolean);
    throw new MorphError('MORPH_ERR_WEIGHTS_MISMATCH', `weights do not fit the model: ${parts.join('; ')}`, { missing, extra, wrongShape: wrong });
  }
  const out = new Float32Array(need.reduce((n, w) => n + sizeOf(w.shape), 0));
  let at = 0;
  for (const w of need) {
    out.set(given.get(w.name)!.data, at);
    at += sizeOf(w.shape);
  }
  return out;
}

function unpackWeights(spec: NetSpec, flat: Float32Array): WeightMap {
  const out: WeightMap = new Map();
  let at = 0;
  for (const l of spec.layers) {
    if (l.weights.length === 0) continue;
    const kinds = new Map<string, { shape: readonly number[]; data: Float32Array }>();
    for (const w of l.weights) {
      const n = sizeOf(w.shape);
      kinds.set(w.kind, { shape: [...w.shape], data: flat.slice(at, at + n) });
      at += n;
    }
    out.set(l.name, kinds);
  }
  return out;
}

function bytesOf(a: Float32Array | Int32Array | Uint8Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

function proxGroups(plan: GammaPlan, lambda: number, coefficients: ArrayLike<number>): ProxGroupSpec[] {
  return plan.slices.map((slices, g) => ({ threshold: lambda * (coefficients[g] ?? 0), slices: slices.map((s) => ({ ...s })) }));
}

function createEngine(worker: TorchWorker, dir: string): TorchEngine {
  const info: TorchInfo = {
    torch: worker.hello.torch,
    python: worker.hello.python,
    executable: worker.hello.executable,
    threads: worker.hello.threads,
    device: worker.hello.device,
    cuda: worker.hello.cuda,
    cudaDevice: worker.hello.cudaDevice,
  };
  const description = describeTorch(info);
  const datasetIds = new WeakMap<Dataset, number>();
  const loaded = new Set<string>();
  let nextDataset = 1;
  let nextFile = 1;
  let closed = false;

  const tempFile = async (name: string, data?: Float32Array): Promise<string> => {
    const path = join(dir, `${nextFile++}-${name}`);
    if (data) await writeFile(path, bytesOf(data));
    return path;
  };

  /** Writes `split` of `dataset` (stored order) for the worker once; returns its key. */
  const ensureSplit = async (dataset: Dataset, split: Split): Promise<string> => {
    let id = datasetIds.get(dataset);
    if (id === undefined) datasetIds.set(dataset, (id = nextDataset++));
    const key = `${id}:${split}`;
    if (loaded.has(key)) return key;
    const [h, w, c] = dataset.imageShape;
    const xPath = join(dir, `data-${id}-${split}.x`);
    const yPath = join(dir, `data-${id}-${split}.y`);
    // Bytes while every pixel is exactly k/255 (IDX and decoded images are); float32 otherwise.
    const write = async (asBytes: boolean): Promise<{ exact: boolean; n: number }> => {
      const xf = await open(xPath, 'w');
      const yf = await open(yPath, 'w');
      let n = 0;
      try {
        for await (const b of dataset.batches(split, 1024)) {
          if (asBytes) {
            const bytes = new Uint8Array(b.x.length);
            for (let i = 0; i < b.x.length; i++) {
              const k = Math.round(b.x[i] * 255);
              if (Math.fround(k / 255) !== b.x[i]) return { exact: false, n };
              bytes[i] = k;
            }
            await xf.write(bytes);
          } else {
            await xf.write(bytesOf(b.x));
          }
          await yf.write(bytesOf(b.y));
          n += b.n;
        }
        return { exact: true, n };
      } finally {
        await xf.close();
        await yf.close();
      }
    };
    let asBytes = true;
    let r = await write(true);
    if (!r.exact) {
      asBytes = false;
      r = await write(false);
    }
    await worker.request('data', { key, x: xPath, y: yPath, dtype: asBytes ? 'uint8' : 'float32', shape: [r.n, h, w, c] });
    // The worker holds the split in memory now.
    await rm(xPath, { force: true });
    await rm(yPath, { force: true });
    loaded.add(key);
    return key;
  };

  const load = async (graph: Graph, weights: WeightMap | readonly NamedWeight[]): Promise<NetSpec> => {
    const unsupported = unsupportedLayers(graph);
    if (unsupported.length > 0) {
      throw new MorphError('MORPH_ERR_ENGINE', `the torch engine cannot build ${unsupported.map((u) => `layer "${u.layer}" (${u.className}): ${u.reason}`).join('; ')}; use --engine tfjs (or auto) for this model`, {
        unsupported,
        workerCode: 'unsupported-layer',
      });
    }
    const spec = netSpecOf(graph);
    const file = await tempFile('weights.bin', packWeights(spec, weights));
    try {
      await worker.request('build', { spec, weights: file });
    } finally {
      await rm(file, { force: true });
    }
    return spec;
  };

  const readWeights = async (spec: NetSpec): Promise<WeightMap> => {
    const file = await tempFile('weights-out.bin');
    await worker.request('get-weights', { file });
    const bytes = await readFile(file);
    await rm(file, { force: true });
    return unpackWeights(spec, new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4).slice());
  };

  const evaluateSplit = async (dataset: Dataset, split: Split, batchSize: number): Promise<{ loss: number; accuracy: number; n: number }> => {
    const key = await ensureSplit(dataset, split);
    const r = await worker.request('evaluate', { key, batchSize });
    if (r.n === 0) return { loss: Number.NaN, accuracy: Number.NaN, n: 0 };
    return { loss: r.loss ?? Number(r.lossText ?? Number.NaN), accuracy: r.accuracy ?? Number.NaN, n: r.n };
  };

  const fit = async (request: FitRequest, hooks: FitHooks = {}): Promise<FitResult> => {
    if (closed) throw new MorphError('MORPH_ERR_ENGINE', 'the torch engine was closed');
    const started = performance.now();
    const o = request.train;
    const { epochs, batchSize, opt, schedule, seed, evalBatchSize } = resolveTrainOptions(o);
    if (o.checkpoint || o.resume) {
      throw new MorphError('MORPH_ERR_BAD_ARGUMENT', 'the torch engine does not write or resume training checkpoints yet; train with the tfjs engine (--engine tfjs) to use them');
    }
    const { dataset } = request;
    const graph = parseModel({ format: 'layers-model', modelTopology: request.modelTopology }, { source: 'network to train' }).graph;
    const outShape = graph.layers.find((l) => l.name === graph.outputs[0].layer)!.calls[graph.outputs[0].nodeIndex].outputShape;
    const spec = await load(graph, request.weights);
    checkDatasetFitsModel(dataset, [...spec.inputShape] as [number, number, number], outShape[outShape.length - 1] as number);
    if (dataset.trainSize < 1) throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `dataset ${dataset.name} has no training samples`);
    let stepsPerEpoch = Math.ceil(dataset.trainSize / batchSize);
    if (o.maxStepsPerEpoch !== undefined) stepsPerEpoch = Math.min(stepsPerEpoch, positiveInt('maxStepsPerEpoch', o.maxStepsPerEpoch));
    const totalSteps = epochs * stepsPerEpoch;

    const trainKey = await ensureSplit(dataset, 'train');
    await worker.request('optimizer', { kind: opt.kind, lr: opt.lr, momentum: opt.momentum, weightDecay: opt.weightDecay });
    const prox = request.prox;
    let coefficients = prox ? Array.from(prox.coefficients) : [];
    const gammaLayers = prox ? plannedLayers(prox.plan) : [];

    const history: EpochRecord[] = [];
    let globalStep = 0;
    let stopped = false;
    for (let e = 0; e < epochs && !stopped; e++) {
      const epochStart = performance.now();
      const order = Array.from(dataset.order('train', { shuffle: true, seed, epoch: e }).subarray(0, stepsPerEpoch * batchSize));
      const steps = Math.min(stepsPerEpoch, Math.ceil(order.length / batchSize));
      const lrs = Array.from({ length: steps }, (_, s) => learningRateAt(schedule, opt.lr, globalStep + s, totalSteps));
      const epochGlobal = globalStep;
      // Step hooks run as the worker's events arrive; a 'stop' verdict ends the epoch after the
      // step the worker is on (it may be a step or two past the one that asked).
      let hookChain: Promise<void> = Promise.resolve();
      let hookError: unknown = null;
      const onStep = hooks.onStep;
      const r = await worker.request(
        'epoch',
        { key: trainKey, order, lrs, batchSize, prox: prox ? proxGroups(prox.plan, prox.lambda, coefficients) : null, events: onStep !== undefined },
        onStep
          ? (m) => {
              hookChain = hookChain.then(async () => {
                if (stopped) return;
                try {
                  const verdict = await onStep({
                    epoch: e + 1,
                    epochs,
                    step: m.step,
                    stepsPerEpoch,
                    globalStep: epochGlobal + m.step,
                    totalSteps,
                    loss: m.loss,
                    extraLoss: 0,
                    lr: m.lr,
                    imagesPerSec: m.seconds > 0 ? m.n / m.seconds : 0,
                  });
                  if (verdict === 'stop') {
                    stopped = true;
                    worker.stopEpoch();
                  }
                } catch (err) {
                  hookError ??= err;
                  stopped = true;
                  worker.stopEpoch();
                }
              });
            }
          : undefined,
      );
      await hookChain;
      if (hookError) throw hookError;
      globalStep += r.steps;
      if (r.nan) throw nanError(e + 1, r.nan.step, epochGlobal + r.nan.step, r.nan.problem, null, false);
      if (r.stopped || stopped) {
        stopped = true;
        break;
      }
      const val = dataset.valSize > 0 ? await evaluateSplit(dataset, 'val', evalBatchSize) : null;
      if (val && !Number.isFinite(val.loss)) throw nanError(e + 1, r.steps, globalStep, `the validation loss is ${val.loss}`, null, false);
      const record: EpochRecord = {
        epoch: e + 1,
        trainLoss: r.seen > 0 ? r.lossSum / r.seen : Number.NaN,
        trainExtraLoss: 0,
        valLoss: val ? val.loss : null,
        valAccuracy: val ? val.accuracy : null,
        lr: lrs[lrs.length - 1] ?? opt.lr,
        seconds: (performance.now() - epochStart) / 1000,
      };
      history.push(record);
      const verdict = await hooks.onEpochEnd?.({ ...record, epochs, checkpoint: null });
      if (prox && hooks.onEpochGammas) {
        const g = await worker.request('gammas', { layers: gammaLayers });
        const next = hooks.onEpochGammas(groupMaxAbs(prox.plan, (layer) => g.gammas[layer]), e + 1);
        if (next) coefficients = Array.from(next);
      }
      if (verdict === 'stop' && e + 1 < epochs) stopped = true;
    }
    const train: TrainResult = { epochsCompleted: history.length, stopped, resumedFrom: null, lastCheckpoint: null, globalStep, history, seconds: (performance.now() - started) / 1000 };

    if (request.recalibrate) {
      const { seed: rseed, batches = 20, batchSize: rbs = 64 } = request.recalibrate;
      // A batch norm shared by several calls has no single input to take statistics of (as bn-recalibrate.ts).
      const layers = graph.layers.filter((l) => l.kind === 'batchnorm' && l.calls.length === 1 && l.weights.some((w) => w.kind === 'moving_mean')).map((l) => l.name);
      if (layers.length > 0) {
        const order = Array.from(dataset.order('train', { shuffle: true, seed: rseed, epoch: 0 }).subarray(0, batches * rbs));
        await worker.request('recalibrate', { key: trainKey, layers, order, batchSize: rbs });
      }
    }
    const evaluation = request.evaluate ? await evaluateSplit(dataset, request.evaluate.split, request.evaluate.batchSize) : null;
    const weights = await readWeights(spec);
    return { weights, train, evaluation, engine: description };
  };

  return {
    name: 'torch',
    description,
    info,
    worker,
    get pid() {
      return worker.pid;
    },
    fit,
    load,
    tempFile,
    readWeights,
    async close() {
      if (closed) return;
      closed = true;
      await worker.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
