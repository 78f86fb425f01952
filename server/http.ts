/** Request handling shared by the REST routers: schema validation and async route handlers. */
import type { NextFunction, Request, Response } from 'express';
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
