/**
 * Input preprocessing layers that Keras ≥ 2.6 image models start with: Rescaling (`x·scale +
 * offset`) and Normalization (`(x − mean) / sqrt(variance)`, per channel). Neither is 0 at 0 in
 * general, so a channel they carry keeps its width unless the op is a pure scalar scaling.
 */
import { MorphError } from '../../errors.ts';
import type { OpContext, OpDescriptor } from './op.ts';
import { requireSingleInput, shapeError, unmodeledError } from './shape-utils.ts';
import { channelsOf } from '../graph.ts';
import type { JsonObject, JsonValue } from '../keras-json.ts';

/** A scalar, or one value per channel. */
export type PerChannel = number | number[];

function readPerChannel(config: JsonObject, key: string, ctx: OpContext, fallback: number): PerChannel {
  const v: JsonValue | undefined = config[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'number' && Number.isFinite(x))) return v as number[];
  throw new MorphError('MORPH_ERR_NOT_A_MODEL', `layer "${ctx.layer}" (${ctx.className}): config.${key} is ${JSON.stringify(v)}; expected a number or a list of numbers`, { layer: ctx.layer, field: key });
}

export interface RescalingAttrs {
  scale: PerChannel;
  offset: PerChannel;
}

function checkPerChannel(v: PerChannel, what: string, channels: number, ctx: OpContext): void {
  if (Array.isArray(v) && v.length !== 1 && v.length !== channels) throw shapeError(ctx, `${what} has ${v.length} values for ${channels} channels`);
}

export const rescaling: OpDescriptor<RescalingAttrs> = {
  classNames: ['Rescaling'],
  kind: 'rescale',
  parseAttrs: (config, ctx) => ({ scale: readPerChannel(config, 'scale', ctx, 1), offset: readPerChannel(config, 'offset', ctx, 0) }),
  outputShape(a, inputs, ctx) {
    const input = requireSingleInput(inputs, ctx);
    checkPerChannel(a.scale, 'scale', channelsOf(input), ctx);
    checkPerChannel(a.offset, 'offset', channelsOf(input), ctx);
    return input;
  },
  weightRoles: () => [],
  weightShapes: () => [],
  channelRule: (a) =>
    typeof a.scale === 'number' && a.offset === 0
      ? { type: 'pass' }
      : { type: 'boundary', reason: typeof a.scale === 'number' ? 'Rescaling with an offset is not 0 at 0' : 'per-channel Rescaling' },
  macs: () => 0,
};

export interface NormalizationAttrs {
  axis: number;
}

export const normalization: OpDescriptor<NormalizationAttrs> = {
  classNames: ['Normalization'],
  kind: 'normalize',
  parseAttrs(config, ctx) {
    const axis = config.axis ?? -1;
    const a = Array.isArray(axis) && axis.length === 1 ? axis[0] : axis;
    if (typeof a !== 'number' || !Number.isInteger(a)) throw shapeError(ctx, `config.axis ${JSON.stringify(axis)} must be one axis`);
    if (config.mean !== undefined && config.mean !== null) {
      // Keras writes the statistics into the config when they were given as arguments.
      throw unmodeledError(ctx, 'mean and variance given in the config (not as weights) are not modeled');
    }
    if (config.invert === true) throw unmodeledError(ctx, 'invert=true is not modeled');
    return { axis: a };
  },
  outputShape(a, inputs, ctx) {
    const input = requireSingleInput(inputs, ctx);
    const axis = a.axis < 0 ? input.length + a.axis : a.axis;
    if (axis !== input.length - 1) throw unmodeledError(ctx, `normalises axis ${a.axis}; only the channel (last) axis is modeled`);
    return input;
  },
  // Keras stores the adapted statistics and the count of samples they came from.
  weightRoles: () => [
    { kind: 'mean', roles: [null], init: 'zeros' },
    { kind: 'variance', roles: [null], init: 'ones' },
    { kind: 'count', roles: [], init: 'zeros' },
  ],
  weightShapes: (_a, inputs) => [[channelsOf(inputs[0])], [channelsOf(inputs[0])], []],
  channelRule: () => ({ type: 'boundary', reason: 'Normalization is not 0 at 0' }),
  macs: () => 0,
};
