/**
 * The MorphNet search, offline: shrink the seed with the cost-weighted gamma regularizer, read off
 * the alive structure, expand it with one width multiplier to the target, optionally repeat, then
 * train the found network (from scratch by default) and, with `baseline`, the seed shrunk by a
 * uniform multiplier to the same target with the identical schedule.
 */
import { MorphError } from '../errors.ts';
import { costOps, flopsCostModel, paramsCostModel, type CostModel, type CostOp } from '../cost/cost-model.ts';
import { networkCost } from '../cost/counts.ts';
import { analyzeChannels, type ChannelAnalysis } from '../graph/channel-groups.ts';
import type { Graph } from '../graph/graph.ts';
import type { ModelConfigJson } from '../graph/keras-json.ts';
import { parseModel } from '../graph/parse.ts';
import { rebuild, type RebuiltModel } from '../graph/rebuild.ts';
import type { WeightMap } from '../graph/weights.ts';
import { identitySelection, seedWidths, selectionFromWidths, type Selection } from '../graph/widths.ts';
import { structureOf, type Structure } from '../export/structure.ts';
import type { Dataset } from '../train/data/index.ts';
import { checkDatasetFitsModel } from '../train/data/index.ts';
import type { EpochEvent, StepEvent, TrainOptions } from '../train/loop.ts';
import type { TrainingEngine } from '../train/engine.ts';
import { activeOrAutoBackend } from '../train/backend.ts';
import { createTfjsEngine } from '../train/tfjs-engine.ts';
import { floorWidths, widthsAt, type ExpandResult } from './expand.ts';
import { bracketMultiplier, nextAim, settledLow } from './closed-loop.ts';
import { costModelHooks, type SearchCostHooks } from './search-cost.ts';
import { selectByGamma } from './selection.ts';
import { shrink, type ShrinkEpoch } from './shrink.ts';
import { pickStrength, shortSteps, STRENGTH_CANDIDATES, trialStrength, type StrengthChoice, type StrengthTrial } from './strength.ts';

export const VALID_COSTS = ['flops', 'params'] as const;
export type CostName = (typeof VALID_COSTS)[number];

export function costModelFor(name: CostName): CostModel {
  return name === 'flops' ? flopsCostModel : paramsCostModel;
}

/** `{fraction: 0.5}` is half the seed's cost; `{value}` is absolute, in the cost model's unit. */
export type Target = { readonly fraction: number } | { readonly value: number };

export type { SearchCostHooks } from './search-cost.ts';

/**
 * Why closed-loop expand stopped: the measurement is within the tolerance; the next candidate
 * would be a network already measured (the divisor's rounding allows nothing in between); the
 * corrected aim is out of the reachable range (above the seed, below the minimum); or 5
 * candidates were measured.
 */
export type VerifyStop = 'within' | 'same-network' | 'unreachable' | 'tries';

/** One closed-loop step: what expand aimed at, what it predicted, what the device measured. */
export interface VerifyStep {
  readonly aimedAt: number;
  readonly predicted: number;
  /** What `settledLow` kept of `runs`: the lower of the lowest two that agree (else the median of all). */
  readonly measured: number;
  readonly multiplier: number;
  /** Each measurement's median, in order (two or more: until two agree, at most 6). */
  readonly runs?: readonly number[];
}

/** What closed-loop expand measured of one network: nothing (null, no steps, no stop) without `verify`. */
interface Verified {
  readonly measured: number | null;
  readonly steps: VerifyStep[];
  readonly stop: VerifyStop | null;
}

export interface SearchOptions {
  readonly cost: CostName;
  readonly target: Target;
  /** k in λ = k / seed cost; null: chosen by the strength procedure (strength.ts) on training and validation data. */
  readonly strength: number | null;
  /** Alive threshold on |γ| (default 1e-2). */
  readonly threshold: number;
  readonly shrinkEpochs: number;
  readonly finalEpochs: number;
  /** Shrink/expand rounds (default 1). */
  readonly rounds: number;
  readonly seed: number;
  /** Also train the uniform-multiplier network at the same target. */
  readonly baseline: boolean;
  /** Fine-tune the found network from the shrunk weights instead of training from scratch. */
  readonly keepWeights: boolean;
  /** Round widths to a multiple of this. */
  readonly divisor: number;
  /** Training settings shared by every phase (epochs are set per phase). */
  readonly train: Omit<TrainOptions, 'epochs' | 'seed'>;
}

export interface NetworkSummary {
  readonly multiplier: number;
  readonly structure: Structure;
  readonly macs: number;
  readonly flops: number;
  readonly params: number;
  /** Cost under the search's cost model. */
  readonly cost: number;
  readonly accuracy: number;
  readonly testLoss: number;
  readonly trainSeconds: number;
  /** Which training engine trained it (engine, backend or device), e.g. "torch engine, PyTorch 1.13.0 on cpu, …". */
  readonly engine: string;
  /** Measured on the device (closed-loop expand), null without `verify`. */
  readonly measured: number | null;
  /** The closed-loop steps (empty without `verify`). */
  readonly verify: readonly VerifyStep[];
  /** Why the closed loop stopped (null without `verify`). */
  readonly verifyStop: VerifyStop | null;
}

export interface RoundReport {
  readonly round: number;
  readonly lambda: number;
  readonly shrinkSeconds: number;
  /** Which training engine shrank it. */
  readonly engine: string;
  readonly epochs: readonly ShrinkEpoch[];
  readonly multiplier: number;
  readonly expandedCost: number;
  readonly groups: readonly {
    id: number;
    layers: readonly string[];
    channels: number;
    alive: number;
    expanded: number;
    coefficient: number;
    meanGammaBefore: number;
    meanGammaAfter: number;
  }[];
}

export interface SearchReport {
  readonly costModel: { name: string; unit: string };
  readonly seed: { macs: number; flops: number; params: number; cost: number; structure: Structure };
  readonly target: { value: number; fraction: number };
  readonly minimumCost: number;
  readonly rounds: readonly RoundReport[];
  readonly learned: NetworkSummary;
  readonly baseline: NetworkSummary | null;
  readonly options: SearchOptions;
  /** The strength the search used, and the trials that chose it when it was not given. */
  readonly strength: StrengthChoice;
}

export type SearchEvent =
  | { readonly type: 'phase'; readonly phase: 'shrink' | 'expand' | 'final' | 'baseline'; readonly round?: number; readonly message: string }
  | { readonly type: 'step'; readonly phase: 'shrink' | 'final' | 'baseline'; readonly step: StepEvent }
  | { readonly type: 'epoch'; readonly phase: 'shrink' | 'final' | 'baseline'; readonly epoch: EpochEvent }
  | { readonly type: 'shrink-epoch'; readonly round: number; readonly epoch: ShrinkEpoch }
  | { readonly type: 'evaluated'; readonly phase: 'final' | 'baseline'; readonly accuracy: number };

export interface SearchInput {
  readonly graph: Graph;
  readonly weights: WeightMap | null;
}

export interface SearchResult {
  readonly report: SearchReport;
  readonly structure: Structure;
  /** The trained found network. */
  readonly model: RebuiltModel;
  readonly baselineModel: RebuiltModel | null;
  /** The last shrink phase's network before pruning: its gammas show what died. */
  readonly shrunkModel: RebuiltModel;
}

/** A parsed network with its channel analysis and cost ops. */
export interface Net {
  readonly graph: Graph;
  readonly analysis: ChannelAnalysis;
  readonly ops: CostOp[];
}

export function netOf(graph: Graph): Net {
  const analysis = analyzeChannels(graph);
  return { graph, analysis, ops: costOps(graph, analysis) };
}

function reparse(modelTopology: ModelConfigJson): Graph {
  return parseModel({ format: 'layers-model', modelTopology }, { source: 'rebuilt model' }).graph;
}

function mean(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i];
  return a.length > 0 ? s / a.length : 0;
}

/**
 * Resolves the target in the cost's unit and checks it: a positive number, below the seed's cost,
 * and reachable (expanding the seed to it throws MORPH_ERR_TARGET, with the minimum, where it is
 * not). `minimum` is the smallest network's cost (every regularized group at `divisor`), or the
 * target where the cost's expand reaches below that (latency hooks trust a measured minimum).
 * @throws MorphError `MORPH_ERR_TARGET`.
 */
export function resolveTarget(net: Net, cost: SearchCostHooks, target: Target, divisor: number): { value: number; seedCost: number; minimum: number } {
  const show = (x: number): string => `${x.toFixed(cost.digits ?? 3)} ${cost.unit}`;
  const seedCost = cost.costAt(net.graph, net.analysis, seedWidths(net.analysis));
  const value = 'fraction' in target ? target.fraction * seedCost : target.value;
  if (!Number.isFinite(value) || value <= 0) throw new MorphError('MORPH_ERR_TARGET', `target ${value} must be a positive number of ${cost.unit}`);
  if (value >= seedCost) {
    throw new MorphError('MORPH_ERR_TARGET', `target ${show(value)} is not below the seed's ${show(seedCost)}; give a smaller target (e.g. 0.5x)`, { target: value, seed: seedCost });
  }
  cost.expand(net.graph, net.analysis, seedWidths(net.analysis), value, divisor);
  const minimum = cost.costAt(net.graph, net.analysis, floorWidths(net.analysis, divisor));
  return { value, seedCost, minimum: Math.min(minimum, value) };
}

/** The final training of a found (or baseline) network: `finalEpochs` from `start`, BN recalibrated, evaluated on the test split. */
export async function trainAndEvaluate(
  engine: TrainingEngine,
  net: Net,
  selectionWeights: RebuiltModel,
  dataset: Dataset,
  options: SearchOptions,
  phase: 'final' | 'baseline',
  onEvent: (e: SearchEvent) => void,
): Promise<{ model: RebuiltModel; accuracy: number; testLoss: number; seconds: number; engine: string }> {
  const started = Date.now();
  const fit = await engine.fit(
    {
      modelTopology: selectionWeights.modelTopology,
      weights: selectionWeights.weights,
      dataset,
      train: { ...options.train, epochs: options.finalEpochs, seed: options.seed },
      // Moving averages lag behind short runs; evaluate with exact statistics (see bn-recalibrate.ts).
      recalibrate: { seed: options.seed },
      evaluate: { split: dataset.testSize ? 'test' : 'val', batchSize: options.train.batchSize ?? 64 },
    },
    {
      onStep: (step) => onEvent({ type: 'step', phase, step }),
      onEpochEnd: (epoch) => onEvent({ type: 'epoch', phase, epoch }),
    },
  );
  const seconds = (Date.now() - started) / 1000;
  const ev = fit.evaluation!;
  onEvent({ type: 'evaluated', phase, accuracy: ev.accuracy });
  const trained = rebuild(net.graph, net.analysis, identitySelection(net.analysis), fit.weights, { seed: options.seed });
  return { model: trained, accuracy: ev.accuracy, testLoss: ev.loss, seconds, engine: fit.engine };
}

function summarize(
  net: Net,
  cost: (net: Net) => number,
  multiplier: number,
  trained: { accuracy: number; testLoss: number; seconds: number; engine: string },
  verified: Verified = { measured: null, steps: [], stop: null },
): NetworkSummary {
  const c = networkCost(net.graph);
  return {
    multiplier,
    structure: structureOf(net.graph, net.analysis, identitySelection(net.analysis)),
    macs: c.macs,
    flops: c.flops,
    params: c.params,
    cost: cost(net),
    accuracy: trained.accuracy,
    testLoss: trained.testLoss,
    trainSeconds: trained.seconds,
    engine: trained.engine,
    measured: verified.measured,
    verify: verified.steps,
    verifyStop: verified.stop,
  };
}

/** Most candidates closed-loop expand measures on the device. */
const VERIFY_TRIES = 5;

/**
 * Closed-loop expand: expand to the target on the predicted cost, measure the candidate on the
 * device, and aim again (`nextAim`: by the measured ratio, then between the measurements on each
 * side of the target) until the measurement is within the tolerance (or 5 tries, or the aim
 * leaves the reachable range: the closest try is kept). Each candidate is measured
 * until two measurements agree within the tolerance (`settledLow`). Once two measurements bracket the
 * target, the next candidate is chosen between them by width multiplier (`bracketMultiplier`),
 * so a table that mispredicts that range cannot keep sending back a network already measured;
 * when no untried network lies between them, the stop is `same-network`. Hooks without `verify`
 * (FLOPs, params) give their expand as it is, with nothing measured.
 */
export async function expandVerified(
  hooks: SearchCostHooks,
  net: Net,
  base: ArrayLike<number>,
  target: number,
  divisor: number,
  label: string,
  onEvent: (e: SearchEvent) => void,
): Promise<Verified & { expanded: ExpandResult }> {
  let aim = target;
  let expanded = hooks.expand(net.graph, net.analysis, base, aim, divisor);
  const verify = hooks.verify;
  if (!verify) return { expanded, measured: null, steps: [], stop: null };
  let stop: VerifyStop = 'tries';
  const tolerance = hooks.verifyTolerance ?? 0.03;
  const ceiling = hooks.costAt(net.graph, net.analysis, seedWidths(net.analysis));
  const steps: VerifyStep[] = [];
  const tried: number[][] = [];
  const wasTried = (widths: readonly number[]): boolean => tried.some((t) => t.every((w, g) => w === widths[g]));
  const at = (multiplier: number): ExpandResult => {
    const widths = widthsAt(net.analysis, base, multiplier, divisor);
    return { multiplier, widths, cost: hooks.costAt(net.graph, net.analysis, widths) };
  };
  const expandOrNull = (aimAt: number): ExpandResult | null => {
    try {
      return hooks.expand(net.graph, net.analysis, base, aimAt, divisor);
    } catch (err) {
      if (err instanceof MorphError && err.code === 'MORPH_ERR_TARGET') return null;
      throw err;
    }
  };
  let best: { expanded: ExpandResult; measured: number } | null = null;
  for (let i = 0; i < VERIFY_TRIES; i++) {
    const topology = rebuild(net.graph, net.analysis, selectionFromWidths(net.analysis, expanded.widths), null).modelTopology;
    const { measured, runs } = await settledLow((run) => verify(topology, `${label} (try ${i + 1}, run ${run})`), tolerance);
    steps.push({ aimedAt: aim, predicted: expanded.cost, measured, multiplier: expanded.multiplier, runs });
    tried.push(expanded.widths);
    if (!best || Math.abs(measured - target) < Math.abs(best.measured - target)) best = { expanded, measured };
    onEvent({ type: 'phase', phase: 'expand', message: `${label}: predicted ${expanded.cost.toFixed(3)} ${hooks.unit}, measured ${measured.toFixed(3)} (target ${target.toFixed(3)})` });
    if (Math.abs(measured / target - 1) <= tolerance) {
      stop = 'within';
      break;
    }
    const bracket = bracketMultiplier(steps, target);
    if (bracket) {
      // Between the two measurements: interpolated in ω; else expand aimed between their
      // predictions (its rounding fill reaches widths one uniform ω cannot); else halfway in ω;
      // else nothing is left to try.
      const { below, above } = bracket;
      const aimBetween = below.predicted + ((target - below.measured) * (above.predicted - below.predicted)) / (above.measured - below.measured);
      const next = [at(bracket.multiplier), expandOrNull(aimBetween), at((below.multiplier + above.multiplier) / 2)].find(
        (c): c is ExpandResult => c !== null && !wasTried(c.widths),
      );
      if (!next) {
        stop = 'same-network';
        break;
      }
      expanded = next;
      aim = next.cost;
      continue;
    }
    aim = nextAim(steps, target, ceiling);
    try {
      const next = hooks.expand(net.graph, net.analysis, base, aim, divisor);
      if (wasTried(next.widths)) {
        stop = 'same-network';
        break;
      }
      expanded = next;
    } catch (err) {
      if (err instanceof MorphError && err.code === 'MORPH_ERR_TARGET') {
        stop = 'unreachable';
        break;
      }
      throw err;
    }
  }
  return { expanded: best!.expanded, measured: best!.measured, steps, stop };
}

/**
 * The strength of the search: the user's, or the one the procedure of strength.ts picks (short
 * shrink → expand → short training → validation accuracy, per candidate).
 */
async function chooseStrength(
  engine: TrainingEngine,
  seed: Net,
  start: RebuiltModel,
  dataset: Dataset,
  options: SearchOptions,
  seedCost: number,
  regularizer: CostModel,
  expand: (alive: ArrayLike<number>) => ExpandResult,
  onEvent: (e: SearchEvent) => void,
): Promise<StrengthChoice> {
  if (options.strength !== null) return { strength: options.strength, source: 'given', trials: [], steps: null };
  const batch = options.train.batchSize ?? 64;
  const steps = Math.min(options.train.maxStepsPerEpoch ?? Infinity, shortSteps(Math.ceil(dataset.trainSize / batch)));
  const fullSteps = options.shrinkEpochs * Math.min(options.train.maxStepsPerEpoch ?? Infinity, Math.ceil(dataset.trainSize / batch));
  const trials: StrengthTrial[] = [];
  for (const k of STRENGTH_CANDIDATES) {
    const lambda = k / seedCost;
    const trialLambda = trialStrength(lambda, fullSteps, steps);
    onEvent({ type: 'phase', phase: 'shrink', message: `choosing the strength: k = ${k} (λ = ${lambda.toExponential(2)}, ${trialLambda.toExponential(2)} over the short run): a ${steps}-step shrink, expand to the target, a ${steps}-step training, validation accuracy` });
    const shrunk = await shrink(engine, start, seed.graph, seed.analysis, seed.ops, regularizer, dataset, {
      lambda: trialLambda,
      threshold: options.threshold,
      train: { ...options.train, schedule: 'constant', epochs: 1, maxStepsPerEpoch: steps, seed: options.seed + 1000 },
    });
    let expanded: ExpandResult;
    try {
      expanded = expand(shrunk.alive);
    } catch (err) {
      if (!(err instanceof MorphError && err.code === 'MORPH_ERR_TARGET')) throw err;
      trials.push({ strength: k, lambda, alive: [...shrunk.alive], multiplier: NaN, cost: NaN, valAccuracy: null, valLoss: null });
      continue;
    }
    const fresh = rebuild(seed.graph, seed.analysis, selectionFromWidths(seed.analysis, expanded.widths), null, { seed: options.seed });
    const fit = await engine.fit({
      modelTopology: fresh.modelTopology,
      weights: fresh.weights,
      dataset,
      train: { ...options.train, epochs: 1, maxStepsPerEpoch: steps, seed: options.seed },
      recalibrate: { seed: options.seed },
      evaluate: { split: 'val', batchSize: batch },
    });
    trials.push({ strength: k, lambda, alive: [...shrunk.alive], multiplier: expanded.multiplier, cost: expanded.cost, valAccuracy: fit.evaluation!.accuracy, valLoss: fit.evaluation!.loss });
  }
  const best = pickStrength(trials);
  const scores = trials.map((t) => `k = ${t.strength}: ${t.valAccuracy === null ? 'target unreachable' : `${(t.valAccuracy * 100).toFixed(1)}%`}`).join(', ');
  onEvent({ type: 'phase', phase: 'shrink', message: `strength k = ${best.strength} chosen on validation accuracy (${scores})` });
  return { strength: best.strength, source: 'tuned', trials, steps };
}

/**
 * Runs the whole search. Checks the dataset and the target before any training. `hooks.cost`
 * prices the networks (e.g. `latencyHooks`, latency-hooks.ts), else the cost model that
 * `options.cost` names (`costModelHooks`).
 * @throws MorphError `MORPH_ERR_DATASET_MISMATCH`, `MORPH_ERR_TARGET`, `MORPH_ERR_NAN`.
 */
export async function runSearch(
  input: SearchInput,
  dataset: Dataset,
  options: SearchOptions,
  onEvent: (e: SearchEvent) => void = () => {},
  hooks: { readonly cost?: SearchCostHooks; readonly engine?: TrainingEngine } = {},
): Promise<SearchResult> {
  // Without an engine: tfjs on the active backend (what every search trained on before engines).
  const engine = hooks.engine ?? createTfjsEngine(await activeOrAutoBackend());
  const seedNet = netOf(input.graph);
  // One path for every cost: FLOPs and params as the hooks of their cost model.
  const cost = hooks.cost ?? costModelHooks(costModelFor(options.cost));
  const regularizerFor = (n: Net): CostModel => cost.costModel(n.graph, n.analysis);
  const costOfNet = (n: Net): number => cost.costAt(n.graph, n.analysis, seedWidths(n.analysis));
  const inputShape = input.graph.layers.find((l) => l.name === input.graph.inputs[0].layer)!.calls[0].outputShape;
  const outputShape = input.graph.layers.find((l) => l.name === input.graph.outputs[0].layer)!.calls[0].outputShape;
  checkDatasetFitsModel(dataset, inputShape.slice(1) as [number, number, number], outputShape[outputShape.length - 1] as number);
  const target = resolveTarget(seedNet, cost, options.target, options.divisor);

  let net = seedNet;
  let weights: RebuiltModel = rebuild(net.graph, net.analysis, identitySelection(net.analysis), input.weights, { seed: options.seed });
  const strength = await chooseStrength(engine, seedNet, weights, dataset, options, target.seedCost, regularizerFor(seedNet), (alive) => cost.expand(seedNet.graph, seedNet.analysis, alive, target.value, options.divisor), onEvent);
  const lambda = strength.strength / target.seedCost;
  let multiplier = 1;
  let shrunkModel: RebuiltModel | null = null;
  let learnedVerified: Verified | undefined;
  const rounds: RoundReport[] = [];
  for (let round = 1; round <= options.rounds; round++) {
    onEvent({ type: 'phase', phase: 'shrink', round, message: `round ${round}: shrinking with λ = ${lambda.toExponential(3)} for ${options.shrinkEpochs} epoch(s)` });
    const shrunk = await shrink(engine, weights, net.graph, net.analysis, net.ops, regularizerFor(net), dataset, {
      lambda,
      threshold: options.threshold,
      // A constant rate: the proximal step scales with lr, so a decaying schedule would stop the shrinking.
      train: { ...options.train, schedule: 'constant', epochs: options.shrinkEpochs, seed: options.seed + round },
    }, {
      onStep: (step) => onEvent({ type: 'step', phase: 'shrink', step }),
      onEpochEnd: (epoch) => onEvent({ type: 'epoch', phase: 'shrink', epoch }),
      onEpoch: (epoch) => onEvent({ type: 'shrink-epoch', round, epoch }),
    });
    const trainedWeights: WeightMap = shrunk.weights;
    const lastRound = round === options.rounds;
    const verifiedRound = await expandVerified(cost, net, shrunk.alive, target.value, options.divisor, `round ${round} expand`, onEvent);
    const { expanded } = verifiedRound;
    if (lastRound) learnedVerified = verifiedRound;
    multiplier = expanded.multiplier;
    const aliveCost = cost.costAt(net.graph, net.analysis, shrunk.alive);
    const digits = cost.digits ?? 3;
    onEvent({ type: 'phase', phase: 'expand', round, message: `round ${round}: alive structure costs ${aliveCost.toFixed(digits)} ${cost.unit}; ω = ${expanded.multiplier.toFixed(3)} reaches ${expanded.cost.toFixed(digits)} of ${target.value.toFixed(digits)}` });
    const selection: Selection = selectByGamma(net.analysis, expanded.widths, shrunk.gammas, options.threshold);
    rounds.push({
      round,
      lambda,
      shrinkSeconds: shrunk.seconds,
      engine: shrunk.engine,
      epochs: shrunk.epochs,
      multiplier: expanded.multiplier,
      expandedCost: expanded.cost,
      groups: net.analysis.groups.map((g) => ({
        id: g.id,
        layers: g.layers,
        channels: g.channels,
        alive: shrunk.alive[g.id],
        expanded: expanded.widths[g.id],
        coefficient: shrunk.coefficients[g.id],
        meanGammaBefore: mean(shrunk.gammasBefore[g.id]),
        meanGammaAfter: mean(shrunk.gammas[g.id]),
      })),
    });
    shrunkModel = rebuild(net.graph, net.analysis, identitySelection(net.analysis), trainedWeights);
    weights = rebuild(net.graph, net.analysis, selection, trainedWeights, { seed: options.seed + round });
    net = netOf(reparse(weights.modelTopology));
  }

  onEvent({ type: 'phase', phase: 'final', message: `training the found network ${options.keepWeights ? 'from the shrunk weights' : 'from scratch'} for ${options.finalEpochs} epoch(s)` });
  const start = options.keepWeights ? weights : rebuild(net.graph, net.analysis, identitySelection(net.analysis), null, { seed: options.seed });
  const final = await trainAndEvaluate(engine, net, start, dataset, options, 'final', onEvent);
  const learned = summarize(net, costOfNet, multiplier, final, learnedVerified);

  let baseline: NetworkSummary | null = null;
  let baselineModel: RebuiltModel | null = null;
  if (options.baseline) {
    const verifiedUniform = await expandVerified(cost, seedNet, seedWidths(seedNet.analysis), target.value, options.divisor, 'uniform baseline expand', onEvent);
    const uniform = verifiedUniform.expanded;
    onEvent({ type: 'phase', phase: 'baseline', message: `training the uniform baseline (ω = ${uniform.multiplier.toFixed(3)}) with the same schedule` });
    const sel = selectionFromWidths(seedNet.analysis, uniform.widths);
    const fresh = rebuild(seedNet.graph, seedNet.analysis, sel, null, { seed: options.seed });
    const baseNet = netOf(reparse(fresh.modelTopology));
    const trained = await trainAndEvaluate(engine, baseNet, fresh, dataset, options, 'baseline', onEvent);
    baseline = summarize(baseNet, costOfNet, uniform.multiplier, trained, verifiedUniform);
    baselineModel = trained.model;
  }

  const seedCost = networkCost(seedNet.graph);
  const report: SearchReport = {
    costModel: { name: cost.name, unit: cost.unit },
    seed: {
      macs: seedCost.macs,
      flops: seedCost.flops,
      params: seedCost.params,
      cost: target.seedCost,
      structure: structureOf(seedNet.graph, seedNet.analysis, identitySelection(seedNet.analysis)),
    },
    target: { value: target.value, fraction: target.value / target.seedCost },
    minimumCost: target.minimum,
    rounds,
    learned,
    baseline,
    options,
    strength,
  };
  return { report, structure: learned.structure, model: final.model, baselineModel, shrunkModel: shrunkModel! };
}


