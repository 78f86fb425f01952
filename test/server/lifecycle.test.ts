/**
 * The running → closing → closed lifecycle (server/lifecycle.ts) of the fleet and the search
 * service, on a real database: `close()` twice, at once or after the first ended, runs the
 * shutdown once and returns the same promise. (The whole server's: test/server/shutdown.test.ts.)
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Fleet } from '../../server/fleet.ts';
import { Lifecycle } from '../../server/lifecycle.ts';
import { resolveModel } from '../../server/models.ts';
import { SearchService } from '../../server/search/service.ts';
import { TableReader } from '../../server/tables.ts';
import { PROTOCOL_VERSION, type HelloMessage, type ServerMessage } from '../../src/protocol/agent-protocol.ts';
import { openTempDb, type TempDb } from '../helpers/temp-db.ts';

describe('Lifecycle', () => {
  it('runs the shutdown once: running, then closing before its first await, then closed; every call gets the same promise', async () => {
    const life = new Lifecycle();
    assert.equal(life.state, 'running');
    let runs = 0;
    let release!: () => void;
    const first = life.close(async () => {
      runs++;
      await new Promise<void>((r) => (release = r));
    });
    assert.equal(life.state, 'closing');
    assert.equal(life.running, false);
    const second = life.close(async () => void runs++);
    assert.equal(second, first);
    release();
    await first;
    assert.equal(life.state, 'closed');
    assert.equal(life.close(async () => void runs++), first, 'a call after the end too');
    assert.equal(runs, 1);
  });

  it('ends closed when the shutdown fails, and reports the same failure to every call', async () => {
    const life = new Lifecycle();
    const first = life.close(() => Promise.reject(new Error('boom')));
    await assert.rejects(first, /boom/);
    assert.equal(life.state, 'closed');
    await assert.rejects(life.close(async () => undefined), /boom/);
  });
});

describe('Fleet and SearchService close twice', () => {
  let t: TempDb;
  before(async () => (t = await openTempDb('morphnet-lifecycle-')));
  after(() => t.dispose());

  it('the fleet puts a live lease back once; a second close() is the same promise; a closed fleet leases nothing', async () => {
    const fleet = new Fleet(t.db, { leaseItems: 2 });
    const sent: ServerMessage[] = [];
    const hello = {
      v: PROTOCOL_VERSION,
      type: 'hello',
      token: 'unused-by-the-fleet',
      deviceKey: 'lifecycle-device-0001',
      name: 'lifecycle agent',
      agentVersion: 'test',
      env: { platform: 'node', os: 'linux', arch: 'x64', cpuModel: 'fake cpu', cores: 2 },
      runtimes: [{ name: 'tfjs-wasm', version: 'fake 1.0' }],
    } as HelloMessage;
    const session = await fleet.connect(hello, { send: (m) => sent.push(m) });
    const job = await fleet.createMeasureJob({ deviceId: session.deviceId, runtime: 'tfjs-wasm', model: resolveModel('mobilenet') });
    for (let i = 0; i < 200 && !sent.some((m) => m.type === 'work'); i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal((await fleet.job(job.id))?.progress.leased, 1, 'the item is leased');
    assert.equal(fleet.state, 'running');
    const first = fleet.close();
    assert.equal(fleet.state, 'closing');
    const second = fleet.close();
    assert.equal(second, first);
    await Promise.all([first, second]);
    assert.equal(fleet.state, 'closed');
    assert.equal((await fleet.job(job.id))?.progress.pending, 1, 'the lease went back to the queue');
    await fleet.close(); // after the end: resolves, runs nothing
    const before = sent.length;
    fleet.dispatch(session.deviceId);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(sent.length, before, 'a closed fleet gives no work');
  });

  it('the search service: close() twice is one shutdown, and a closed service queues nothing', async () => {
    const fleet = new Fleet(t.db);
    const searches = new SearchService(t.db, { dataDir: t.dir, fleet, tables: new TableReader(t.db), log: () => undefined });
    assert.deepEqual(await searches.start(), []);
    assert.equal(searches.state, 'running');
    const first = searches.close();
    assert.equal(searches.state, 'closing');
    assert.equal(searches.close(), first);
    await first;
    assert.equal(searches.state, 'closed');
    await assert.rejects(
      searches.create({ config: {} as never, modelTopology: {} }),
      (err: Error & { code?: string }) => err.code === 'MORPH_ERR_INTERNAL' && /stopping/.test(err.message),
    );
    await fleet.close();
  });
});
