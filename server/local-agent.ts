/**
 * The built-in local agent: the server's own host as a device. It runs as a child process
 * (`morphnet agent`), not inside the server, so that timings are not disturbed by the server's
 * own event loop, and so that it is the very same agent a user would run by hand. It is
 * restarted with a growing delay when it exits, until the server stops.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { hostname } from 'node:os';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../cli/bin.js', import.meta.url));

export interface LocalAgentOptions {
  readonly serverUrl: string;
  readonly token: string;
  readonly runtimes?: readonly string[];
  readonly log: (line: string) => void;
}

export class LocalAgent {
  readonly #o: LocalAgentOptions;
  #child: ChildProcess | null = null;
  #stopped = false;
  #restarts = 0;
  #timer: NodeJS.Timeout | null = null;

  constructor(options: LocalAgentOptions) {
    this.#o = options;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  start(): void {
    if (this.#stopped) return;
    const args = [BIN, 'agent', '--server', this.#o.serverUrl, '--name', `${hostname()} (local)`];
    for (const r of this.#o.runtimes ?? []) args.push('--runtime', r);
    // The token goes through the environment, not argv, so `ps` does not show it.
    // The parent pid lets the agent stop by itself if this server is killed (SIGKILL runs no cleanup).
    const env: NodeJS.ProcessEnv = { ...process.env, MORPHNET_AGENT_TOKEN: this.#o.token, MORPHNET_AGENT_PARENT_PID: String(process.pid) };
    // The agent needs no admin token: keep it out of the child's environment.
    delete env.MORPHNET_ADMIN_TOKEN;
    const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.#child = child;
    const prefix = (chunk: Buffer): void => {
      for (const line of chunk.toString().split('\n')) if (line.trim()) this.#o.log(`[local agent] ${line}`);
    };
    child.stdout?.on('data', prefix);
    child.stderr?.on('data', prefix);
    child.on('exit', (code, signal) => {
      if (this.#child === child) this.#child = null;
      if (this.#stopped) return;
      const delay = Math.min(30_000, 1000 * 2 ** Math.min(this.#restarts++, 5));
      this.#o.log(`[local agent] exited (${signal ?? `code ${code}`}); restarting in ${Math.round(delay / 1000)} s`);
      this.#timer = setTimeout(() => this.start(), delay);
      this.#timer.unref();
    });
  }

  /** Stops the agent (SIGTERM, then SIGKILL after 5 s) and does not restart it. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    const child = this.#child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      const kill = setTimeout(() => child.kill('SIGKILL'), 5000);
      child.once('exit', () => {
        clearTimeout(kill);
        resolve();
      });
      child.kill('SIGTERM');
    });
  }
}
