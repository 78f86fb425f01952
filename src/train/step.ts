/**
 * One training step, written out rather than delegated to `model.fit`, because MorphNet needs a
 * term in the loss that `fit` cannot take: the regularizer reads the model's batch-norm gammas,
 * so it has to be computed inside the gradient closure, on every step, next to the task loss.
 *
 * The step is `tf.variableGrads` then `optimizer.applyGradients` — what `optimizer.minimize`
 * does — split in two so that a NaN or infinite loss is caught *before* the update: the model
 * keeps its last good weights (its batch-norm moving statistics have already seen the bad batch;
 * the loop stops the run there, and its last checkpoint is the good state). Batch-norm moving statistics update during `model.apply(x,
 * {training: true})` itself (tfjs-layers writes them inside `BatchNormalization.call`, the same
 * path `fit` takes), so nothing else is needed for them.
 */
import * as tf from '@tensorflow/tfjs';

/** How the model's output is to be read by the loss. */
export type OutputKind = 'probabilities' | 'logits';

/** Clip of probabilities before the log, as tfjs-layers's own cross-entropy does. */
const EPSILON = 1e-7;

/** Kernel kinds that weight decay applies to. */
const DECAYED_KINDS = new Set(['kernel', 'depthwise_kernel', 'pointwise_kernel']);

/** `probabilities` when the model's last layer ends in a softmax (the seeds do), else `logits`. */
export function outputKindOf(model: tf.LayersModel): OutputKind {
  const last = model.outputLayers[0] ?? model.layers[model.layers.length - 1];
  const activation = (last?.getConfig() as { activation?: unknown }).activation;
  return activation === 'softmax' || last?.getClassName() === 'Softmax' ? 'probabilities' : 'logits';
}

/**
 * Per-sample sparse categorical cross-entropy, shape `[n]`.
 * @param labels int32 `[n]`, each in `[0, classes)`.
 */
export function sparseCrossEntropy(output: tf.Tensor, labels: tf.Tensor1D, kind: OutputKind): tf.Tensor1D {
  return tf.tidy(() => {
    const classes = output.shape[output.shape.length - 1] as number;
    const oneHot = tf.oneHot(labels, classes);
    const logP = kind === 'logits' ? tf.logSoftmax(output as tf.Tensor2D) : tf.log(tf.clipByValue(output, EPSILON, 1 - EPSILON));
    return tf.neg(tf.sum(tf.mul(oneHot, logP), -1)) as tf.Tensor1D;
  });
}

export interface StepOptions {
  /** Extra loss term computed inside the gradient closure each step (the MorphNet regularizer). */
  extraLoss?: () => tf.Scalar;
  /** L2 coefficient on conv/dense kernels (see `OptimizerOptions.weightDecay`). Default 0. */
  weightDecay?: number;
  /** Default: from the model (`outputKindOf`). */
  outputKind?: OutputKind;
}

export interface StepResult {
  /** Mean task loss (cross-entropy) of the batch. */
  readonly loss: number;
  /** The extra term's value, 0 without one. */
  readonly extraLoss: number;
  /** Whether the update was applied; false when the loss, the outputs or a gradient was not finite. */
  readonly applied: boolean;
  /** When not applied: what was not finite, for the error message. */
  readonly problem?: string;
}

/** Runs one step on a batch held as tensors `x` (NHWC float32) and `y` (int32 labels). */
export type TrainStep = (x: tf.Tensor, y: tf.Tensor1D) => StepResult;

/**
 * A step function bound to a model and optimizer. Every tensor it makes is released before it
 * returns (the caller owns `x` and `y`); optimizer slots are created on the first call.
 */
export function createTrainStep(model: tf.LayersModel, optimizer: tf.Optimizer, options: StepOptions = {}): TrainStep {
  const outputKind = options.outputKind ?? outputKindOf(model);
  const weightDecay = options.weightDecay ?? 0;
  const trainable = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const decayed = model.trainableWeights.filter((w) => DECAYED_KINDS.has(w.originalName.slice(w.originalName.lastIndexOf('/') + 1))).map((w) => w.read());

  return (x, y) => {
    let task: tf.Scalar | undefined;
    let extra: tf.Scalar | undefined;
    let outputSum: tf.Scalar | undefined;
    const { value, grads } = tf.variableGrads(() => {
      const output = model.apply(x, { training: true }) as tf.Tensor;
      outputSum = tf.keep(tf.sum(output) as tf.Scalar);
      const taskLoss = tf.keep(tf.mean(sparseCrossEntropy(output, y, outputKind)) as tf.Scalar);
      task = taskLoss;
      let total: tf.Scalar = taskLoss;
      if (options.extraLoss) {
        const extraLoss = tf.keep(options.extraLoss());
        extra = extraLoss;
        total = tf.add(total, extraLoss);
      }
      if (weightDecay > 0 && decayed.length > 0) {
        total = tf.add(total, tf.mul(weightDecay / 2, tf.addN(decayed.map((w) => tf.sum(tf.square(w))))));
      }
      return total;
    }, trainable);
    try {
      // The clipped log in the loss turns NaN outputs into a finite loss, and a zero gradient
      // through the clip can hide them from the update, so the outputs and every gradient are
      // checked too. One sum of all of them is finite exactly when each part is (short of an
      // overflow past 3e38, which is divergence anyway), and costs one read.
      const [totalValue, sentinel] = tf.tidy(() => {
        const parts = [value, outputSum!, ...Object.values(grads).map((g) => tf.sum(g))];
        return [value.dataSync()[0], tf.addN(parts).dataSync()[0]];
      });
      const loss = task!.dataSync()[0];
      const extraLoss = extra ? extra.dataSync()[0] : 0;
      let problem: string | undefined;
      if (!Number.isFinite(totalValue)) problem = `the loss is ${totalValue} (task ${loss}, extra ${extraLoss})`;
      else if (!Number.isFinite(sentinel)) problem = `the model's outputs or gradients are not finite (loss ${loss}, extra ${extraLoss})`;
      if (problem === undefined) optimizer.applyGradients(grads);
      return { loss, extraLoss, applied: problem === undefined, ...(problem !== undefined ? { problem } : {}) };
    } finally {
      tf.dispose([value, task!, outputSum!, ...(extra ? [extra] : []), ...Object.values(grads)]);
    }
  };
}
