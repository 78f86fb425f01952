/**
 * The data directory's lock file (`DATA_DIR/server.lock`): which process uses the directory, so
 * that a second server, or a `morphnet restore`, does not replace the database under a running
 * one. SQLite's own locks cannot say this: an idle server in WAL mode holds no lock a second
 * process could test for.
 *
 * The file is JSON: pid, hostname, the kernel's boot id, the pid namespace and the process's
 * start time (Linux `/proc`), a random nonce, and what holds it. It is written whole (a temporary
 * file, fsynced, renamed into place), and every change of owner happens while holding a short
 * guard file (`server.lock.acquiring`, created with O_EXCL), so two processes starting together
 * cannot both win.
 *
 * A lock is *stale* when its process died (kill -9, power loss): it is unreadable (empty or torn,
 * or names no positive pid), its pid is gone or belongs to a process started at another time, or
 * the machine has rebooted since. A lock written on another host, or in another container on this
 * one (another pid namespace), cannot be checked that way; its holder refreshes the file's mtime
 * every `refreshMs` (10 s), and such a lock counts as stale only once it has not been refreshed
 * for `staleMs` (60 s). Hosts sharing a data directory need clocks that agree to within that.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, readlinkSync } from 'node:fs';
import { open, readFile, rename, rm, stat, utimes } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { MorphError } from '../src/errors.ts';

export const LOCK_FILE = 'server.lock';
/** Held for the few ms in which a lock is judged and written. */
export const LOCK_GUARD_FILE = `${LOCK_FILE}.acquiring`;
/** How often a holder refreshes its lock file's mtime, ms. */
export const LOCK_REFRESH_MS = 10_000;
/** A lock that cannot be checked by pid counts as stale once its mtime is this old, ms. */
export const LOCK_STALE_MS = 60_000;
/** A guard file older than this was left by a process that died while acquiring, ms. */
const GUARD_STALE_MS = 30_000;
/** How long to wait for another process's guard before giving up, ms. */
const GUARD_WAIT_MS = 5_000;

export interface LockInfo {
  readonly pid: number;
  readonly hostname: string;
  /** /proc/sys/kernel/random/boot_id, null where there is no /proc. */
  readonly bootId: string | null;
  /** The pid namespace (`pid:[4026531836]`), null where there is no /proc. Containers differ. */
  readonly pidNs: string | null;
  /** Field 22 of /proc/PID/stat (clock ticks after boot), null where there is no /proc. */
  readonly startTicks: number | null;
  /** What holds it: `serve`, `restore`. */
  readonly holder: string;
  readonly startedAt: string;
  /** Random, to tell two locks of one process apart. */
  readonly nonce: string;
  /** The server's address once it listens. */
  readonly url?: string;
}

/** A lock file as read: its contents (null when unreadable) and when its holder last refreshed it. */
export interface LockFile {
  readonly info: LockInfo | null;
  /** The file's mtime, ms since the epoch. */
  readonly refreshedAt: number;
}

/**
 * `free`: no lock file. `stale`: its process is gone. `held`: a live process on this host.
 * `other-host`: written on another host or in another container, refreshed lately, not checkable.
 */
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

function pidNamespace(): string | null {
  try {
    return readlinkSync('/proc/self/ns/pid');
  } catch {
    return null;
  }
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
  // process.kill(0, sig) signals our own process group and -N a group: only a real pid may be probed.
  if (!Number.isInteger(pid) || pid <= 0) return false;
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
  return {
    pid: process.pid,
    hostname: hostname(),
    bootId: bootId(),
    pidNs: pidNamespace(),
    startTicks: startTicks(process.pid),
    holder,
    startedAt: new Date().toISOString(),
    nonce: randomBytes(8).toString('hex'),
  };
}

function parseLock(text: string): LockInfo | null {
  let v: Partial<Record<keyof LockInfo, unknown>>;
  try {
    v = JSON.parse(text) as typeof v;
  } catch {
    return null; // empty (power loss before the data reached the disk) or torn
  }
  if (typeof v !== 'object' || v === null) return null;
  if (typeof v.pid !== 'number' || !Number.isInteger(v.pid) || v.pid <= 0 || typeof v.hostname !== 'string' || v.hostname === '') return null;
  const str = (x: unknown): string | null => (typeof x === 'string' ? x : null);
  return {
    pid: v.pid,
    hostname: v.hostname,
    bootId: str(v.bootId),
    pidNs: str(v.pidNs),
    startTicks: typeof v.startTicks === 'number' ? v.startTicks : null,
    holder: str(v.holder) ?? 'unknown',
    startedAt: str(v.startedAt) ?? '',
    nonce: str(v.nonce) ?? '',
    ...(typeof v.url === 'string' ? { url: v.url } : {}),
  };
}

/** The lock file, or null when there is none. Unreadable contents give `info: null` (stale). */
export async function readLock(dataDir: string): Promise<LockFile | null> {
  const path = join(dataDir, LOCK_FILE);
  try {
    const [text, st] = await Promise.all([readFile(path, 'utf8'), stat(path)]);
    return { info: parseLock(text), refreshedAt: st.mtimeMs };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

export interface LockStateOptions {
  /** Now, ms since the epoch. Default Date.now(). */
  readonly now?: number;
  /** Default LOCK_STALE_MS. */
  readonly staleMs?: number;
}

/** Whether a lock's process still runs, and why not (see the file comment). */
export function judgeLock(lock: LockFile | null, options: LockStateOptions = {}): { state: LockState; reason: string } {
  if (lock === null) return { state: 'free', reason: 'no lock file' };
  const info = lock.info;
  if (info === null) return { state: 'stale', reason: 'the lock file is unreadable (empty or torn, e.g. after a power loss)' };
  const sameHost = info.hostname === hostname();
  const boot = bootId();
  if (sameHost && boot !== null && info.bootId !== null && boot !== info.bootId) return { state: 'stale', reason: 'the machine has restarted since' };
  const ns = pidNamespace();
  const otherNs = info.pidNs !== null && ns !== null && info.pidNs !== ns;
  if (!sameHost || otherNs) {
    const ageMs = (options.now ?? Date.now()) - lock.refreshedAt;
    const where = sameHost ? 'another container on this host' : `host ${info.hostname}`;
    if (ageMs > (options.staleMs ?? LOCK_STALE_MS)) return { state: 'stale', reason: `written in ${where} and not refreshed for ${Math.round(ageMs / 1000)} s` };
    return { state: 'other-host', reason: `written in ${where}` };
  }
  if (!pidAlive(info.pid)) return { state: 'stale', reason: `process ${info.pid} is gone` };
  if (info.startTicks !== null) {
    const now = startTicks(info.pid);
    if (now !== null && now !== info.startTicks) return { state: 'stale', reason: `process ${info.pid} is gone (that pid now belongs to another process)` };
  }
  return { state: 'held', reason: `process ${info.pid} runs` };
}

/** The state alone of {@link judgeLock}. */
export function lockState(lock: LockFile | null, options: LockStateOptions = {}): LockState {
  return judgeLock(lock, options).state;
}

export function describeLock(info: LockInfo | null): string {
  if (info === null) return 'an unreadable lock file';
  return `${info.holder} (pid ${info.pid} on ${info.hostname}${info.startedAt ? `, since ${info.startedAt}` : ''}${info.url ? `, ${info.url}` : ''})`;
}

/** A lock this process holds on a data directory. `release` is safe to call twice. */
export interface DataLock {
  readonly path: string;
  /** What the lock file held before (a stale lock, or one taken over on request), if anything. */
  readonly replaced: { readonly info: LockInfo | null; readonly state: LockState; readonly reason: string } | null;
  /** Adds facts (the server's URL) to the lock file. */
  update(extra: Partial<Pick<LockInfo, 'url'>>): Promise<void>;
  release(): Promise<void>;
}

export interface AcquireOptions {
  /**
   * Take over a lock that cannot be checked from here (another host or container) even though it
   * was refreshed lately: `restore --force`. Default false: refuse.
   */
  readonly takeOverOtherHost?: boolean;
  /**
   * Take over a live lock of this very process (default true: a server started twice in one
   * process, as tests do). A lock with this pid but another start time is a previous process
   * that had the same pid (a container's pid 1) and is always stale.
   */
  readonly sameProcess?: boolean;
  /** What the refusal of an other-host lock offers besides waiting and deleting (e.g. `pass --force`). */
  readonly forceHint?: string;
  /** Default LOCK_REFRESH_MS. */
  readonly refreshMs?: number;
  /** Default LOCK_STALE_MS. */
  readonly staleMs?: number;
  /** Called once if a refresh finds the lock file gone or someone else's (deleted by hand, taken over). */
  readonly onLost?: (now: LockInfo | null) => void;
}

/** Writes `text` to `path` whole: a temporary file, fsynced, renamed over it. */
async function writeAtomically(path: string, text: string): Promise<void> {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    const fh = await open(tmp, 'wx', 0o644);
    try {
      await fh.writeFile(text);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw err;
  }
}

/**
 * Creates the guard file with O_EXCL, waiting while another process holds it. A guard older than
 * GUARD_STALE_MS is left over from a process that died while acquiring and is removed.
 */
async function takeGuard(dataDir: string): Promise<() => Promise<void>> {
  const path = join(dataDir, LOCK_GUARD_FILE);
  const deadline = Date.now() + GUARD_WAIT_MS;
  for (;;) {
    try {
      await (await open(path, 'wx', 0o644)).close();
      return () => rm(path, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const st = await stat(path).catch(() => null);
    if (st !== null && Date.now() - st.mtimeMs > GUARD_STALE_MS) {
      await rm(path, { force: true });
      continue;
    }
    if (Date.now() > deadline) {
      throw new MorphError(
        'MORPH_ERR_DATA_DIR_IN_USE',
        `another process has been taking the lock of the data directory ${dataDir} for ${Math.round(GUARD_WAIT_MS / 1000)} s (${path} exists); retry, or delete that file if no morphnet process runs`,
      );
    }
    await new Promise((r) => setTimeout(r, 10 + Math.random() * 40));
  }
}

function sameLock(a: LockInfo | null, b: LockInfo): boolean {
  return a !== null && a.pid === b.pid && a.hostname === b.hostname && a.startedAt === b.startedAt && a.nonce === b.nonce;
}

/**
 * Takes the data directory's lock for `holder`, and keeps refreshing it until `release`.
 * @throws MorphError MORPH_ERR_DATA_DIR_IN_USE when another live process on this host holds it
 *   (a lock of this very process is taken over unless `sameProcess` is false), when it was
 *   written on another host or container and refreshed within `staleMs` (unless
 *   `takeOverOtherHost`), or when another process keeps the guard file for seconds.
 */
export async function acquireDataLock(dataDir: string, holder: string, options: AcquireOptions = {}): Promise<DataLock> {
  const path = join(dataDir, LOCK_FILE);
  const staleMs = options.staleMs ?? LOCK_STALE_MS;
  const releaseGuard = await takeGuard(dataDir);
  let replaced: DataLock['replaced'] = null;
  const mine = selfLockInfo(holder);
  try {
    const existing = await readLock(dataDir);
    const { state, reason } = judgeLock(existing, { staleMs });
    const info = existing?.info ?? null;
    const ours = state === 'held' && info !== null && info.pid === process.pid;
    if (state === 'held' && ours && options.sameProcess === false) {
      throw new MorphError('MORPH_ERR_DATA_DIR_IN_USE', `the data directory ${dataDir} is in use by ${describeLock(info)}, in this very process; close that server first`, { lock: info });
    }
    if (state === 'held' && !ours) {
      throw new MorphError('MORPH_ERR_DATA_DIR_IN_USE', `the data directory ${dataDir} is in use by ${describeLock(info)}; stop it first, or use another --data-dir`, { lock: info });
    }
    if (state === 'other-host' && !options.takeOverOtherHost) {
      const ageS = Math.max(0, Math.round((Date.now() - existing!.refreshedAt) / 1000));
      throw new MorphError(
        'MORPH_ERR_DATA_DIR_IN_USE',
        `the data directory ${dataDir} is locked by ${describeLock(info)}, ${reason}, which cannot be checked from ${hostname()}; its holder refreshed it ${ageS} s ago. ` +
          `If that server runs, stop it first: two servers on one data directory corrupt it. If it no longer runs, the lock counts as stale ${Math.round(staleMs / 1000)} s after its last refresh: start again then` +
          `${options.forceHint ? `, ${options.forceHint}` : ''}, or delete ${path}`,
        { lock: info, refreshedAt: new Date(existing!.refreshedAt).toISOString() },
      );
    }
    if (existing !== null && !ours) replaced = { info, state, reason: state === 'other-host' ? `${reason}, taken over on request` : reason };
    await writeAtomically(path, `${JSON.stringify(mine)}\n`);
  } finally {
    await releaseGuard();
  }

  let current: LockInfo = mine;
  let released = false;
  let refreshing = false;
  const isMine = async (): Promise<{ mine: boolean; now: LockInfo | null }> => {
    const now = (await readLock(dataDir).catch(() => null))?.info ?? null;
    return { mine: sameLock(now, mine), now };
  };
  const timer = setInterval(() => {
    if (refreshing || released) return;
    refreshing = true;
    void (async () => {
      const check = await isMine();
      if (released) return;
      if (!check.mine) {
        clearInterval(timer);
        options.onLost?.(check.now);
        return;
      }
      const t = new Date();
      await utimes(path, t, t);
    })()
      .catch(() => undefined) // an I/O hiccup: the next tick tries again
      .finally(() => (refreshing = false));
  }, options.refreshMs ?? LOCK_REFRESH_MS);
  timer.unref();

  return {
    path,
    replaced,
    async update(extra) {
      if (released) return;
      current = { ...current, ...extra };
      await writeAtomically(path, `${JSON.stringify(current)}\n`);
    },
    async release() {
      if (released) return;
      released = true;
      clearInterval(timer);
      // Only our own lock: a later holder may have replaced it meanwhile.
      if ((await isMine()).mine) await rm(path, { force: true });
    },
  };
}
