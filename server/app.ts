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
import { apiRouter } from './api.ts';
import { Db } from './db.ts';
import { Fleet } from './fleet.ts';
import { AGENTS_PATH, Hub } from './hub.ts';
import { LocalAgent } from './local-agent.ts';
import { refineAfter } from './refine.ts';
import { MIGRATIONS } from './schema.ts';
import { ModelStore } from './model-store.ts';
import { searchRouter } from './search-api.ts';
import { SearchService, type SearchServiceOptions } from './searches.ts';
import { TableReader } from './tables.ts';

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
  /** Start the built-in local agent. Default true. */
  readonly localAgent?: boolean;
  /** Runtimes the local agent serves (default: all it can). */
  readonly localAgentRuntimes?: readonly string[];
  /** Lease and hub tuning (tests shorten them). */
  readonly leaseItems?: number;
  readonly leaseSlackMs?: number;
  readonly pingMs?: number;
  /** Search queue tuning (concurrency, host device resolver) and the SSE heartbeat, ms. */
  readonly searches?: Pick<SearchServiceOptions, 'concurrency' | 'stepEventMs' | 'hostDeviceId'> & { readonly heartbeatMs?: number };
  readonly log?: (line: string) => void;
}

export interface RunningServer {
  readonly url: string;
  readonly wsUrl: string;
  readonly port: number;
  readonly host: string;
  readonly dataDir: string;
  readonly agentToken: string;
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

export async function startServer(options: ServerOptions = {}): Promise<RunningServer> {
  const host = options.host ?? '127.0.0.1';
  const port = options.port ?? 8080;
  const log = options.log ?? ((line: string) => console.log(line));
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `--port must be an integer from 0 to 65535, got ${port}`);
  const dataDir = resolve(options.dataDir ?? 'data');
  try {
    await mkdir(dataDir, { recursive: true });
  } catch (err) {
    throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `cannot create the data directory ${dataDir}: ${(err as Error).message}; give a writable --data-dir`);
  }
  const { token, source } = await agentToken(dataDir, options.agentToken);
  if (token.length < 8) throw new MorphError('MORPH_ERR_BAD_ARGUMENT', 'the agent token must be at least 8 characters; set MORPHNET_AGENT_TOKEN to a longer secret');

  const db = await Db.open(join(dataDir, DB_FILE), MIGRATIONS);
  const tables = new TableReader(db);
  const fleet: Fleet = new Fleet(db, {
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
  const hub = new Hub({ fleet, token, serverVersion: SERVER_VERSION, pingMs: options.pingMs, log });

  const app = express();
  app.disable('x-powered-by');
  app.use('/api', searchRouter({ searches, models: new ModelStore(db), fleet, tables, heartbeatMs: options.searches?.heartbeatMs }, log));
  app.use('/api', apiRouter({ fleet, tables, hub, version: SERVER_VERSION }, log));
  app.use(agentPageRouter({ log }));
  app.get('/', (_req, res) => {
    res.type('text/plain').send(`MorphNet Edge ${SERVER_VERSION}\nREST API under /api (see docs/api.md); agents connect to ${AGENTS_PATH}; browsers become agents at /agent?token=AGENT_TOKEN.\n`);
  });

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
    throw err;
  });
  const actualPort = (server.address() as AddressInfo).port;
  const shownHost = host.includes(':') ? `[${host}]` : host;
  const url = `http://${shownHost}:${actualPort}`;
  const wsUrl = `ws://${shownHost}:${actualPort}${AGENTS_PATH}`;
  const interruptedSearches = await searches.start();

  let localAgent: LocalAgent | null = null;
  if (options.localAgent ?? true) {
    localAgent = new LocalAgent({ serverUrl: `ws://127.0.0.1:${actualPort}${AGENTS_PATH}`, token, runtimes: options.localAgentRuntimes, log });
    localAgent.start();
  }

  let closing: Promise<void> | null = null;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      await searches.close();
      await localAgent?.stop();
      await fleet.close();
      await hub.close();
      await new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      });
      await db.close();
    })());

  return { url, wsUrl, port: actualPort, host, dataDir, agentToken: token, tokenSource: source, fleet, hub, app, localAgent, recoveredItems, searches, interruptedSearches, close };
}
