/**
 * `morphnet backup` and `morphnet restore`: an online copy of the server's SQLite database, and
 * putting one back (server/backup.ts does the work; loaded only when these commands run).
 */
import { MorphError } from '../../src/errors.ts';
import { parseFlags, requireString, type Command } from '../args.ts';

const BACKUP_USAGE = `Usage: morphnet backup --data-dir DIR --out FILE [--force] [--json]

Copies the server's database (DIR/morphnet.db) to FILE with SQLite's online backup API. Safe
while "morphnet serve" runs on DIR: the copy is one consistent snapshot (every page copied under
one read transaction, which blocks no writer). The copy is a single self-contained file (rollback
journal, not WAL), checked with PRAGMA integrity_check before it is given the name FILE.

Only the database is copied: search artifacts (DIR/searches/) and the agent token (DIR/agent-token)
are plain files; copy them with your usual tools.

Options:
  --data-dir DIR   the server's data directory (default ./data, as for serve)
  --out FILE       where to write the backup (its directory must exist)
  --force          replace FILE if it exists
  --json           print the result as one JSON object
  -h, --help       this text`;

const RESTORE_USAGE = `Usage: morphnet restore --data-dir DIR FILE [--force] [--json]

Replaces the database in DIR with the backup FILE (from "morphnet backup"). The server must be
stopped: restore refuses while a server holds DIR (its lock file DIR/server.lock names the
process; a lock left by a server that was killed is ignored, and one written in another
container or on another host once it is 60 s old). FILE is checked first (PRAGMA
integrity_check, a schema version no newer than this morphnet, the server's tables); a file that
fails changes nothing. The database it replaces is kept beside it as
DIR/morphnet.db.before-restore-<time>. The next "morphnet serve" on DIR migrates an older schema.

Options:
  --data-dir DIR   the server's data directory (default ./data; created if missing)
  --force          take over a lock file written on another host or container at once,
                   without waiting for it to go stale (only when that server no longer runs);
                   a live server on this host is always refused
  --json           print the result as one JSON object
  -h, --help       this text`;

function rowsText(rows: Record<string, number | null>): string {
  return Object.entries(rows)
    .filter(([, n]) => n !== null)
    .map(([t, n]) => `${n} ${t}`)
    .join(', ');
}

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(2)} MiB`;
}

export const backupCommand: Command = {
  name: 'backup',
  summary: "copy the server's SQLite database while it runs (online backup)",
  usage: BACKUP_USAGE,
  async run(argv, io) {
    const { values, positionals } = parseFlags('backup', argv, {
      'data-dir': { type: 'string' },
      out: { type: 'string' },
      force: { type: 'boolean' },
      json: { type: 'boolean' },
    });
    if (positionals.length > 0) throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `morphnet backup: unexpected argument ${JSON.stringify(positionals[0])}; give the file with --out`);
    const out = requireString('backup', 'out', values.out, 'morphnet-backup.db');
    const dataDir = typeof values['data-dir'] === 'string' ? values['data-dir'] : 'data';
    const { backupDatabase } = await import('../../server/backup.ts');
    const r = await backupDatabase(dataDir, out, { force: values.force === true });
    if (values.json) io.out(JSON.stringify(r));
    else {
      io.out(`backed up ${r.source} to ${r.file}: ${mib(r.bytes)}, schema version ${r.schemaVersion}, integrity ok, in ${(r.ms / 1000).toFixed(1)} s`);
      io.out(`  ${rowsText(r.rows)}`);
    }
    return 0;
  },
};

export const restoreCommand: Command = {
  name: 'restore',
  summary: 'put a database backup back in place (the server must be stopped)',
  usage: RESTORE_USAGE,
  async run(argv, io) {
    const { values, positionals } = parseFlags('restore', argv, {
      'data-dir': { type: 'string' },
      force: { type: 'boolean' },
      json: { type: 'boolean' },
    });
    if (positionals.length !== 1) {
      throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `morphnet restore: give exactly one backup FILE${positionals.length > 1 ? `, got ${positionals.length}` : ''}; see "morphnet restore --help"`);
    }
    const dataDir = typeof values['data-dir'] === 'string' ? values['data-dir'] : 'data';
    const { mkdir } = await import('node:fs/promises');
    await mkdir(dataDir, { recursive: true });
    const { restoreDatabase } = await import('../../server/backup.ts');
    const r = await restoreDatabase(dataDir, positionals[0], { force: values.force === true });
    if (values.json) io.out(JSON.stringify(r));
    else {
      io.out(`restored ${r.from} into ${r.file}: ${mib(r.bytes)}, schema version ${r.schemaVersion}, integrity ok`);
      io.out(`  ${rowsText(r.rows)}`);
      io.out(r.previous ? `  the database it replaced is kept as ${r.previous}` : '  there was no database before');
    }
    return 0;
  },
};
