/**
 * Layers whose output channels are their input's channels: activations, dropout, padding and
 * pooling. They own no weights and do no weighted sums.
 */
import { readEnum, readOptionalNumber, readPadPairs, readPair, requireChannelsLast } from './attrs.ts';
import type { OpContext, OpDescriptor } from './op.ts';
import { requireRank, requireSingleInput, VALID_PADDINGS, windowed2d, type Padding } from './shape-utils.ts';
import type { JsonObject } from '../keras-json.ts';
import type { Shape } from '../graph.ts';
import { channelsOf } from '../graph.ts';

const noWeights = { weightRoles: () => [], weightShapes: () => [], macs: () => 0 } as const;

function identityShape(_a: unknown, inputs: readonly Shape[], ctx: OpContext): Shape {
  return requireSingleInput(inputs, ctx);
}

export interface ActivationAttrs {
  activation: string;
  maxValue: number | null;
  /** The negative slope of LeakyReLU (Keras 2 `alpha`, Keras 3 `negative_slope`, default 0.3) and ELU's alpha. */
  alpha: number | null;
}

/**
 * Activations with f(0) ≠ 0: after them a channel whose batch norm has γ = β = 0 still carries a
 * constant, so removing it would change the network. Their channels keep their width.
 */
const NONZERO_AT_ZERO = new Set(['sigmoid', 'hard_sigmoid', 'hardsigmoid', 'softplus', 'softmax', 'exponential', 'exp']);

export const activation: OpDescriptor<ActivationAttrs> = {
  classNames: ['Activation', 'ReLU', 'Softmax', 'LeakyReLU', 'ELU', 'ThresholdedReLU'],
  kind: 'activation',
  parseAttrs(config, ctx) {
    const name = ctx.className === 'Activation' ? String(config.activation ?? 'linear') : ctx.className.toLowerCase();
    const alpha =
      ctx.className === 'LeakyReLU'
        ? (readOptionalNumber(config, 'alpha', ctx) ?? readOptionalNumber(config, 'negative_slope', ctx) ?? 0.3)
        : ctx.className === 'ELU'
          ? (readOptionalNumber(config, 'alpha', ctx) ?? 1)
          : null;
    return { activation: name, maxValue: readOptionalNumber(config, 'max_value', ctx), alpha };
  },
  outputShape: identityShape,
  ...noWeights,
  channelRule: (a) =>
    NONZERO_AT_ZERO.has(a.activation.toLowerCase()) ? { type: 'boundary', reason: `activation ${a.activation} is not 0 at 0`, gate: true } : { type: 'pass' },
};

export const dropout: OpDescriptor<Record<string, never>> = {
  classNames: ['Dropout', 'SpatialDropout2D', 'GaussianNoise', 'GaussianDropout', 'AlphaDropout'],
  kind: 'dropout',
  parseAttrs: () => ({}),
  outputShape: identityShape,
  ...noWeights,
  channelRule: () => ({ type: 'pass' }),
};

export interface ZeroPadAttrs {
  /** [[top, bottom], [left, right]] */
  padding: [[number, number], [number, number]];
}

export const zeroPadding2d: OpDescriptor<ZeroPadAttrs> = {
  classNames: ['ZeroPadding2D'],
  kind: 'zeropad',
  parseAttrs(config, ctx) {
    requireChannelsLast(config, ctx);
    return { padding: readPadPairs(config, 'padding', ctx, 1) };
  },
  outputShape(a, inputs, ctx) {
    const input = requireSingleInput(inputs, ctx);
    const [h, w, c] = requireRank(input, 4, ctx);
    return [input[0], h + a.padding[0][0] + a.padding[0][1], w + a.padding[1][0] + a.padding[1][1], c];
  },
  ...noWeights,
  channelRule: () => ({ type: 'pass' }),
};

export interface PoolAttrs {
  mode: 'max' | 'avg';
  poolSize: [number, number];
  strides: [number, number];
  padding: Padding;
}

function parsePool(config: JsonObject, ctx: OpContext): PoolAttrs {
  requireChannelsLast(config, ctx);
  const poolSize = readPair(config, 'pool_size', ctx, [2, 2]);
  return {
    mode: ctx.className.startsWith('Max') ? 'max' : 'avg',
    poolSize,
    strides: readPair(config, 'strides', ctx, poolSize),
    padding: readEnum(config, 'padding', VALID_PADDINGS, ctx, 'valid'),
  };
}

export const pool2d: OpDescriptor<PoolAttrs> = {
  classNames: ['MaxPooling2D', 'AveragePooling2D', 'MaxPool2D', 'AvgPool2D'],
  kind: 'pool',
  parseAttrs: parsePool,
  outputShape(a, inputs, ctx) {
    const input = requireSingleInput(inputs, ctx);
    const [ho, wo] = windowed2d(input, a.poolSize, a.strides, [1, 1], a.padding, ctx);
    return [input[0], ho, wo, channelsOf(input)];
  },
  ...noWeights,
  channelRule: () => ({ type: 'pass' }),
};

export interface GlobalPoolAttrs {
  mode: 'max' | 'avg';
  keepdims: boolean;
}

export const globalPool2d: OpDescriptor<GlobalPoolAttrs> = {
  classNames: ['GlobalAveragePooling2D', 'GlobalMaxPooling2D', 'GlobalAvgPool2D', 'GlobalMaxPool2D'],
  kind: 'globalpool',
  parseAttrs(config, ctx) {
    requireChannelsLast(config, ctx);
    return { mode: ctx.className.startsWith('GlobalMax') ? 'max' : 'avg', keepdims: config.keepdims === true };
  },
  outputShape(a, inputs, ctx) {
    const input = requireSingleInput(inputs, ctx);
    const [, , c] = requireRank(input, 4, ctx);
    return a.keepdims ? [input[0], 1, 1, c] : [input[0], c];
  },
  ...noWeights,
  channelRule: () => ({ type: 'pass' }),
};
