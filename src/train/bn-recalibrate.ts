/**
 * "Precise batch norm": after training, replace every batch norm's moving mean and variance by
 * the statistics of its input over a number of training batches. A moving average lags behind a
 * network that is still changing fast — short runs, high learning rates, a freshly pruned or
 * expanded network — and evaluation in inference mode then scores far below what the network has
 * learned. Recomputing the statistics costs a few forward passes and removes that gap.
 */
import * as tf from '@tensorflow/tfjs';
import type { Dataset } from './data/index.ts';

export interface RecalibrateOptions {
  /** Batches to average over (default 20). */
  readonly batches?: number;
  readonly batchSize?: number;
  readonly seed?: number;
}

/** @returns the number of batch-norm layers updated. */
export async function recalibrateBatchNorm(model: tf.LayersModel, dataset: Dataset, options: RecalibrateOptions = {}): Promise<number> {
  // A batch norm shared by several calls has no single input to take statistics of; leave it be.
  const bns = model.layers.filter((l) => l.getClassName() === 'BatchNormalization' && l.inboundNodes.length === 1);
  if (bns.length === 0) return 0;
  const inputs = bns.map((l) => l.input as tf.SymbolicTensor);
  const probe = tf.model({ inputs: model.inputs, outputs: inputs });
  const sums = bns.map(() => null as tf.Tensor1D | null);
  const squares = bns.map(() => null as tf.Tensor1D | null);
  const limit = options.batches ?? 20;
  const [h, w, c] = dataset.imageShape;
  let seen = 0;
  for await (const batch of dataset.batches('train', options.batchSize ?? 64, { shuffle: true, seed: options.seed ?? 0, epoch: 0 })) {
    tf.tidy(() => {
      const x = tf.tensor4d(batch.x, [batch.n, h, w, c]);
      // Training mode, as during training: each batch norm normalises with its batch's statistics.
      const outs = probe.apply(x, { training: true }) as tf.Tensor | tf.Tensor[];
      (Array.isArray(outs) ? outs : [outs]).forEach((t, i) => {
        const axes = t.shape.slice(0, -1).map((_, a) => a);
        const mean = tf.mean(t, axes) as tf.Tensor1D;
        const sq = tf.mean(tf.square(t), axes) as tf.Tensor1D;
        const prevS = sums[i];
        const prevQ = squares[i];
        sums[i] = tf.keep(prevS ? (prevS.add(mean) as tf.Tensor1D) : mean);
        squares[i] = tf.keep(prevQ ? (prevQ.add(sq) as tf.Tensor1D) : sq);
        prevS?.dispose();
        prevQ?.dispose();
      });
    });
    if (++seen >= limit) break;
  }
  if (seen === 0) return 0;
  bns.forEach((layer, i) => {
    const weights = layer.weights;
    const mean = weights.find((v) => v.originalName.endsWith('/moving_mean'));
    const variance = weights.find((v) => v.originalName.endsWith('/moving_variance'));
    if (!mean || !variance || !sums[i] || !squares[i]) return;
    tf.tidy(() => {
      const m = sums[i]!.div(seen);
      const v = squares[i]!.div(seen).sub(m.square()).relu();
      mean.write(m);
      variance.write(v);
    });
  });
  tf.dispose([...sums, ...squares].filter((t): t is tf.Tensor1D => t !== null));
  return bns.length;
}
