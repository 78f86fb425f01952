/**
 * `morphnet serve`: express + the agent hub + the SQLite store, and the built-in local agent.
 * `startServer` is what the CLI and the integration tests call; `close` shuts it down gracefully
 * (leases released, agents told, database checkpointed).
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import express, { type Express } from 'express';
import { MorphError } from '../src/errors.ts';
import { agentPageRouter } from './agent-page.ts';
import { fleetRouter } from './routes/fleet.ts';
import { AdminAuth, isLoopbackHost, MIN_ADMIN_TOKEN_LENGTH, sameSecret } from './auth.ts';
import { Db } from './db.ts';
import { Fleet } from './fleet.ts';
import { AGENTS_PATH, Hub } from './hub.ts';
import { acquireDataLock, describeLock } from './data-lock.ts';
import { Lifecycle, type LifecycleState } from './lifecycle.ts';
import { LocalAgent } from './local-agent.ts';
import { pairingRouter, Pairings } from './pairings.ts';
import { publicOrigin, refusePlaceholderSecret } from './start-config.ts';
import { appErrorHandler, notFound } from './http.ts';
import { FailureLimiter, type FailureLimitOptions } from './rate-limit.ts';
import { refineAfter } from './refine.ts';
import { MIGRATIONS } from './schema.ts';
import { ModelStore } from './model-store.ts';
import { searchRouter } from './routes/searches.ts';
import { SearchService, type SearchServiceOptions } from './search/service.ts';
import { TableReader } from './tables.ts';
import { uiRouter } from './ui/serve.ts';

export const SERVER_VERSION = '0.1.0';
export const TOKEN_FILE = 'agent-token';
export const DB_FILE = 'morphnet.db';

export interface ServerOptions {
  /** Default 127.0.0.1. */
  readonly host?: string;
  /** Default 8080; 0 picks a free port. */
  readonly port?: number;
  /** Default ./data. */
  readonly dataDir?: string;
  /** Agent token; default MORPHNET_AGENT_TOKEN, else the data dir's token file (created on first start). */
  readonly agentToken?: string;
  /**
   * Admin token for the API and UI (≥ 16 characters, not the agent token); default
   * MORPHNET_ADMIN_TOKEN; null: none, whatever the environment. Required when `host` is not
   * loopback (startServer throws MORPH_ERR_CONFIG otherwise).
   */
  readonly adminToken?: string | null;
  /**
   * The address clients use when a proxy stands in front (`https://morphnet.example.org`): the
   * origin of pairing links, and, when https, the session cookie is always `Secure`. Default
   * MORPHNET_PUBLIC_URL; null: none, whatever the environment (links then follow the request's
   * Host, and X-Forwarded-Proto/-Host from a proxy on this machine).
   */
  readonly publicUrl?: string | null;
  /** Lifetime of a new pairing code, ms. Default 15 min. */
  readonly pairingTtlMs?: number;
  /** The clock pairing codes expire by, ms since the epoch. Default Date.now (tests pass a fake one). */
  readonly pairingClock?: () => number;
  /** Wrong-token limiting per client address for the API/login and for agent hellos (each its own count). */
  readonly authLimits?: FailureLimitOptions;
  /** Caps on what clients can make the server hold (defaults in docs/security.md). */
  readonly limits?: {
    readonly maxOpenJobsPerDevice?: number;
    readonly maxJobItems?: number;
    readonly maxAgentConnections?: number;
    /** WebSocket connections from one address that have not said a valid hello yet. Default 20. */
    readonly maxPendingAgentsPerAddress?: number;
  };
  /** Start the built-in local agent. Default true. */
  readonly localAgent?: boolean;
  /** Runtimes the local agent serves (default: all it can). */
  readonly localAgentRuntimes?: readonly string[];
  /** Lease and hub tuning (tests shorten them). */
  readonly leaseItems?: number;
  readonly leaseSlackMs?: number;
  readonly pingMs?: number;
  /** Search queue tuning (concurrency, host device resolver) and the SSE heartbeat, ms. */
  readonly searches?: Pick<SearchServiceOptions, 'concurrency' | 'stepEventMs' | 'hostDeviceId' | 'torch'> & { readonly heartbeatMs?: number };
  readonly log?: (line: string) => void;
}

export interface RunningServer {
  readonly url: string;
  readonly wsUrl: string;
  readonly port: number;
  readonly host: string;
  readonly dataDir: string;
  readonly agentToken: string;
  /** The admin token, or null when the API is open (loopback only). */
  readonly adminToken: string | null;
  /** Where the admin token came from; null when there is none. */
  readonly adminTokenSource: 'option' | 'env' | null;
  /** The public origin (`https://host`), or null when none is set. */
  readonly publicUrl: string | null;
  readonly pairings: Pairings;
  /** Where the token came from: the environment/option, or the data dir's file (created now or before). */
  readonly tokenSource: 'option' | 'env' | 'file-created' | 'file';
  readonly fleet: Fleet;
  readonly hub: Hub;
  readonly app: Express;
  readonly localAgent: LocalAgent | null;
  /** Items that were leased when the server last stopped and went back to the queue. */
  readonly recoveredItems: number;
  readonly searches: SearchService;
  /** Searches that were running when the server last stopped, now `interrupted`. */
  readonly interruptedSearches: readonly string[];
  /** `running`; `closing` from the first `close()` call until the shutdown ends; then `closed`. */
  readonly state: LifecycleState;
  /** Shuts down gracefully (see `startServer`). A second call returns the first's promise: nothing runs twice. */
  close(): Promise<void>;
}

async function agentToken(dataDir: string, given: string | undefined): Promise<{ token: string; source: RunningServer['tokenSource'] }> {
  if (given !== undefined) return { token: given, source: 'option' };
  const env = process.env.MORPHNET_AGENT_TOKEN;
  if (env !== undefined && env !== '') return { token: env, source: 'env' };
  const path = join(dataDir, TOKEN_FILE);
  try {
    const token = (await readFile(path, 'utf8')).trim();
    if (token.length >= 16) return { token, source: 'file' };
  } catch {
    // created below
  }
  const token = randomBytes(24).toString('base64url');
  await writeFile(path, `${token}\n`, { mode: 0o600 });
  await chmod(path, 0o600);
  return { token, source: 'file-created' };
}

/**
 * The admin token from the option or MORPHNET_ADMIN_TOKEN, checked against the listen address.
 * @throws MorphError MORPH_ERR_CONFIG for a non-loopback host without one, or a short one.
 */
function adminTokenFor(host: string, given: string | null | undefined): { token: string | null; source: RunningServer['adminTokenSource'] } {
  let token: string | null = null;
  let source: RunningServer['adminTokenSource'] = null;
  if (typeof given === 'string') {
    token = given;
    source = 'option';
  } else if (given === undefined) {
    const env = process.env.MORPHNET_ADMIN_TOKEN;
    if (env !== undefined && env.trim() !== '') {
      token = env.trim();
      source = 'env';
    }
  }
  const howTo =
    'set one with MORPHNET_ADMIN_TOKEN=<secret> (e.g. export MORPHNET_ADMIN_TOKEN="$(openssl rand -base64 32)") or --admin-token-file FILE (a file holding the secret, mode 600)';
  if (token === null && !isLoopbackHost(host)) {
    throw new MorphError(
      'MORPH_ERR_CONFIG',
      `--host ${host} makes the API and UI reachable from the network, so they need an admin token and none is set; ${howTo}, or keep the default --host 127.0.0.1 (docs/security.md)`,
      { host },
    );
  }
  if (token !== null && token.length < MIN_ADMIN_TOKEN_LENGTH) {
    throw new MorphError('MORPH_ERR_CONFIG', `the admin token is ${token.length} characters long; it must have at least ${MIN_ADMIN_TOKEN_LENGTH}: ${howTo}`);
  }
  return { token, source };
}

export async function startServer(options: ServerOptions = {}): Promise<RunningServer> {
  const host = options.host ?? '127.0.0.1';
  const port = options.port ?? 8080;
  const log = options.log ?? ((line: string) => console.log(line));
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `--port must be an integer from 0 to 65535, got ${port}`);
  // Before touching the data directory: an unsafe configuration starts nothing.
  const admin = adminTokenFor(host, options.adminToken);
  if (admin.token !== null) refusePlaceholderSecret(admin.token, 'admin token', 'MORPHNET_ADMIN_TOKEN (or --admin-token-file)');
  const publicUrl = publicOrigin(options.publicUrl === undefined ? process.env.MORPHNET_PUBLIC_URL : options.publicUrl, options.publicUrl === undefined ? 'MORPHNET_PUBLIC_URL' : '--public-url');
  const dataDir = resolve(options.dataDir ?? 'data');
  try {
    await mkdir(dataDir, { recursive: true });
  } catch (err) {
    throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `cannot create the data directory ${dataDir}: ${(err as Error).message}; give a writable --data-dir`);
  }
  const { token, source } = await agentToken(dataDir, options.agentToken);
  if (token.length < 8) throw new MorphError('MORPH_ERR_BAD_ARGUMENT', 'the agent token must be at least 8 characters; set MORPHNET_AGENT_TOKEN to a longer secret');
  refusePlaceholderSecret(token, 'agent token', 'MORPHNET_AGENT_TOKEN');
  // Every device (and every phone that opens a ?token= link) holds the agent token: it must not open the API too.
  if (admin.token !== null && sameSecret(admin.token, token)) {
    throw new MorphError('MORPH_ERR_CONFIG', 'the admin token and the agent token are the same secret; agents hold theirs on every device, so give the admin token (MORPHNET_ADMIN_TOKEN or --admin-token-file) a different value');
  }

  // Refuses when another live server uses the data directory, or one in another container or on
  // another host refreshed its lock within the last minute; a lock left by a killed one is taken over.
  const lock = await acquireDataLock(dataDir, 'morphnet serve', {
    onLost: (now) => log(`warning: the data directory lock ${lock.path} was ${now ? `taken over by ${describeLock(now)}` : 'removed'} while this server runs; two servers on one data directory corrupt it, stop one`),
  });
  if (lock.replaced) log(`data directory lock of ${describeLock(lock.replaced.info)} taken over (${lock.replaced.reason})`);
  const db = await Db.open(join(dataDir, DB_FILE), MIGRATIONS).catch(async (err: unknown) => {
    await lock.release();
    throw err;
  });
  const tables = new TableReader(db);
  const fleet: Fleet = new Fleet(db, {
    maxOpenJobsPerDevice: options.limits?.maxOpenJobsPerDevice,
    maxJobItems: options.limits?.maxJobItems,
    leaseItems: options.leaseItems,
    leaseSlackMs: options.leaseSlackMs,
    onJobFinished: (jobId) => {
      refineAfter(fleet, tables, jobId)
        .then((job) => job && log(`job ${jobId}: interpolation is poor on some tables; refinement job ${job.id} measures ${job.progress.total} more point(s)`))
        .catch((err: unknown) => log(`refining after job ${jobId} failed: ${err instanceof Error ? err.message : String(err)}`));
    },
  });
  const recoveredItems = await fleet.recover();
  const searches = new SearchService(db, { dataDir, fleet, tables, log, ...options.searches });
  const pairings = new Pairings({ ttlMs: options.pairingTtlMs, now: options.pairingClock });
  const hub = new Hub({
    fleet,
    token,
    serverVersion: SERVER_VERSION,
    pingMs: options.pingMs,
    adminToken: admin.token !== null,
    pairings,
    limiter: new FailureLimiter({ maxFailures: 20, ...options.authLimits }),
    maxConnections: options.limits?.maxAgentConnections,
    maxPendingPerAddress: options.limits?.maxPendingAgentsPerAddress,
    log,
  });
  const auth = new AdminAuth({ token: admin.token, log, secureCookies: publicUrl?.startsWith('https:') === true, limiter: new FailureLimiter({ maxFailures: 10, ...options.authLimits }) });

  const app = express();
  app.disable('x-powered-by');
  // First: nothing below runs for a request without the admin token (or from a rebinding page).
  app.use(auth.guard());
  app.use(auth.router());
  // Graceful shutdown: once `close()` has begun, reads still answer but no new work is taken.
  const life = new Lifecycle();
  app.use((req, res, next) => {
    if (life.running || req.method === 'GET' || req.method === 'HEAD') return next();
    res.set('connection', 'close').status(503).json({ error: { code: 'MORPH_ERR_UNAVAILABLE', message: 'the server is shutting down and takes no new work; retry once it is back' } });
  });
  // Requests arrive only after listen, when `url` is set.
  app.use('/api', pairingRouter({ pairings, publicOrigin: publicUrl, fallbackOrigin: () => url }, log));
  app.use('/api', searchRouter({ searches, models: new ModelStore(db), fleet, tables, heartbeatMs: options.searches?.heartbeatMs }, log));
  app.use('/api', fleetRouter({ fleet, tables, hub, version: SERVER_VERSION }, log));
  app.use(agentPageRouter({ log }));
  app.use(uiRouter({ agentToken: token, listenHost: host, version: SERVER_VERSION, log }));
  // Last: a 404 for any other path, and one error handler for whatever no router answered (a
  // path that is not valid percent-encoding, say): JSON under /api, short text elsewhere, never
  // express's HTML page with a stack trace.
  app.use(notFound);
  app.use(appErrorHandler(log));

  const server: Server = createServer(app);
  hub.attach(server);
  await new Promise<void>((resolveListen, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        new MorphError(
          'MORPH_ERR_BAD_ARGUMENT',
          err.code === 'EADDRINUSE' ? `port ${port} on ${host} is already in use; pick another with --port` : `cannot listen on ${host}:${port}: ${err.message}`,
        ),
      ),
    );
    server.listen(port, host, () => resolveListen());
  }).catch(async (err) => {
    await hub.close();
    await db.close();
    await lock.release();
    throw err;
  });
  const actualPort = (server.address() as AddressInfo).port;
  const shownHost = host.includes(':') ? `[${host}]` : host;
  const url = `http://${shownHost}:${actualPort}`;
  const wsUrl = `ws://${shownHost}:${actualPort}${AGENTS_PATH}`;
  await lock.update({ url });
  const interruptedSearches = await searches.start();

  let localAgent: LocalAgent | null = null;
  if (options.localAgent ?? true) {
    localAgent = new LocalAgent({ serverUrl: `ws://127.0.0.1:${actualPort}${AGENTS_PATH}`, token, runtimes: options.localAgentRuntimes, log });
    localAgent.start();
  }

  const close = (): Promise<void> =>
    life.close(async () => {
      // Every step runs even when one before it failed: the database and the lock are always
      // released (else the next start finds the directory locked). The first failure is thrown.
      const failures: unknown[] = [];
      const step = async (fn: () => unknown): Promise<void> => {
        try {
          await fn();
        } catch (err) {
          failures.push(err);
        }
      };
      // Stop taking work (the state is `closing` now): no new connections, 503 for writes on open ones.
      const stoppedListening = new Promise<void>((r) => server.close(() => r()));
      // Running searches become `interrupted` (resumable); their pending writes finish.
      await step(() => searches.close());
      await step(() => localAgent?.stop());
      // Leases go back to the queue; results that arrive meanwhile are still stored (once).
      await step(() => fleet.close());
      await step(() => hub.close());
      server.closeAllConnections();
      // A failed step may leave a WebSocket open, which would hold `server.close` forever.
      await (failures.length === 0 ? stoppedListening : Promise.race([stoppedListening, new Promise((r) => setTimeout(r, 2000).unref())]));
      // Waits for the writes in flight, checkpoints the WAL.
      await step(() => db.close());
      await step(() => lock.release());
      if (failures.length > 0) throw failures[0];
    });

  return {
    url,
    wsUrl,
    port: actualPort,
    host,
    dataDir,
    agentToken: token,
    adminToken: admin.token,
    adminTokenSource: admin.source,
    publicUrl,
    pairings,
    tokenSource: source,
    fleet,
    hub,
    app,
    localAgent,
    recoveredItems,
    searches,
    interruptedSearches,
    get state() {
      return life.state;
    },
    close,
  };
}
