/**
 * `morphnet agent`: runs this machine as a device agent of a MorphNet Edge server (the Node agent
 * of `device-agent/node/run.ts`, loaded only when this command runs).
 */
import { MorphError } from '../../src/errors.ts';
import { isRuntimeName, VALID_RUNTIMES, type RuntimeName } from '../../src/protocol/agent-protocol.ts';
import { parseFlags, requireString, type Command } from '../args.ts';

/** The environment variable `--token` defaults to. */
export const AGENT_TOKEN_ENV = 'MORPHNET_AGENT_TOKEN';

/**
 * Set by the server for its built-in local agent (a child process): the pid of that server. The
 * agent stops when it is no longer its parent, so a server killed with SIGKILL leaves no
 * orphaned agent behind to reconnect to the next one.
 */
export const PARENT_PID_ENV = 'MORPHNET_AGENT_PARENT_PID';

/** Aborts when this process is no longer the child of `parentPid` (checked every `everyMs`). */
function watchParent(parentPid: number, onGone: () => void, everyMs = 1000): () => void {
  const check = (): boolean => {
    if (process.ppid === parentPid) return false;
    onGone();
    return true;
  };
  if (check()) return () => undefined;
  const timer = setInterval(() => check() && clearInterval(timer), everyMs);
  timer.unref();
  return () => clearInterval(timer);
}

const USAGE = `Usage: morphnet agent --server ws://HOST:PORT --token T [options]

Connects this machine to a MorphNet Edge server as a device agent: the server sends it layers
(and whole networks) to time, it measures each on the runtime asked for (warm-up, then samples
until the spread is tight) and sends back median, p10, p90 and the spread. Reconnects by itself
(backoff up to 30 s) when the connection drops; stops on Ctrl-C (exit 0), or with exit 2 when the
server refuses the token. Every agent on one machine is the same device (its key is a hash of the
hostname, OS, CPU and memory).

Options:
  --server URL        the server: ws://HOST:PORT (the agent endpoint /agents is added when the
                      URL has no path), or the http:// address of its web UI
  --token T           the server's agent token (default: $${AGENT_TOKEN_ENV})
  --name N            device name shown by the server (default: the hostname)
  --runtime R         serve only this runtime; repeat or comma-separate for several:
                      tfjs-wasm, tfjs-cpu, tfjs-node (where it installs), tflite
                      (default: every one that loads here)
  --device-key K      override the device key (8-128 letters, digits, _ or -); agents with the
                      same key fill the same latency tables
  --json              one JSON object per event on stdout instead of text lines
  -h, --help          this text

Prints what it reports to the server (CPU, cores, memory, OS, each runtime's version, SIMD and
threads), then one line per connection change and per lease of work, with progress.`;

function badServer(input: string, why: string): MorphError {
  return new MorphError('MORPH_ERR_BAD_ARGUMENT', `morphnet agent: --server ${JSON.stringify(input)} ${why}; give the server as ws://HOST:PORT or http://HOST:PORT`);
}

/**
 * The agent endpoint for a `--server` value: `http(s)://` becomes `ws(s)://` with `/agents`
 * appended to its path; a `ws(s)://` URL gets `/agents` only when it has no path; a bare
 * `HOST:PORT` is taken as `ws://HOST:PORT`.
 * @throws MorphError `MORPH_ERR_BAD_ARGUMENT` for anything else.
 */
export function agentServerUrl(input: string): string {
  const raw = input.trim();
  if (raw === '') throw badServer(input, 'is empty');
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(raw) ? raw : `ws://${raw}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw badServer(input, 'is not a URL');
  }
  const fromHttp = url.protocol === 'http:' || url.protocol === 'https:';
  if (fromHttp) url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  else if (url.protocol !== 'ws:' && url.protocol !== 'wss:') throw badServer(input, `has scheme ${url.protocol.slice(0, -1)}`);
  if (url.hostname === '') throw badServer(input, 'has no host');
  const path = url.pathname.replace(/\/+$/, '');
  if (path === '') url.pathname = '/agents';
  else if (fromHttp && !path.endsWith('/agents')) url.pathname = `${path}/agents`;
  url.hash = '';
  return url.href;
}

/** `--runtime` values (repeated and/or comma-separated), checked against the runtime names. */
export function parseRuntimes(values: readonly string[]): RuntimeName[] | undefined {
  const names = values.flatMap((v) => v.split(',')).map((v) => v.trim()).filter((v) => v !== '');
  if (names.length === 0) return undefined;
  const unknown = names.filter((n) => !isRuntimeName(n));
  if (unknown.length > 0) {
    throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `morphnet agent: unknown --runtime ${unknown.map((u) => JSON.stringify(u)).join(', ')}; expected one of ${VALID_RUNTIMES.join(', ')}`);
  }
  return [...new Set(names as RuntimeName[])];
}

export const agentCommand: Command = {
  name: 'agent',
  summary: 'run this machine as a device agent that times layers for a server',
  usage: USAGE,
  async run(argv, io) {
    const { values, positionals } = parseFlags('agent', argv, {
      server: { type: 'string' },
      token: { type: 'string' },
      name: { type: 'string' },
      runtime: { type: 'string', multiple: true },
      'device-key': { type: 'string' },
      json: { type: 'boolean' },
    });
    if (positionals.length > 0) {
      throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `morphnet agent: unexpected argument ${JSON.stringify(positionals[0])}; see "morphnet agent --help"`);
    }
    const url = agentServerUrl(requireString('agent', 'server', values.server, 'ws://192.168.1.10:8080'));
    const token = typeof values.token === 'string' ? values.token : (process.env[AGENT_TOKEN_ENV] ?? '');
    if (token === '') {
      throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `morphnet agent: no agent token; pass --token T or set ${AGENT_TOKEN_ENV} (the server shows its agent token when it starts)`);
    }
    if (token.length > 256) throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `morphnet agent: --token is ${token.length} characters long; at most 256 are accepted`);
    const runtimes = parseRuntimes((values.runtime as unknown as string[] | undefined) ?? []);
    const name = typeof values.name === 'string' ? values.name : undefined;
    if (name !== undefined && (name.length < 1 || name.length > 100)) {
      throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `morphnet agent: --name must be 1 to 100 characters, got ${name.length}`);
    }
    const deviceKey = typeof values['device-key'] === 'string' ? values['device-key'] : undefined;
    if (deviceKey !== undefined && !/^[A-Za-z0-9_-]{8,128}$/.test(deviceKey)) {
      throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `morphnet agent: --device-key ${JSON.stringify(deviceKey)} must be 8 to 128 letters, digits, _ or -`);
    }

    // Loaded here, not at the top: the other commands need none of the agent's runtimes.
    const { runNodeAgent } = await import('../../device-agent/node/run.ts');
    const orphaned = new AbortController();
    const parentPid = Number(process.env[PARENT_PID_ENV]);
    const unwatch = Number.isInteger(parentPid) && parentPid > 0
      ? watchParent(parentPid, () => {
          io.err(`the server that started this agent (pid ${parentPid}) is gone; stopping`);
          orphaned.abort();
        })
      : () => undefined;
    const exit = await runNodeAgent({ url, token, name, runtimes, deviceKey, json: Boolean(values.json), out: io.out, err: io.err, signal: orphaned.signal }).finally(unwatch);
    if (exit.reason === 'unauthorized') {
      throw new MorphError('MORPH_ERR_UNAUTHORIZED', `morphnet agent: ${exit.message}; pass the server's agent token with --token or ${AGENT_TOKEN_ENV}`, { closeCode: exit.closeCode });
    }
    if (exit.reason === 'bad-hello') {
      throw new MorphError('MORPH_ERR_PROTOCOL', `morphnet agent: ${exit.message}; check --name and --device-key, and that agent and server are the same version`, { closeCode: exit.closeCode });
    }
    if (exit.reason === 'connect-failed') throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `morphnet agent: ${exit.message}; check --server`);
    return 0;
  },
};
