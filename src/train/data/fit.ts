/**
 * The check run before training: does this dataset fit this model? Catching it here gives one
 * clear message instead of a tfjs shape error deep in the first training step.
 */
import { MorphError } from '../../errors.ts';
import type { Graph } from '../../graph/graph.ts';
import type { Dataset } from './dataset.ts';
import type { ModelDataShape } from './open-dataset.ts';

/** A model's input shape without the batch dimension; `null` where the model accepts any size. */
export type ModelInputShape = readonly [height: number | null, width: number | null, channels: number | null];

/**
 * Throws MORPH_ERR_DATASET_MISMATCH listing every mismatch between the dataset's image shape and
 * class count and the model's input shape and number of outputs, with what to change.
 */
export function checkDatasetFitsModel(ds: Dataset, inputShape: ModelInputShape, numClasses: number): void {
  const problems: string[] = [];
  const [h, w, c] = ds.imageShape;
  const names = ['height', 'width', 'channels'] as const;
  const wrong = names.filter((_, i) => inputShape[i] !== null && inputShape[i] !== ds.imageShape[i]);
  if (wrong.length > 0) {
    const want = inputShape.map((d, i) => d ?? ds.imageShape[i]);
    problems.push(
      `its images are ${h}×${w}×${c} (h×w×c) but the model input is ${inputShape.map((d) => d ?? '?').join('×')} (${wrong.join(', ')} differ): ` +
        `open the dataset with imageShape [${want.join(', ')}] to resize and convert the images, or give the model an input of [${h}, ${w}, ${c}]`,
    );
  }
  if (ds.numClasses !== numClasses) {
    problems.push(
      `it has ${ds.numClasses} classes but the model outputs ${numClasses}: ` +
        `give the model's last layer ${ds.numClasses} units, or use a dataset with ${numClasses} classes`,
    );
  }
  if (problems.length > 0) {
    throw new MorphError(
      'MORPH_ERR_DATASET_MISMATCH',
      `Dataset ${ds.name} does not fit the model: ${problems.join('; and ')}.`,
      { imageShape: [h, w, c], numClasses: ds.numClasses, modelInputShape: [...inputShape], modelClasses: numClasses },
    );
  }
}

/**
 * The image shape and class count of an image classifier (one [H, W, C] input, one [classes]
 * output), for data that follows the model; undefined for any other model.
 */
export function modelDataShape(graph: Graph): ModelDataShape | undefined {
  const shapeOf = (layer: string): readonly (number | null)[] | undefined => graph.layers.find((l) => l.name === layer)?.calls[0]?.outputShape;
  if (graph.inputs.length !== 1 || graph.outputs.length !== 1) return undefined;
  const input = shapeOf(graph.inputs[0].layer);
  const output = shapeOf(graph.outputs[0].layer);
  if (!input || !output || input.length !== 4 || output.length !== 2) return undefined;
  const [h, w, c] = input.slice(1);
  const classes = output[1];
  if (typeof h !== 'number' || typeof w !== 'number' || typeof c !== 'number' || typeof classes !== 'number') return undefined;
  return { imageShape: [h, w, c], numClasses: classes };
}
