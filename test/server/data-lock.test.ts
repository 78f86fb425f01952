/**
 * The data directory's lock (server/data-lock.ts): unreadable and dead locks are stale and taken
 * over; a live holder on this host, or a lock from another host or container refreshed within
 * `staleMs`, is refused with a message saying how to clear it; concurrent acquirers (in one
 * process and in separate processes) get exactly one winner; the holder refreshes the mtime and
 * its release leaves nothing behind.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, describe, it } from 'node:test';
import { startServer } from '../../server/app.ts';
import { acquireDataLock, judgeLock, LOCK_FILE, LOCK_GUARD_FILE, readLock, selfLockInfo, type DataLock, type LockInfo } from '../../server/data-lock.ts';
import { MorphError } from '../../src/errors.ts';

const LOCK_MODULE = new URL('../../server/data-lock.ts', import.meta.url).pathname;
const TOKEN = 'data-lock-agent-token-01';
const dirs: string[] = [];
const children: ChildProcess[] = [];

after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'morphnet-lock-'));
  dirs.push(d);
  return d;
}

async function writeLock(dir: string, info: Partial<LockInfo> | string, ageMs = 0): Promise<string> {
  const path = join(dir, LOCK_FILE);
  await writeFile(path, typeof info === 'string' ? info : `${JSON.stringify(info)}\n`);
  if (ageMs > 0) {
    const t = new Date(Date.now() - ageMs);
    await utimes(path, t, t);
  }
  return path;
}

/**
 * Asserts that the age in seconds `text` gives (the first group of `pattern`) is the lock's age
 * (from its mtime `refreshedAt`) at some moment between `before` and now, rounded as the code
 * rounds: what holds however long the check took on a busy machine.
 */
function assertAgeBetween(text: string, pattern: RegExp, refreshedAt: number, before: number): void {
  const m = pattern.exec(text);
  assert.ok(m, text);
  const said = Number(m[1]);
  const [youngest, oldest] = [before, Date.now()].map((t) => Math.round((t - refreshedAt) / 1000));
  assert.ok(said >= youngest && said <= oldest, `said ${said} s; the lock was ${youngest}–${oldest} s old meanwhile: ${text}`);
}

function inUse(pattern: RegExp): (err: unknown) => boolean {
  return (err: unknown) => {
    assert.ok(err instanceof MorphError, String(err));
    assert.equal(err.code, 'MORPH_ERR_DATA_DIR_IN_USE');
    assert.match(err.message, pattern);
    return true;
  };
}

/** Nothing but (optionally) the lock itself: no guard file, no temporary file. */
async function assertClean(dir: string, lock: boolean): Promise<void> {
  const names = (await readdir(dir)).filter((n) => n.startsWith(LOCK_FILE));
  assert.deepEqual(names, lock ? [LOCK_FILE] : []);
}

interface LockChild {
  readonly child: ChildProcess;
  /** `won` or the refusal's code, once the child has tried. */
  readonly outcome: Promise<string>;
}

/**
 * A separate node process that waits until `goAt` (ms since the epoch), acquires the lock, prints
 * `won` (and holds it until its stdin closes) or the error code, and exits.
 */
function lockChild(dir: string, goAt: number): LockChild {
  const script = `
    const { acquireDataLock } = await import(process.argv[1]);
    await new Promise((r) => setTimeout(r, Math.max(0, Number(process.argv[3]) - Date.now())));
    try {
      const lock = await acquireDataLock(process.argv[2], 'test-holder');
      console.log('won');
      process.stdin.resume();
      process.stdin.on('end', async () => { await lock.release(); process.exit(0); });
    } catch (err) {
      console.log(err.code ?? String(err));
      process.exit(0);
    }`;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, LOCK_MODULE, dir, String(goAt)], { stdio: ['pipe', 'pipe', 'inherit'] });
  children.push(child);
  const outcome = new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`the lock child exited (${code}) before saying anything`)));
  });
  return { child, outcome };
}

async function endChild(c: LockChild): Promise<void> {
  if (c.child.exitCode !== null) return;
  const exited = once(c.child, 'exit');
  c.child.stdin!.end();
  await exited;
}

describe('data directory lock', () => {
  it('takes over an empty or torn lock file (power loss before the write reached the disk)', async () => {
    for (const text of ['', '{"pid": 12', 'null', '{"pid": "12", "hostname": "x"}']) {
      const dir = await tempDir();
      await writeLock(dir, text);
      const lock = await acquireDataLock(dir, 'test');
      assert.equal(lock.replaced?.state, 'stale', JSON.stringify(text));
      assert.match(lock.replaced!.reason, /unreadable/);
      assert.equal((await readLock(dir))?.info?.pid, process.pid);
      await lock.release();
      await assertClean(dir, false);
    }
  });

  it('takes over a lock naming pid 0 or a negative pid (process.kill(0, 0) would probe our own process group)', async () => {
    for (const pid of [0, -1, -process.pid]) {
      const dir = await tempDir();
      await writeLock(dir, { ...selfLockInfo('ghost'), pid });
      assert.equal(judgeLock(await readLock(dir)).state, 'stale');
      const lock = await acquireDataLock(dir, 'test', { sameProcess: false });
      assert.equal(lock.replaced?.state, 'stale');
      await lock.release();
    }
  });

  it('starts a server on a data directory whose lock file is empty', { timeout: 60_000 }, async () => {
    const dir = await tempDir();
    await writeLock(dir, '');
    const lines: string[] = [];
    const server = await startServer({ port: 0, dataDir: dir, agentToken: TOKEN, localAgent: false, log: (l) => lines.push(l) });
    try {
      assert.equal((await readLock(dir))?.info?.holder, 'morphnet serve');
      assert.ok(lines.some((l) => /lock of an unreadable lock file taken over \(the lock file is unreadable/.test(l)), lines.join('\n'));
    } finally {
      await server.close();
    }
    await assertClean(dir, false);
  });

  it('lets exactly one of many concurrent acquirers in one process win, on a free and on a stale lock', async () => {
    for (const start of ['free', 'stale'] as const) {
      const dir = await tempDir();
      if (start === 'stale') await writeLock(dir, '');
      const results = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => acquireDataLock(dir, `contender ${i}`, { sameProcess: false })));
      const won = results.filter((r): r is PromiseFulfilledResult<DataLock> => r.status === 'fulfilled');
      assert.equal(won.length, 1, `${start}: ${results.map((r) => (r.status === 'fulfilled' ? 'won' : (r.reason as Error).message)).join('\n')}`);
      for (const r of results) if (r.status === 'rejected') assert.equal((r.reason as MorphError).code, 'MORPH_ERR_DATA_DIR_IN_USE');
      assert.match((await readLock(dir))?.info?.holder ?? '', /^contender \d$/, 'the file names a contender');
      await assertClean(dir, true);
      await won[0].value.release();
      await assertClean(dir, false);
    }
  });

  it('lets exactly one of several separate processes starting at once win, on a free and on a stale lock', { timeout: 60_000 }, async () => {
    for (const start of ['free', 'stale'] as const) {
      const dir = await tempDir();
      if (start === 'stale') await writeLock(dir, { ...selfLockInfo('dead'), pid: 0 });
      const goAt = Date.now() + 3000;
      const contenders = Array.from({ length: 4 }, () => lockChild(dir, goAt));
      const outcomes = await Promise.all(contenders.map((c) => c.outcome));
      assert.deepEqual(outcomes.filter((o) => o === 'won').length, 1, `${start}: ${outcomes.join(', ')}`);
      assert.deepEqual(outcomes.filter((o) => o !== 'won'), ['MORPH_ERR_DATA_DIR_IN_USE', 'MORPH_ERR_DATA_DIR_IN_USE', 'MORPH_ERR_DATA_DIR_IN_USE']);
      const winner = contenders[outcomes.indexOf('won')];
      assert.equal((await readLock(dir))?.info?.pid, winner.child.pid, 'the lock names the winning process');
      // While it holds the lock, this process is refused too.
      await assert.rejects(acquireDataLock(dir, 'late'), inUse(new RegExp(`in use by test-holder \\(pid ${winner.child.pid} on `)));
      for (const c of contenders) await endChild(c);
      await assertClean(dir, false);
    }
  });

  it('refuses a lock from another host that was refreshed lately, says how to clear it, and leaves it as it was', { timeout: 60_000 }, async () => {
    const dir = await tempDir();
    const path = await writeLock(dir, { ...selfLockInfo('morphnet serve'), hostname: 'other-container-1f2e3d', pid: 1 }, 5000);
    const refreshedAt = (await stat(path)).mtimeMs;
    const before = readFileSync(path, 'utf8');
    const message = /locked by morphnet serve \(pid 1 on other-container-1f2e3d.*written in host other-container-1f2e3d, which cannot be checked from .*refreshed it (\d+) s ago\. If that server runs, stop it first.*stale 60 s after its last refresh: start again then, or delete .*server\.lock$/s;
    const asked = Date.now();
    await assert.rejects(acquireDataLock(dir, 'test'), (err: unknown) => {
      inUse(message)(err);
      assertAgeBetween((err as Error).message, message, refreshedAt, asked);
      return true;
    });
    // The server itself no longer takes it over.
    await assert.rejects(startServer({ port: 0, dataDir: dir, agentToken: TOKEN, localAgent: false, log: () => undefined }), inUse(/other-container-1f2e3d/));
    assert.equal(readFileSync(path, 'utf8'), before);
    await assertClean(dir, true);
    // `restore --force` offers itself in the message, and takes it over on request.
    await assert.rejects(acquireDataLock(dir, 'restore', { forceHint: 'or pass --force to take it over now' }), inUse(/start again then, or pass --force to take it over now, or delete /));
    const forced = await acquireDataLock(dir, 'restore', { takeOverOtherHost: true });
    assert.equal(forced.replaced?.state, 'other-host');
    assert.match(forced.replaced!.reason, /taken over on request/);
    await forced.release();
  });

  it('takes over a lock from another host that has not been refreshed for staleMs', async () => {
    const dir = await tempDir();
    const path = await writeLock(dir, { ...selfLockInfo('morphnet serve'), hostname: 'gone-container', pid: 1 }, 2 * 60_000);
    const refreshedAt = (await stat(path)).mtimeMs;
    const asked = Date.now();
    const lock = await acquireDataLock(dir, 'test');
    assert.equal(lock.replaced?.state, 'stale');
    assertAgeBetween(lock.replaced!.reason, /written in host gone-container and not refreshed for (\d+) s/, refreshedAt, asked);
    await lock.release();
    // A shorter staleMs, as an option.
    await writeLock(dir, { ...selfLockInfo('morphnet serve'), hostname: 'gone-container', pid: 1 }, 3000);
    await assert.rejects(acquireDataLock(dir, 'test'), inUse(/cannot be checked/));
    const quick = await acquireDataLock(dir, 'test', { staleMs: 1000 });
    assert.equal(quick.replaced?.state, 'stale');
    await quick.release();
  });

  it('treats a lock from another pid namespace on this host (another container) like another host', async () => {
    const dir = await tempDir();
    const self = selfLockInfo('morphnet serve');
    if (self.pidNs === null) return; // no /proc: pid namespaces cannot be told apart
    // Our own pid, alive here: in another namespace that says nothing.
    await writeLock(dir, { ...self, pidNs: 'pid:[1]', startTicks: 1 }, 1000);
    await assert.rejects(acquireDataLock(dir, 'test'), inUse(/written in another container on this host, which cannot be checked/));
    await writeLock(dir, { ...self, pidNs: 'pid:[1]', startTicks: 1 }, 2 * 60_000);
    const lock = await acquireDataLock(dir, 'test');
    assert.match(lock.replaced!.reason, /another container on this host and not refreshed/);
    await lock.release();
  });

  it('takes over the lock of a process that is gone, or whose pid now belongs to another process', { timeout: 30_000 }, async () => {
    const dir = await tempDir();
    const dead = spawn(process.execPath, ['-e', '']);
    await once(dead, 'exit');
    await writeLock(dir, { ...selfLockInfo('morphnet serve'), pid: dead.pid! });
    const lock = await acquireDataLock(dir, 'test');
    assert.equal(lock.replaced?.state, 'stale');
    assert.equal(lock.replaced!.reason, `process ${dead.pid} is gone`);
    await lock.release();
    if (selfLockInfo('x').startTicks === null) return; // no /proc
    await writeLock(dir, { ...selfLockInfo('morphnet serve'), startTicks: 1 });
    const again = await acquireDataLock(dir, 'test', { sameProcess: false });
    assert.match(again.replaced!.reason, /that pid now belongs to another process/);
    await again.release();
  });

  it('refreshes the mtime while held, notices when the lock is taken away, and releases cleanly', async () => {
    const dir = await tempDir();
    const lost: (LockInfo | null)[] = [];
    const lock = await acquireDataLock(dir, 'test', { refreshMs: 40, onLost: (now) => lost.push(now) });
    const old = new Date(Date.now() - 3_600_000);
    await utimes(lock.path, old, old);
    await lock.update({ url: 'http://127.0.0.1:1' });
    await utimes(lock.path, old, old);
    // Waits for a refresh every 40 ms; the 30 s only bound the wait on a busy machine.
    for (const end = Date.now() + 30_000; (await stat(lock.path)).mtimeMs < Date.now() - 60_000 && Date.now() < end; ) await new Promise((r) => setTimeout(r, 20));
    assert.ok((await stat(lock.path)).mtimeMs > Date.now() - 60_000, 'the holder refreshed its lock');
    assert.equal((await readLock(dir))?.info?.url, 'http://127.0.0.1:1');
    await rm(lock.path);
    for (const end = Date.now() + 30_000; lost.length === 0 && Date.now() < end; ) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(lost, [null], 'onLost is called once, with nothing in its place');
    await lock.release();
    await lock.release();
    await assertClean(dir, false);
  });

  it('does not remove a lock that another holder wrote after it', async () => {
    const dir = await tempDir();
    const first = await acquireDataLock(dir, 'first');
    const second = await acquireDataLock(dir, 'second'); // this very process: taken over
    await first.release();
    assert.equal((await readLock(dir))?.info?.holder, 'second');
    await second.release();
    assert.equal(existsSync(join(dir, LOCK_FILE)), false);
    assert.equal(existsSync(join(dir, LOCK_GUARD_FILE)), false);
  });

  it('removes a guard file left by a process that died while acquiring, and waits for a live one', async () => {
    const dir = await tempDir();
    const guard = join(dir, LOCK_GUARD_FILE);
    await writeFile(guard, '');
    const old = new Date(Date.now() - 60_000);
    await utimes(guard, old, old);
    const lock = await acquireDataLock(dir, 'test');
    await lock.release();
    await assertClean(dir, false);
    // A fresh guard: the acquirer waits for it to go away.
    await writeFile(guard, '');
    setTimeout(() => void rm(guard), 300);
    const t0 = Date.now();
    const waited = await acquireDataLock(dir, 'test');
    assert.ok(Date.now() - t0 >= 250, 'it waited for the other acquirer');
    assert.equal((await readFile(waited.path, 'utf8')).includes('"holder":"test"'), true);
    await waited.release();
  });
});
