/**
 * Request handling shared by the REST routers: schema validation, async route handlers, the JSON
 * body parser, and the error handlers (JSON `{error: {code, message}}` under `/api`, short plain
 * text elsewhere; never a stack trace in a response).
 */
import express, { type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import type { z } from 'zod';
import { ERROR_CODES, isMorphError, MorphError, type ErrorCode } from '../src/errors.ts';
import type { ErrorBody } from './contract/access.ts';

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

/** Thrown from the body parser's verify hook; `errorBody` maps `type` to a status. */
class BodyRefused extends Error {
  constructor(
    readonly type: 'entity.too.deep' | 'charset.unsupported',
    message: string,
  ) {
    super(message);
  }
}

/**
 * Refuses at once (413) a request whose `Content-Length` is over `limitBytes`, before any body
 * parser runs: body-parser answers such a request only once it has read and dropped the whole
 * declared body, so a client declaring 100 GB and sending nothing got no answer at all. Node
 * reads and drops what does arrive after the answer; the connection is not closed at once,
 * which would reset it under a client still sending, and that client would never read the 413.
 * A compressed body is left to the parser, which counts its bytes once inflated.
 */
export function declaredLengthLimit(limitBytes: number): RequestHandler {
  return (req: Request, res: Response, next: NextFunction): void => {
    const declared = Number(req.headers['content-length']);
    const encoding = (req.headers['content-encoding'] ?? 'identity').trim().toLowerCase();
    if (!(declared > limitBytes) || encoding !== 'identity') return next();
    next(Object.assign(new Error(`request entity too large: ${declared} bytes declared`), { type: 'entity.too.large', status: 413, limit: limitBytes, length: declared }));
  };
}

/** Largest JSON body of a REST request, bytes (a model.json topology is well under this). */
export const MAX_BODY_BYTES = 8 * 1024 * 1024;

/**
 * The JSON body parser every REST route uses: any Content-Type is read as JSON, at most
 * `limitBytes` (a larger declared length is refused before reading, `declaredLengthLimit`),
 * UTF-8 only (the depth scan reads bytes), and at most MAX_JSON_DEPTH levels deep.
 */
export function jsonBody(limitBytes: number): RequestHandler {
  const parser = express.json({
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
  const early = declaredLengthLimit(limitBytes);
  return (req: Request, res: Response, next: NextFunction): void => {
    early(req, res, (err?: unknown) => (err === undefined ? parser(req, res, next) : next(err)));
  };
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

/** Whether a path is under `/api` (answered in JSON). */
export function isApiPath(path: string): boolean {
  return /^\/api(?:\/|$)/i.test(path);
}

/** An error middleware (express tells them by their four parameters). */
export type ErrorMiddleware = (err: unknown, req: Request, res: Response, next: NextFunction) => void;

/**
 * The status and JSON body for any error a route or middleware throws: a MorphError keeps its
 * code, status and details; express's and body-parser's own 4xx errors keep their status (code
 * MORPH_ERR_BAD_ARGUMENT, or MORPH_ERR_LIMIT / MORPH_ERR_NOT_JSON for the body ones); anything
 * else is a 500 MORPH_ERR_INTERNAL whose message says nothing of the cause.
 */
export function errorBody(err: unknown): { status: number; body: ErrorBody } {
  if (isMorphError(err)) {
    const details = Object.keys(err.details).length > 0 ? err.details : undefined;
    return { status: ERROR_CODES[err.code].status, body: { error: { code: err.code, message: err.message, ...(details ? { details } : {}) } } };
  }
  const e = err as { type?: unknown; status?: unknown; message?: unknown; limit?: unknown } | null | undefined;
  const message = typeof e?.message === 'string' ? e.message : undefined;
  const refused = (status: number, code: ErrorCode, text: string): { status: number; body: ErrorBody } => ({ status, body: { error: { code, message: text } } });
  if (e?.type === 'entity.too.large') return refused(413, 'MORPH_ERR_LIMIT', typeof e.limit === 'number' ? `the request body is larger than ${e.limit} bytes` : 'the request body is too large');
  if (e?.type === 'entity.too.deep') return refused(413, 'MORPH_ERR_LIMIT', message ?? 'the request body nests too deep');
  if (e?.type === 'charset.unsupported') return refused(415, 'MORPH_ERR_BAD_ARGUMENT', message ?? 'unsupported charset; send UTF-8 JSON');
  if (e?.type === 'entity.parse.failed') return refused(400, 'MORPH_ERR_NOT_JSON', `the request body is not valid JSON: ${message ?? ''}`.trim());
  if (typeof e?.status === 'number' && e.status >= 400 && e.status < 500) return refused(e.status, 'MORPH_ERR_BAD_ARGUMENT', message ?? 'bad request');
  return refused(500, 'MORPH_ERR_INTERNAL', 'internal error; the server log has the details');
}

/** Logs a 5xx with its stack (secret query values redacted); 4xx are the client's business and are not logged. */
function logServerError(log: (line: string) => void, status: number, req: Request, err: unknown): void {
  if (status >= 500) log(`${req.method} ${redactUrl(req.originalUrl)}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
}

/**
 * The error middleware of the REST routers: the JSON error envelope with the error's status
 * (`errorBody`). A response already under way (an event stream) is cut off instead.
 */
export function apiErrorHandler(log: (line: string) => void): ErrorMiddleware {
  return (err: unknown, req: Request, res: Response, _next: NextFunction): void => {
    const { status, body } = errorBody(err);
    logServerError(log, status, req, err);
    if (res.headersSent) {
      res.destroy();
      return;
    }
    res.status(status).set('Cache-Control', 'no-store').json(body);
  };
}

/**
 * The app's last error middleware, for whatever no router answered: JSON under `/api`, short
 * plain text (`message [CODE]`) elsewhere, e.g. a path parameter that is not valid
 * percent-encoding (`/agent/assets/tflite/%ZZ`, a 400).
 */
export function appErrorHandler(log: (line: string) => void): ErrorMiddleware {
  const api = apiErrorHandler(log);
  return (err: unknown, req: Request, res: Response, next: NextFunction): void => {
    if (isApiPath(req.originalUrl.split('?')[0])) {
      api(err, req, res, next);
      return;
    }
    const { status, body } = errorBody(err);
    logServerError(log, status, req, err);
    if (res.headersSent) {
      res.destroy();
      return;
    }
    res.status(status).set({ 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff' }).type('text/plain').send(`${body.error.message} [${body.error.code}]\n`);
  };
}

/** The app's last middleware: a 404 for any path no router answers (JSON under `/api`, text elsewhere). */
export function notFound(req: Request, _res: Response, next: NextFunction): void {
  const path = req.originalUrl.split('?')[0];
  const what = isApiPath(path) ? `no API endpoint ${req.method} ${path.slice(0, 200)}; docs/api.md lists them` : 'no such page; the web UI is at /, the device agent page at /agent, the API under /api';
  next(new MorphError('MORPH_ERR_NOT_FOUND', what));
}
