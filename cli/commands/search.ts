/**
 * `morphnet search`: the offline MorphNet shrink/expand search with a FLOP or parameter target, or
 * with --server the same search run by a server (cli/remote-search.ts), latency targets included.
 */
import { MorphError } from '../../src/errors.ts';
import { isRuntimeName, VALID_RUNTIMES } from '../../src/protocol/agent-protocol.ts';
import { checkOutputDir, writeTfjsModel } from '../../src/export/tfjs-model.ts';
import { runSearch, VALID_COSTS, type CostName, type SearchEvent, type SearchReport, type Target } from '../../src/morph/search.ts';
import { VALID_BACKENDS, type BackendChoice } from '../../src/train/backend.ts';
import { VALID_ENGINES, type EngineChoice } from '../../src/train/engine.ts';
import { selectEngine } from '../../src/train/select-engine.ts';
import { runOptionsOf, withDefaults } from '../../src/morph/search-options.ts';
import { torchOptions } from '../torch-env.ts';
import { DATASET_SPECS, modelDataShape, openDataset } from '../../src/train/data/index.ts';
import { VALID_OPTIMIZERS, type OptimizerKind } from '../../src/train/optimizer.ts';
import { createProgressReporter, type ProgressReporter } from '../../src/train/progress.ts';
import { VALID_SCHEDULES, type ScheduleKind } from '../../src/train/schedule.ts';
import { numberFlag, parseFlags, type Command, type CommandIo } from '../args.ts';
import { human, table } from '../format.ts';
import { prepareLocalLatency, type LocalLatencyRequest } from '../local-latency.ts';
import { loadModelInput } from '../model-source.ts';
import { checkServerDataset, readModelJson, runRemoteSearch, serverBase, type RemoteCost, type RemoteSearchOptions } from '../remote-search.ts';

const USAGE = `Usage: morphnet search [--model M.json | --seed NAME] [--out DIR] [options]
       morphnet search --server http://HOST:PORT [MODEL.json | --seed NAME] [--device D] [options]
       morphnet search --local --server http://HOST:PORT --device D [--target-ms T] [options]

Runs MorphNet offline: trains the seed with a cost-weighted L1 regularizer on its batch-norm
gammas (shrink), keeps the channels whose |gamma| exceeds the threshold, scales that structure
by one width multiplier to the target (expand), then trains the found network. Writes
DIR/structure.json ({layer: channels}), DIR/model.json + weights.bin (the trained network) and
DIR/report.json, DIR/shrunk/ (the network after the shrink phase, before pruning: its gammas
show what died; "morphnet prune" on it gives the alive structure); with --baseline also
DIR/baseline/ (the uniformly shrunk seed at the same target, trained with the identical schedule). Progress goes to stderr (a live line on a
terminal, JSON lines otherwise); the summary to stdout.

Model and data:
  --model M.json       a tfjs model.json or Keras config (its weights, if any, start the shrink);
                       nested models are inlined, so the outputs are flat Functional models
  --input-shape H,W,C  the input size for a model saved with free sizes ([null, null, null, 3])
  --seed NAME          a built-in seed: mobilenet (default), resnet, vgg, mobilenetv2,
                       wideresnet (the last two sized so that widths matter for latency)
                       (an integer after --seed is the random seed, as --seed-value)
  --data SPEC          ${DATASET_SPECS.join(' | ')} (default fashion-mnist)
  --train-limit N      use at most N training images (train + validation)
  --test-limit N       evaluate on at most N test images
Target:
  --cost C             flops (default) | params
  --target T           absolute (e.g. 2e6) or a fraction of the seed's cost (e.g. 0.5x; default 0.5x)
  --divisor N          round widths to a multiple of N (default 4)
MorphNet:
  --strength K|auto    regularizer strength: λ = K / seed cost (more shrink epochs or a
                       larger K remove more channels). Default auto: the search tries
                       K = 5, 20, 80 (a short shrink, expand to the target, a short
                       training each) and keeps the best on validation accuracy
  --threshold T        alive threshold on |gamma| (default 0.01)
  --rounds R           shrink/expand rounds (default 1)
  --keep-weights       fine-tune the found network from the shrunk weights (default: from scratch)
  --baseline           also train the uniform-multiplier network at the same target
Training:
  --shrink-epochs E    epochs of the shrink phase (default 3)
  --final-epochs E     epochs of the final (and baseline) training (default 5)
  --batch-size B       (default 64)
  --optimizer O        sgd (default, momentum 0.9) | adam
  --lr X               learning rate (default: sgd 0.05, adam 1e-3)
  --schedule S         constant | cosine (default) | step, for the final and baseline
                       training (the shrink phase always runs at a constant rate)
  --max-steps N        cap the steps of each epoch (quick runs)
  --engine E           training engine: auto (default: torch when a Python with torch
                       is found, else tfjs) | torch (PyTorch worker; MORPHNET_PYTHON picks
                       the interpreter) | tfjs (in process, on --backend)
  --backend B          tfjs backend: auto (default) | tfjs-node | wasm | cpu
  --seed-value S       random seed for shuffling, splits and initialisation (default 0;
                       also --seed S with an integer)
Output:
  --out DIR            output directory (must not exist or be empty;
                       default data/searches/search-YYYYMMDD-HHMMSS)
  --overwrite          replace a non-empty DIR
  --json               print the report as JSON on stdout
  -h, --help           this text

On a server (morphnet serve), instead of training here:
  --server URL         send the search to the server at http://HOST:PORT and follow it: progress
                       lines on stderr as above (epochs, expand and closed-loop verify lines,
                       profiling notes), then the summary (learned vs baseline(s): MACs, params,
                       cost or predicted/measured ms, accuracy); with --out DIR every artifact
                       (structure.json, report.json, model.json, weights.bin, model.zip,
                       model.tflite, baseline.*) is downloaded into DIR. The model is --seed NAME,
                       or MODEL.json / --model M.json uploaded inline (its topology: the server
                       trains from fresh weights). --data names one of the server's datasets
                       (fashion-mnist, mnist, synthetic[:k=v,…]); local paths are refused, the
                       server cannot read this machine's files. The training flags above go to
                       the search's options; --backend picks the server's backend.
  --cost C             flops (default) | params | latency (--device, --runtime or --target-ms
                       imply latency)
  --device D           the device id or name (GET /api/devices) whose measured latency is the cost
  --runtime R          the device's runtime (default tfjs-wasm; the device's first if it lacks it)
  --target-ms T        latency target in ms per run (or --target 0.5x: half the seed's measured latency)
  --profile-grid N     channel counts per table axis to profile (2–16, default 6)
  --quick-measure      the short timing protocol for profiling and measuring (a first look)
  --json               one JSON object per line on stdout: {"type":"created"}, every event
                       {seq, type, data, at}, {"type":"end"}, {"type":"search"} (the SearchView),
                       {"type":"artifact"} per file downloaded
Offline with a device's latency (--local --server URL --device D): trains here as above, with the
device's measured latency as the cost: the server profiles the points of its table the search may
price (skipping those it has), measures the seed end to end, hands over the tables and the
calibration, and times each expanded candidate (closed loop, ±3%). --target-ms T or --target 0.5x
(of the seed's measured latency); --runtime, --profile-grid and --quick-measure as above. Do not
train on the machine being timed (the server pauses its own local agent only for its own searches).
The FLOP-MorphNet baseline runs only on the server (--baseline here adds the uniform one).
  --local              train here; the server only supplies the latency table and measurements
  --timeout S          give up after S seconds waiting for one profiling or measure job (default 3600)

Exit 0 when the search is done, 2 when it is refused, fails or is cancelled (with its error),
130 on Ctrl-C: the search keeps running on the server (the message says how to cancel it).`;

/** Flags that only mean something on a server. */
const REMOTE_ONLY = ['device', 'runtime', 'target-ms', 'profile-grid', 'quick-measure', 'local', 'timeout'] as const;
const REMOTE_COSTS = ['flops', 'params', 'latency'] as const satisfies readonly RemoteCost[];

function defaultOutDir(): string {
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  return `data/searches/search-${stamp}`;
}

function parseTarget(text: string): Target {
  const m = /^([0-9]*\.?[0-9]+(?:e[+-]?\d+)?)(x?)$/i.exec(text.trim());
  const v = m ? Number(m[1]) : Number.NaN;
  if (!m || !Number.isFinite(v) || v <= 0) {
    throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `morphnet search: --target ${JSON.stringify(text)} is not a positive number (e.g. 2e6) or a fraction of the seed's cost (e.g. 0.5x)`);
  }
  if (m[2]) {
    if (v >= 1) throw new MorphError('MORPH_ERR_TARGET', `morphnet search: --target ${text} is not below the seed's cost; give a fraction under 1x, e.g. 0.5x`);
    return { fraction: v };
  }
  return { value: v };
}

function oneOf<T extends string>(flag: string, value: string | boolean | undefined, valid: readonly T[], fallback: T): T {
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || !(valid as readonly string[]).includes(value)) {
    throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `morphnet search: --${flag} ${JSON.stringify(value)} is not one of ${valid.join(', ')}`);
  }
  return value as T;
}

function renderReport(r: SearchReport, out: string, backend: string): string {
  const row = (name: string, n: { macs: number; params: number; cost: number; accuracy?: number; multiplier?: number; trainSeconds?: number; engine?: string }): string[] => [
    name,
    human(n.macs),
    human(n.params),
    human(n.cost),
    n.accuracy === undefined ? '-' : `${(n.accuracy * 100).toFixed(2)}%`,
    n.multiplier === undefined ? '-' : n.multiplier.toFixed(3),
    n.trainSeconds === undefined ? '-' : `${n.trainSeconds.toFixed(0)}s`,
    n.engine === undefined ? '-' : n.engine.split(' ')[0],
  ];
  const rows = [row('seed', r.seed), row('morphnet', r.learned)];
  if (r.baseline) rows.push(row('uniform baseline', r.baseline));
  const last = r.rounds[r.rounds.length - 1];
  return [
    `target: ${human(r.target.value)} ${r.costModel.unit} (${(r.target.fraction * 100).toFixed(1)}% of the seed), ${backend}`,
    '',
    table(['network', 'MACs', 'params', r.costModel.unit, 'accuracy', 'ω', 'train', 'engine'], rows),
    '',
    r.strength.source === 'tuned'
      ? `strength k = ${r.strength.strength}, chosen on validation accuracy after ${r.strength.steps}-step trials: ${r.strength.trials.map((t) => `k = ${t.strength}: ${t.valAccuracy === null ? 'unreachable' : `${(t.valAccuracy * 100).toFixed(1)}%`}`).join(', ')}`
      : `strength k = ${r.strength.strength} (given)`,
    '',
    'learned widths (seed → alive after shrink → final):',
    ...last.groups.filter((g) => g.coefficient > 0).map((g) => `  ${g.layers[0].padEnd(24)} ${String(r.seed.structure[g.layers[0]] ?? g.channels).padStart(4)} → ${String(g.alive).padStart(4)} → ${String(g.expanded).padStart(4)}`),
    '',
    `wrote ${out}/structure.json, model.json, weights.bin, report.json, shrunk/${r.baseline ? ', baseline/' : ''}`,
  ].join('\n');
}

/** Routes search events to one progress reporter per phase plus plain phase messages. */
function progressSink(io: CommandIo, tty: boolean): { onEvent: (e: SearchEvent) => void; close: () => void } {
  let reporter: ProgressReporter | null = null;
  let phase = '';
  const write = (t: string): void => {
    process.stderr.write(t);
  };
  const close = (): void => {
    reporter?.close();
    reporter = null;
  };
  return {
    close,
    onEvent(e) {
      if (e.type === 'phase') {
        close();
        if (tty) io.err(`» ${e.message}`);
        else io.err(JSON.stringify({ event: 'phase', phase: e.phase, message: e.message }));
        return;
      }
      if (e.type === 'step' || e.type === 'epoch') {
        if (!reporter || phase !== e.phase) {
          close();
          phase = e.phase;
          reporter = createProgressReporter({ tty, write, label: e.phase });
        }
        if (e.type === 'step') reporter.onStep(e.step);
        else reporter.onEpochEnd(e.epoch);
        return;
      }
      if (e.type === 'shrink-epoch') {
        const alive = e.epoch.alive.reduce((a, b) => a + b, 0);
        if (!tty) io.err(JSON.stringify({ event: 'shrink-epoch', round: e.round, epoch: e.epoch.epoch, aliveChannels: alive, aliveCost: e.epoch.aliveCost, regularizer: e.epoch.regularizer }));
        return;
      }
      close();
      if (tty) io.err(`» ${e.phase} test accuracy ${(e.accuracy * 100).toFixed(2)}%`);
      else io.err(JSON.stringify({ event: 'evaluated', phase: e.phase, accuracy: e.accuracy }));
    },
  };
}

/** The remote search's request from the command line (the model, data, cost and target flags). */
async function remoteOptions(base: string, values: Record<string, string | boolean | undefined>, positionals: string[], seedName: string | undefined, options: Record<string, number | string | boolean>): Promise<RemoteSearchOptions> {
  const modelPaths = [...(typeof values.model === 'string' ? [values.model] : []), ...positionals];
  if (modelPaths.length > 1 || (modelPaths.length === 1 && seedName !== undefined)) {
    throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `morphnet search: give one model: MODEL.json (or --model M.json) or --seed NAME; got ${[...modelPaths, ...(seedName ? [`--seed ${seedName}`] : [])].join(', ')}`);
  }
  if (values.runtime !== undefined && !isRuntimeName(values.runtime)) {
    throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `morphnet search: --runtime ${JSON.stringify(values.runtime)} is not one of ${VALID_RUNTIMES.join(', ')}`);
  }
  const impliesLatency = (['device', 'runtime', 'target-ms'] as const).find((f) => values[f] !== undefined);
  const cost = oneOf<RemoteCost>('cost', values.cost, REMOTE_COSTS, impliesLatency ? 'latency' : 'flops');
  const targetMs = numberFlag('search', 'target-ms', values['target-ms'], (n) => n > 0, 'a positive number of ms');
  if (targetMs !== undefined && cost !== 'latency') throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `morphnet search: --target-ms is for --cost latency; with --cost ${cost} give --target (e.g. 0.5x)`);
  if (targetMs !== undefined && values.target !== undefined) throw new MorphError('MORPH_ERR_BAD_ARGUMENT', 'morphnet search: give --target-ms or --target, not both');
  if (cost === 'latency' && typeof values.device !== 'string') throw new MorphError('MORPH_ERR_BAD_ARGUMENT', 'morphnet search: --cost latency needs --device D, the device whose measured latency is the cost (GET /api/devices lists them)');
  const trainLimit = numberFlag('search', 'train-limit', values['train-limit'], (n) => Number.isInteger(n) && n >= 2, 'an integer ≥ 2');
  const testLimit = numberFlag('search', 'test-limit', values['test-limit'], (n) => Number.isInteger(n) && n >= 1, 'an integer ≥ 1');
  const dataset = checkServerDataset(typeof values.data === 'string' ? values.data : 'fashion-mnist', base);
  const model = modelPaths.length === 1 ? { model: await readModelJson(modelPaths[0]) } : { seed: seedName ?? 'mobilenet' };
  return {
    base,
    request: {
      ...model,
      data: { dataset, ...(trainLimit !== undefined ? { trainLimit } : {}), ...(testLimit !== undefined ? { testLimit } : {}) },
      cost,
      ...(targetMs !== undefined ? { targetMs } : { target: parseTarget(typeof values.target === 'string' ? values.target : '0.5x') }),
      // The default 0.5x is ours: where no width reaches it on the device, the server moves it (with a note).
      ...(cost === 'latency' && targetMs === undefined && values.target === undefined ? { clampTarget: true } : {}),
      options,
    },
    device: typeof values.device === 'string' ? values.device : undefined,
    runtime: typeof values.runtime === 'string' ? values.runtime : undefined,
    out: typeof values.out === 'string' && values.out !== '' ? values.out : undefined,
    overwrite: values.overwrite === true,
    json: values.json === true,
  };
}

/** The flags of an offline latency search (`--local`), checked before anything is trained or sent. */
function localLatencyFlags(values: Record<string, string | boolean | undefined>): Omit<LocalLatencyRequest, 'graph' | 'json'> {
  if (typeof values.server !== 'string') throw new MorphError('MORPH_ERR_BAD_ARGUMENT', 'morphnet search: --local needs --server URL, the server whose device tables price the search');
  if (typeof values.device !== 'string') throw new MorphError('MORPH_ERR_BAD_ARGUMENT', 'morphnet search: --local needs --device D, the device whose measured latency is the cost (GET /api/devices lists them)');
  if (values.cost !== undefined && values.cost !== 'latency') throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `morphnet search: --local searches on latency; drop --cost ${String(values.cost)} (or drop --local for a ${String(values.cost)} search here)`);
  if (values.runtime !== undefined && !isRuntimeName(values.runtime)) {
    throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `morphnet search: --runtime ${JSON.stringify(values.runtime)} is not one of ${VALID_RUNTIMES.join(', ')}`);
  }
  const targetMs = numberFlag('search', 'target-ms', values['target-ms'], (n) => n > 0, 'a positive number of ms');
  if (targetMs !== undefined && values.target !== undefined) throw new MorphError('MORPH_ERR_BAD_ARGUMENT', 'morphnet search: give --target-ms or --target, not both');
  const target = targetMs === undefined ? parseTarget(typeof values.target === 'string' ? values.target : '0.5x') : null;
  if (target && !('fraction' in target)) throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `morphnet search: with --local, --target is a fraction of the seed's measured latency (e.g. 0.5x); give an absolute target as --target-ms`);
  return {
    base: serverBase('search', values.server),
    device: values.device,
    runtime: values.runtime as string | undefined,
    profileGrid: numberFlag('search', 'profile-grid', values['profile-grid'], (n) => Number.isInteger(n) && n >= 2 && n <= 16, 'an integer from 2 to 16') ?? 6,
    quick: values['quick-measure'] === true,
    timeoutS: numberFlag('search', 'timeout', values.timeout, (n) => n > 0, 'a positive number of seconds') ?? 3600,
    ...(targetMs !== undefined ? { targetMs } : { fraction: (target as { fraction: number }).fraction }),
  };
}

export const searchCommand: Command = {
  name: 'search',
  summary: 'learn channel widths for a FLOP, parameter or device-latency target (MorphNet shrink/expand)',
  usage: USAGE,
  async run(argv, io) {
    const { values, positionals } = parseFlags('search', argv, {
      model: { type: 'string' },
      'input-shape': { type: 'string' },
      seed: { type: 'string', multiple: true },
      data: { type: 'string' },
      'train-limit': { type: 'string' },
      'test-limit': { type: 'string' },
      cost: { type: 'string' },
      target: { type: 'string' },
      divisor: { type: 'string' },
      strength: { type: 'string' },
      threshold: { type: 'string' },
      rounds: { type: 'string' },
      'keep-weights': { type: 'boolean' },
      baseline: { type: 'boolean' },
      'shrink-epochs': { type: 'string' },
      'final-epochs': { type: 'string' },
      'batch-size': { type: 'string' },
      optimizer: { type: 'string' },
      lr: { type: 'string' },
      schedule: { type: 'string' },
      'max-steps': { type: 'string' },
      backend: { type: 'string' },
      engine: { type: 'string' },
      'seed-value': { type: 'string' },
      out: { type: 'string' },
      overwrite: { type: 'boolean' },
      json: { type: 'boolean' },
      server: { type: 'string' },
      device: { type: 'string' },
      runtime: { type: 'string' },
      'target-ms': { type: 'string' },
      'profile-grid': { type: 'string' },
      'quick-measure': { type: 'boolean' },
      local: { type: 'boolean' },
      timeout: { type: 'string' },
    });
    const int = (name: string, min: number): number | undefined => numberFlag('search', name, values[name], (n) => Number.isInteger(n) && n >= min, `an integer ≥ ${min}`);
    const pos = (name: string): number | undefined => numberFlag('search', name, values[name], (n) => n > 0, 'a positive number');
    const given = <T extends string>(flag: string, valid: readonly T[]): T | undefined => (values[flag] === undefined ? undefined : oneOf<T>(flag, values[flag], valid, valid[0]));
    // The issue's interface spells both the seed model and the random seed as --seed: a name
    // picks the model, an integer the random seed; --seed-value is the unambiguous spelling.
    const seeds = (values.seed as unknown as string[] | undefined) ?? [];
    const seedNames = seeds.filter((v) => !/^-?\d+$/.test(v));
    const seedInts = seeds.filter((v) => /^-?\d+$/.test(v));
    if (seedNames.length > 1 || seedInts.length > 1) {
      throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `morphnet search: --seed given ${seeds.length} times (${seeds.join(', ')}); give at most one model name and one integer`);
    }
    // What the command line sets; the offline search fills in its defaults, a server its own (the same).
    const flags = {
      // auto is the default: leave it out.
      strength: values.strength === 'auto' ? undefined : numberFlag('search', 'strength', values.strength, (n) => n >= 0, 'a non-negative number or auto'),
      threshold: numberFlag('search', 'threshold', values.threshold, (n) => n >= 0, 'a non-negative number'),
      shrinkEpochs: int('shrink-epochs', 1),
      finalEpochs: int('final-epochs', 1),
      rounds: int('rounds', 1),
      seed: numberFlag('search', 'seed-value', values['seed-value'] ?? seedInts[0], Number.isInteger, 'an integer'),
      divisor: int('divisor', 1),
      batchSize: int('batch-size', 1),
      optimizer: given<OptimizerKind>('optimizer', VALID_OPTIMIZERS),
      learningRate: pos('lr'),
      schedule: given<ScheduleKind>('schedule', VALID_SCHEDULES),
      maxStepsPerEpoch: int('max-steps', 1),
      backend: given<BackendChoice>('backend', VALID_BACKENDS),
      engine: given<EngineChoice>('engine', VALID_ENGINES),
    };
    if (typeof values.server === 'string' && values.local !== true) {
      const base = serverBase('search', values.server);
      const options: Record<string, number | string | boolean> = {};
      for (const [key, v] of Object.entries(flags)) if (v !== undefined) options[key] = v;
      if (values.baseline === true) options.baseline = true;
      if (values['keep-weights'] === true) options.keepWeights = true;
      const grid = numberFlag('search', 'profile-grid', values['profile-grid'], (n) => Number.isInteger(n) && n >= 2 && n <= 16, 'an integer from 2 to 16');
      if (grid !== undefined) options.profileGrid = grid;
      if (values['quick-measure'] === true) options.measureProtocol = 'quick';
      return runRemoteSearch(await remoteOptions(base, values, positionals, seedNames[0], options), io);
    }
    const local = values.local === true ? localLatencyFlags(values) : null;
    const remoteFlag = local ? undefined : REMOTE_ONLY.find((f) => values[f] !== undefined);
    if (remoteFlag) throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `morphnet search: --${remoteFlag} needs --server URL: devices and latency searches live on a server (morphnet serve)`);

    const out = typeof values.out === 'string' && values.out !== '' ? values.out : defaultOutDir();
    // A latency search prices with its hooks; the named cost only fills the options' field.
    const cost = local ? 'flops' : oneOf<CostName>('cost', values.cost, VALID_COSTS, 'flops');
    let target = local ? parseTarget('0.5x') : parseTarget(typeof values.target === 'string' ? values.target : '0.5x');
    const flat = withDefaults({
      ...Object.fromEntries(Object.entries(flags).filter(([, v]) => v !== undefined)),
      baseline: values.baseline === true,
      keepWeights: values['keep-weights'] === true,
    });
    const seedValue = flat.seed;
    const options = runOptionsOf(flat, cost, target);
    await checkOutputDir(out, values.overwrite === true);
    const trainLimit = int('train-limit', 2);
    const testLimit = int('test-limit', 1);
    const modelPath = typeof values.model === 'string' ? values.model : undefined;
    const m = await loadModelInput('search', modelPath, modelPath === undefined ? (seedNames[0] ?? 'mobilenet') : seedNames[0], { inputShape: values['input-shape'] as string | undefined });
    const spec = typeof values.data === 'string' ? values.data : 'fashion-mnist';
    const dataset = await openDataset(spec, { seed: seedValue, limit: { train: trainLimit, test: testLimit }, model: modelDataShape(m.graph) });
    const { engine, report: engineReport } = await selectEngine({ engine: flat.engine, backend: flat.backend, torch: torchOptions(), onNotice: (m) => io.err(m) });
    const backendText = engineReport.description;
    io.err(`${backendText}; data ${dataset.name}: ${dataset.trainSize} train, ${dataset.valSize} val, ${dataset.testSize ?? 0} test`);
    // Ctrl-C: end the torch worker with us (it also exits when our end of its stdin closes).
    const onSigint = (): void => {
      void engine.close().finally(() => process.exit(130));
    };
    process.once('SIGINT', onSigint);
    try {
      const latency = local ? await prepareLocalLatency({ ...local, graph: m.graph, json: values.json === true }, io) : null;
      if (latency) {
        target = { value: latency.targetMs };
        io.err(`target ${latency.targetMs.toFixed(3)} ms on ${latency.deviceName}/${latency.runtime}: seed measured ${latency.seedMeasuredMs.toFixed(3)} ms, predicted ${latency.seedPredictedMs.toFixed(3)} ms (${latency.profiledPoints} point(s) profiled now)`);
      }
      const sink = progressSink(io, io.isTty);
      let result;
      try {
        result = await runSearch({ graph: m.graph, weights: m.weights }, dataset, { ...options, target }, sink.onEvent, { ...(latency ? { cost: latency.hooks } : {}), engine });
      } finally {
        sink.close();
      }
      const latencyReport = latency ? { latency: { deviceId: latency.deviceId, runtime: latency.runtime, server: local?.base, targetMs: latency.targetMs, seedMeasuredMs: latency.seedMeasuredMs, seedPredictedMs: latency.seedPredictedMs, profiledPoints: latency.profiledPoints, calibration: latency.calibration } } : {};
      const report = { ...result.report, ...latencyReport, engine: engineReport, backend: { description: backendText }, data: { spec, trainSize: dataset.trainSize, valSize: dataset.valSize, testSize: dataset.testSize ?? 0 }, model: m.path };
      const dir = await writeTfjsModel(out, result.model, {
        overwrite: values.overwrite === true,
        extraFiles: { 'structure.json': result.structure, 'report.json': report },
        subModels: { shrunk: result.shrunkModel, ...(result.baselineModel ? { baseline: result.baselineModel } : {}) },
      });
      io.out(values.json ? JSON.stringify(report, null, 2) : renderReport(result.report, dir, backendText));
      return 0;
    } finally {
      process.removeListener('SIGINT', onSigint);
      await engine.close();
    }
  },
};
