/**
 * server/store/searches.ts on a real SQLite database: a search in and out, the queue order, state
 * changes guarded by the states they may come from, stored events, and the schema's refusals.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { emptyProgress } from '../../../server/search/progress.ts';
import type { SearchConfig, SearchResultSummary } from '../../../server/contract/searches.ts';
import {
  countQueuedAhead,
  findSearch,
  insertSearch,
  insertSearchEvent,
  lastEventSeq,
  listSearches,
  listSearchEvents,
  nextQueuedSearch,
  saveSearchProgress,
  searchIdsIn,
  transitionSearch,
} from '../../../server/store/searches.ts';
import { withDefaults } from '../../../src/morph/search-options.ts';
import { CONSTRAINT, openTempDb, type TempDb } from '../../helpers/temp-db.ts';
import { seedRefs } from './fixtures.ts';

const config: SearchConfig = {
  model: { id: 'm-1', name: 'model m-1', source: 'seed' },
  data: { dataset: 'synthetic', trainLimit: 64, testLimit: 16, imageShape: null },
  cost: 'flops',
  deviceId: null,
  runtime: null,
  target: { fraction: 0.5 },
  targetMs: null,
  resolvedTarget: { value: 1000, unit: 'FLOPs', seedCost: 2000, minimum: 10 },
  latency: null,
  options: withDefaults({}),
};

const at = (minute: number): string => `2026-01-01T00:${String(minute).padStart(2, '0')}:00.000Z`;
const add = (t: TempDb, id: string, minute: number) => t.db.write((tx) => insertSearch(tx, { id, config, progress: emptyProgress(), artifactsDir: `searches/${id}`, createdAt: at(minute) }));

describe('store: searches and search events', () => {
  let t: TempDb;
  before(async () => {
    t = await openTempDb();
    await t.db.write((tx) => seedRefs(tx));
  });
  after(() => t.dispose());

  it('stores a search, queued at attempt 1, and reads it back with its config and progress parsed', async () => {
    await add(t, 's-b', 1);
    assert.deepEqual(await findSearch(t.db, 's-b'), {
      id: 's-b',
      state: 'queued',
      modelId: 'm-1',
      cost: 'flops',
      deviceId: null,
      runtime: null,
      config,
      progress: emptyProgress(),
      result: null,
      error: null,
      artifactsDir: 'searches/s-b',
      attempt: 1,
      createdAt: at(1),
      updatedAt: at(1),
      startedAt: null,
      finishedAt: null,
    });
    assert.equal(await findSearch(t.db, 's-none'), undefined);
  });

  it('keeps the queue in creation order (then id) and lists the newest first', async () => {
    await add(t, 's-a', 1);
    await add(t, 's-c', 0);
    assert.equal((await nextQueuedSearch(t.db))?.id, 's-c');
    assert.equal(await countQueuedAhead(t.db, { id: 's-b', createdAt: at(1) }), 2);
    assert.equal(await countQueuedAhead(t.db, { id: 's-a', createdAt: at(1) }), 1);
    assert.deepEqual((await listSearches(t.db, { limit: 10 })).map((s) => s.id), ['s-a', 's-b', 's-c']);
    assert.deepEqual((await listSearches(t.db, { state: 'queued', limit: 2 })).map((s) => s.id), ['s-a', 's-b']);
  });

  it('changes state only from the states given, storing what each change carries', async () => {
    const p = { ...emptyProgress(), phase: 'prepare' as const, message: 'preparing' };
    assert.equal(await t.db.write((tx) => transitionSearch(tx, 's-c', { state: 'running', progress: null }, ['preparing'], at(2))), false, 'queued cannot become running');
    assert.equal(await t.db.write((tx) => transitionSearch(tx, 's-c', { state: 'preparing', progress: p }, ['queued'], at(2))), true);
    let s = await findSearch(t.db, 's-c');
    assert.deepEqual([s?.state, s?.progress, s?.startedAt, s?.updatedAt], ['preparing', p, at(2), at(2)]);
    assert.deepEqual(await searchIdsIn(t.db, ['preparing', 'running']), ['s-c']);
    // running without progress keeps the stored one
    assert.equal(await t.db.write((tx) => transitionSearch(tx, 's-c', { state: 'running', progress: null }, ['preparing'], at(3))), true);
    assert.deepEqual((await findSearch(t.db, 's-c'))?.progress, p);
    await t.db.write((tx) => saveSearchProgress(tx, 's-c', { ...p, fraction: 0.5 }, at(4)));
    assert.equal((await findSearch(t.db, 's-c'))?.progress.fraction, 0.5);
    const result = { seconds: 12 } as unknown as SearchResultSummary;
    assert.equal(await t.db.write((tx) => transitionSearch(tx, 's-c', { state: 'done', progress: null, result, error: null }, ['preparing', 'running'], at(5))), true);
    s = await findSearch(t.db, 's-c');
    assert.deepEqual([s?.state, s?.result, s?.error, s?.finishedAt], ['done', result, null, at(5)]);
    assert.equal(await t.db.write((tx) => transitionSearch(tx, 's-c', { state: 'failed', progress: null, result: null, error: { code: 'X', message: 'late' } }, ['preparing', 'running'], at(6))), false, 'done stays done');
  });

  it('a resume clears the attempt\'s result, error and times and counts the attempt', async () => {
    await t.db.write((tx) => transitionSearch(tx, 's-a', { state: 'cancelled', progress: null, result: null, error: { reason: 'cancelled by a test', at: at(7) } }, ['queued'], at(7)));
    assert.deepEqual((await findSearch(t.db, 's-a'))?.error, { reason: 'cancelled by a test', at: at(7) });
    assert.equal(await t.db.write((tx) => transitionSearch(tx, 's-a', { state: 'queued', attempt: 2, progress: emptyProgress() }, ['interrupted', 'failed', 'cancelled'], at(8))), true);
    const s = await findSearch(t.db, 's-a');
    assert.deepEqual([s?.state, s?.attempt, s?.error, s?.result, s?.startedAt, s?.finishedAt, s?.updatedAt], ['queued', 2, null, null, null, null, at(8)]);
  });

  it('stores events numbered per search and replays those after a number', async () => {
    assert.equal(await lastEventSeq(t.db, 's-b'), 0);
    await t.db.write(async (tx) => {
      await insertSearchEvent(tx, 's-b', { seq: 1, type: 'state', data: { state: 'queued', attempt: 1 }, at: at(1) });
      await insertSearchEvent(tx, 's-b', { seq: 2, type: 'note', data: { type: 'note', message: 'hi' }, at: at(2) });
      await insertSearchEvent(tx, 's-a', { seq: 1, type: 'state', data: { state: 'queued' }, at: at(2) });
    });
    assert.equal(await lastEventSeq(t.db, 's-b'), 2);
    assert.deepEqual(await listSearchEvents(t.db, 's-b', 1), [{ seq: 2, type: 'note', data: { type: 'note', message: 'hi' }, at: at(2) }]);
    assert.equal((await listSearchEvents(t.db, 's-b', 0)).length, 2);
  });

  it('refuses an unknown state, a search of an unknown model, an event number twice and an event of no search', async () => {
    await assert.rejects(t.db.write((tx) => tx.run("UPDATE searches SET state = 'paused' WHERE id = 's-b'")), CONSTRAINT);
    await assert.rejects(t.db.write((tx) => insertSearch(tx, { id: 's-x', config: { ...config, model: { ...config.model, id: 'm-unknown' } }, progress: emptyProgress(), artifactsDir: 'x', createdAt: at(0) })), CONSTRAINT);
    await assert.rejects(t.db.write((tx) => insertSearchEvent(tx, 's-b', { seq: 2, type: 'note', data: {}, at: at(3) })), CONSTRAINT);
    await assert.rejects(t.db.write((tx) => insertSearchEvent(tx, 's-unknown', { seq: 1, type: 'note', data: {}, at: at(3) })), CONSTRAINT);
    assert.equal(await findSearch(t.db, 's-x'), undefined);
  });
});
