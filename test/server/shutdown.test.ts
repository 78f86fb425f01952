/**
 * Graceful shutdown on SIGTERM (`morphnet serve` as a child process on 127.0.0.1), with a
 * profile job streaming results and a search training at that moment: the process exits 0, every
 * result it acknowledged is stored, no item stays leased, the search is `interrupted` and
 * resumable, the WAL is checkpointed and the lock file removed; a restart finishes the job with
 * every item stored once. In process: a write that arrives once `close()` has begun gets 503, and
 * a `close()` step that fails still leaves the database closed and the lock released.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { once } from 'node:events';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { startServer } from '../../server/app.ts';
import { acquireDataLock, LOCK_FILE } from '../../server/data-lock.ts';
import { FakeAgent } from '../helpers/fake-agent.ts';
import { api, killIfRunning, queryDb, startServeChild, stopChild, until, type Child } from '../helpers/server-child.ts';
import { tinyTopology } from '../train/tiny-model.ts';

const TOKEN = 'shutdown-agent-token-01';

describe('SIGTERM with work in flight', () => {
  const children: Child[] = [];
  const agents: FakeAgent[] = [];
  let dir = '';
  after(async () => {
    for (const a of agents) a.close();
    for (const c of children) killIfRunning(c);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('stops taking work, stores what it acked, releases leases, interrupts the search, exits 0; a restart finishes the job', { timeout: 180_000 }, async (t) => {
    dir = await mkdtemp(join(tmpdir(), 'morphnet-shutdown-'));
    const first = await startServeChild({ dataDir: dir, token: TOKEN, extra: ['--no-local-agent'] });
    children.push(first);
    assert.ok(existsSync(join(dir, LOCK_FILE)), 'the running server holds the data directory lock');
    const agent = await FakeAgent.connect({ url: first.wsUrl, token: TOKEN, deviceKey: 'shutdown-device-0001', runtimes: ['tfjs-wasm'], delayMs: 40 });
    agents.push(agent);
    const profile = await api(first.url, 'POST', '/api/profile', { deviceId: agent.deviceId, runtime: 'tfjs-wasm', model: 'mobilenet', grid: { maxPerAxis: 3 }, refine: false });
    assert.equal(profile.status, 202);
    const jobId: string = profile.json.id;
    const total: number = profile.json.progress.total;
    // The device answers all but the last few items, then holds its lease: however long the search
    // takes to start training on this machine, the job is unfinished when the server is stopped.
    assert.ok(total > 20, `${total} items`);
    agent.answerLimit = total - 5;
    const search = await api(first.url, 'POST', '/api/searches', {
      model: { format: 'layers-model', modelTopology: tinyTopology([12, 12, 1], 3) },
      data: { dataset: 'synthetic:h=12,w=12,c=1,classes=3,noise=0.2', trainLimit: 256, testLimit: 32 },
      cost: 'flops',
      target: { fraction: 0.5 },
      options: { shrinkEpochs: 3, finalEpochs: 3, batchSize: 16, divisor: 2, backend: 'wasm', seed: 1 },
    });
    assert.equal(search.status, 201, JSON.stringify(search.json));
    await until('the search training and results streaming', async () => {
      const s = (await api(first.url, 'GET', `/api/searches/${search.json.id}`)).json;
      return s.state === 'running' && agent.acks.length >= 10;
    }, 90_000, 50);
    const jobAtStop = (await api(first.url, 'GET', `/api/jobs/${jobId}`)).json;
    assert.ok(jobAtStop.progress.pending + jobAtStop.progress.leased > 0, 'the job was still running when the server was told to stop');

    const stopped = await stopChild(first, 'SIGTERM', 30_000);
    assert.deepEqual(stopped, { code: 0, signal: null, timedOut: false }, first.lines.slice(-10).join('\n'));
    await agent.until(() => agent.closeCode !== null);
    assert.equal(agent.closeCode, 4503, 'agents are told the server is shutting down');

    const acked = agent.acks.filter((a) => a.status === 'stored').map((a) => a.itemId);
    const db = await queryDb(join(dir, 'morphnet.db'), async (q) => ({
      states: await q<{ state: string; n: number }>('SELECT state, COUNT(*) AS n FROM job_items WHERE job_id = ? GROUP BY state', [jobId]),
      done: (await q<{ id: number }>("SELECT id FROM job_items WHERE job_id = ? AND state = 'done'", [jobId])).map((r) => r.id),
      points: (await q<{ n: number }>('SELECT COUNT(*) AS n FROM points WHERE job_id = ?', [jobId]))[0].n,
      search: (await q<{ state: string; error_json: string }>('SELECT state, error_json FROM searches WHERE id = ?', [search.json.id]))[0],
      integrity: (await q<{ integrity_check: string }>('PRAGMA integrity_check'))[0].integrity_check,
    }));
    assert.equal(db.integrity, 'ok');
    assert.equal(db.states.find((s) => s.state === 'leased'), undefined, 'no item left leased');
    const done = new Set(db.done);
    assert.deepEqual(acked.filter((id) => !done.has(id)), [], 'every acked result is stored');
    assert.equal(db.points, db.done.length, 'one point per stored item');
    assert.equal(db.search.state, 'interrupted');
    assert.match(JSON.parse(db.search.error_json).reason, /server stopped/);
    // Checkpointed at close: the WAL is empty or gone, the lock released.
    const wal = await stat(join(dir, 'morphnet.db-wal')).catch(() => null);
    assert.ok(wal === null || wal.size === 0, `WAL left with ${wal?.size} bytes`);
    assert.equal(existsSync(join(dir, LOCK_FILE)), false, 'the lock file is removed');
    t.diagnostic(`stopped with ${db.done.length}/${total} items stored, ${acked.length} acked`);

    const second = await startServeChild({ dataDir: dir, token: TOKEN, extra: ['--no-local-agent'] });
    children.push(second);
    assert.equal(second.facts.recoveredItems, 0, 'nothing was left leased to recover');
    const again = await FakeAgent.connect({ url: second.wsUrl, token: TOKEN, deviceKey: 'shutdown-device-0001', runtimes: ['tfjs-wasm'] });
    agents.push(again);
    const job = await until('the job to finish after the restart', async () => {
      const j = (await api(second.url, 'GET', `/api/jobs/${jobId}`)).json;
      return j.state === 'done' ? j : undefined;
    }, 60_000);
    assert.equal(job.progress.done, total);
    const resumable = (await api(second.url, 'GET', `/api/searches/${search.json.id}`)).json;
    assert.equal(resumable.resume.available, true);
    // Nothing measured twice: the new agent got only the items the first did not store.
    const firstStored = new Set(acked);
    assert.deepEqual(again.acks.filter((a) => a.status === 'stored' && firstStored.has(a.itemId)), []);
    assert.equal(new Set([...db.done, ...again.acks.filter((a) => a.status === 'stored').map((a) => a.itemId)]).size, total);
    assert.equal((await stopChild(second, 'SIGTERM')).code, 0);
    const points = await queryDb(join(dir, 'morphnet.db'), async (q) => (await q<{ n: number }>('SELECT COUNT(*) AS n FROM points WHERE job_id = ?', [jobId]))[0].n);
    assert.equal(points, total);
  });
});

describe('close() in process', () => {
  it('answers a request that arrives once the shutdown has begun with 503 MORPH_ERR_UNAVAILABLE', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'morphnet-shutdown-503-'));
    const server = await startServer({ port: 0, dataDir: dir, agentToken: TOKEN, localAgent: false, log: () => undefined });
    const socket = createConnection({ host: '127.0.0.1', port: server.port });
    let reply = '';
    socket.on('data', (d) => (reply += d));
    const ended = new Promise((r) => socket.on('close', r));
    try {
      await once(socket, 'connect');
      // A request under way when the shutdown begins (its connection is not idle, so it is not
      // closed at once); the rest of it comes after `close()` was called.
      const body = JSON.stringify({ deviceId: 'd-x', runtime: 'tfjs-wasm', model: 'mobilenet' });
      socket.write('POST /api/profile HTTP/1.1\r\nHost: 127.0.0.1\r\n');
      await new Promise((r) => setTimeout(r, 100));
      const closing = server.close();
      socket.write(`Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
      await ended;
      assert.match(reply, /^HTTP\/1\.1 503 /);
      assert.match(reply, /"code":"MORPH_ERR_UNAVAILABLE"/);
      await closing;
      await server.close(); // safe twice
    } finally {
      socket.destroy();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('is running, then closing from the first close() call, then closed; a second close() returns the same promise', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'morphnet-shutdown-twice-'));
    try {
      const server = await startServer({ port: 0, dataDir: dir, agentToken: TOKEN, localAgent: false, log: () => undefined });
      assert.equal(server.state, 'running');
      const first = server.close();
      assert.equal(server.state, 'closing');
      assert.equal(server.close(), first, 'during the shutdown');
      await first;
      assert.equal(server.state, 'closed');
      assert.equal(server.close(), first, 'after it');
      assert.equal(server.fleet.state, 'closed');
      assert.equal(server.searches.state, 'closed');
      assert.equal(existsSync(join(dir, LOCK_FILE)), false, 'the lock file is removed');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('releases the database and the lock even when a step before them fails, and reports the first failure', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'morphnet-shutdown-fail-'));
    try {
      const server = await startServer({ port: 0, dataDir: dir, agentToken: TOKEN, localAgent: false, log: () => undefined });
      let hubClosed = false;
      const hubClose = server.hub.close.bind(server.hub);
      // The closure in startServer calls these very objects' methods.
      server.searches.close = () => Promise.reject(new Error('searches.close failed'));
      server.fleet.close = () => Promise.reject(new Error('fleet.close failed'));
      server.hub.close = async () => {
        await hubClose();
        hubClosed = true;
      };
      await assert.rejects(server.close(), /^Error: searches\.close failed$/);
      assert.equal(hubClosed, true, 'the steps after the failed one ran');
      assert.equal(existsSync(join(dir, LOCK_FILE)), false, 'the lock file is removed');
      const wal = await stat(join(dir, 'morphnet.db-wal')).catch(() => null);
      assert.ok(wal === null || wal.size === 0, 'the database was closed (its WAL checkpointed)');
      // The same failure again, and nothing run twice.
      await assert.rejects(server.close(), /searches\.close failed/);
      // The directory is free: even a holder that refuses this process's own locks gets it.
      const lock = await acquireDataLock(dir, 'after', { sameProcess: false });
      assert.equal(lock.replaced, null);
      await lock.release();
      const again = await startServer({ port: 0, dataDir: dir, agentToken: TOKEN, localAgent: false, log: () => undefined });
      await again.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
