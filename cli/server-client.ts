/**
 * The CLI's client of the REST API (`profile`, `search --server`): one JSON call, with the
 * server's error body turned back into a MorphError carrying the server's code and message. The
 * shapes it sends and reads are the server's REST contract (server/contract/).
 */
import { ERROR_CODES, MorphError, type ErrorCode } from '../src/errors.ts';
import type { DeviceView, DevicesResponse, ErrorBody, JobView } from '../server/contract/index.ts';
import type { CommandIo } from './args.ts';

export function unreachable(base: string, err: unknown): MorphError {
  const e = err as Error;
  const why = e.cause instanceof Error ? e.cause.message : e.message;
  return new MorphError('MORPH_ERR_NOT_FOUND', `cannot reach the server at ${base}: ${why}; is "morphnet serve" running there?`);
}

/**
 * The Authorization header for a server that has an admin token: the CLI sends
 * MORPHNET_ADMIN_TOKEN when it is set (docs/security.md), nothing otherwise.
 */
export function adminHeaders(): Record<string, string> {
  const token = process.env.MORPHNET_ADMIN_TOKEN?.trim();
  return token ? { authorization: `Bearer ${token}` } : {};
}

/** One REST call; an error body `{error: {code, message}}` becomes a MorphError with the server's code and message. */
export async function call<T>(base: string, method: string, path: string, body?: unknown): Promise<T> {
  let res: Response;
  try {
    res = await fetch(`${base}${path}`, { method, headers: { 'content-type': 'application/json', ...adminHeaders() }, body: body === undefined ? undefined : JSON.stringify(body) });
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
    const e = (json as Partial<ErrorBody>).error;
    const code = knownCode(e?.code, 'MORPH_ERR_INTERNAL');
    const hint = code === 'MORPH_ERR_UNAUTHORIZED' ? ' (set MORPHNET_ADMIN_TOKEN to the server\'s admin token)' : '';
    throw new MorphError(code, `${e?.message ?? `${method} ${path} failed with ${res.status}`}${hint}`, { ...e?.details });
  }
  return json as T;
}

export function knownCode(code: string | undefined, fallback: ErrorCode): ErrorCode {
  return code !== undefined && Object.hasOwn(ERROR_CODES, code) ? (code as ErrorCode) : fallback;
}

/**
 * Polls a job until it is done, printing a line (or a JSON line with `json`) whenever its progress
 * changes; `J` is the kind of job it is (`MeasureJobView`, `ProfileJobView`).
 * @throws MORPH_ERR_JOB_FAILED when it fails, is cancelled or outlasts `timeoutS`.
 */
export async function waitJob<J extends JobView = JobView>(base: string, id: string, label: string, io: CommandIo, json: boolean, timeoutS: number): Promise<J> {
  const end = Date.now() + timeoutS * 1000;
  let last = '';
  for (;;) {
    const job = await call<J>(base, 'GET', `/api/jobs/${id}`);
    const line = `${label}: ${job.state} ${job.progress.done}/${job.progress.total}${job.progress.failed ? ` (${job.progress.failed} failed)` : ''}${job.waiting ? ` — ${job.waiting}` : ''}`;
    if (line !== last) {
      if (json) io.err(JSON.stringify({ event: 'job', label, id, state: job.state, progress: job.progress, waiting: job.waiting }));
      else io.err(line);
      last = line;
    }
    if (job.state === 'done') return job;
    if (job.state === 'failed' || job.state === 'cancelled') {
      throw new MorphError('MORPH_ERR_JOB_FAILED', `${label} job ${id} ${job.state}: ${job.error?.message ?? 'no reason given'}; GET /api/jobs/${id} has each item's error`);
    }
    if (Date.now() > end) throw new MorphError('MORPH_ERR_JOB_FAILED', `${label} job ${id} did not finish within ${timeoutS} s (${job.waiting ?? job.state}); it keeps running on the server`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

/**
 * The device named or numbered `arg` on the server, and the runtime to use on it: `runtime` when
 * given, else tfjs-wasm where it serves it, else its first.
 * @throws MORPH_ERR_NOT_FOUND for an unknown device (listing the known ones), MORPH_ERR_BAD_ARGUMENT for an ambiguous name.
 */
export async function findDevice(base: string, command: string, arg: string, runtime: string | undefined): Promise<{ device: DeviceView; runtime: string }> {
  const { devices } = await call<DevicesResponse>(base, 'GET', '/api/devices');
  const matches = devices.filter((d) => d.id === arg || d.name === arg);
  if (matches.length === 0) {
    throw new MorphError('MORPH_ERR_NOT_FOUND', `morphnet ${command}: no device ${JSON.stringify(arg)} on ${base}; known: ${devices.map((d) => `${d.id} (${d.name})`).join(', ') || 'none (start an agent)'}`);
  }
  if (matches.length > 1) throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `morphnet ${command}: several devices are named ${JSON.stringify(arg)}; give the id: ${matches.map((d) => d.id).join(', ')}`);
  const device = matches[0];
  const served = device.runtimes.map((r) => r.name);
  return { device, runtime: runtime ?? (served.includes('tfjs-wasm') || served.length === 0 ? 'tfjs-wasm' : served[0]) };
}
