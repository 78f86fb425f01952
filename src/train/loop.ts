/**
 * The training loop: epochs of shuffled batches through `createTrainStep`, a per-step learning-rate
 * schedule, evaluation after each epoch, checkpoints, resume, and a hard stop on a NaN loss. It
 * reports through hooks only (no printing), so the CLI, the server and the tests each attach what
 * they need — e.g. `createProgressReporter` for a terminal, a differentiable penalty as `extraLoss`,
 * or the MorphNet shrink phase's proximal step in `onStep`.
 */
import * as tf from '@tensorflow/tfjs';
import { MorphError } from '../errors.ts';
import { checkDatasetFitsModel, type Dataset, type ModelInputShape } from './data/index.ts';
import { readLatestCheckpoint, restoreCheckpoint, writeCheckpoint, type EpochRecord, type RunFingerprint } from './checkpoint.ts';
import { evaluate } from './evaluate.ts';
import { createOptimizer, type OptimizerOptions } from './optimizer.ts';
import { nanError, positiveInt, resolveTrainOptions } from './train-options.ts';
import { learningRateAt, type ScheduleKind } from './schedule.ts';
import { createTrainStep, type StepResult } from './step.ts';

export type { EpochRecord } from './checkpoint.ts';
export { evaluate, type EvaluateResult } from './evaluate.ts';

export interface CheckpointOptions {
  /** Directory of the run's checkpoints (created if missing). */
  dir: string;
  /** Write a checkpoint every this many epochs, and always after the last one. Default 1. */
  everyEpochs?: number;
  /** Checkpoints kept, newest first. Default 1. */
  keep?: number;
}

export interface TrainOptions {
  /** Number of epochs (whole run, including any already done by a resumed checkpoint). */
  epochs: number;
  /** Default 64. */
  batchSize?: number;
  /** Default Adam, lr 1e-3. */
  optimizer?: OptimizerOptions;
  /** Learning-rate schedule over the whole run, per step. Default `constant`. */
  schedule?: ScheduleKind;
  /** Seed of the shuffle order (each epoch gets its own). Default 0. */
  seed?: number;
  /** Caps the steps of each epoch (quick tests, smoke runs). Default: the whole training split. */
  maxStepsPerEpoch?: number;
  /** Batch size of the end-of-epoch evaluation on the `val` split. Default 256. */
  evalBatchSize?: number;
  checkpoint?: CheckpointOptions;
  /**
   * Continue from the newest checkpoint in `checkpoint.dir` (weights, optimizer state, epoch,
   * schedule position); starts afresh when there is none. Default false.
   */
  resume?: boolean;
}

export interface StepEvent {
  /** 1-based epoch. */
  readonly epoch: number;
  readonly epochs: number;
  /** 1-based step within the epoch. */
  readonly step: number;
  readonly stepsPerEpoch: number;
  /** 1-based step over the whole run; `totalSteps` is where it ends. */
  readonly globalStep: number;
  readonly totalSteps: number;
  /** Mean cross-entropy of this batch. */
  readonly loss: number;
  /** The `extraLoss` hook's value on this batch, 0 without one. */
  readonly extraLoss: number;
  /** Learning rate used by this step. */
  readonly lr: number;
  /** This step's throughput (batch size / wall time of the step). */
  readonly imagesPerSec: number;
}

export interface EpochEvent {
  readonly epoch: number;
  readonly epochs: number;
  /** Sample-weighted mean task loss over the epoch's batches. */
  readonly trainLoss: number;
  readonly trainExtraLoss: number;
  /** Null when the dataset has no validation split. */
  readonly valLoss: number | null;
  readonly valAccuracy: number | null;
  /** Wall time of the epoch, evaluation included. */
  readonly seconds: number;
  /** The checkpoint written after this epoch, if any. */
  readonly checkpoint: string | null;
}

export type HookResult = void | 'stop';

export interface TrainHooks {
  /** Computed inside the gradient closure on every step; it may read model variables. */
  extraLoss?: () => tf.Scalar;
  /** After every step; `'stop'` ends the run after this step (no checkpoint for a partial epoch). */
  onStep?: (e: StepEvent) => HookResult | Promise<HookResult>;
  /** After every epoch (and its checkpoint); `'stop'` ends the run there. */
  onEpochEnd?: (e: EpochEvent) => HookResult | Promise<HookResult>;
}

export interface TrainResult {
  /** Epochs completed in total (including those of a resumed checkpoint). */
  readonly epochsCompleted: number;
  /** True when a hook stopped the run before `epochs`. */
  readonly stopped: boolean;
  /** The checkpoint the run resumed from, if any. */
  readonly resumedFrom: string | null;
  /** The newest checkpoint written by this run (or resumed from), if any. */
  readonly lastCheckpoint: string | null;
  readonly globalStep: number;
  readonly history: readonly EpochRecord[];
  /** Wall time of this call. */
  readonly seconds: number;
}

/** The model's class count from its single output, e.g. `[null, 10]` → 10. */
function modelShape(model: tf.LayersModel): { input: ModelInputShape; classes: number } {
  if (model.inputs.length !== 1 || model.outputs.length !== 1) {
    throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `training needs a model with one input and one output; "${model.name}" has ${model.inputs.length} and ${model.outputs.length}`);
  }
  const ins = model.inputs[0].shape;
  const outs = model.outputs[0].shape;
  if (ins.length !== 4 || outs.length !== 2) {
    throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `training needs an image input [batch, H, W, C] and a class output [batch, classes]; "${model.name}" has ${JSON.stringify(ins)} → ${JSON.stringify(outs)}`);
  }
  return { input: [ins[1], ins[2], ins[3]], classes: outs[1] as number };
}

/**
 * Trains `model` in place on `dataset`'s `train` split.
 * @throws MorphError `MORPH_ERR_BAD_ARGUMENT` for bad options, `MORPH_ERR_DATASET_MISMATCH` when the
 *   data does not fit the model, `MORPH_ERR_CHECKPOINT` for a checkpoint that cannot be resumed,
 *   `MORPH_ERR_NAN` when the loss (or the validation loss) stops being finite — at once, with the
 *   epoch and step, leaving the last good checkpoint in place.
 */
export async function train(model: tf.LayersModel, dataset: Dataset, options: TrainOptions, hooks: TrainHooks = {}): Promise<TrainResult> {
  const started = performance.now();
  const { epochs, batchSize, opt, schedule, seed, evalBatchSize } = resolveTrainOptions(options);
  const everyEpochs = positiveInt('checkpoint.everyEpochs', options.checkpoint?.everyEpochs ?? 1);
  if (options.resume && !options.checkpoint) throw new MorphError('MORPH_ERR_BAD_ARGUMENT', 'training option resume needs checkpoint.dir to resume from');
  const { input, classes } = modelShape(model);
  checkDatasetFitsModel(dataset, input, classes);
  if (dataset.trainSize < 1) throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `dataset ${dataset.name} has no training samples`);

  let stepsPerEpoch = Math.ceil(dataset.trainSize / batchSize);
  if (options.maxStepsPerEpoch !== undefined) stepsPerEpoch = Math.min(stepsPerEpoch, positiveInt('maxStepsPerEpoch', options.maxStepsPerEpoch));
  const totalSteps = epochs * stepsPerEpoch;
  const fingerprint: RunFingerprint = {
    // Catches a checkpoint directory reused for another network before any weight is compared.
    modelParams: model.countParams(),
    dataset: dataset.name,
    epochs,
    batchSize,
    stepsPerEpoch,
    seed,
    schedule,
    optimizer: opt.kind,
    lr: opt.lr,
    momentum: opt.momentum,
    weightDecay: opt.weightDecay,
  };

  const optimizer = createOptimizer(opt);
  const step = createTrainStep(model, optimizer.tf, { extraLoss: hooks.extraLoss, weightDecay: opt.weightDecay });
  let history: EpochRecord[] = [];
  let startEpoch = 0;
  let globalStep = 0;
  let resumedFrom: string | null = null;
  let lastCheckpoint: string | null = null;
  try {
    if (options.resume && options.checkpoint) {
      const ckpt = await readLatestCheckpoint(options.checkpoint.dir);
      if (ckpt) {
        await restoreCheckpoint(ckpt, model, optimizer, fingerprint);
        startEpoch = ckpt.state.epoch;
        globalStep = ckpt.state.globalStep;
        history = [...ckpt.state.history];
        resumedFrom = lastCheckpoint = ckpt.path;
      }
    }

    const [h, w, c] = dataset.imageShape;
    let stopped = false;
    for (let e = startEpoch; e < epochs && !stopped; e++) {
      const epochStart = performance.now();
      let lossSum = 0;
      let extraSum = 0;
      let seen = 0;
      let s = 0;
      let lr = opt.lr;
      for await (const batch of dataset.batches('train', batchSize, { shuffle: true, seed, epoch: e })) {
        const t0 = performance.now();
        lr = learningRateAt(schedule, opt.lr, globalStep, totalSteps);
        optimizer.setLearningRate(lr);
        const x = tf.tensor4d(batch.x, [batch.n, h, w, c]);
        const y = tf.tensor1d(batch.y, 'int32');
        let r: StepResult;
        try {
          r = step(x, y);
        } finally {
          tf.dispose([x, y]);
        }
        s++;
        globalStep++;
        if (!r.applied) throw nanError(e + 1, s, globalStep, r.problem ?? 'the loss is not finite', lastCheckpoint, options.checkpoint !== undefined);
        lossSum += r.loss * batch.n;
        extraSum += r.extraLoss * batch.n;
        seen += batch.n;
        const seconds = (performance.now() - t0) / 1000;
        const verdict = await hooks.onStep?.({
          epoch: e + 1,
          epochs,
          step: s,
          stepsPerEpoch,
          globalStep,
          totalSteps,
          loss: r.loss,
          extraLoss: r.extraLoss,
          lr,
          imagesPerSec: seconds > 0 ? batch.n / seconds : 0,
        });
        if (verdict === 'stop') {
          stopped = true;
          break;
        }
        if (s >= stepsPerEpoch) break;
      }
      if (stopped) break;

      const val = dataset.valSize > 0 ? await evaluate(model, dataset, 'val', evalBatchSize) : null;
      if (val && !Number.isFinite(val.loss)) throw nanError(e + 1, s, globalStep, `the validation loss is ${val.loss}`, lastCheckpoint, options.checkpoint !== undefined);
      const record: EpochRecord = {
        epoch: e + 1,
        trainLoss: lossSum / seen,
        trainExtraLoss: extraSum / seen,
        valLoss: val ? val.loss : null,
        valAccuracy: val ? val.accuracy : null,
        lr,
        seconds: (performance.now() - epochStart) / 1000,
      };
      history.push(record);
      let written: string | null = null;
      if (options.checkpoint && ((e + 1) % everyEpochs === 0 || e + 1 === epochs)) {
        written = lastCheckpoint = await writeCheckpoint({ dir: options.checkpoint.dir, model, optimizer, epoch: e + 1, globalStep, fingerprint, history, keep: options.checkpoint.keep });
      }
      const verdict = await hooks.onEpochEnd?.({ ...record, epochs, checkpoint: written });
      if (verdict === 'stop' && e + 1 < epochs) {
        stopped = true;
        // A stop between checkpoints still leaves a resumable state at this epoch boundary.
        if (options.checkpoint && written === null) {
          lastCheckpoint = await writeCheckpoint({ dir: options.checkpoint.dir, model, optimizer, epoch: e + 1, globalStep, fingerprint, history, keep: options.checkpoint.keep });
        }
      }
    }
    return {
      epochsCompleted: history.length,
      stopped,
      resumedFrom,
      lastCheckpoint,
      globalStep,
      history,
      seconds: (performance.now() - started) / 1000,
    };
  } finally {
    optimizer.tf.dispose();
  }
}
