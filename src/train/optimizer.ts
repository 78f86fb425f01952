/**
 * The optimizers the training loop offers, behind one small interface that adds what tfjs's
 * `Optimizer` lacks for our loop: a learning rate that a schedule can change at every step (tfjs
 * only has `setLearningRate` on SGD/momentum; Adam reads a protected field), and the kind, so a
 * checkpoint can refuse to load Adam moments into momentum SGD.
 */
import * as tf from '@tensorflow/tfjs';

export { VALID_OPTIMIZERS, DEFAULT_LR, DEFAULT_MOMENTUM, resolveOptimizerOptions, type OptimizerKind, type OptimizerOptions, type ResolvedOptimizerOptions } from './optimizer-options.ts';
import type { OptimizerKind, ResolvedOptimizerOptions } from './optimizer-options.ts';

export interface TrainOptimizer {
  readonly kind: OptimizerKind;
  readonly tf: tf.Optimizer;
  /** Takes effect at the next `applyGradients`. */
  setLearningRate(lr: number): void;
  /** How many optimizer-state tensors (besides the iteration count) each trainable variable has. */
  readonly slotsPerVariable: number;
}

/** A fresh optimizer (no state yet: tfjs creates its slots on the first step). */
export function createOptimizer(o: ResolvedOptimizerOptions): TrainOptimizer {
  if (o.kind === 'adam') {
    const adam = tf.train.adam(o.lr);
    return {
      kind: 'adam',
      tf: adam,
      slotsPerVariable: 2,
      // Adam reads `learningRate` at every applyGradients and has no setter.
      setLearningRate: (lr) => {
        (adam as unknown as { learningRate: number }).learningRate = lr;
      },
    };
  }
  if (o.momentum > 0) {
    const momentum = tf.train.momentum(o.lr, o.momentum);
    return { kind: 'sgd', tf: momentum, slotsPerVariable: 1, setLearningRate: (lr) => momentum.setLearningRate(lr) };
  }
  const sgd = tf.train.sgd(o.lr);
  return { kind: 'sgd', tf: sgd, slotsPerVariable: 0, setLearningRate: (lr) => sgd.setLearningRate(lr) };
}
