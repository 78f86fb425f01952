/**
 * Child processes for fault and deploy tests: `morphnet serve` and `morphnet agent` run as real
 * processes on 127.0.0.1 (so they can be killed with SIGKILL), a free port to restart a server
 * on, and read-only looks into a data directory's database after a crash.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readdir, readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import sqlite3 from 'sqlite3';

export const BIN = new URL('../../cli/bin.js', import.meta.url).pathname;
export const ROOT = new URL('../../', import.meta.url).pathname;

export interface Child {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Every stdout and stderr line so far. */
  readonly lines: string[];
  /** Resolves with the exit code and signal. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface ServeChild extends Child {
  readonly url: string;
  readonly wsUrl: string;
  readonly port: number;
  /** The `--json` listening line. */
  readonly facts: { url: string; agents: string; dataDir: string; recoveredItems: number; localAgent: boolean };
}

/** A port that was free a moment ago (for restarting a server where its agents look for it). */
export async function freePort(): Promise<number> {
  const s = createServer();
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** Spawns `node cli/bin.js ...args`, collecting its output lines. */
export function spawnCli(args: readonly string[], env: Record<string, string> = {}): Child {
  const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  createInterface({ input: child.stdout! }).on('line', (l) => lines.push(l));
  createInterface({ input: child.stderr! }).on('line', (l) => lines.push(l));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.once('exit', (code, signal) => r({ code, signal })));
  return { child, pid: child.pid as number, lines, exited };
}

/** Runs a CLI command to its end (killed after `timeoutMs`). */
export async function runCli(args: readonly string[], env: Record<string, string> = {}, timeoutMs = 600_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(timer);
  return { code, stdout, stderr };
}

/**
 * Starts `morphnet serve --json --port PORT --data-dir DIR ...extra` with the agent token in the
 * environment and resolves once it prints its listening line.
 */
export async function startServeChild(options: { dataDir: string; token: string; port?: number; extra?: readonly string[]; env?: Record<string, string>; timeoutMs?: number }): Promise<ServeChild> {
  const args = ['serve', '--json', '--port', String(options.port ?? 0), '--data-dir', options.dataDir, ...(options.extra ?? [])];
  const c = spawnCli(args, { MORPHNET_AGENT_TOKEN: options.token, ...options.env });
  const deadline = Date.now() + (options.timeoutMs ?? 600_000);
  let exit: { code: number | null } | null = null;
  void c.exited.then((e) => (exit = e));
  for (;;) {
    const line = c.lines.find((l) => l.startsWith('{"event":"listening"'));
    if (line) {
      const facts = JSON.parse(line) as ServeChild['facts'];
      const port = Number(new URL(facts.url).port);
      return { ...c, url: facts.url, wsUrl: facts.agents, port, facts };
    }
    if (exit) throw new Error(`morphnet serve exited (${JSON.stringify(exit)}) before listening:\n${c.lines.join('\n')}`);
    if (Date.now() > deadline) {
      c.child.kill('SIGKILL');
      throw new Error(`morphnet serve did not listen within ${options.timeoutMs ?? 600_000} ms:\n${c.lines.join('\n')}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Starts a real Node agent (`morphnet agent --json`) for `wsUrl`. */
export function startAgentChild(wsUrl: string, options: { token: string; name: string; deviceKey: string; runtimes?: readonly string[] }): Child {
  const args = ['agent', '--json', '--server', wsUrl, '--name', options.name, '--device-key', options.deviceKey, ...(options.runtimes ?? ['tfjs-wasm']).flatMap((r) => ['--runtime', r])];
  return spawnCli(args, { MORPHNET_AGENT_TOKEN: options.token });
}

/** The agent's `--json` events so far (lines that are not JSON are skipped). */
export function agentEvents(c: Child): { type: string; [k: string]: unknown }[] {
  const out: { type: string; [k: string]: unknown }[] = [];
  for (const l of c.lines) {
    if (!l.startsWith('{')) continue;
    try {
      out.push(JSON.parse(l) as { type: string });
    } catch {
      // a partial line
    }
  }
  return out;
}

/** Sends `signal` and waits for the exit (SIGKILL after `timeoutMs`). */
export async function stopChild(c: Child, signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 30_000): Promise<{ code: number | null; signal: NodeJS.Signals | null; timedOut: boolean }> {
  if (c.child.exitCode !== null || c.child.signalCode !== null) return { ...(await c.exited), timedOut: false };
  c.child.kill(signal);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    c.child.kill('SIGKILL');
  }, timeoutMs);
  const e = await c.exited;
  clearTimeout(timer);
  return { ...e, timedOut };
}

/** SIGKILLs a child that still runs (for `after` hooks). */
export function killIfRunning(c: Child | null | undefined): void {
  if (c && c.child.exitCode === null && c.child.signalCode === null) c.child.kill('SIGKILL');
}

/** Polls `probe` until it returns a truthy value; `timeoutMs` only bounds the wait. */
export async function until<T>(what: string, probe: () => Promise<T | undefined | null | false> | T | undefined | null | false, timeoutMs = 300_000, everyMs = 100): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export async function api(base: string, method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(`${base}${path}`, { method, headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let json: unknown = null;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: res.status, json };
}

/** Runs read-only queries on a data directory's database (no server may be writing it). */
export async function queryDb<T>(dbPath: string, fn: (q: <R>(sql: string, params?: unknown[]) => Promise<R[]>) => Promise<T>): Promise<T> {
  const db = await new Promise<sqlite3.Database>((r, reject) => {
    const d = new sqlite3.Database(dbPath, sqlite3.OPEN_READONLY, (err) => (err ? reject(err) : r(d)));
  });
  try {
    return await fn(<R>(sql: string, params: unknown[] = []) => new Promise<R[]>((r, reject) => db.all(sql, params, (err, rows) => (err ? reject(err) : r(rows as R[])))));
  } finally {
    await new Promise((r) => db.close(r));
  }
}

/** The pids whose parent is `pid` (Linux /proc). */
export async function childPids(pid: number): Promise<number[]> {
  const out: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = await readFile(join('/proc', name, 'stat'), 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** Whether `pid` runs (a zombie, exited but not reaped by its new parent, does not). */
export async function pidRunning(pid: number): Promise<boolean> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0] !== 'Z';
  } catch {
    return false;
  }
}
