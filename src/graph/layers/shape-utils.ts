/** Shape arithmetic shared by the op descriptors. */
import { MorphError } from '../../errors.ts';
import type { Shape } from '../graph.ts';
import type { OpContext } from './op.ts';

export type Padding = 'same' | 'valid';
export const VALID_PADDINGS: readonly Padding[] = ['same', 'valid'];

export function shapeError(ctx: OpContext, message: string): MorphError {
  return new MorphError('MORPH_ERR_SHAPE', `layer "${ctx.layer}" (${ctx.className}): ${message}`, { layer: ctx.layer });
}

/**
 * A valid layer in a variant we do not model (channels_first, batch norm over another axis): the
 * parser then lets tfjs count it as an opaque layer instead of refusing the model.
 */
export function unmodeledError(ctx: OpContext, message: string): MorphError {
  return new MorphError('MORPH_ERR_SHAPE', `layer "${ctx.layer}" (${ctx.className}): ${message}`, { layer: ctx.layer, unmodeled: true });
}

export function isUnmodeled(err: unknown): boolean {
  return err instanceof MorphError && (err.details as { unmodeled?: unknown } | undefined)?.unmodeled === true;
}

/** Checks the rank and that every non-batch dimension is known. */
export function requireRank(shape: Shape, rank: number, ctx: OpContext, what = 'input'): number[] {
  if (shape.length !== rank) {
    throw shapeError(ctx, `${what} has shape ${fmt(shape)} but this layer needs rank ${rank}${rank === 4 ? ' ([batch, H, W, C])' : ''}`);
  }
  const dims = shape.slice(1);
  if (dims.some((d) => typeof d !== 'number' || d <= 0)) {
    throw shapeError(ctx, `${what} has shape ${fmt(shape)} with an unknown dimension; give the model a fixed input shape (batch_input_shape)`);
  }
  return dims as number[];
}

export function requireSingleInput(inputs: readonly Shape[], ctx: OpContext): Shape {
  if (inputs.length !== 1) throw shapeError(ctx, `expects one input, got ${inputs.length}`);
  return inputs[0];
}

/** Output length of a windowed op along one axis, as TensorFlow computes it. */
export function windowOut(size: number, kernel: number, stride: number, dilation: number, padding: Padding): number {
  if (padding === 'same') return Math.ceil(size / stride);
  const effective = (kernel - 1) * dilation + 1;
  return Math.floor((size - effective) / stride) + 1;
}

export function windowed2d(
  input: Shape,
  kernel: readonly [number, number],
  strides: readonly [number, number],
  dilation: readonly [number, number],
  padding: Padding,
  ctx: OpContext,
): [number, number] {
  const [h, w] = requireRank(input, 4, ctx);
  const ho = windowOut(h, kernel[0], strides[0], dilation[0], padding);
  const wo = windowOut(w, kernel[1], strides[1], dilation[1], padding);
  if (ho <= 0 || wo <= 0) {
    throw shapeError(ctx, `a ${kernel[0]}x${kernel[1]} window with padding "${padding}" does not fit the ${h}x${w} input; use padding "same" or a larger input`);
  }
  return [ho, wo];
}

export function fmt(shape: Shape): string {
  return `[${shape.map((d) => (d === null ? 'null' : String(d))).join(', ')}]`;
}

export function product(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}
