/**
 * `morphnet search --server URL`: the search as a client of a running server (docs/api.md,
 * "Searches and models"). Posts the request (POST /api/searches), follows the search's SSE stream
 * (GET /api/searches/:id/events) and prints its progress as the offline command does, or one JSON
 * object per line with --json; at the end prints the summary from GET /api/searches/:id and
 * downloads every artifact. Ctrl-C stops following, not the search: it keeps running on the server.
 */
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ERROR_CODES, MorphError } from '../src/errors.ts';
import { checkOutputDir } from '../src/export/tfjs-model.ts';
import { createProgressReporter, formatDuration, type ProgressReporter } from '../src/train/progress.ts';
import type { ArtifactsResponse, DevicesResponse, NetworkSummary, SearchBody, SearchEventRecord, SearchEventsEnd, SearchResultSummary, SearchView } from '../server/contract/index.ts';
import type { CommandIo } from './args.ts';
import { human, table } from './format.ts';
import { adminHeaders, call, knownCode, unreachable } from './server-client.ts';

/** Datasets a server search may name (server/routes/searches.ts `API_DATASETS`): no paths. */
export const SERVER_DATASETS = ['fashion-mnist', 'mnist', 'synthetic', 'synthetic:h=…,w=…,c=…,classes=…'] as const;

/** Exit status after Ctrl-C (128 + SIGINT), as shells report it. */
export const EXIT_INTERRUPTED = 130;

/** Consecutive failed reconnects of the event stream before giving up. */
const MAX_RECONNECTS = 10;

export type RemoteCost = NonNullable<SearchBody['cost']>;

/**
 * The body of POST /api/searches as the command fills it: an inline model (weights are not sent:
 * the server starts from fresh weights) or a seed, and only the options given on the command line
 * (the server applies its defaults, the same as the CLI's). Device and runtime are added once resolved.
 */
export type RemoteSearchRequest = Omit<SearchBody, 'deviceId' | 'runtime' | 'modelId'>;

export interface RemoteSearchOptions {
  /** `http://HOST:PORT`, as checked by `serverBase`. */
  readonly base: string;
  readonly request: RemoteSearchRequest;
  /** A device id or name, resolved through GET /api/devices. */
  readonly device?: string;
  /** A runtime the device serves. Default tfjs-wasm where the device serves it, else its first. */
  readonly runtime?: string;
  /** Where to download the artifacts; none when absent. */
  readonly out?: string;
  readonly overwrite: boolean;
  readonly json: boolean;
  /** Delay before reconnecting a dropped event stream, ms. Default 3000 (the server's `retry:`). */
  readonly reconnectMs?: number;
}

/** A network of the summary table: the seed has only its costs, the trained networks the rest too. */
type Net = SearchResultSummary['seed'] & Partial<Pick<NetworkSummary, 'multiplier' | 'structure' | 'accuracy' | 'trainSeconds' | 'measured'>>;

/** Checks `--server` and returns it without a trailing slash. */
export function serverBase(command: string, text: string): string {
  const base = text.replace(/\/+$/, '');
  if (!/^https?:\/\/[^/\s]+$/.test(base)) throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `morphnet ${command}: --server ${JSON.stringify(text)} must be http://HOST:PORT`);
  return base;
}

/**
 * Refuses a dataset the server would have to read from this machine: `idx:DIR`, `folder:DIR` or
 * anything that looks like a path. Other names go to the server, which knows what it has.
 */
export function checkServerDataset(spec: string, base: string): string {
  const s = spec.trim();
  if (/^(idx|folder):/.test(s) || /[\\/]/.test(s) || s.startsWith('.') || s.startsWith('~')) {
    throw new MorphError(
      'MORPH_ERR_BAD_ARGUMENT',
      `morphnet search: --data ${JSON.stringify(spec)} is a path on this machine, and the server at ${base} cannot read this machine's files; give a dataset the server has: ${SERVER_DATASETS.join(', ')} (or run the search here, without --server)`,
      { field: 'data' },
    );
  }
  return s;
}

/** Reads MODEL.json for an upload: the topology goes to the server, the weights stay here. */
export async function readModelJson(path: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new MorphError('MORPH_ERR_NOT_FOUND', `morphnet search: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new MorphError('MORPH_ERR_NOT_JSON', `morphnet search: ${path} is not JSON: ${(err as Error).message}`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new MorphError('MORPH_ERR_NOT_A_MODEL', `morphnet search: ${path} is not a model.json object nor a Keras model config`);
  return json as Record<string, unknown>;
}

/**
 * The device id and runtime for the request. A device neither listed by id nor by name is sent
 * as given, so the server refuses it with its own message.
 */
async function resolveDevice(base: string, arg: string, runtime: string | undefined): Promise<{ deviceId: string; runtime: string | undefined; known: string }> {
  const { devices } = await call<DevicesResponse>(base, 'GET', '/api/devices');
  const known = devices.map((d) => `${d.id} (${d.name})`).join(', ') || 'none; start an agent there with morphnet agent --server …';
  const matches = devices.filter((d) => d.id === arg || d.name === arg);
  if (matches.length > 1) throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `morphnet search: several devices are named ${JSON.stringify(arg)}; give the id: ${matches.map((d) => d.id).join(', ')}`);
  if (matches.length === 0) return { deviceId: arg, runtime: runtime ?? 'tfjs-wasm', known };
  const served = matches[0].runtimes.map((r) => r.name);
  return { deviceId: matches[0].id, runtime: runtime ?? (served.includes('tfjs-wasm') || served.length === 0 ? 'tfjs-wasm' : served[0]), known };
}

/** Splits SSE text into messages; returns the unfinished rest. */
function parseSse(text: string, onMessage: (event: string, id: string | null, data: string) => void): string {
  let rest = text.replace(/\r\n?/g, '\n');
  let cut: number;
  while ((cut = rest.indexOf('\n\n')) >= 0) {
    const block = rest.slice(0, cut);
    rest = rest.slice(cut + 2);
    let event = 'message';
    let id: string | null = null;
    const data: string[] = [];
    for (const line of block.split('\n')) {
      if (line === '' || line.startsWith(':')) continue; // heartbeat comments
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'event') event = value;
      else if (field === 'id') id = value;
      else if (field === 'data') data.push(value);
    }
    if (data.length > 0) onMessage(event, id, data.join('\n'));
  }
  return rest;
}

/**
 * Follows the event stream until `event: end` and returns the final state. A dropped stream is
 * reopened after the last stored event (`Last-Event-ID`); the server replays what was missed.
 * @throws MorphError `MORPH_ERR_NOT_FOUND` after MAX_RECONNECTS failed reconnects in a row.
 */
async function followEvents(base: string, id: string, onEvent: (e: SearchEventRecord) => void, signal: AbortSignal, reconnectMs: number): Promise<string> {
  let lastSeq = 0;
  let failures = 0;
  for (;;) {
    let endState: string | null = null;
    try {
      const res = await fetch(`${base}/api/searches/${id}/events`, { signal, headers: { ...adminHeaders(), ...(lastSeq > 0 ? { 'last-event-id': String(lastSeq) } : {}) } });
      if (!res.ok || !res.body) {
        // A 404 (the search was removed) or another refusal does not get better by retrying.
        await res.body?.cancel();
        throw new MorphError('MORPH_ERR_NOT_FOUND', `GET /api/searches/${id}/events answered ${res.status}`);
      }
      failures = 0;
      const decoder = new TextDecoder();
      let text = '';
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        text = parseSse(text + decoder.decode(chunk, { stream: true }), (event, _eventId, data) => {
          if (endState !== null) return;
          let parsed: unknown;
          try {
            parsed = JSON.parse(data);
          } catch {
            return; // not one of ours; the stream goes on
          }
          if (event === 'end') {
            endState = String((parsed as Partial<SearchEventsEnd>).state ?? 'failed');
            return;
          }
          const record = parsed as SearchEventRecord;
          if (typeof record.seq === 'number') lastSeq = Math.max(lastSeq, record.seq);
          onEvent(record);
        });
        if (endState !== null) break;
      }
      if (endState !== null) {
        await res.body.cancel().catch(() => undefined);
        return endState;
      }
    } catch (err) {
      if (signal.aborted) throw err;
      if (err instanceof MorphError) throw err;
      if (++failures > MAX_RECONNECTS) throw new MorphError('MORPH_ERR_NOT_FOUND', `lost the event stream of search ${id} at ${base} (${MAX_RECONNECTS} reconnects failed: ${unreachable(base, err).message}); it may still be running there: GET ${base}/api/searches/${id}`);
    }
    await sleep(reconnectMs, undefined, { signal });
  }
}

const pct = (x: number | null | undefined): string => (typeof x === 'number' ? `${(x * 100).toFixed(2)}%` : '-');
/** FLOPs and params as 1.23M; ms (and other small costs) to 4 significant digits. */
const costText = (x: number): string => (Math.abs(x) >= 1000 ? human(x) : String(Number(x.toPrecision(4))));
const msText = (x: number | null | undefined): string => (typeof x !== 'number' ? '-' : x < 1 ? x.toFixed(3) : x.toFixed(2));

/** Prints events as the offline command does: `» message` lines, a live training line on a terminal. */
function progressPrinter(io: CommandIo): { onEvent: (e: SearchEventRecord) => void; close: () => void } {
  let reporter: ProgressReporter | null = null;
  let phase = '';
  const close = (): void => {
    reporter?.close();
    reporter = null;
  };
  const line = (text: string): void => {
    close();
    io.err(text);
  };
  return {
    close,
    onEvent({ type, data: d }) {
      switch (type) {
        case 'step':
        case 'epoch': {
          if (!io.isTty) {
            // Off a terminal: one line per epoch, no step lines (they come four times a second).
            if (type === 'epoch') {
              const e = d.epoch;
              const val = e.valAccuracy === null || e.valAccuracy === undefined ? '' : ` val loss ${Number(e.valLoss).toPrecision(4)} acc ${(e.valAccuracy * 100).toFixed(1)}%`;
              io.err(`${d.phase} epoch ${e.epoch}/${e.epochs} loss ${Number(e.trainLoss).toPrecision(4)}${val} (${formatDuration(e.seconds)})`);
            }
            return;
          }
          if (!reporter || phase !== d.phase) {
            close();
            phase = d.phase;
            reporter = createProgressReporter({ tty: true, write: (t) => process.stderr.write(t), label: d.phase });
          }
          if (type === 'step') reporter.onStep(d.step);
          else reporter.onEpochEnd(d.epoch);
          return;
        }
        case 'state':
          if (d.state === 'failed') line(`» failed: ${d.error?.message ?? 'no reason given'}`);
          else if (d.state === 'cancelled' || d.state === 'interrupted') line(`» ${d.state}: ${d.reason ?? ''}`);
          else if (d.state !== 'done') line(`» ${d.state}${d.resumed ? ` (resumed, attempt ${d.attempt})` : ''}`);
          return;
        case 'ready':
          line(`${d.backend}; data ${d.dataset?.name}: ${d.dataset?.trainSize} train, ${d.dataset?.valSize} val, ${d.dataset?.testSize} test`);
          return;
        case 'shrink-epoch': {
          const alive = Array.isArray(d.epoch?.alive) ? (d.epoch.alive as number[]).reduce((a, b) => a + b, 0) : 0;
          line(`  round ${d.round} epoch ${d.epoch?.epoch}: ${alive} channels alive, cost ${costText(Number(d.epoch?.aliveCost))}, regularizer ${Number(d.epoch?.regularizer).toPrecision(4)}`);
          return;
        }
        case 'evaluated':
          line(`» ${d.phase} test accuracy ${pct(d.accuracy)}`);
          return;
        case 'phase':
        case 'note':
        case 'export':
          line(`» ${d.message}`);
          return;
        default:
          return; // groups, and types added later
      }
    },
  };
}

function renderSummary(v: SearchView, base: string): string {
  const r = v.result!;
  const latency = r.costModel.name === 'latency';
  const headers = ['network', 'MACs', 'params', ...(latency ? ['predicted ms', 'measured ms'] : [r.costModel.unit]), 'accuracy', 'ω', 'train'];
  const row = (name: string, n: Net): string[] => [
    name,
    human(n.macs),
    human(n.params),
    ...(latency ? [msText(n.cost), msText(n.measured)] : [human(n.cost)]),
    pct(n.accuracy),
    typeof n.multiplier === 'number' ? n.multiplier.toFixed(3) : '-',
    typeof n.trainSeconds === 'number' ? `${n.trainSeconds.toFixed(0)}s` : '-',
  ];
  const rows = [row('seed', r.seed), row('morphnet', r.learned)];
  if (r.baseline) rows.push(row('uniform baseline', r.baseline));
  if (r.flopSearch) rows.push(row('FLOP-MorphNet', r.flopSearch));
  const value = latency ? `${msText(r.target.value)} ms` : `${human(r.target.value)} ${r.costModel.unit}`;
  const where = v.deviceId ? ` on device ${v.deviceId} (${v.runtime})` : '';
  return [
    `search ${v.id} done in ${r.seconds.toFixed(1)}s on ${base}: ${v.model.name}, ${r.backend}`,
    `target: ${value} (${(r.target.fraction * 100).toFixed(1)}% of the seed)${where}`,
    '',
    table(headers, rows),
    '',
    `learned widths: ${Object.entries(r.learned.structure ?? {}).map(([layer, c]) => `${layer} ${c}`).join(', ')}`,
  ].join('\n');
}

/** A name the server lists, checked before it becomes a file name here. */
const ARTIFACT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

/**
 * Downloads every artifact into `dir` through a temporary sibling, then replaces `dir` (as the
 * offline command writes its output). Returns the names and sizes written.
 */
async function downloadArtifacts(base: string, id: string, dir: string, overwrite: boolean): Promise<{ name: string; bytes: number }[]> {
  const { artifacts } = await call<ArtifactsResponse>(base, 'GET', `/api/searches/${id}/artifacts`);
  const target = await checkOutputDir(dir, overwrite);
  await mkdir(dirname(target), { recursive: true });
  const tmp = join(dirname(target), `.${basename(target)}.tmp-${process.pid}-${Date.now()}`);
  await mkdir(tmp);
  const written: { name: string; bytes: number }[] = [];
  try {
    for (const { name } of artifacts) {
      if (typeof name !== 'string' || !ARTIFACT_NAME.test(name) || name.includes('..')) throw new MorphError('MORPH_ERR_INTERNAL', `the server listed an artifact named ${JSON.stringify(name)}, which is not a plain file name`);
      let res: Response;
      try {
        res = await fetch(`${base}/api/searches/${id}/artifacts/${encodeURIComponent(name)}`, { headers: adminHeaders() });
      } catch (err) {
        throw unreachable(base, err);
      }
      if (!res.ok) {
        await res.body?.cancel();
        throw new MorphError('MORPH_ERR_NOT_FOUND', `GET /api/searches/${id}/artifacts/${name} answered ${res.status}`);
      }
      const bytes = new Uint8Array(await res.arrayBuffer());
      await writeFile(join(tmp, name), bytes);
      written.push({ name, bytes: bytes.length });
    }
    await rm(target, { recursive: true, force: true });
    await rename(tmp, target);
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
  return written;
}

function searchEnded(v: SearchView, base: string): MorphError {
  if (v.state === 'failed') {
    const code = knownCode(v.error?.code, 'MORPH_ERR_JOB_FAILED');
    // A failed search is the search's outcome, not a bug here: exit 2 even for the server's internal errors.
    return new MorphError(ERROR_CODES[code].exit === 2 ? code : 'MORPH_ERR_JOB_FAILED', `search ${v.id} failed: ${v.error?.message ?? 'no reason given'} [server: ${v.error?.code ?? '?'}]`);
  }
  const reason = v.interruption?.reason ?? 'no reason given';
  return new MorphError('MORPH_ERR_JOB_FAILED', `search ${v.id} ${v.state}: ${reason}; run it again with POST ${base}/api/searches/${v.id}/resume`);
}

/**
 * Runs one search on the server and follows it to the end.
 * @returns 0 when it is done (summary printed, artifacts downloaded), EXIT_INTERRUPTED after Ctrl-C.
 * @throws MorphError the server's refusal of the request, or the search's own error when it
 *   failed, was cancelled or interrupted.
 */
export async function runRemoteSearch(o: RemoteSearchOptions, io: CommandIo): Promise<number> {
  const { base } = o;
  if (o.out !== undefined) await checkOutputDir(o.out, o.overwrite);
  let body: Record<string, unknown> = { ...o.request };
  let known = '';
  if (o.device !== undefined) {
    const d = await resolveDevice(base, o.device, o.runtime);
    known = d.known;
    body = { ...body, deviceId: d.deviceId, runtime: d.runtime };
  }
  let created: SearchView;
  try {
    created = await call<SearchView>(base, 'POST', '/api/searches', body);
  } catch (err) {
    if (err instanceof MorphError && err.code === 'MORPH_ERR_NOT_FOUND' && o.device !== undefined && /device/.test(err.message)) {
      throw new MorphError(err.code, `${err.message}; devices known on ${base}: ${known}`, err.details);
    }
    throw err;
  }
  const id = created.id;
  const printer = o.json ? { onEvent: (e: SearchEventRecord) => io.out(JSON.stringify(e)), close: () => undefined } : progressPrinter(io);
  const abort = new AbortController();
  const onSigint = (): void => {
    printer.close();
    io.err(`\nmorphnet search: stopped following; search ${id} keeps running on ${base}.\n  progress: GET ${base}/api/searches/${id}\n  cancel it: curl -X DELETE ${base}/api/searches/${id}`);
    abort.abort();
  };
  // Before the first line naming the search, so that Ctrl-C from then on never kills the process.
  process.once('SIGINT', onSigint);
  const emit = (type: string, data: unknown): void => io.out(JSON.stringify({ type, data }));
  if (o.json) emit('created', created);
  else {
    const t = created.target;
    // A latency target given as a fraction is resolved once the seed is measured (value 0 until then).
    const target = t.value > 0 ? `${t.unit === 'ms' ? msText(t.value) : human(t.value)} ${t.unit}` : 'resolved once the seed is measured on the device';
    io.err(`search ${id} ${created.state} on ${base}${created.waiting ? ` (${created.waiting})` : ''}; target ${target}`);
  }
  let endState: string;
  try {
    endState = await followEvents(base, id, printer.onEvent, abort.signal, o.reconnectMs ?? 3000);
  } catch (err) {
    if (abort.signal.aborted) return EXIT_INTERRUPTED;
    throw err;
  } finally {
    process.off('SIGINT', onSigint);
    printer.close();
  }
  if (o.json) emit('end', { state: endState });

  const view = await call<SearchView>(base, 'GET', `/api/searches/${id}`);
  if (view.state !== 'done' || !view.result) throw searchEnded(view, base);
  const written = o.out !== undefined ? await downloadArtifacts(base, id, o.out, o.overwrite) : null;
  if (o.json) {
    emit('search', view);
    for (const a of written ?? []) emit('artifact', { ...a, path: join(o.out!, a.name) });
    return 0;
  }
  io.out(renderSummary(view, base));
  io.out(written ? `wrote ${o.out}/${written.map((a) => a.name).join(', ')}` : `artifacts: GET ${base}/api/searches/${id}/artifacts (or pass --out DIR)`);
  return 0;
}
