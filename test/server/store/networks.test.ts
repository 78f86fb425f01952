/** server/store/networks.ts on a real SQLite database: measurements in, read back with their model's name, the constraints. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { insertJob } from '../../../server/store/jobs.ts';
import { insertModel } from '../../../server/store/models.ts';
import { insertNetwork, listNetworks, type NetworkRecord } from '../../../server/store/networks.ts';
import { CONSTRAINT, openTempDb, type TempDb } from '../../helpers/temp-db.ts';
import { modelRecord, seedRefs } from './fixtures.ts';

const net = (jobId: string, more: Partial<NetworkRecord> = {}): NetworkRecord => ({
  deviceId: 'd-1',
  runtime: 'tfjs-wasm',
  modelId: 'm-1',
  jobId,
  medianMs: 12.5,
  p10Ms: 12,
  p90Ms: 13.5,
  n: 25,
  measuredAt: '2026-01-01T00:00:00.000Z',
  ...more,
});

describe('store: networks', () => {
  let t: TempDb;
  before(async () => {
    t = await openTempDb();
    await t.db.write(async (tx) => {
      await seedRefs(tx);
      await insertModel(tx, modelRecord('m-2', 'second'));
      for (const id of ['j-1', 'j-2', 'j-3', 'j-4']) await insertJob(tx, { id, kind: 'measure', deviceId: 'd-1', runtime: 'tfjs-wasm', modelId: 'm-1', options: { measure: {} }, createdAt: '2026-01-01T00:00:00.000Z' });
    });
  });
  after(() => t.dispose());

  it('stores measurements and lists them in the order stored, with the model name', async () => {
    const a = net('j-2', { measuredAt: '2026-01-05T00:00:00.000Z' });
    const b = net('j-1', { modelId: 'm-2', medianMs: 3 });
    const other = net('j-3', { runtime: 'tflite' });
    await t.db.write(async (tx) => {
      await insertNetwork(tx, a);
      await insertNetwork(tx, b);
      await insertNetwork(tx, other);
    });
    assert.deepEqual(await listNetworks(t.db, 'd-1', 'tfjs-wasm'), [
      { ...a, modelName: 'model m-1' },
      { ...b, modelName: 'second' },
    ]);
    assert.deepEqual(await listNetworks(t.db, 'd-1', 'tflite'), [{ ...other, modelName: 'model m-1' }]);
  });

  it('refuses a second measurement of one job, a median of 0, an unknown model or job', async () => {
    for (const bad of [net('j-2'), net('j-4', { medianMs: 0 }), net('j-4', { modelId: 'm-unknown' }), net('j-unknown')]) {
      await assert.rejects(t.db.write((tx) => insertNetwork(tx, bad)), CONSTRAINT, JSON.stringify(bad));
    }
    assert.equal((await listNetworks(t.db, 'd-1', 'tfjs-wasm')).length, 2);
  });
});
