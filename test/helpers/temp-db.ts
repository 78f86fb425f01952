/**
 * A real SQLite database with the server's schema in a fresh temporary directory, for the store's
 * tests: `await using`-free, so each test file opens one in `before` and calls `dispose` in `after`.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Db } from '../../server/db.ts';
import { MIGRATIONS } from '../../server/schema.ts';

export interface TempDb {
  readonly db: Db;
  readonly dir: string;
  /** Closes the database and removes its directory. */
  dispose(): Promise<void>;
}

export async function openTempDb(prefix = 'morphnet-store-'): Promise<TempDb> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  const db = await Db.open(join(dir, 'morphnet.db'), MIGRATIONS);
  return {
    db,
    dir,
    async dispose() {
      await db.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Asserts that the statement is refused by a constraint of the schema (CHECK, NOT NULL, UNIQUE, FOREIGN KEY). */
export const CONSTRAINT = /SQLITE_CONSTRAINT/;
