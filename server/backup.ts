/**
 * Online backup and restore of the server's SQLite database (`morphnet backup`, `morphnet restore`).
 *
 * A backup uses SQLite's online backup API (node-sqlite3 `Database#backup`) from its own
 * connection, so it runs while the server writes: all pages are copied in one step, under one
 * read transaction, which in WAL mode blocks no writer and sees one committed state (no torn
 * rows). The copy is switched to the rollback journal (one self-contained file), checked with
 * `PRAGMA integrity_check`, and only then renamed to the name asked for.
 *
 * A restore first copies the file into the data directory and checks that copy (integrity, schema
 * version no newer than this code, the tables a server needs), takes the data directory's lock so
 * that no server can start meanwhile, refuses when a server holds it, moves the current database
 * (with its WAL) aside as `morphnet.db.before-restore-<time>`, and renames the copy into place.
 * The next `morphnet serve` migrates it if it is older.
 *
 * Only the database is backed up; search artifacts (`DATA_DIR/searches/`) and the agent token
 * are plain files that file-level tools copy.
 */
import { copyFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import sqlite3 from 'sqlite3';
import { MorphError } from '../src/errors.ts';
import { acquireDataLock } from './data-lock.ts';
import { MIGRATIONS } from './schema.ts';

export const DB_FILE = 'morphnet.db';

/** Tables a restored database must have (the server's own, any schema version ≥ 1). */
const REQUIRED_TABLES = ['devices', 'jobs', 'job_items', 'points', 'models'] as const;
/** Tables counted in reports; those missing from an older schema count as null. */
const COUNTED_TABLES = ['devices', 'models', 'jobs', 'job_items', 'points', 'networks', 'searches'] as const;

export interface DbFacts {
  readonly file: string;
  readonly bytes: number;
  readonly schemaVersion: number;
  readonly integrity: 'ok';
  readonly journalMode: string;
  readonly rows: Readonly<Record<(typeof COUNTED_TABLES)[number], number | null>>;
}

export interface BackupResult extends DbFacts {
  readonly source: string;
  readonly pages: number;
  readonly ms: number;
}

export interface RestoreResult extends DbFacts {
  readonly from: string;
  readonly dataDir: string;
  /** Where the database that was replaced went, null when there was none. */
  readonly previous: string | null;
  readonly ms: number;
}

interface RawBackup {
  step(pages: number, cb: (err: (Error & { code?: string }) | null, done?: boolean) => void): void;
  finish(cb?: (err: Error | null) => void): void;
  readonly completed: boolean;
  readonly failed: boolean;
  readonly pageCount: number;
}

function open(path: string, mode: number): Promise<sqlite3.Database> {
  return new Promise((resolveOpen, reject) => {
    const db = new sqlite3.Database(path, mode, (err) => (err ? reject(err) : resolveOpen(db)));
  });
}

function close(db: sqlite3.Database): Promise<void> {
  return new Promise((r, reject) => db.close((err) => (err ? reject(err) : r())));
}

function all<T>(db: sqlite3.Database, sql: string): Promise<T[]> {
  return new Promise((r, reject) => db.all(sql, (err, rows) => (err ? reject(err) : r(rows as T[]))));
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Checks an open database: integrity, schema version and tables; returns its facts.
 * @throws MorphError MORPH_ERR_BACKUP naming what is wrong.
 */
async function inspect(db: sqlite3.Database, file: string, what: string): Promise<Omit<DbFacts, 'bytes'>> {
  let integrity: { integrity_check: string }[];
  try {
    integrity = await all<{ integrity_check: string }>(db, 'PRAGMA integrity_check');
  } catch (err) {
    throw new MorphError('MORPH_ERR_BACKUP', `${what} ${file} is not a readable SQLite database: ${(err as Error).message}`, { file });
  }
  if (integrity.length !== 1 || integrity[0].integrity_check !== 'ok') {
    throw new MorphError('MORPH_ERR_BACKUP', `${what} ${file} fails PRAGMA integrity_check: ${integrity.slice(0, 3).map((r) => r.integrity_check).join('; ')}`, { file });
  }
  const version = (await all<{ user_version: number }>(db, 'PRAGMA user_version'))[0]?.user_version ?? 0;
  if (version > MIGRATIONS.length) {
    throw new MorphError('MORPH_ERR_BACKUP', `${what} ${file} has schema version ${version}, newer than this MorphNet Edge (${MIGRATIONS.length}); upgrade morphnet first`, { file, schemaVersion: version });
  }
  const tables = new Set((await all<{ name: string }>(db, "SELECT name FROM sqlite_master WHERE type = 'table'")).map((r) => r.name));
  const missing = REQUIRED_TABLES.filter((t) => !tables.has(t));
  if (version < 1 || missing.length > 0) {
    throw new MorphError('MORPH_ERR_BACKUP', `${what} ${file} is not a MorphNet Edge database (schema version ${version}${missing.length > 0 ? `, no table ${missing.join(', ')}` : ''})`, { file, schemaVersion: version });
  }
  const rows = {} as Record<(typeof COUNTED_TABLES)[number], number | null>;
  for (const t of COUNTED_TABLES) rows[t] = tables.has(t) ? ((await all<{ n: number }>(db, `SELECT COUNT(*) AS n FROM ${t}`))[0]?.n ?? 0) : null;
  const journalMode = (await all<{ journal_mode: string }>(db, 'PRAGMA journal_mode'))[0]?.journal_mode ?? 'unknown';
  return { file, schemaVersion: version, integrity: 'ok', journalMode, rows };
}

export interface BackupOptions {
  /** Replace `out` if it exists. Default false. */
  readonly force?: boolean;
  /** ms to keep retrying while the source is busy (e.g. a checkpoint). Default 30 000. */
  readonly busyTimeoutMs?: number;
}

/**
 * Copies `DATA_DIR/morphnet.db` to `out` while the server may be running.
 * @throws MorphError MORPH_ERR_NOT_FOUND (no database), MORPH_ERR_OUTPUT_EXISTS (out exists, no
 *   force), MORPH_ERR_BACKUP (the copy failed or fails its check).
 */
export async function backupDatabase(dataDir: string, out: string, options: BackupOptions = {}): Promise<BackupResult> {
  const started = performance.now();
  const source = join(resolve(dataDir), DB_FILE);
  const target = resolve(out);
  if (!(await exists(source))) throw new MorphError('MORPH_ERR_NOT_FOUND', `no database at ${source}; give the --data-dir the server runs with`, { file: source });
  if (target === source) throw new MorphError('MORPH_ERR_BAD_ARGUMENT', '--out must not be the live database itself');
  if (!options.force && (await exists(target))) throw new MorphError('MORPH_ERR_OUTPUT_EXISTS', `${target} exists; pick another --out or pass --force to replace it`, { file: target });
  if (!(await exists(dirname(target)))) throw new MorphError('MORPH_ERR_NOT_FOUND', `the directory of --out (${dirname(target)}) does not exist`, { file: target });
  const tmp = join(dirname(target), `.${basename(target)}.${process.pid}.partial`);
  await rm(tmp, { force: true });
  // Read-write without create: a WAL database needs its -shm, which a read-only connection may not create.
  let src: sqlite3.Database;
  try {
    src = await open(source, sqlite3.OPEN_READWRITE);
  } catch (err) {
    throw new MorphError('MORPH_ERR_BACKUP', `cannot open ${source}: ${(err as Error).message}`, { file: source });
  }
  let pages = 0;
  try {
    src.configure('busyTimeout', 5000);
    const backup = (src as unknown as { backup(file: string, cb: (err: Error | null) => void): RawBackup }).backup(tmp, () => undefined);
    const deadline = Date.now() + (options.busyTimeoutMs ?? 30_000);
    for (;;) {
      // -1: every page in one step, so the copy is one snapshot even while the server writes.
      const err = await new Promise<(Error & { code?: string }) | null>((r) => backup.step(-1, (e) => r(e)));
      if (backup.completed) break;
      if (backup.failed || !err || !/BUSY|LOCKED/.test(err.code ?? err.message) || Date.now() > deadline) {
        throw new MorphError('MORPH_ERR_BACKUP', `the backup of ${source} failed: ${err?.message ?? 'unknown error'}`, { file: source });
      }
      await sleep(100);
    }
    pages = backup.pageCount;
    await new Promise<void>((r) => backup.finish(() => r()));
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  } finally {
    await close(src).catch(() => undefined);
  }
  try {
    const copy = await open(tmp, sqlite3.OPEN_READWRITE);
    let facts: Omit<DbFacts, 'bytes'>;
    try {
      // One self-contained file: the copy keeps the live database's WAL flag otherwise.
      await all(copy, 'PRAGMA journal_mode = DELETE');
      facts = await inspect(copy, target, 'the backup');
    } finally {
      await close(copy);
    }
    await rename(tmp, target);
    return { ...facts, file: target, bytes: (await stat(target)).size, source, pages, ms: Math.round(performance.now() - started) };
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

export interface RestoreOptions {
  /**
   * Take over a lock written on another host or container even though it was refreshed within
   * the last minute (the server there no longer runs). Default false.
   */
  readonly force?: boolean;
}

/**
 * Replaces `DATA_DIR/morphnet.db` with the backup `file` (see the file comment).
 * @throws MorphError MORPH_ERR_NOT_FOUND (no file), MORPH_ERR_BACKUP (the file fails its check;
 *   nothing is changed), MORPH_ERR_DATA_DIR_IN_USE (a server holds the data directory).
 */
export async function restoreDatabase(dataDir: string, file: string, options: RestoreOptions = {}): Promise<RestoreResult> {
  const started = performance.now();
  const dir = resolve(dataDir);
  const from = resolve(file);
  if (!(await exists(from))) throw new MorphError('MORPH_ERR_NOT_FOUND', `no backup file ${from}`, { file: from });
  if (!(await exists(dir))) throw new MorphError('MORPH_ERR_NOT_FOUND', `the data directory ${dir} does not exist; create it first`, { file: dir });
  const live = join(dir, DB_FILE);
  if (from === live) throw new MorphError('MORPH_ERR_BAD_ARGUMENT', 'the backup file must not be the live database itself');
  // The lock first: no server may start while the database is swapped.
  const lock = await acquireDataLock(dir, 'morphnet restore', { takeOverOtherHost: options.force, sameProcess: false, forceHint: 'or pass --force to take it over now' });
  const staged = join(dir, `.${DB_FILE}.restoring`);
  try {
    await rm(staged, { force: true });
    await rm(`${staged}-wal`, { force: true });
    await rm(`${staged}-shm`, { force: true });
    await copyFile(from, staged);
    // A plain copy of a live WAL database may come with its -wal; a `morphnet backup` never does.
    if (await exists(`${from}-wal`)) await copyFile(`${from}-wal`, `${staged}-wal`);
    let facts: Omit<DbFacts, 'bytes'>;
    let db: sqlite3.Database;
    try {
      db = await open(staged, sqlite3.OPEN_READWRITE);
    } catch (err) {
      throw new MorphError('MORPH_ERR_BACKUP', `${from} cannot be opened as an SQLite database: ${(err as Error).message}`, { file: from });
    }
    try {
      facts = await inspect(db, from, 'the backup');
      await all(db, 'PRAGMA journal_mode = DELETE');
    } finally {
      await close(db).catch(() => undefined);
    }
    let previous: string | null = null;
    if (await exists(live)) {
      previous = join(dir, `${DB_FILE}.before-restore-${new Date().toISOString().replace(/[:.]/g, '-')}`);
      await rename(live, previous);
      if (await exists(`${live}-wal`)) await rename(`${live}-wal`, `${previous}-wal`);
    }
    await rm(`${live}-shm`, { force: true });
    await rm(`${live}-wal`, { force: true });
    await rename(staged, live);
    return { ...facts, file: live, bytes: (await stat(live)).size, from, dataDir: dir, previous, ms: Math.round(performance.now() - started) };
  } finally {
    await rm(staged, { force: true }).catch(() => undefined);
    await rm(`${staged}-wal`, { force: true }).catch(() => undefined);
    await rm(`${staged}-shm`, { force: true }).catch(() => undefined);
    await lock.release();
  }
}
