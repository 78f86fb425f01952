/** Merge layers: element-wise ones tie their operands' channels; Concatenate joins them. */
import type { OpDescriptor } from './op.ts';
import { fmt, shapeError } from './shape-utils.ts';

export const elementwise: OpDescriptor<{ op: string }> = {
  classNames: ['Add', 'Subtract', 'Multiply', 'Average', 'Maximum', 'Minimum'],
  kind: 'elementwise',
  parseAttrs: (_config, ctx) => ({ op: ctx.className }),
  // Keras and tfjs broadcast: sizes aligned from the right must be equal or 1 (the squeeze-and-
  // excitation gate [N, 1, 1, C] times [N, H, W, C]).
  outputShape(_a, inputs, ctx) {
    if (inputs.length < 2) throw shapeError(ctx, `needs at least two inputs, got ${inputs.length}`);
    const rank = Math.max(...inputs.map((s) => s.length));
    const out: (number | null)[] = [];
    for (let i = 1; i <= rank; i++) {
      const dims = inputs.map((s) => (i <= s.length ? s[s.length - i] : 1));
      if (i === rank) {
        out.unshift(dims.find((d) => d !== 1) ?? null);
        continue;
      }
      const sizes = [...new Set(dims.filter((d) => d !== 1))];
      if (sizes.length > 1 || sizes.some((d) => d === null)) {
        throw shapeError(ctx, `inputs have shapes ${inputs.map(fmt).join(' and ')}, which do not broadcast (sizes must be equal or 1)`);
      }
      out.unshift(sizes[0] ?? 1);
    }
    return out;
  },
  weightRoles: () => [],
  weightShapes: () => [],
  channelRule: () => ({ type: 'tie' }),
  macs: () => 0,
};

export interface ConcatAttrs {
  axis: number;
}

export const concatenate: OpDescriptor<ConcatAttrs> = {
  classNames: ['Concatenate'],
  kind: 'concat',
  parseAttrs(config, ctx) {
    const axis = config.axis ?? -1;
    if (typeof axis !== 'number' || !Number.isInteger(axis)) throw shapeError(ctx, `config.axis ${JSON.stringify(axis)} is not an integer`);
    return { axis };
  },
  outputShape(a, inputs, ctx) {
    if (inputs.length < 2) throw shapeError(ctx, `needs at least two inputs, got ${inputs.length}`);
    const rank = inputs[0].length;
    const axis = a.axis < 0 ? rank + a.axis : a.axis;
    if (axis <= 0 || axis >= rank) throw shapeError(ctx, `axis ${a.axis} is out of range for rank-${rank} inputs`);
    let total = 0;
    for (const s of inputs) {
      if (s.length !== rank || s.some((d, i) => i > 0 && i !== axis && d !== inputs[0][i])) {
        throw shapeError(ctx, `inputs ${inputs.map(fmt).join(', ')} differ outside the concatenation axis ${a.axis}`);
      }
      const d = s[axis];
      if (typeof d !== 'number') throw shapeError(ctx, `input ${fmt(s)} has an unknown size on the concatenation axis`);
      total += d;
    }
    const out = [...inputs[0]];
    out[axis] = total;
    return out;
  },
  weightRoles: () => [],
  weightShapes: () => [],
  // Concatenating along a spatial axis keeps the channel axis aligned, which ties channels.
  channelRule: (a, inputs) => (a.axis === -1 || a.axis === inputs[0].length - 1 ? { type: 'concat' } : { type: 'tie' }),
  macs: () => 0,
};
