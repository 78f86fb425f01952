/** Conv2D, DepthwiseConv2D and SeparableConv2D (NHWC, as tfjs and Keras store them). */
import { readActivation, readBool, readEnum, readPair, readPositiveInt, requireChannelsLast } from './attrs.ts';
import type { OpDescriptor } from './op.ts';
import { requireRank, requireSingleInput, shapeError, VALID_PADDINGS, windowed2d, type Padding } from './shape-utils.ts';
import { channelsOf } from '../graph.ts';

interface WindowAttrs {
  kernelSize: [number, number];
  strides: [number, number];
  padding: Padding;
  dilationRate: [number, number];
  useBias: boolean;
  activation: string;
}

export interface Conv2DAttrs extends WindowAttrs {
  filters: number;
  groups: number;
}

export interface DepthwiseAttrs extends WindowAttrs {
  depthMultiplier: number;
}

export interface SeparableAttrs extends WindowAttrs {
  filters: number;
  depthMultiplier: number;
}

function readWindow(config: Parameters<OpDescriptor['parseAttrs']>[0], ctx: Parameters<OpDescriptor['parseAttrs']>[1]): WindowAttrs {
  requireChannelsLast(config, ctx);
  return {
    kernelSize: readPair(config, 'kernel_size', ctx),
    strides: readPair(config, 'strides', ctx, [1, 1]),
    padding: readEnum(config, 'padding', VALID_PADDINGS, ctx, 'valid'),
    dilationRate: readPair(config, 'dilation_rate', ctx, [1, 1]),
    useBias: readBool(config, 'use_bias', ctx, true),
    activation: readActivation(config, 'activation', ctx),
  };
}

export const conv2d: OpDescriptor<Conv2DAttrs> = {
  classNames: ['Conv2D', 'Convolution2D'],
  kind: 'conv2d',
  widthKey: 'filters',
  parseAttrs(config, ctx) {
    return { ...readWindow(config, ctx), filters: readPositiveInt(config, 'filters', ctx), groups: readPositiveInt(config, 'groups', ctx, 1) };
  },
  outputShape(a, inputs, ctx) {
    const input = requireSingleInput(inputs, ctx);
    const [ho, wo] = windowed2d(input, a.kernelSize, a.strides, a.dilationRate, a.padding, ctx);
    const cin = channelsOf(input);
    if (cin % a.groups !== 0 || a.filters % a.groups !== 0) {
      throw shapeError(ctx, `groups=${a.groups} must divide both the ${cin} input channels and the ${a.filters} filters`);
    }
    return [input[0], ho, wo, a.filters];
  },
  weightRoles(a) {
    const kernel = { kind: 'kernel', roles: [null, null, a.groups === 1 ? 'in' : null, 'out'], init: 'glorot' } as const;
    return a.useBias ? [kernel, { kind: 'bias', roles: ['out'], init: 'zeros' }] : [kernel];
  },
  weightShapes(a, inputs) {
    const kernel = [a.kernelSize[0], a.kernelSize[1], channelsOf(inputs[0]) / a.groups, a.filters];
    return a.useBias ? [kernel, [a.filters]] : [kernel];
  },
  // A grouped conv ties its input and output channels in blocks we do not model: keep both fixed.
  channelRule: (a) => (a.groups === 1 ? { type: 'produce' } : { type: 'boundary', reason: `grouped convolution (groups=${a.groups})` }),
  macs(a, inputs, out) {
    return (out[1] as number) * (out[2] as number) * a.kernelSize[0] * a.kernelSize[1] * (channelsOf(inputs[0]) / a.groups) * a.filters;
  },
};

export const depthwiseConv2d: OpDescriptor<DepthwiseAttrs> = {
  classNames: ['DepthwiseConv2D'],
  kind: 'depthwise',
  parseAttrs(config, ctx) {
    return { ...readWindow(config, ctx), depthMultiplier: readPositiveInt(config, 'depth_multiplier', ctx, 1) };
  },
  outputShape(a, inputs, ctx) {
    const input = requireSingleInput(inputs, ctx);
    const [ho, wo] = windowed2d(input, a.kernelSize, a.strides, a.dilationRate, a.padding, ctx);
    return [input[0], ho, wo, channelsOf(input) * a.depthMultiplier];
  },
  weightRoles(a) {
    const kernel = { kind: 'depthwise_kernel', roles: [null, null, 'in', null], init: 'glorot' } as const;
    return a.useBias ? [kernel, { kind: 'bias', roles: ['out'], init: 'zeros' }] : [kernel];
  },
  weightShapes(a, inputs) {
    const c = channelsOf(inputs[0]);
    const kernel = [a.kernelSize[0], a.kernelSize[1], c, a.depthMultiplier];
    return a.useBias ? [kernel, [c * a.depthMultiplier]] : [kernel];
  },
  channelRule: (a) => (a.depthMultiplier === 1 ? { type: 'pass' } : { type: 'repeat', times: a.depthMultiplier }),
  macs(a, inputs, out) {
    return (out[1] as number) * (out[2] as number) * a.kernelSize[0] * a.kernelSize[1] * channelsOf(inputs[0]) * a.depthMultiplier;
  },
};

export const separableConv2d: OpDescriptor<SeparableAttrs> = {
  classNames: ['SeparableConv2D', 'SeparableConvolution2D'],
  kind: 'separable',
  widthKey: 'filters',
  parseAttrs(config, ctx) {
    return {
      ...readWindow(config, ctx),
      filters: readPositiveInt(config, 'filters', ctx),
      depthMultiplier: readPositiveInt(config, 'depth_multiplier', ctx, 1),
    };
  },
  outputShape(a, inputs, ctx) {
    const input = requireSingleInput(inputs, ctx);
    const [ho, wo] = windowed2d(input, a.kernelSize, a.strides, a.dilationRate, a.padding, ctx);
    return [input[0], ho, wo, a.filters];
  },
  weightRoles(a) {
    const roles = [
      { kind: 'depthwise_kernel', roles: [null, null, 'in', null], init: 'glorot' },
      { kind: 'pointwise_kernel', roles: [null, null, 'mid', 'out'], init: 'glorot' },
    ] as const;
    return a.useBias ? [...roles, { kind: 'bias', roles: ['out'], init: 'zeros' }] : roles;
  },
  weightShapes(a, inputs) {
    const c = channelsOf(inputs[0]);
    const shapes = [
      [a.kernelSize[0], a.kernelSize[1], c, a.depthMultiplier],
      [1, 1, c * a.depthMultiplier, a.filters],
    ];
    return a.useBias ? [...shapes, [a.filters]] : shapes;
  },
  channelRule: () => ({ type: 'produce' }),
  macs(a, inputs, out) {
    const hw = (out[1] as number) * (out[2] as number);
    const mid = channelsOf(inputs[0]) * a.depthMultiplier;
    return hw * a.kernelSize[0] * a.kernelSize[1] * mid + hw * mid * a.filters;
  },
};

export interface Conv2DTransposeAttrs extends WindowAttrs {
  filters: number;
  /** Extra rows/columns at the bottom/right of the output (Keras `output_padding`), or null. */
  outputPadding: [number, number] | null;
}

/** Keras's `deconv_output_length`: the output size of a transposed convolution along one axis. */
export function deconvLength(size: number, kernel: number, stride: number, padding: Padding, outputPadding: number | null): number {
  if (outputPadding === null) return padding === 'valid' ? size * stride + Math.max(kernel - stride, 0) : size * stride;
  const pad = padding === 'same' ? Math.floor(kernel / 2) : 0;
  return (size - 1) * stride + kernel - 2 * pad + outputPadding;
}

export const conv2dTranspose: OpDescriptor<Conv2DTransposeAttrs> = {
  classNames: ['Conv2DTranspose', 'Convolution2DTranspose'],
  kind: 'conv2dtranspose',
  widthKey: 'filters',
  parseAttrs(config, ctx) {
    const window = readWindow(config, ctx);
    if (window.dilationRate[0] !== 1 || window.dilationRate[1] !== 1) throw shapeError(ctx, 'dilated transposed convolutions are not supported');
    const op = config.output_padding;
    let outputPadding: [number, number] | null = null;
    if (op !== undefined && op !== null) {
      const pair = typeof op === 'number' ? [op, op] : op;
      if (!Array.isArray(pair) || pair.length !== 2 || !pair.every((x) => typeof x === 'number' && Number.isInteger(x) && x >= 0)) {
        throw shapeError(ctx, `config.output_padding ${JSON.stringify(op)} is not a non-negative int or a pair of them`);
      }
      outputPadding = [pair[0] as number, pair[1] as number];
    }
    return { ...window, filters: readPositiveInt(config, 'filters', ctx), outputPadding };
  },
  outputShape(a, inputs, ctx) {
    const input = requireSingleInput(inputs, ctx);
    const [h, w] = requireRank(input, 4, ctx);
    const ho = deconvLength(h, a.kernelSize[0], a.strides[0], a.padding, a.outputPadding?.[0] ?? null);
    const wo = deconvLength(w, a.kernelSize[1], a.strides[1], a.padding, a.outputPadding?.[1] ?? null);
    if (ho <= 0 || wo <= 0) throw shapeError(ctx, `gives an empty ${ho}x${wo} output`);
    return [input[0], ho, wo, a.filters];
  },
  // Keras stores the kernel as [kh, kw, out, in].
  weightRoles(a) {
    const kernel = { kind: 'kernel', roles: [null, null, 'out', 'in'], init: 'glorot' } as const;
    return a.useBias ? [kernel, { kind: 'bias', roles: ['out'], init: 'zeros' }] : [kernel];
  },
  weightShapes(a, inputs) {
    const kernel = [a.kernelSize[0], a.kernelSize[1], a.filters, channelsOf(inputs[0])];
    return a.useBias ? [kernel, [a.filters]] : [kernel];
  },
  channelRule: () => ({ type: 'produce' }),
  // Every input pixel scatters a kh·kw·c_out block: MACs = H_in·W_in·kh·kw·c_in·c_out.
  macs(a, inputs) {
    const input = inputs[0];
    return (input[1] as number) * (input[2] as number) * a.kernelSize[0] * a.kernelSize[1] * channelsOf(input) * a.filters;
  },
};
