/**
 * SQLite through `sqlite3`, promised, with numbered schema migrations, WAL and a busy timeout.
 *
 * One connection serves the whole daemon. Every write goes through `write()`, which runs its
 * function inside one `BEGIN IMMEDIATE … COMMIT` and holds a lock so that no other write can
 * slip into the open transaction while it awaits: a multi-row change lands whole or not at all.
 * Reads need no lock (they may see the writer's uncommitted rows on this connection, which only
 * ever commits or rolls back as a whole).
 */
import sqlite3 from 'sqlite3';
import { MorphError } from '../src/errors.ts';

export type SqlValue = string | number | null | bigint | Buffer;

export interface RunResult {
  readonly changes: number;
  readonly lastID: number;
}

/** Statements a transaction body may run. */
export interface Tx {
  run(sql: string, params?: readonly SqlValue[]): Promise<RunResult>;
  get<T>(sql: string, params?: readonly SqlValue[]): Promise<T | undefined>;
  all<T>(sql: string, params?: readonly SqlValue[]): Promise<T[]>;
}

/** Migrations in order; migration i brings the schema to version i + 1. Never edit a shipped one. */
export type Migration = string;

export interface OpenOptions {
  /** ms to wait for a lock held by another connection (a backup, a second process). Default 5000. */
  readonly busyTimeoutMs?: number;
}

export class Db implements Tx {
  readonly path: string;
  readonly #db: sqlite3.Database;
  #lock: Promise<void> = Promise.resolve();
  #closed = false;

  private constructor(path: string, db: sqlite3.Database) {
    this.path = path;
    this.#db = db;
  }

  /**
   * Opens (creating) the database, turns on WAL, foreign keys and the busy timeout, and applies
   * the migrations it has not seen yet, each in its own transaction.
   * @throws MorphError MORPH_ERR_BAD_ARGUMENT when the file cannot be opened or is newer than this code.
   */
  static async open(path: string, migrations: readonly Migration[], options: OpenOptions = {}): Promise<Db> {
    const raw = await new Promise<sqlite3.Database>((resolve, reject) => {
      const d = new sqlite3.Database(path, (err) => (err ? reject(err) : resolve(d)));
    }).catch((err: Error) => {
      throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `cannot open the database ${path}: ${err.message}; check that --data-dir is writable`);
    });
    raw.configure('busyTimeout', options.busyTimeoutMs ?? 5000);
    const db = new Db(path, raw);
    await db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;');
    await db.#migrate(migrations);
    return db;
  }

  async #migrate(migrations: readonly Migration[]): Promise<void> {
    const row = await this.get<{ user_version: number }>('PRAGMA user_version');
    const current = row?.user_version ?? 0;
    if (current > migrations.length) {
      throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `the database ${this.path} has schema version ${current}, newer than this MorphNet Edge (${migrations.length}); upgrade morphnet or use another --data-dir`);
    }
    for (let v = current; v < migrations.length; v++) {
      await this.write(async (tx) => {
        await this.exec(migrations[v]);
        await tx.run(`PRAGMA user_version = ${v + 1}`);
      });
    }
  }

  exec(sql: string): Promise<void> {
    return new Promise((resolve, reject) => this.#db.exec(sql, (err) => (err ? reject(err) : resolve())));
  }

  run(sql: string, params: readonly SqlValue[] = []): Promise<RunResult> {
    return new Promise((resolve, reject) =>
      this.#db.run(sql, params as SqlValue[], function (this: sqlite3.RunResult, err: Error | null) {
        if (err) reject(err);
        else resolve({ changes: this.changes, lastID: this.lastID });
      }),
    );
  }

  get<T>(sql: string, params: readonly SqlValue[] = []): Promise<T | undefined> {
    return new Promise((resolve, reject) => this.#db.get(sql, params as SqlValue[], (err, row) => (err ? reject(err) : resolve(row as T | undefined))));
  }

  all<T>(sql: string, params: readonly SqlValue[] = []): Promise<T[]> {
    return new Promise((resolve, reject) => this.#db.all(sql, params as SqlValue[], (err, rows) => (err ? reject(err) : resolve(rows as T[]))));
  }

  /** Runs `body` in one transaction (serialized with every other write); rolls back if it throws. */
  write<T>(body: (tx: Tx) => Promise<T>): Promise<T> {
    const previous = this.#lock;
    let release!: () => void;
    this.#lock = new Promise((r) => (release = r));
    return previous.then(async () => {
      try {
        if (this.#closed) throw new MorphError('MORPH_ERR_INTERNAL', 'the database is closed');
        await this.exec('BEGIN IMMEDIATE');
        try {
          const result = await body(this);
          await this.exec('COMMIT');
          return result;
        } catch (err) {
          await this.exec('ROLLBACK').catch(() => undefined);
          throw err;
        }
      } finally {
        release();
      }
    });
  }

  /** Waits for pending writes, checkpoints the WAL and closes. Safe to call twice. */
  async close(): Promise<void> {
    if (this.#closed) return;
    await this.#lock;
    this.#closed = true;
    await this.exec('PRAGMA wal_checkpoint(TRUNCATE)').catch(() => undefined);
    await new Promise<void>((resolve, reject) => this.#db.close((err) => (err ? reject(err) : resolve())));
  }
}
