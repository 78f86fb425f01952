/** Request handling shared by the REST routers: schema validation and async route handlers. */
import express, { type NextFunction, type Request, type Response } from 'express';
import type { z } from 'zod';
import { MorphError } from '../src/errors.ts';

/** Validates `value` (a body or a query) against `schema`; a 400 naming each problem otherwise. */
export function parse<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issues = r.error.issues.slice(0, 6).map((i) => (i.path.length ? `${i.path.join('.')}: ${i.message}` : i.message));
  throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `invalid ${what}: ${issues.join('; ')}`, { issues: r.error.issues.slice(0, 20).map((i) => ({ path: i.path.join('.'), message: i.message })) });
}

/** An async route handler whose rejections reach the error middleware. */
export const route =
  (fn: (req: Request, res: Response) => Promise<void>) =>
  (req: Request, res: Response, next: NextFunction): void => {
    fn(req, res).catch(next);
  };

/** Deepest nesting of arrays and objects a JSON body may have (a model.json needs about 10). */
export const MAX_JSON_DEPTH = 64;

/**
 * The nesting depth of a JSON text, by a scan of its bytes (brackets inside strings do not
 * count); stops early once past `limit`. V8's JSON.parse copes with any depth, but the recursive
 * walks after it (JSON.stringify, hashing a model config) overflow the stack on a few thousand
 * levels, so too deep a body is refused before it is parsed.
 */
export function jsonDepth(bytes: Uint8Array, limit = MAX_JSON_DEPTH): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i];
    if (inString) {
      if (b === 0x5c) i++; // backslash: skip the escaped byte
      else if (b === 0x22) inString = false;
    } else if (b === 0x22) {
      inString = true;
    } else if (b === 0x5b || b === 0x7b) {
      if (++depth > max) max = depth;
      if (max > limit) return max;
    } else if (b === 0x5d || b === 0x7d) {
      depth--;
    }
  }
  return max;
}

/** Thrown from the body parser's verify hook; server/api.ts `errorBody` maps `type` to a status. */
class BodyRefused extends Error {
  constructor(
    readonly type: 'entity.too.deep' | 'charset.unsupported',
    message: string,
  ) {
    super(message);
  }
}

/**
 * The JSON body parser every REST route uses: any Content-Type is read as JSON, at most
 * `limitBytes`, UTF-8 only (the depth scan reads bytes), and at most MAX_JSON_DEPTH levels deep.
 */
export function jsonBody(limitBytes: number): ReturnType<typeof express.json> {
  return express.json({
    limit: limitBytes,
    strict: true,
    type: () => true,
    verify: (_req, _res, buf, encoding) => {
      if (encoding && encoding.toLowerCase() !== 'utf-8' && encoding.toLowerCase() !== 'utf8') {
        throw new BodyRefused('charset.unsupported', `the body's charset ${encoding} is not supported; send UTF-8 JSON`);
      }
      if (jsonDepth(buf) > MAX_JSON_DEPTH) throw new BodyRefused('entity.too.deep', `the body nests arrays/objects deeper than ${MAX_JSON_DEPTH} levels`);
    },
  });
}

/** Query parameters whose values are secrets (agent token, pairing code): never logged. */
const SECRET_PARAMS = /([?&](?:token|pair|code|access_token)=)[^&#]*/gi;

/** `url` with the values of secret query parameters replaced by `***`, for log lines. */
export function redactUrl(url: string): string {
  return url.replace(SECRET_PARAMS, '$1***');
}

/**
 * Middleware of the routes that take no query string: any parameter is a 400, as an unknown
 * parameter is on the routes that do take some (every query is validated).
 */
export function noQuery(req: Request, _res: Response, next: NextFunction): void {
  const keys = Object.keys(req.query as Record<string, unknown>);
  if (keys.length === 0) return next();
  const shown = keys.slice(0, 5).map((k) => JSON.stringify(k.slice(0, 50)));
  next(new MorphError('MORPH_ERR_BAD_ARGUMENT', `invalid query: this endpoint takes no query parameters, got ${shown.join(', ')}`, { issues: keys.slice(0, 20).map((k) => ({ path: k.slice(0, 50), message: 'Unrecognized key' })) }));
}
