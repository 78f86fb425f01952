/**
 * What the benches that drive a real server share: a JSON call to its REST API that throws on a
 * non-2xx answer with the error body, so a bench stops at the first refusal with its reason.
 */
import type { RunningServer } from '../../server/app.ts';

// `any`: the bench scripts read the replies loosely.
export async function api(server: RunningServer, method: string, path: string, body?: unknown): Promise<any> {
  const res = await fetch(`${server.url}${path}`, { method, headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  const json = await res.json();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}
