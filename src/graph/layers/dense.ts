/** Dense: a weighted sum over the last axis (Keras applies it per position on rank > 2 inputs). */
import { readActivation, readBool, readPositiveInt } from './attrs.ts';
import type { OpDescriptor } from './op.ts';
import { product, requireSingleInput, shapeError } from './shape-utils.ts';
import { channelsOf } from '../graph.ts';

export interface DenseAttrs {
  units: number;
  useBias: boolean;
  activation: string;
}

export const dense: OpDescriptor<DenseAttrs> = {
  classNames: ['Dense'],
  kind: 'dense',
  widthKey: 'units',
  parseAttrs(config, ctx) {
    return {
      units: readPositiveInt(config, 'units', ctx),
      useBias: readBool(config, 'use_bias', ctx, true),
      activation: readActivation(config, 'activation', ctx),
    };
  },
  outputShape(a, inputs, ctx) {
    const input = requireSingleInput(inputs, ctx);
    if (input.length < 2 || input.slice(1).some((d) => typeof d !== 'number')) {
      throw shapeError(ctx, `input shape ${JSON.stringify(input)} needs known non-batch dimensions`);
    }
    return [...input.slice(0, -1), a.units];
  },
  weightRoles(a) {
    const kernel = { kind: 'kernel', roles: ['in', 'out'], init: 'glorot' } as const;
    return a.useBias ? [kernel, { kind: 'bias', roles: ['out'], init: 'zeros' }] : [kernel];
  },
  weightShapes(a, inputs) {
    const kernel = [channelsOf(inputs[0]), a.units];
    return a.useBias ? [kernel, [a.units]] : [kernel];
  },
  channelRule: () => ({ type: 'produce' }),
  macs(a, inputs) {
    const input = inputs[0];
    return product(input.slice(1, -1) as number[]) * channelsOf(input) * a.units;
  },
};
