/** UpSampling2D and Cropping2D: spatial resampling that keeps every channel. */
import { readEnum, readPadPairs, readPair, requireChannelsLast } from './attrs.ts';
import type { OpDescriptor } from './op.ts';
import { requireRank, requireSingleInput, shapeError } from './shape-utils.ts';

const noWeights = { weightRoles: () => [], weightShapes: () => [], macs: () => 0 } as const;

export type Interpolation = 'nearest' | 'bilinear';

export interface UpSamplingAttrs {
  size: [number, number];
  interpolation: Interpolation;
}

export const upSampling2d: OpDescriptor<UpSamplingAttrs> = {
  classNames: ['UpSampling2D'],
  kind: 'upsample',
  parseAttrs(config, ctx) {
    requireChannelsLast(config, ctx);
    return { size: readPair(config, 'size', ctx, [2, 2]), interpolation: readEnum(config, 'interpolation', ['nearest', 'bilinear'] as const, ctx, 'nearest') };
  },
  outputShape(a, inputs, ctx) {
    const input = requireSingleInput(inputs, ctx);
    const [h, w, c] = requireRank(input, 4, ctx);
    return [input[0], h * a.size[0], w * a.size[1], c];
  },
  ...noWeights,
  channelRule: () => ({ type: 'pass' }),
};

export interface CroppingAttrs {
  /** [[top, bottom], [left, right]] */
  cropping: [[number, number], [number, number]];
}

export const cropping2d: OpDescriptor<CroppingAttrs> = {
  classNames: ['Cropping2D'],
  kind: 'crop',
  parseAttrs(config, ctx) {
    requireChannelsLast(config, ctx);
    return { cropping: readPadPairs(config, 'cropping', ctx, 0) };
  },
  outputShape(a, inputs, ctx) {
    const input = requireSingleInput(inputs, ctx);
    const [h, w, c] = requireRank(input, 4, ctx);
    const ho = h - a.cropping[0][0] - a.cropping[0][1];
    const wo = w - a.cropping[1][0] - a.cropping[1][1];
    if (ho <= 0 || wo <= 0) throw shapeError(ctx, `cropping ${JSON.stringify(a.cropping)} leaves nothing of the ${h}x${w} input`);
    return [input[0], ho, wo, c];
  },
  ...noWeights,
  channelRule: () => ({ type: 'pass' }),
};
