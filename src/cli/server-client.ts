/**
 * The CLI's client of the REST API (`profile`, `search --server`): one JSON call, with the
 * server's error body turned back into a MorphError carrying the server's code and message.
 */
import { ERROR_CODES, MorphError, type ErrorCode } from '../errors.ts';

export function unreachable(base: string, err: unknown): MorphError {
  const e = err as Error;
  const why = e.cause instanceof Error ? e.cause.message : e.message;
  return new MorphError('MORPH_ERR_NOT_FOUND', `cannot reach the server at ${base}: ${why}; is "morphnet serve" running there?`);
}

/** One REST call; an error body `{error: {code, message}}` becomes a MorphError with the server's code and message. */
export async function call<T>(base: string, method: string, path: string, body?: unknown): Promise<T> {
  let res: Response;
  try {
    res = await fetch(`${base}${path}`, { method, headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (err) {
    throw unreachable(base, err);
  }
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new MorphError('MORPH_ERR_INTERNAL', `the server answered ${method} ${path} with ${res.status} and no JSON; is ${base} a MorphNet Edge server?`);
  }
  if (!res.ok) {
    const e = (json as { error?: { code?: string; message?: string; details?: Record<string, unknown> } }).error;
    throw new MorphError(knownCode(e?.code, 'MORPH_ERR_INTERNAL'), e?.message ?? `${method} ${path} failed with ${res.status}`, e?.details ?? {});
  }
  return json as T;
}

export function knownCode(code: string | undefined, fallback: ErrorCode): ErrorCode {
  return code !== undefined && Object.hasOwn(ERROR_CODES, code) ? (code as ErrorCode) : fallback;
}

