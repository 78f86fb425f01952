/**
 * The Node device agent: loads the runtime adapters that work here, describes the machine, and
 * runs the protocol loop of `../core.ts` over a `ws` client until SIGINT/SIGTERM (or a fatal
 * close). Prints one line per state change and per lease (with progress), or one JSON object per
 * event with `json`. `morphnet agent` is the command line in front of it.
 */
import { createRequire } from 'node:module';
import WebSocket from 'ws';
import { MorphError } from '../../src/errors.ts';
import { MAX_SERVER_MESSAGE_BYTES, type RuntimeName } from '../../src/protocol/agent-protocol.ts';
import { DeviceAgent, socketFromWebSocket, type AgentEvent, type AgentExit, type AgentIdentity, type ReconnectOptions } from '../core.ts';
import type { RuntimeAdapter } from '../runtime.ts';
import { availableAdapters, NODE_RUNTIMES, type UnavailableRuntime } from './adapters.ts';
import { defaultDeviceKey, hostFacts, nodeAgentEnv } from './env.ts';

export interface NodeAgentOptions {
  /** The agent endpoint, already a ws:// or wss:// URL (e.g. `ws://host:8080/agents`). */
  readonly url: string;
  readonly token: string;
  /** Device name; default the hostname. */
  readonly name?: string;
  /** Runtimes to serve; default every Node runtime that loads here. */
  readonly runtimes?: readonly RuntimeName[];
  /** Default: `defaultDeviceKey()` (a hash of this machine's facts). */
  readonly deviceKey?: string;
  /** One JSON object per line instead of text lines. */
  readonly json?: boolean;
  readonly out: (line: string) => void;
  readonly err: (line: string) => void;
  /** Stop on SIGINT/SIGTERM (default true). */
  readonly handleSignals?: boolean;
  /** Stops the agent when aborted (tests, embedding). */
  readonly signal?: AbortSignal;
  readonly reconnect?: ReconnectOptions;
  /** Least time between two progress lines of one lease, ms (text mode). Default 2000. */
  readonly progressEveryMs?: number;
}

const require = createRequire(import.meta.url);

export function agentVersion(): string {
  try {
    return (require('../../package.json') as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/** The runtimes this agent will serve, or a MorphError saying which requested one cannot run and why. */
async function loadAdapters(requested: readonly RuntimeName[] | undefined): Promise<{ adapters: RuntimeAdapter[]; unavailable: UnavailableRuntime[] }> {
  const browserOnly = requested?.filter((r) => !(NODE_RUNTIMES as readonly string[]).includes(r)) ?? [];
  if (browserOnly.length > 0) {
    throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `--runtime ${browserOnly.join(', ')} runs only in a browser (open the agent page); a Node agent serves ${NODE_RUNTIMES.join(', ')}`);
  }
  const { adapters, unavailable } = await availableAdapters(requested);
  if (requested !== undefined && unavailable.length > 0) {
    throw new MorphError('MORPH_ERR_BACKEND', `cannot serve ${unavailable.map((u) => `${u.name} (${u.reason})`).join('; ')}; leave out --runtime to serve what loads here (${adapters.map((a) => a.name).join(', ') || 'none'})`, {
      unavailable,
    });
  }
  if (adapters.length === 0) {
    throw new MorphError('MORPH_ERR_BACKEND', `no runtime loads here: ${unavailable.map((u) => `${u.name} (${u.reason})`).join('; ')}`, { unavailable });
  }
  return { adapters, unavailable };
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;
}

/** The text line of an event, or null for events that text mode folds into others. */
function describeEvent(e: AgentEvent, progress: (e: AgentEvent & { type: 'item-done' }) => string | null): string | null {
  switch (e.type) {
    case 'connecting':
      return e.attempt > 1 ? `connecting to ${e.url} (attempt ${e.attempt})` : `connecting to ${e.url}`;
    case 'welcome':
      return `connected: device ${e.deviceId}, agent ${e.agentId} (server ${e.serverVersion})`;
    case 'disconnected':
      return `disconnected (close ${e.code}${e.reason ? `: ${e.reason}` : ''})${e.retryInMs !== null ? `; reconnecting in ${seconds(e.retryInMs)}` : ''}`;
    case 'lease-start':
      return `lease ${e.leaseId} (job ${e.jobId}) on ${e.runtime}: ${e.items} item${e.items === 1 ? '' : 's'}`;
    case 'item-done':
      return progress(e);
    case 'item-failed':
      return `lease ${e.leaseId}: item ${e.itemId} (${e.index + 1}/${e.total}) failed: ${e.code}: ${e.message}`;
    case 'lease-end':
      return `lease ${e.leaseId} ${e.cancelled ? 'stopped' : 'done'}: ${e.done} measured, ${e.failed} failed${e.skipped > 0 ? `, ${e.skipped} skipped` : ''} in ${seconds(e.ms)}`;
    case 'cancel':
      return `lease ${e.leaseId} cancelled by the server: ${e.reason}${e.known ? '' : ' (not held here)'}`;
    case 'server-error':
      return `the server refused a message: ${e.code}: ${e.message}`;
    case 'invalid-message':
      return `ignored an invalid message from the server: ${e.message}`;
    case 'exit':
      return e.exit.reason === 'stopped' ? 'stopped' : null;
  }
}

/**
 * Runs the agent until it is stopped (signal, `options.signal`) or the server refuses it.
 * Resolves with why it ended; the caller turns a fatal exit into an error.
 * @throws MorphError `MORPH_ERR_BAD_ARGUMENT` for a browser-only runtime or an invalid device key
 *   or name, `MORPH_ERR_BACKEND` when a requested runtime (or every runtime) cannot load.
 */
export async function runNodeAgent(options: NodeAgentOptions): Promise<AgentExit> {
  const print = (line: string, event?: object): void => options.out(options.json ? JSON.stringify({ time: new Date().toISOString(), ...event }) : line);

  // Signals that come while the runtimes load still end the agent cleanly.
  let agent: DeviceAgent | null = null;
  let stopRequested = false;
  const requestStop = (): void => {
    stopRequested = true;
    void agent?.stop();
  };
  // The item being measured ends before the agent stops; a second Ctrl-C does not wait for it.
  let signals = 0;
  const onSignal = (): void => {
    if (++signals > 1) {
      options.err('second signal: exiting without waiting for the item being measured');
      process.exit(130);
    }
    requestStop();
  };
  const handleSignals = options.handleSignals ?? true;
  if (handleSignals) {
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  }
  options.signal?.addEventListener('abort', requestStop, { once: true });
  if (options.signal?.aborted) stopRequested = true;

  try {
    const { adapters, unavailable } = await loadAdapters(options.runtimes);
    const facts = hostFacts();
    const env = nodeAgentEnv(facts);
    const identity: AgentIdentity = {
      token: options.token,
      deviceKey: options.deviceKey ?? defaultDeviceKey(facts),
      name: options.name ?? (facts.hostname.slice(0, 100) || 'node-agent'),
      agentVersion: agentVersion(),
      env,
    };
    const runtimes = adapters.map((a) => a.info());
    print(
      [
        `morphnet agent ${identity.agentVersion}: device "${identity.name}" (key ${identity.deviceKey.slice(0, 8)}…), ${env.cpuModel} × ${env.cores}, node ${env.nodeVersion}`,
        `runtimes: ${runtimes.map((r) => `${r.name} (${r.version}${r.simd !== undefined ? `, SIMD ${r.simd ? 'on' : 'off'}` : ''})`).join(', ')}`,
        ...(unavailable.length > 0 ? [`not available: ${unavailable.map((u) => `${u.name} (${u.reason})`).join(', ')}`] : []),
      ].join('\n'),
      { type: 'agent', name: identity.name, deviceKey: identity.deviceKey, agentVersion: identity.agentVersion, env, runtimes, unavailable },
    );

    const every = options.progressEveryMs ?? 2000;
    let lastProgress = 0;
    const progress = (e: AgentEvent & { type: 'item-done' }): string | null => {
      const now = Date.now();
      if (e.index + 1 === e.total || now - lastProgress < every) return null;
      lastProgress = now;
      return `lease ${e.leaseId}: ${e.index + 1}/${e.total} items`;
    };

    agent = new DeviceAgent({
      url: options.url,
      connect: (url) => socketFromWebSocket(new WebSocket(url, { maxPayload: MAX_SERVER_MESSAGE_BYTES })),
      identity,
      adapters,
      reconnect: options.reconnect,
      logger: { info: (m) => options.err(m), warn: (m) => options.err(`warning: ${m}`) },
      onEvent: (e) => {
        if (e.type === 'lease-start') lastProgress = Date.now();
        if (options.json) {
          print('', e);
          return;
        }
        const line = describeEvent(e, progress);
        if (line !== null) print(line);
      },
    });
    if (stopRequested) return await agent.stop();
    return await agent.start();
  } finally {
    if (handleSignals) {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
    options.signal?.removeEventListener('abort', requestStop);
  }
}
