/**
 * `morphnet backup` and `morphnet restore` (child processes) against a server that is writing
 * (a profile job streaming results, a search): the backup is one consistent snapshot that passes
 * its integrity check; restore refuses a data directory in use, a corrupt file and a newer schema
 * (changing nothing), and a server started on the restored directory sees the same devices,
 * table points, jobs and searches.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import sqlite3 from 'sqlite3';
import { startServer, type RunningServer } from '../../server/app.ts';
import { LOCK_FILE } from '../../server/data-lock.ts';
import { FakeAgent } from '../helpers/fake-agent.ts';
import { api, killIfRunning, queryDb, runCli, startServeChild, stopChild, until, type ServeChild } from '../helpers/server-child.ts';
import { tinyTopology } from '../train/tiny-model.ts';

const TOKEN = 'backup-agent-token-0001';

async function sha(path: string): Promise<string> {
  return createHash('sha256').update(await readFile(path)).digest('hex');
}

function setUserVersion(path: string, version: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const db = new sqlite3.Database(path, (err) => {
      if (err) return reject(err);
      db.exec(`PRAGMA user_version = ${version}`, (e) => db.close(() => (e ? reject(e) : resolve())));
    });
  });
}

describe('backup and restore', () => {
  let root = '';
  let live: ServeChild | null = null;
  let restored: RunningServer | null = null;
  let agent: FakeAgent | null = null;
  after(async () => {
    agent?.close();
    killIfRunning(live);
    await restored?.close();
    if (root) await rm(root, { recursive: true, force: true });
  });

  it('backs up a server while it writes; restores into a fresh directory that a server then serves unchanged', { timeout: 1_800_000 }, async (t) => {
    root = await mkdtemp(join(tmpdir(), 'morphnet-backup-'));
    const dataDir = join(root, 'data');
    live = await startServeChild({ dataDir, token: TOKEN, extra: ['--no-local-agent'] });
    agent = await FakeAgent.connect({ url: live.wsUrl, token: TOKEN, deviceKey: 'backup-device-00001', runtimes: ['tfjs-wasm'], delayMs: 30 });
    const search = await api(live.url, 'POST', '/api/searches', {
      model: { format: 'layers-model', modelTopology: tinyTopology([12, 12, 1], 3) },
      data: { dataset: 'synthetic:h=12,w=12,c=1,classes=3,noise=0.2', trainLimit: 96, testLimit: 32 },
      cost: 'flops',
      target: { fraction: 0.5 },
      options: { shrinkEpochs: 1, finalEpochs: 1, batchSize: 32, divisor: 2, strength: 20, backend: 'wasm', seed: 1 },
    });
    assert.equal(search.status, 201, JSON.stringify(search.json));
    const profile = await api(live.url, 'POST', '/api/profile', { deviceId: agent.deviceId, runtime: 'tfjs-wasm', model: 'mobilenet', grid: { maxPerAxis: 3 }, refine: false });
    const jobId: string = profile.json.id;
    await until('results streaming', () => agent!.acks.length >= 20, 600_000, 50);

    // The backup, while results keep being stored.
    const backupFile = join(root, 'backup.db');
    const b = await runCli(['backup', '--data-dir', dataDir, '--out', backupFile, '--json']);
    assert.equal(b.code, 0, b.stderr);
    const made = JSON.parse(b.stdout);
    assert.equal(made.integrity, 'ok');
    assert.equal(made.journalMode, 'delete', 'a self-contained file');
    assert.equal(existsSync(`${backupFile}-wal`), false);
    const jobLater = (await api(live.url, 'GET', `/api/jobs/${jobId}`)).json;
    const snap = await queryDb(backupFile, async (q) => ({
      integrity: (await q<{ integrity_check: string }>('PRAGMA integrity_check'))[0].integrity_check,
      done: (await q<{ n: number }>("SELECT COUNT(*) AS n FROM job_items WHERE job_id = ? AND state = 'done'", [jobId]))[0].n,
      points: (await q<{ n: number }>('SELECT COUNT(*) AS n FROM points WHERE job_id = ?', [jobId]))[0].n,
      devices: (await q<{ id: string }>('SELECT id FROM devices ORDER BY id')).map((r) => r.id),
      searches: (await q<{ id: string }>('SELECT id FROM searches ORDER BY id')).map((r) => r.id),
    }));
    assert.equal(snap.integrity, 'ok');
    assert.ok(snap.done >= 20, `${snap.done} items in the backup`);
    assert.equal(snap.points, snap.done, 'no torn rows: a point for every stored item, none without');
    assert.deepEqual(snap.searches, [search.json.id]);
    assert.deepEqual(made.rows.points, snap.points);
    t.diagnostic(`backup of ${made.bytes} bytes in ${made.ms} ms: ${snap.done} items stored at that moment, ${jobLater.progress.done} a moment later`);

    // A live server's directory is refused, and left alone.
    const lockBefore = await readFile(join(dataDir, LOCK_FILE), 'utf8');
    const refused = await runCli(['restore', '--data-dir', dataDir, backupFile]);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /in use by morphnet serve \(pid \d+.*\[MORPH_ERR_DATA_DIR_IN_USE\]/);
    assert.equal(await readFile(join(dataDir, LOCK_FILE), 'utf8'), lockBefore);
    assert.equal((await api(live.url, 'GET', '/api/health')).status, 200);

    // --out exists: refused unless --force.
    const again = await runCli(['backup', '--data-dir', dataDir, '--out', backupFile]);
    assert.equal(again.code, 2);
    assert.match(again.stderr, /MORPH_ERR_OUTPUT_EXISTS/);
    const forced = join(root, 'backup2.db');
    await writeFile(forced, 'old');
    const f = await runCli(['backup', '--data-dir', dataDir, '--out', forced, '--force', '--json']);
    assert.equal(f.code, 0, f.stderr);
    assert.ok(JSON.parse(f.stdout).rows.points >= snap.points);

    // Restore into a fresh directory; a server there sees what the backup holds.
    const fresh = join(root, 'fresh');
    const r = await runCli(['restore', '--data-dir', fresh, backupFile, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const put = JSON.parse(r.stdout);
    assert.deepEqual(put.rows, made.rows);
    assert.equal(put.previous, null);
    assert.equal(existsSync(join(fresh, LOCK_FILE)), false, 'restore releases its lock');
    restored = await startServer({ port: 0, dataDir: fresh, agentToken: TOKEN, localAgent: false, log: () => undefined });
    const devices = (await api(restored.url, 'GET', '/api/devices')).json.devices.map((d: { id: string }) => d.id).sort();
    assert.deepEqual(devices, snap.devices);
    const tables = (await api(restored.url, 'GET', `/api/tables?deviceId=${agent.deviceId}&runtime=tfjs-wasm`)).json.tables;
    assert.equal(tables.reduce((n: number, tb: { points: unknown[] }) => n + tb.points.length, 0), snap.points);
    const job = (await api(restored.url, 'GET', `/api/jobs/${jobId}`)).json;
    assert.equal(job.progress.done, snap.done);
    assert.equal(job.progress.leased, 0, 'leases in the snapshot went back to the queue');
    const searches = (await api(restored.url, 'GET', '/api/searches')).json.searches.map((s: { id: string }) => s.id);
    assert.deepEqual(searches, snap.searches);
    await restored.close();
    restored = null;

    // Restoring over a database keeps the old one beside it.
    const over = await runCli(['restore', '--data-dir', fresh, forced, '--json']);
    assert.equal(over.code, 0, over.stderr);
    const previous = JSON.parse(over.stdout).previous as string;
    assert.match(previous, /morphnet\.db\.before-restore-/);
    assert.ok(existsSync(previous));

    // A corrupt file and a newer schema are refused; nothing changes.
    const liveDb = join(fresh, 'morphnet.db');
    const hash = await sha(liveDb);
    const listing = (await readdir(fresh)).sort();
    const corrupt = join(root, 'corrupt.db');
    await writeFile(corrupt, randomBytes(8192));
    const c = await runCli(['restore', '--data-dir', fresh, corrupt, '--json']);
    assert.equal(c.code, 2);
    assert.equal(JSON.parse(c.stdout).error.code, 'MORPH_ERR_BACKUP');
    const truncated = join(root, 'truncated.db');
    await writeFile(truncated, (await readFile(backupFile)).subarray(0, 4096 * 3));
    const tr = await runCli(['restore', '--data-dir', fresh, truncated]);
    assert.equal(tr.code, 2);
    assert.match(tr.stderr, /MORPH_ERR_BACKUP/);
    const newer = join(root, 'newer.db');
    await copyFile(backupFile, newer);
    await setUserVersion(newer, 99);
    const n = await runCli(['restore', '--data-dir', fresh, newer]);
    assert.equal(n.code, 2);
    assert.match(n.stderr, /schema version 99, newer than this MorphNet Edge.*\[MORPH_ERR_BACKUP\]/);
    assert.equal(await sha(liveDb), hash, 'the database was not touched');
    assert.deepEqual((await readdir(fresh)).sort(), listing, 'no file was added or removed');

    const stopped = await stopChild(live, 'SIGTERM');
    assert.equal(stopped.code, 0);
  });

  it('explains both commands with --help', async () => {
    const b = await runCli(['backup', '--help']);
    assert.equal(b.code, 0);
    assert.match(b.stdout, /--data-dir DIR[\s\S]*--out FILE[\s\S]*--force[\s\S]*--json/);
    const r = await runCli(['restore', '--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /Usage: morphnet restore --data-dir DIR FILE/);
    const missing = await runCli(['backup', '--data-dir', join(tmpdir(), 'no-such-morphnet-dir'), '--out', join(tmpdir(), 'x.db'), '--json']);
    assert.equal(missing.code, 2);
    assert.equal(JSON.parse(missing.stdout).error.code, 'MORPH_ERR_NOT_FOUND');
  });
});
