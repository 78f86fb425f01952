/**
 * server/store/jobs.ts on a real SQLite database: a job and its items in and out, the item states
 * a lease, a result, a failure and a cancel move them through, and the schema's refusals.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { signature } from '../../../src/ops/op-spec.ts';
import type { WireMeasurement } from '../../../src/protocol/agent-protocol.ts';
import {
  cancelJobRow,
  completeItem,
  countOpenItems,
  countOpenJobs,
  failItems,
  findItem,
  findJob,
  finishJobRow,
  insertJob,
  insertJobItems,
  itemCounts,
  leaseItems,
  listItems,
  listJobs,
  openJobs,
  recordItemFailure,
  requeueAllLeased,
  requeueItems,
  signatureSpecs,
  touchJob,
} from '../../../server/store/jobs.ts';
import type { JobKind, JobOptions } from '../../../server/contract/devices.ts';
import { CONSTRAINT, openTempDb, type TempDb } from '../../helpers/temp-db.ts';
import { conv, seedRefs } from './fixtures.ts';

const T0 = '2026-01-01T00:00:00.000Z';
const options: JobOptions = { measure: { maxMs: 5000 }, referenceOp: conv(16, 16), grid: { maxPerAxis: 3 }, forSearch: false, force: false, refine: true };
const newJob = (id: string, createdAt = T0, kind: JobKind = 'profile') => ({ id, kind, deviceId: 'd-1', runtime: 'tfjs-wasm' as const, modelId: 'm-1', options, createdAt });
const measurement: WireMeasurement = { medianMs: 1, p10Ms: 0.9, p90Ms: 1.2, meanMs: 1.05, cv: 0.1, n: 20, runsPerSample: 4, stable: true, attempts: 1, totalMs: 300 };

describe('store: jobs and job items', () => {
  let t: TempDb;
  before(async () => {
    t = await openTempDb();
    await t.db.write((tx) => seedRefs(tx));
  });
  after(() => t.dispose());

  it('stores a job, queued, and reads it back with its options parsed', async () => {
    await t.db.write((tx) => insertJob(tx, newJob('j-1')));
    assert.deepEqual(await findJob(t.db, 'j-1'), {
      id: 'j-1',
      kind: 'profile',
      deviceId: 'd-1',
      runtime: 'tfjs-wasm',
      modelId: 'm-1',
      state: 'queued',
      options,
      result: null,
      error: null,
      createdAt: T0,
      updatedAt: T0,
      finishedAt: null,
    });
    assert.equal(await findJob(t.db, 'j-none'), undefined);
  });

  it('stores items numbered in order (op items with their signature and channels), 100 rows per statement', async () => {
    const specs = Array.from({ length: 250 }, (_, i) => conv(8 + i, 16));
    await t.db.write((tx) => insertJobItems(tx, 'j-1', specs.map((spec) => ({ kind: 'op' as const, spec }))));
    const items = await listItems(t.db, 'j-1');
    assert.equal(items.length, 250);
    assert.deepEqual(items.map((i) => i.idx), specs.map((_, k) => k));
    assert.deepEqual(items[7], {
      id: items[7].id,
      jobId: 'j-1',
      idx: 7,
      kind: 'op',
      spec: specs[7],
      signature: signature(specs[7]),
      cIn: 15,
      cOut: 16,
      state: 'pending',
      attempts: 0,
      agentId: null,
      result: null,
      error: null,
      doneAt: null,
    });
    assert.deepEqual(await itemCounts(t.db, 'j-1'), { total: 250, pending: 250, leased: 0, done: 0, failed: 0 });
    assert.deepEqual([...(await signatureSpecs(t.db, 'j-1')).keys()], [signature(specs[0])]);
  });

  it('a lease takes the first pending items and marks the job running; requeue puts back only those still leased', async () => {
    const leased = await t.db.write((tx) => leaseItems(tx, 'j-1', 'a-1', 8, '2026-01-01T00:01:00.000Z'));
    assert.deepEqual(leased.map((i) => i.idx), [0, 1, 2, 3, 4, 5, 6, 7]);
    assert.ok(leased.every((i) => i.state === 'leased' && i.agentId === 'a-1'));
    const job = await findJob(t.db, 'j-1');
    assert.equal(job?.state, 'running');
    assert.equal(job?.updatedAt, '2026-01-01T00:01:00.000Z');
    await t.db.write((tx) => completeItem(tx, leased[0].id, { agentId: 'a-1', result: measurement, at: '2026-01-01T00:02:00.000Z' }));
    await t.db.write((tx) => requeueItems(tx, leased.map((i) => i.id)));
    const done = await findItem(t.db, leased[0].id);
    assert.deepEqual([done?.state, done?.agentId, done?.result, done?.doneAt], ['done', 'a-1', measurement, '2026-01-01T00:02:00.000Z']);
    assert.deepEqual(await itemCounts(t.db, 'j-1'), { total: 250, pending: 249, leased: 0, done: 1, failed: 0 });
    // The next lease starts after the done item.
    const next = await t.db.write((tx) => leaseItems(tx, 'j-1', 'a-2', 3, T0));
    assert.deepEqual(next.map((i) => i.idx), [1, 2, 3]);
    assert.equal(await t.db.write((tx) => requeueAllLeased(tx)), 3);
    assert.equal(await countOpenItems(t.db, 'j-1'), 249);
  });

  it('records failures: back to pending with the attempt counted, or failed for good; failItems fails at once', async () => {
    const [a, b] = await t.db.write((tx) => leaseItems(tx, 'j-1', 'a-1', 2, T0));
    await t.db.write(async (tx) => {
      await recordItemFailure(tx, a.id, { state: 'pending', attempts: 1, error: { code: 'E', message: 'try again', agentId: 'a-1', attempts: 1 } });
      await recordItemFailure(tx, b.id, { state: 'failed', attempts: 3, error: { code: 'E', message: 'gave up', agentId: 'a-1', attempts: 3 } });
    });
    assert.deepEqual(await findItem(t.db, a.id), { ...a, state: 'pending', agentId: null, attempts: 1, error: { code: 'E', message: 'try again', agentId: 'a-1', attempts: 1 } });
    assert.equal((await findItem(t.db, b.id))?.state, 'failed');
    const items = await listItems(t.db, 'j-1');
    await t.db.write((tx) => failItems(tx, [items[10].id, items[11].id], { code: 'MORPH_ERR_INTERNAL', message: 'no payload' }));
    assert.deepEqual((await findItem(t.db, items[11].id))?.error, { code: 'MORPH_ERR_INTERNAL', message: 'no payload' });
    assert.deepEqual(await itemCounts(t.db, 'j-1'), { total: 250, pending: 246, leased: 0, done: 1, failed: 3 });
  });

  it('finishes a job with its result and error; touch moves updated_at', async () => {
    await t.db.write(async (tx) => {
      await insertJob(tx, newJob('j-2', '2026-01-02T00:00:00.000Z', 'measure'));
      await touchJob(tx, 'j-2', '2026-01-02T00:00:01.000Z');
    });
    assert.equal((await findJob(t.db, 'j-2'))?.updatedAt, '2026-01-02T00:00:01.000Z');
    await t.db.write((tx) => finishJobRow(tx, 'j-2', { state: 'failed', result: null, error: { code: 'MORPH_ERR_JOB_FAILED', message: 'no', items: [] }, at: '2026-01-02T00:01:00.000Z' }));
    const j = await findJob(t.db, 'j-2');
    assert.deepEqual([j?.state, j?.result, j?.error, j?.finishedAt], ['failed', null, { code: 'MORPH_ERR_JOB_FAILED', message: 'no', items: [] }, '2026-01-02T00:01:00.000Z']);
  });

  it('cancels only a queued or running job, putting its leased items back', async () => {
    await t.db.write((tx) => leaseItems(tx, 'j-1', 'a-1', 4, T0));
    assert.equal(await t.db.write((tx) => cancelJobRow(tx, 'j-1', '2026-01-03T00:00:00.000Z')), true);
    assert.equal((await itemCounts(t.db, 'j-1')).leased, 0);
    const j = await findJob(t.db, 'j-1');
    assert.deepEqual([j?.state, j?.finishedAt], ['cancelled', '2026-01-03T00:00:00.000Z']);
    assert.equal(await t.db.write((tx) => cancelJobRow(tx, 'j-1', T0)), false);
    assert.equal(await t.db.write((tx) => cancelJobRow(tx, 'j-2', T0)), false, 'a failed job stays failed');
  });

  it('lists jobs newest first with filters, and a device\'s open jobs oldest first', async () => {
    await t.db.write(async (tx) => {
      await insertJob(tx, newJob('j-3', '2026-01-04T00:00:00.000Z'));
      await insertJob(tx, newJob('j-4', '2026-01-03T12:00:00.000Z'));
    });
    assert.deepEqual((await listJobs(t.db)).map((j) => j.id), ['j-3', 'j-4', 'j-2', 'j-1']);
    assert.deepEqual((await listJobs(t.db, { state: 'queued' })).map((j) => j.id), ['j-3', 'j-4']);
    assert.deepEqual((await listJobs(t.db, { deviceId: 'd-1', limit: 1 })).map((j) => j.id), ['j-3']);
    assert.deepEqual((await listJobs(t.db, { deviceId: 'd-other' })).map((j) => j.id), []);
    assert.deepEqual((await openJobs(t.db, 'd-1')).map((j) => j.id), ['j-4', 'j-3']);
    assert.equal(await countOpenJobs(t.db, 'd-1'), 2);
  });

  it('refuses an unknown kind or state, an unknown device or model, and two items at one index', async () => {
    await assert.rejects(t.db.write((tx) => insertJob(tx, { ...newJob('j-bad'), kind: 'train' as JobKind })), CONSTRAINT);
    await assert.rejects(t.db.write((tx) => insertJob(tx, { ...newJob('j-bad'), deviceId: 'd-unknown' })), CONSTRAINT);
    await assert.rejects(t.db.write((tx) => insertJob(tx, { ...newJob('j-bad'), modelId: 'm-unknown' })), CONSTRAINT);
    await assert.rejects(t.db.write((tx) => tx.run("UPDATE jobs SET state = 'paused' WHERE id = 'j-3'")), CONSTRAINT);
    await assert.rejects(t.db.write((tx) => insertJobItems(tx, 'j-unknown', [{ kind: 'network' }])), CONSTRAINT);
    await t.db.write((tx) => insertJobItems(tx, 'j-3', [{ kind: 'network' }]));
    await assert.rejects(t.db.write((tx) => insertJobItems(tx, 'j-3', [{ kind: 'network' }])), CONSTRAINT, 'a second item 0');
    assert.equal(await findJob(t.db, 'j-bad'), undefined);
  });
});
