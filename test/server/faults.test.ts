/**
 * Fault tests on 127.0.0.1 with real processes: the server (`morphnet serve`, a child process)
 * killed with SIGKILL mid-profile and mid-search, then restarted on the same port and data
 * directory; an agent's TCP connection destroyed mid-job (through a proxy that also refuses
 * connections for a while); and the built-in local agent of a killed server. Each checks that
 * nothing is lost or stored twice: leases go back to the queue, every item of the job is stored
 * exactly once, a search is `interrupted` and resumable, the database passes its integrity check.
 * (A real agent killed mid-job: test/server/real-agents.test.ts. A search killed while training:
 * test/server/searches.test.ts.)
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { startServer, type RunningServer } from '../../server/app.ts';
import { FakeAgent } from '../helpers/fake-agent.ts';
import {
  agentEvents,
  api,
  childPids,
  freePort,
  killIfRunning,
  pidRunning,
  queryDb,
  startAgentChild,
  startServeChild,
  stopChild,
  until,
  type Child,
  type ServeChild,
} from '../helpers/server-child.ts';
import { TcpProxy } from '../helpers/tcp-proxy.ts';
import { tinyTopology } from '../train/tiny-model.ts';

const TOKEN = 'faults-agent-token-0001';
/** A short timing protocol: a profile of the MobileNet seed (grid 2) takes seconds. */
const QUICK = { warmupRuns: 1, warmupMs: 0, minSamples: 5, minWindowMs: 10, maxMs: 800 };

interface ItemRow {
  id: number;
  state: string;
  done_at: string | null;
  result_json: string | null;
}

async function jobState(base: string, id: string): Promise<any> {
  return (await api(base, 'GET', `/api/jobs/${id}`)).json;
}

/** The job's items and the table points it stored, straight from the database file. */
async function jobRows(dataDir: string, jobId: string): Promise<{ items: ItemRow[]; points: { item_id: number }[]; integrity: string }> {
  return queryDb(join(dataDir, 'morphnet.db'), async (q) => ({
    items: await q<ItemRow>('SELECT id, state, done_at, result_json FROM job_items WHERE job_id = ? ORDER BY id', [jobId]),
    points: await q<{ item_id: number }>('SELECT item_id FROM points WHERE job_id = ?', [jobId]),
    integrity: (await q<{ integrity_check: string }>('PRAGMA integrity_check'))[0].integrity_check,
  }));
}

/** Every item done, one point per item, the items done before a crash untouched since. */
function assertExactlyOnce(rows: Awaited<ReturnType<typeof jobRows>>, total: number, before: readonly ItemRow[]): void {
  assert.equal(rows.integrity, 'ok');
  assert.equal(rows.items.length, total);
  assert.deepEqual(rows.items.filter((i) => i.state !== 'done'), [], 'every item done');
  assert.equal(rows.points.length, total, 'one table point per item');
  assert.equal(new Set(rows.points.map((p) => p.item_id)).size, total, 'each point from a different item');
  const now = new Map(rows.items.map((i) => [i.id, i]));
  for (const b of before) assert.deepEqual(now.get(b.id), b, `item ${b.id}, stored before the crash, was not measured again`);
}

describe('the server killed with SIGKILL mid-profile', () => {
  const children: Child[] = [];
  let dir = '';
  after(async () => {
    for (const c of children) killIfRunning(c);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('restarts on the same port: leases re-queued, the real agent reconnects, every item stored once', { timeout: 300_000 }, async (t) => {
    dir = await mkdtemp(join(tmpdir(), 'morphnet-fault-profile-'));
    const port = await freePort();
    const first = await startServeChild({ dataDir: dir, token: TOKEN, port, extra: ['--no-local-agent'] });
    children.push(first);
    const agent = startAgentChild(first.wsUrl, { token: TOKEN, name: 'fault agent', deviceKey: 'fault-profile-device-01' });
    children.push(agent);
    const device = await until('the agent online', async () => (await api(first.url, 'GET', '/api/devices')).json.devices.find((d: { online: boolean }) => d.online), 120_000);
    const created = await api(first.url, 'POST', '/api/profile', { deviceId: device.id, runtime: 'tfjs-wasm', model: 'mobilenet', grid: { maxPerAxis: 2 }, refine: false, measure: QUICK });
    assert.equal(created.status, 202, JSON.stringify(created.json));
    const jobId: string = created.json.id;
    const total: number = created.json.progress.total;
    assert.ok(total > 20, `${total} items`);
    await until('a few items stored with a lease out', async () => {
      const j = await jobState(first.url, jobId);
      return j.progress.done >= 4 && j.progress.leased > 0 && j.progress.pending > 0;
    }, 120_000, 50);

    const killed = await stopChild(first, 'SIGKILL');
    assert.equal(killed.signal, 'SIGKILL');
    // The crash left a lease in the database: that is what the restart must undo.
    const crashed = await jobRows(dir, jobId);
    const leased = crashed.items.filter((i) => i.state === 'leased').length;
    const doneBefore = crashed.items.filter((i) => i.state === 'done');
    assert.ok(leased > 0, 'items were leased when the server died');
    assert.equal(crashed.integrity, 'ok');
    assert.equal(crashed.points.length, doneBefore.length, 'no torn rows: one point per done item');

    const second = await startServeChild({ dataDir: dir, token: TOKEN, port, extra: ['--no-local-agent'] });
    children.push(second);
    assert.equal(second.facts.recoveredItems, leased, 'the restart put every leased item back in the queue');
    const job = await until('the job to finish after the restart', async () => {
      const j = await jobState(second.url, jobId);
      return ['done', 'failed', 'cancelled'].includes(j.state) ? j : undefined;
    }, 240_000, 200);
    assert.equal(job.state, 'done', JSON.stringify(job.error));
    assert.deepEqual([job.progress.done, job.progress.failed], [total, 0]);

    const events = agentEvents(agent);
    const welcomes = events.filter((e) => e.type === 'welcome');
    assert.ok(welcomes.length >= 2, 'the agent reconnected to the restarted server by itself');
    const retries = events.filter((e) => e.type === 'disconnected').map((e) => e.retryInMs as number);
    t.diagnostic(`${leased} item(s) re-queued; ${doneBefore.length} stored before the kill; agent retries after ${retries.join(', ')} ms`);

    const end = await stopChild(second, 'SIGTERM');
    assert.equal(end.code, 0, 'a graceful stop exits 0');
    assertExactlyOnce(await jobRows(dir, jobId), total, doneBefore);
  });
});

describe('the server killed with SIGKILL mid-search', () => {
  const children: Child[] = [];
  const agents: FakeAgent[] = [];
  let dir = '';
  after(async () => {
    for (const a of agents) a.close();
    for (const c of children) killIfRunning(c);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('leaves the latency search interrupted and resumable, its profile job re-queued and finished once', { timeout: 240_000 }, async () => {
    dir = await mkdtemp(join(tmpdir(), 'morphnet-fault-search-'));
    const port = await freePort();
    const first = await startServeChild({ dataDir: dir, token: TOKEN, port, extra: ['--no-local-agent'] });
    children.push(first);
    // A slow simulated device: the search's profiling is under way for seconds.
    const connect = (): Promise<FakeAgent> => FakeAgent.connect({ url: `ws://127.0.0.1:${port}/agents`, token: TOKEN, deviceKey: 'fault-search-device-01', runtimes: ['tfjs-wasm'], delayMs: 150 });
    agents.push(await connect());
    const deviceId = agents[0].deviceId as string;
    const created = await api(first.url, 'POST', '/api/searches', {
      model: { format: 'layers-model', modelTopology: tinyTopology([12, 12, 1], 3) },
      data: { dataset: 'synthetic:h=12,w=12,c=1,classes=3,noise=0.2', trainLimit: 96, testLimit: 32 },
      cost: 'latency',
      deviceId,
      runtime: 'tfjs-wasm',
      targetMs: 1,
      options: { shrinkEpochs: 1, finalEpochs: 1, batchSize: 32, divisor: 2, strength: 20, backend: 'wasm', seed: 1, profileGrid: 3, measureProtocol: 'quick' },
    });
    assert.equal(created.status, 201, JSON.stringify(created.json));
    const searchId: string = created.json.id;
    const profile = await until('the search profiling with a lease out', async () => {
      const jobs = (await api(first.url, 'GET', `/api/jobs?deviceId=${deviceId}`)).json.jobs as any[];
      return jobs.find((j) => j.kind === 'profile' && j.progress.done >= 2 && j.progress.leased > 0);
    }, 120_000, 50);
    // The device stops answering and holds its lease: the profile job is still under way when the
    // server dies, however long the next few calls take on this machine.
    agents[0].answerLimit = agents[0].answered;
    assert.equal((await api(first.url, 'GET', `/api/searches/${searchId}`)).json.state, 'preparing');

    await stopChild(first, 'SIGKILL');
    agents[0].close();
    const crashed = await queryDb(join(dir, 'morphnet.db'), async (q) => ({
      search: (await q<{ state: string }>('SELECT state FROM searches WHERE id = ?', [searchId]))[0],
      leased: (await q<{ n: number }>("SELECT COUNT(*) AS n FROM job_items WHERE job_id = ? AND state = 'leased'", [profile.id]))[0].n,
      done: await q<ItemRow>("SELECT id, state, done_at, result_json FROM job_items WHERE job_id = ? AND state = 'done'", [profile.id]),
    }));
    assert.equal(crashed.search.state, 'preparing', 'the search was running when the server died');
    assert.ok(crashed.leased > 0);

    const second = await startServeChild({ dataDir: dir, token: TOKEN, port, extra: ['--no-local-agent'] });
    children.push(second);
    assert.equal(second.facts.recoveredItems, crashed.leased);
    const view = (await api(second.url, 'GET', `/api/searches/${searchId}`)).json;
    assert.equal(view.state, 'interrupted', 'not lost: marked interrupted at the restart');
    assert.match(view.interruption.reason, /server stopped/);
    assert.equal(view.resume.available, true);

    // The device comes back; the profile job the search started finishes, each item once.
    agents.push(await connect());
    const job = await until('the profile job to finish', async () => {
      const j = await jobState(second.url, profile.id);
      return ['done', 'failed', 'cancelled'].includes(j.state) ? j : undefined;
    }, 120_000, 100);
    assert.equal(job.state, 'done', JSON.stringify(job.error));

    // Resumed: queued again as attempt 2 and started; then cancelled to end the test.
    const resumed = await api(second.url, 'POST', `/api/searches/${searchId}/resume`);
    assert.equal(resumed.status, 202, JSON.stringify(resumed.json));
    assert.equal(resumed.json.attempt, 2);
    await until('the resumed search to start', async () => ['preparing', 'running', 'done', 'failed'].includes((await api(second.url, 'GET', `/api/searches/${searchId}`)).json.state), 60_000);
    const cancelled = (await api(second.url, 'DELETE', `/api/searches/${searchId}`)).json;
    assert.ok(['cancelled', 'done', 'failed'].includes(cancelled.state), cancelled.state);

    const end = await stopChild(second, 'SIGTERM');
    assert.equal(end.code, 0);
    assertExactlyOnce(await jobRows(dir, profile.id), job.progress.total, crashed.done);
  });
});

describe('a dropped network between agent and server', () => {
  let dir = '';
  let server: RunningServer | null = null;
  let proxy: TcpProxy | null = null;
  let agent: Child | null = null;
  after(async () => {
    killIfRunning(agent);
    await proxy?.close();
    await server?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('the agent reconnects with jittered backoff and the job completes, every item once', { timeout: 300_000 }, async (t) => {
    dir = await mkdtemp(join(tmpdir(), 'morphnet-fault-net-'));
    server = await startServer({ port: 0, dataDir: dir, agentToken: TOKEN, localAgent: false, leaseItems: 4, log: () => undefined });
    proxy = new TcpProxy(server.port);
    const proxyPort = await proxy.listen();
    agent = startAgentChild(`ws://127.0.0.1:${proxyPort}/agents`, { token: TOKEN, name: 'proxied agent', deviceKey: 'fault-network-device-01' });
    const device = await until('the agent online', async () => (await api(server!.url, 'GET', '/api/devices')).json.devices.find((d: { online: boolean }) => d.online), 120_000);
    const created = await api(server.url, 'POST', '/api/profile', { deviceId: device.id, runtime: 'tfjs-wasm', model: 'mobilenet', grid: { maxPerAxis: 2 }, refine: false, measure: QUICK });
    const jobId: string = created.json.id;
    const total: number = created.json.progress.total;
    await until('a few items stored with a lease out', async () => {
      const j = await jobState(server!.url, jobId);
      return j.progress.done >= 3 && j.progress.leased > 0;
    }, 120_000, 50);

    // The network goes away: connections reset, new ones refused.
    const disconnectsBefore = agentEvents(agent).filter((e) => e.type === 'disconnected').length;
    const dropped = proxy.drop();
    await proxy.pause();
    await until('the server to see the agent gone', async () => !(await api(server!.url, 'GET', `/api/devices/${device.id}`)).json.online, 60_000);
    // The device shows offline as soon as the socket closes; its lease is released by the write
    // that follows, so give that a moment (the agent cannot reconnect while the proxy is paused).
    await until('the lease back in the queue while the network is down', async () => (await jobState(server!.url, jobId)).progress.leased === 0, 60_000, 50);
    // Down until the agent has been refused twice (its backoff: 0.25–0.75 s, then 0.5–1.5 s), not
    // for a fixed time: how soon its retries come depends on how busy the machine is.
    await until('two refused reconnects while the network is down', () => agentEvents(agent!).filter((e) => e.type === 'disconnected').length >= disconnectsBefore + 3, 60_000, 50);
    await proxy.resume();

    const job = await until('the job to finish after the drop', async () => {
      const j = await jobState(server!.url, jobId);
      return ['done', 'failed', 'cancelled'].includes(j.state) ? j : undefined;
    }, 240_000, 200);
    assert.equal(job.state, 'done', JSON.stringify(job.error));
    assert.equal(job.progress.done, total);

    const events = agentEvents(agent);
    const welcomes = events.filter((e) => e.type === 'welcome');
    assert.equal(welcomes.length, 2, 'connected, dropped, connected again');
    const retries = events.filter((e) => e.type === 'disconnected').map((e) => e.retryInMs as number);
    const attempts = events.filter((e) => e.type === 'connecting').map((e) => e.attempt as number);
    // Backoff: the k-th retry waits 500·2^k ms ± 50% (DEFAULT_RECONNECT): the delays the agent
    // chose, not how long they took.
    retries.forEach((ms, k) => assert.ok(ms >= 250 * 2 ** k && ms <= 750 * 2 ** k, `retry ${k} after ${ms} ms`));
    assert.ok(retries.length >= 3 && Math.max(...attempts) >= 3, `refused while the network was down: retries ${retries.join(', ')}; attempts ${attempts.join(', ')}`);
    t.diagnostic(`dropped ${dropped} socket(s); retries after ${retries.join(', ')} ms; ${proxy.accepted} connections through the proxy`);

    await server.close();
    server = null;
    assertExactlyOnce(await jobRows(dir, jobId), total, []);
  });
});

describe('the built-in local agent of a server killed with SIGKILL', () => {
  let dir = '';
  let server: ServeChild | null = null;
  const orphans: number[] = [];
  after(async () => {
    killIfRunning(server);
    for (const pid of orphans) if (await pidRunning(pid)) process.kill(pid, 'SIGKILL');
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('stops by itself instead of reconnecting to the next server', { timeout: 180_000 }, async () => {
    dir = await mkdtemp(join(tmpdir(), 'morphnet-fault-local-'));
    server = await startServeChild({ dataDir: dir, token: TOKEN, extra: ['--local-runtime', 'tfjs-wasm'] });
    await until('the local agent online', async () => (await api(server!.url, 'GET', '/api/devices')).json.devices.some((d: { online: boolean }) => d.online), 120_000);
    const agentPids = await childPids(server.pid);
    assert.equal(agentPids.length, 1, 'one local agent process');
    orphans.push(...agentPids);
    await stopChild(server, 'SIGKILL');
    await until('the orphaned local agent to exit', async () => !(await pidRunning(agentPids[0])), 15_000);
  });
});
