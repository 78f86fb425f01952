/** UpSampling2D and Cropping2D: spatial resampling that keeps every channel. */
import { readEnum, readPair, requireChannelsLast } from './attrs.ts';
import type { OpContext, OpDescriptor } from './op.ts';
import { requireRank, requireSingleInput, shapeError } from './shape-utils.ts';
import type { JsonValue } from '../keras-json.ts';

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

function readCropping(v: JsonValue | undefined, ctx: OpContext): CroppingAttrs['cropping'] {
  const isNat = (x: unknown): x is number => typeof x === 'number' && Number.isInteger(x) && x >= 0;
  if (v === undefined || v === null) return [[0, 0], [0, 0]];
  if (isNat(v)) return [[v, v], [v, v]];
  if (Array.isArray(v) && v.length === 2) {
    const [a, b] = v;
    if (isNat(a) && isNat(b)) return [[a, a], [b, b]];
    if (Array.isArray(a) && Array.isArray(b) && a.length === 2 && b.length === 2 && [...a, ...b].every(isNat)) {
      return [[a[0] as number, a[1] as number], [b[0] as number, b[1] as number]];
    }
  }
  throw shapeError(ctx, `config.cropping ${JSON.stringify(v)} is not an int, a pair, or a pair of pairs`);
}

export const cropping2d: OpDescriptor<CroppingAttrs> = {
  classNames: ['Cropping2D'],
  kind: 'crop',
  parseAttrs(config, ctx) {
    requireChannelsLast(config, ctx);
    return { cropping: readCropping(config.cropping, ctx) };
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
