/** Flatten and Reshape: the end of the spatial part of a network. */
import type { OpDescriptor } from './op.ts';
import { fmt, product, requireSingleInput, shapeError } from './shape-utils.ts';

export const flatten: OpDescriptor<Record<string, never>> = {
  classNames: ['Flatten'],
  kind: 'flatten',
  parseAttrs: () => ({}),
  outputShape(_a, inputs, ctx) {
    const input = requireSingleInput(inputs, ctx);
    const dims = input.slice(1);
    if (dims.some((d) => typeof d !== 'number')) throw shapeError(ctx, `cannot flatten ${fmt(input)} with unknown dimensions`);
    return [input[0], product(dims as number[])];
  },
  weightRoles: () => [],
  weightShapes: () => [],
  channelRule: () => ({ type: 'flatten' }),
  macs: () => 0,
};

export interface ReshapeAttrs {
  targetShape: number[];
}

export const reshape: OpDescriptor<ReshapeAttrs> = {
  classNames: ['Reshape'],
  kind: 'reshape',
  parseAttrs(config, ctx) {
    const t = config.target_shape;
    if (!Array.isArray(t) || t.some((d) => typeof d !== 'number' || !Number.isInteger(d) || (d <= 0 && d !== -1))) {
      throw shapeError(ctx, `config.target_shape ${JSON.stringify(t)} must be a list of positive integers (one may be -1)`);
    }
    return { targetShape: t as number[] };
  },
  outputShape(a, inputs, ctx) {
    const input = requireSingleInput(inputs, ctx);
    const dims = input.slice(1);
    if (dims.some((d) => typeof d !== 'number')) throw shapeError(ctx, `cannot reshape ${fmt(input)} with unknown dimensions`);
    const total = product(dims as number[]);
    const known = product(a.targetShape.filter((d) => d !== -1));
    const free = a.targetShape.filter((d) => d === -1).length;
    if (free > 1 || (free === 0 && known !== total) || (free === 1 && total % known !== 0)) {
      throw shapeError(ctx, `cannot reshape ${fmt(input)} (${total} values) to ${JSON.stringify(a.targetShape)}`);
    }
    return [input[0], ...a.targetShape.map((d) => (d === -1 ? total / known : d))];
  },
  weightRoles: () => [],
  weightShapes: () => [],
  // A pass-through reshape names its channel count in target_shape: follow the new width.
  withWidth(config, width) {
    const t = config.target_shape as number[];
    return { ...config, target_shape: [...t.slice(0, -1), width] };
  },
  // Adding or dropping unit axes ([N, C] ↔ [N, 1, 1, C], MobileNet's and SE blocks' heads) keeps
  // every channel where it was; any other reshape mixes channels with other axes.
  channelRule: (a, inputs) => {
    const dims = inputs[0].slice(1) as number[];
    const free = product(dims) / product(a.targetShape.filter((d) => d !== -1));
    const target = a.targetShape.map((d) => (d === -1 ? free : d));
    const before = dims.filter((d) => d !== 1);
    const after = target.filter((d) => d !== 1);
    const last = inputs[0][inputs[0].length - 1];
    const keepsChannels = before.length === after.length && before.every((d, i) => d === after[i]) && last === target[target.length - 1] && last !== 1;
    return keepsChannels ? { type: 'pass' } : { type: 'boundary', reason: 'Reshape mixes channels with other axes' };
  },
  macs: () => 0,
};
