/** Loss and accuracy of a model on one split of a dataset, in inference mode (moving statistics, no dropout). */
import * as tf from '@tensorflow/tfjs';
import type { Dataset, Split } from './data/dataset.ts';
import { outputKindOf, sparseCrossEntropy } from './step.ts';

export interface EvaluateResult {
  /** Mean cross-entropy per sample. */
  readonly loss: number;
  /** Share of samples whose arg-max output is the label, in [0, 1]. */
  readonly accuracy: number;
  /** Samples evaluated. */
  readonly n: number;
}

/**
 * Walks `split` once in stored order. An empty split gives `{loss: NaN, accuracy: NaN, n: 0}`.
 * Throws what `dataset.batches` throws (MORPH_ERR_BAD_ARGUMENT for a split the dataset lacks).
 */
export async function evaluate(model: tf.LayersModel, dataset: Dataset, split: Split, batchSize = 256): Promise<EvaluateResult> {
  const kind = outputKindOf(model);
  const [h, w, c] = dataset.imageShape;
  let lossSum = 0;
  let correct = 0;
  let n = 0;
  for await (const batch of dataset.batches(split, batchSize)) {
    const [l, k] = tf.tidy(() => {
      const x = tf.tensor4d(batch.x, [batch.n, h, w, c]);
      const y = tf.tensor1d(batch.y, 'int32');
      const out = model.apply(x, { training: false }) as tf.Tensor;
      const loss = tf.sum(sparseCrossEntropy(out, y, kind));
      const hits = tf.sum(tf.cast(tf.equal(tf.argMax(out, -1), y), 'int32'));
      return [loss.dataSync()[0], hits.dataSync()[0]];
    });
    lossSum += l;
    correct += k;
    n += batch.n;
  }
  return n === 0 ? { loss: Number.NaN, accuracy: Number.NaN, n: 0 } : { loss: lossSum / n, accuracy: correct / n, n };
}
