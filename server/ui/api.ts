/**
 * The REST client of the UI. Every failure becomes an `ApiError` carrying the API's
 * `{error: {code, message, details}}`, so a form can put each message beside the field it concerns.
 */

/** A failed API call: the API's error, or a network failure (`status` 0, code `NETWORK`). */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  readonly status: number;
  readonly code: string;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(status: number, code: string, message: string, details: Record<string, unknown> = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

/**
 * Which field of a request an error concerns, as `{path: message}` with the API's field paths
 * (`targetMs`, `data.dataset`, `options.shrinkEpochs`…): `details.field` names one; a schema
 * failure lists `details.issues` by path; a few codes are about one field by nature.
 */
export function fieldErrors(err: unknown): Record<string, string> {
  if (!(err instanceof ApiError)) return {};
  const out: Record<string, string> = {};
  const issues = err.details.issues;
  if (Array.isArray(issues)) {
    for (const i of issues as { path?: unknown; message?: unknown }[]) {
      if (typeof i.path === 'string' && i.path !== '' && typeof i.message === 'string' && !(i.path in out)) out[i.path] = i.message;
    }
  }
  const field = typeof err.details.field === 'string' ? err.details.field : BY_CODE[err.code];
  if (field !== undefined && !(field in out)) out[field] = err.message;
  return out;
}

const BY_CODE: Record<string, string> = {
  MORPH_ERR_DATASET_MISMATCH: 'data.dataset',
  MORPH_ERR_TARGET: 'targetMs',
  MORPH_ERR_NOT_A_MODEL: 'model',
  MORPH_ERR_BAD_TOPOLOGY: 'model',
  MORPH_ERR_SHAPE: 'model',
};

export interface RequestOptions {
  readonly method?: 'GET' | 'POST' | 'DELETE';
  readonly body?: unknown;
  readonly signal?: AbortSignal;
}

/** Calls `/api…` and returns the parsed JSON. @throws ApiError */
export async function api<T>(path: string, options: RequestOptions = {}): Promise<T> {
  let res: Response;
  try {
    res = await fetch(path, {
      method: options.method ?? (options.body === undefined ? 'GET' : 'POST'),
      headers: options.body === undefined ? {} : { 'content-type': 'application/json' },
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      signal: options.signal,
    });
  } catch (err) {
    if ((err as Error).name === 'AbortError') throw err;
    throw new ApiError(0, 'NETWORK', `the server did not answer (${(err as Error).message}); is it still running?`);
  }
  const text = await res.text();
  let json: unknown = null;
  try {
    json = text === '' ? null : JSON.parse(text);
  } catch {
    // Not JSON: reported below with the status.
  }
  if (!res.ok) {
    const e = (json as { error?: { code?: string; message?: string; details?: Record<string, unknown> } } | null)?.error;
    throw new ApiError(res.status, e?.code ?? `HTTP_${res.status}`, e?.message ?? `${res.status} ${res.statusText}: ${text.slice(0, 200)}`, e?.details ?? {});
  }
  return json as T;
}

/** Polls a job until it ends, reporting each view; resolves with the last one. */
export async function followJob<T extends { id: string; state: string }>(job: T, onView: (job: T) => void, intervalMs = 700): Promise<T> {
  let view = job;
  onView(view);
  while (!['done', 'failed', 'cancelled'].includes(view.state)) {
    await new Promise((r) => setTimeout(r, intervalMs));
    view = await api<T>(`/api/jobs/${job.id}`);
    onView(view);
  }
  return view;
}
