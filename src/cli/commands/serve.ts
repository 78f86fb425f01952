/**
 * `morphnet serve`: the daemon. Runs until SIGINT/SIGTERM, then shuts down gracefully (leases
 * released, agents told, database checkpointed).
 */
import { parseFlags, numberFlag, type Command } from '../args.ts';

const USAGE = `Usage: morphnet serve [--host 127.0.0.1] [--port 8080] [--data-dir ./data] [--no-local-agent]

Starts the MorphNet Edge server: the REST API under /api (docs/api.md), the WebSocket hub for
device agents at /agents, and the SQLite store of devices, latency tables and jobs in the data
directory. A built-in local agent registers this host as a device and times ops on it.

Agents authenticate with the agent token: MORPHNET_AGENT_TOKEN if set, else the token in
DATA_DIR/agent-token, created and printed on first start.

Options:
  --host HOST            interface to listen on (default 127.0.0.1)
  --port N               TCP port (default 8080; 0 picks a free one)
  --data-dir DIR         where the database and the token live (default ./data)
  --no-local-agent       do not start the built-in agent for this host
  --local-runtime R      runtime the local agent serves (repeatable; default all it can)
  --json                 print the start-up facts as one JSON line
  -h, --help             this text`;

export const serveCommand: Command = {
  name: 'serve',
  summary: 'run the server: REST API, agent hub, latency tables (SQLite)',
  usage: USAGE,
  async run(argv, io) {
    const { values } = parseFlags('serve', argv, {
      host: { type: 'string' },
      port: { type: 'string' },
      'data-dir': { type: 'string' },
      'no-local-agent': { type: 'boolean' },
      'local-runtime': { type: 'string', multiple: true },
      json: { type: 'boolean' },
    });
    const port = numberFlag('serve', 'port', values.port, (n) => Number.isInteger(n) && n >= 0 && n <= 65535, 'a port number from 0 to 65535') ?? 8080;
    const { startServer } = await import('../../../server/app.ts');
    const log = values.json ? (line: string) => io.err(line) : (line: string) => io.out(line);
    const server = await startServer({
      host: typeof values.host === 'string' ? values.host : undefined,
      port,
      dataDir: typeof values['data-dir'] === 'string' ? values['data-dir'] : undefined,
      localAgent: !values['no-local-agent'],
      localAgentRuntimes: (values['local-runtime'] as unknown as string[] | undefined) ?? undefined,
      log,
    });
    const facts = {
      url: server.url,
      agents: server.wsUrl,
      dataDir: server.dataDir,
      tokenSource: server.tokenSource,
      localAgent: server.localAgent !== null,
      recoveredItems: server.recoveredItems,
    };
    if (values.json) {
      io.out(JSON.stringify({ event: 'listening', ...facts, agentToken: server.tokenSource === 'file-created' ? server.agentToken : undefined }));
    } else {
      io.out(`MorphNet Edge listening on ${server.url} (data in ${server.dataDir})`);
      io.out(`  agents connect to ${server.wsUrl}`);
      if (server.tokenSource === 'file-created') io.out(`  agent token (new, saved in ${server.dataDir}/agent-token): ${server.agentToken}`);
      else io.out(`  agent token: from ${server.tokenSource === 'env' ? 'MORPHNET_AGENT_TOKEN' : `${server.dataDir}/agent-token`}`);
      io.out(`  run an agent: npx morphnet agent --server ${server.wsUrl} --token <token>`);
      if (server.recoveredItems > 0) io.out(`  ${server.recoveredItems} item(s) leased before the last stop went back to the queue`);
      io.out(server.localAgent ? '  built-in local agent: starting' : '  built-in local agent: off (--no-local-agent)');
    }
    await new Promise<void>((resolve) => {
      const stop = (signal: string): void => {
        process.off('SIGINT', onInt);
        process.off('SIGTERM', onTerm);
        log(`${signal}: shutting down`);
        void server.close().then(resolve, (err: unknown) => {
          io.err(`shutdown: ${err instanceof Error ? err.message : String(err)}`);
          resolve();
        });
      };
      const onInt = (): void => stop('SIGINT');
      const onTerm = (): void => stop('SIGTERM');
      process.on('SIGINT', onInt);
      process.on('SIGTERM', onTerm);
    });
    return 0;
  },
};
