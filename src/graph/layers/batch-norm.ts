/** BatchNormalization over the channel axis: its gammas are what MorphNet regularizes. */
import { readBool, readNumber } from './attrs.ts';
import type { OpDescriptor, WeightRole } from './op.ts';
import { requireSingleInput, shapeError, unmodeledError } from './shape-utils.ts';
import { channelsOf } from '../graph.ts';
import type { JsonValue } from '../keras-json.ts';

export interface BatchNormAttrs {
  /** Normalised to a non-negative axis index; only the last axis is supported. */
  axis: number;
  center: boolean;
  scale: boolean;
  epsilon: number;
}

function readAxis(v: JsonValue | undefined): number | null {
  if (v === undefined || v === null) return -1;
  if (typeof v === 'number' && Number.isInteger(v)) return v;
  if (Array.isArray(v) && v.length === 1 && typeof v[0] === 'number') return v[0];
  return null;
}

export const batchNorm: OpDescriptor<BatchNormAttrs> = {
  classNames: ['BatchNormalization'],
  kind: 'batchnorm',
  parseAttrs(config, ctx) {
    const axis = readAxis(config.axis);
    if (axis === null) throw shapeError(ctx, `config.axis ${JSON.stringify(config.axis)} is not an integer axis`);
    return {
      axis,
      center: readBool(config, 'center', ctx, true),
      scale: readBool(config, 'scale', ctx, true),
      epsilon: readNumber(config, 'epsilon', ctx, 1e-3),
    };
  },
  outputShape(a, inputs, ctx) {
    const input = requireSingleInput(inputs, ctx);
    const axis = a.axis < 0 ? input.length + a.axis : a.axis;
    if (axis !== input.length - 1) {
      throw unmodeledError(ctx, `normalises axis ${a.axis} of a rank-${input.length} input; only the channel (last) axis is modeled`);
    }
    return input;
  },
  weightRoles(a) {
    const roles: WeightRole[] = [];
    if (a.scale) roles.push({ kind: 'gamma', roles: ['out'], init: 'ones' });
    if (a.center) roles.push({ kind: 'beta', roles: ['out'], init: 'zeros' });
    roles.push({ kind: 'moving_mean', roles: ['out'], init: 'zeros' }, { kind: 'moving_variance', roles: ['out'], init: 'ones' });
    return roles;
  },
  weightShapes(a, inputs) {
    return this.weightRoles(a).map(() => [channelsOf(inputs[0])]);
  },
  channelRule: () => ({ type: 'pass' }),
  macs: () => 0,
};
