/** InputLayer: where the network's tensors start. Its channels never change width. */
import type { OpDescriptor } from './op.ts';
import { shapeError } from './shape-utils.ts';
import type { Shape } from '../graph.ts';

export interface InputAttrs {
  batchShape: Shape;
}

export const inputLayer: OpDescriptor<InputAttrs> = {
  classNames: ['InputLayer'],
  kind: 'input',
  parseAttrs(config, ctx) {
    // tfjs and Keras 2 write batch_input_shape, Keras 3 batch_shape; some files only input_shape.
    const batch = config.batch_input_shape ?? config.batch_shape;
    const shape = Array.isArray(batch) ? batch : Array.isArray(config.input_shape) ? [null, ...config.input_shape] : null;
    if (!shape || shape.length < 2 || shape.slice(1).some((d) => typeof d !== 'number' || !Number.isInteger(d) || d <= 0)) {
      throw shapeError(
        ctx,
        `cannot infer the input shape from ${JSON.stringify(batch ?? config.input_shape ?? null)}; give batch_input_shape with fixed sizes, e.g. [null, 28, 28, 1], or pass --input-shape H,W,C`,
      );
    }
    return { batchShape: [null, ...(shape.slice(1) as number[])] };
  },
  outputShape: (a) => a.batchShape,
  weightRoles: () => [],
  weightShapes: () => [],
  channelRule: () => ({ type: 'source' }),
  macs: () => 0,
};
