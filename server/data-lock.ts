/**
 * The data directory's lock file (`DATA_DIR/server.lock`): which process uses the directory, so
 * that a second server, or a `morphnet restore`, does not replace the database under a running
 * one. SQLite's own locks cannot say this: an idle server in WAL mode holds no lock a second
 * process could test for.
 *
 * The file is JSON: pid, hostname, the kernel's boot id and the process's start time (Linux
 * `/proc`), and what holds it. A lock left by a process that died (kill -9, power loss) is
 * *stale*: its pid is gone, or belongs to a process started at another time, or the machine has
 * rebooted since. A lock written on another host (a second container sharing a volume) cannot be
 * checked from here and is reported as such.
 */
import { readFileSync } from 'node:fs';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { MorphError } from '../src/errors.ts';

export const LOCK_FILE = 'server.lock';

export interface LockInfo {
  readonly pid: number;
  readonly hostname: string;
  /** /proc/sys/kernel/random/boot_id, null where there is no /proc. */
  readonly bootId: string | null;
  /** Field 22 of /proc/PID/stat (clock ticks after boot), null where there is no /proc. */
  readonly startTicks: number | null;
  /** What holds it: `serve`, `restore`. */
  readonly holder: string;
  readonly startedAt: string;
  /** The server's address once it listens. */
  readonly url?: string;
}

/** `free`: no lock file. `stale`: its process is gone. `held`: a live process on this host. `other-host`: written elsewhere, not checkable. */
export type LockState = 'free' | 'stale' | 'held' | 'other-host';

function readProc(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

function bootId(): string | null {
  return readProc('/proc/sys/kernel/random/boot_id')?.trim() ?? null;
}

/** The start time of a process in clock ticks after boot, or null when it cannot be read. */
function startTicks(pid: number): number | null {
  const stat = readProc(`/proc/${pid}/stat`);
  if (stat === null) return null;
  // The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(rest[19]);
  return Number.isFinite(ticks) ? ticks : null;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists but belongs to another user.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** This process, as a lock would describe it. */
export function selfLockInfo(holder: string): LockInfo {
  return { pid: process.pid, hostname: hostname(), bootId: bootId(), startTicks: startTicks(process.pid), holder, startedAt: new Date().toISOString() };
}

/** Whether the process a lock names still runs (see the file comment). */
export function lockState(info: LockInfo | null): LockState {
  if (info === null) return 'free';
  if (info.hostname !== hostname()) return 'other-host';
  const boot = bootId();
  if (boot !== null && info.bootId !== null && boot !== info.bootId) return 'stale';
  if (!pidAlive(info.pid)) return 'stale';
  if (info.startTicks !== null) {
    const now = startTicks(info.pid);
    if (now !== null && now !== info.startTicks) return 'stale';
  }
  return 'held';
}

/** The lock file's contents, or null when there is none (an unreadable file counts as stale). */
export async function readLock(dataDir: string): Promise<LockInfo | null> {
  let text: string;
  try {
    text = await readFile(join(dataDir, LOCK_FILE), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  try {
    const v = JSON.parse(text) as Partial<LockInfo>;
    if (typeof v.pid === 'number' && typeof v.hostname === 'string') {
      return { pid: v.pid, hostname: v.hostname, bootId: v.bootId ?? null, startTicks: v.startTicks ?? null, holder: String(v.holder ?? 'unknown'), startedAt: String(v.startedAt ?? ''), url: v.url };
    }
  } catch {
    // a torn write: treated as stale below
  }
  return { pid: 0, hostname: hostname(), bootId: null, startTicks: null, holder: 'unreadable lock file', startedAt: '' };
}

export function describeLock(info: LockInfo): string {
  return `${info.holder} (pid ${info.pid} on ${info.hostname}${info.startedAt ? `, since ${info.startedAt}` : ''}${info.url ? `, ${info.url}` : ''})`;
}

/** A lock this process holds on a data directory. `release` is safe to call twice. */
export interface DataLock {
  readonly path: string;
  /** What the lock file held before (a stale or other-host lock that was taken over), if anything. */
  readonly replaced: { readonly info: LockInfo; readonly state: LockState } | null;
  /** Adds facts (the server's URL) to the lock file. */
  update(extra: Partial<Pick<LockInfo, 'url'>>): Promise<void>;
  release(): Promise<void>;
}

export interface AcquireOptions {
  /** Take over a lock written on another host (default false: refuse). */
  readonly takeOverOtherHost?: boolean;
  /**
   * Take over a live lock of this very process (default true: a server started twice in one
   * process, as tests do). A lock with this pid but another start time is a previous process
   * that had the same pid (a container's pid 1) and is always stale.
   */
  readonly sameProcess?: boolean;
}

async function writeAtomically(path: string, text: string): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, text, { mode: 0o644 });
  await rename(tmp, path);
}

/**
 * Takes the data directory's lock for `holder`.
 * @throws MorphError MORPH_ERR_DATA_DIR_IN_USE when another live process on this host holds it
 *   (a lock of this very process is taken over), or when it was written on another host and
 *   `takeOverOtherHost` is not set.
 */
export async function acquireDataLock(dataDir: string, holder: string, options: AcquireOptions = {}): Promise<DataLock> {
  const path = join(dataDir, LOCK_FILE);
  const existing = await readLock(dataDir);
  const state = lockState(existing);
  const ours = existing !== null && existing.pid === process.pid;
  if (existing && state === 'held' && ours && options.sameProcess === false) {
    throw new MorphError('MORPH_ERR_DATA_DIR_IN_USE', `the data directory ${dataDir} is in use by ${describeLock(existing)}, in this very process; close that server first`, { lock: existing });
  }
  if (existing && !ours) {
    if (state === 'held') {
      throw new MorphError('MORPH_ERR_DATA_DIR_IN_USE', `the data directory ${dataDir} is in use by ${describeLock(existing)}; stop it first, or use another --data-dir`, { lock: existing });
    }
    if (state === 'other-host' && !options.takeOverOtherHost) {
      throw new MorphError(
        'MORPH_ERR_DATA_DIR_IN_USE',
        `the data directory ${dataDir} is locked by ${describeLock(existing)}, which cannot be checked from ${hostname()}; stop that server, or if it no longer runs, pass --force (or delete ${path})`,
        { lock: existing },
      );
    }
  }
  const mine = selfLockInfo(holder);
  let current: LockInfo = mine;
  await writeAtomically(path, `${JSON.stringify(mine)}\n`);
  let released = false;
  return {
    path,
    replaced: existing && !(ours && state === 'held') ? { info: existing, state } : null,
    async update(extra) {
      if (released) return;
      current = { ...current, ...extra };
      await writeAtomically(path, `${JSON.stringify(current)}\n`);
    },
    async release() {
      if (released) return;
      released = true;
      // Only our own lock: a later holder may have replaced it meanwhile.
      const now = await readLock(dataDir).catch(() => null);
      if (now && now.pid === mine.pid && now.startedAt === mine.startedAt) await rm(path, { force: true });
    },
  };
}
