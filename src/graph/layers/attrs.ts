/**
 * Readers for Keras layer config fields. Each checks one field and throws a MorphError that names
 * the layer, the field, the value received and what is accepted, so a bad model.json is reported
 * where it is wrong rather than as a NaN three modules later.
 */
import { MorphError } from '../../errors.ts';
import type { JsonObject, JsonValue } from '../keras-json.ts';
import type { OpContext } from './op.ts';

function bad(ctx: OpContext, key: string, value: JsonValue | undefined, accepted: string): MorphError {
  return new MorphError(
    'MORPH_ERR_NOT_A_MODEL',
    `layer "${ctx.layer}" (${ctx.className}): config.${key} is ${JSON.stringify(value)}; expected ${accepted}`,
    { layer: ctx.layer, field: key },
  );
}

export function readPositiveInt(config: JsonObject, key: string, ctx: OpContext, fallback?: number): number {
  const v = config[key];
  if (v === undefined || v === null) {
    if (fallback !== undefined) return fallback;
    throw bad(ctx, key, v, 'a positive integer');
  }
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw bad(ctx, key, v, 'a positive integer');
  return v;
}

export function readNumber(config: JsonObject, key: string, ctx: OpContext, fallback: number): number {
  const v = config[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw bad(ctx, key, v, 'a finite number');
  return v;
}

export function readOptionalNumber(config: JsonObject, key: string, ctx: OpContext): number | null {
  const v = config[key];
  if (v === undefined || v === null) return null;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw bad(ctx, key, v, 'a finite number or null');
  return v;
}

export function readBool(config: JsonObject, key: string, ctx: OpContext, fallback: boolean): boolean {
  const v = config[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'boolean') throw bad(ctx, key, v, 'true or false');
  return v;
}

/** Keras accepts `3` or `[3, 3]` for kernel sizes, strides and dilations. */
export function readPair(config: JsonObject, key: string, ctx: OpContext, fallback?: [number, number]): [number, number] {
  const v = config[key];
  if (v === undefined || v === null) {
    if (fallback) return fallback;
    throw bad(ctx, key, v, 'a positive integer or a pair of them');
  }
  if (typeof v === 'number' && Number.isInteger(v) && v > 0) return [v, v];
  if (Array.isArray(v) && v.length === 2 && v.every((x) => typeof x === 'number' && Number.isInteger(x) && x > 0)) {
    return [v[0] as number, v[1] as number];
  }
  throw bad(ctx, key, v, 'a positive integer or a pair of them');
}

export function readEnum<T extends string>(
  config: JsonObject,
  key: string,
  valid: readonly T[],
  ctx: OpContext,
  fallback: T,
): T {
  const v = config[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'string' || !(valid as readonly string[]).includes(v)) {
    throw bad(ctx, key, v, `one of ${valid.map((x) => JSON.stringify(x)).join(', ')}`);
  }
  return v as T;
}

/** Activation names are free-form in Keras (custom ones exist); keep the string, default linear. */
export function readActivation(config: JsonObject, key: string, ctx: OpContext): string {
  const v = config[key];
  if (v === undefined || v === null) return 'linear';
  if (typeof v === 'string') return v;
  // Keras 3 may serialise an activation as {class_name, config}.
  if (typeof v === 'object' && !Array.isArray(v) && typeof v.class_name === 'string') return v.class_name;
  throw bad(ctx, key, v, 'an activation name');
}

/** Only channels_last is supported: everything downstream assumes the channel axis is last. */
export function requireChannelsLast(config: JsonObject, ctx: OpContext): void {
  const v = config.data_format;
  if (v === undefined || v === null || v === 'channels_last') return;
  throw new MorphError(
    'MORPH_ERR_NOT_A_MODEL',
    `layer "${ctx.layer}" (${ctx.className}) uses data_format ${JSON.stringify(v)}; only "channels_last" (NHWC) is supported — re-export the model with channels_last`,
    { layer: ctx.layer, field: 'data_format', unmodeled: true },
  );
}

/**
 * ZeroPadding2D's `padding` and Cropping2D's `cropping`: an int, a pair (rows, columns) or a pair
 * of pairs, as `[[top, bottom], [left, right]]`; `fallback` on every side when absent.
 */
export function readPadPairs(config: JsonObject, key: string, ctx: OpContext, fallback: number): [[number, number], [number, number]] {
  const v = config[key];
  const isNat = (x: unknown): x is number => typeof x === 'number' && Number.isInteger(x) && x >= 0;
  if (v === undefined || v === null) return [[fallback, fallback], [fallback, fallback]];
  if (isNat(v)) return [[v, v], [v, v]];
  if (Array.isArray(v) && v.length === 2) {
    const [a, b] = v;
    if (isNat(a) && isNat(b)) return [[a, a], [b, b]];
    if (Array.isArray(a) && Array.isArray(b) && a.length === 2 && b.length === 2 && [...a, ...b].every(isNat)) {
      return [[a[0] as number, a[1] as number], [b[0] as number, b[1] as number]];
    }
  }
  throw bad(ctx, key, v, 'a non-negative int, a pair, or a pair of pairs');
}
