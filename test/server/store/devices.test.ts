/** server/store/devices.ts on a real SQLite database: rows in and out, the upsert, the constraints. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { findDevice, listDevices, touchDevice, upsertDevice } from '../../../server/store/devices.ts';
import { CONSTRAINT, openTempDb, type TempDb } from '../../helpers/temp-db.ts';
import { deviceRecord } from './fixtures.ts';

describe('store: devices', () => {
  let t: TempDb;
  before(async () => (t = await openTempDb()));
  after(() => t.dispose());

  it('stores a device and reads it back whole, its env and runtimes parsed', async () => {
    const d = deviceRecord('d-a');
    await t.db.write((tx) => upsertDevice(tx, d));
    assert.deepEqual(await findDevice(t.db, 'd-a'), d);
    assert.equal(await findDevice(t.db, 'd-none'), undefined);
    const raw = await t.db.get<{ env_json: string; runtimes_json: string }>('SELECT env_json, runtimes_json FROM devices WHERE id = ?', ['d-a']);
    assert.deepEqual(JSON.parse(raw!.runtimes_json), d.runtimes);
  });

  it('an upsert updates the device but keeps its key hash and first sighting; touch moves last_seen only', async () => {
    const first = deviceRecord('d-b', { firstSeen: '2026-01-02T00:00:00.000Z', lastSeen: '2026-01-02T00:00:00.000Z' });
    await t.db.write((tx) => upsertDevice(tx, first));
    const again = deviceRecord('d-b', {
      keyHash: 'another-hash',
      name: 'renamed',
      runtimes: [{ name: 'tflite', version: '2.0' }],
      agentVersion: 'v2',
      firstSeen: '2026-02-01T00:00:00.000Z',
      lastSeen: '2026-02-01T00:00:00.000Z',
    });
    await t.db.write((tx) => upsertDevice(tx, again));
    const kept = { ...again, keyHash: first.keyHash, firstSeen: first.firstSeen };
    assert.deepEqual(await findDevice(t.db, 'd-b'), kept);
    await t.db.write((tx) => touchDevice(tx, 'd-b', '2026-03-01T00:00:00.000Z'));
    assert.deepEqual(await findDevice(t.db, 'd-b'), { ...kept, lastSeen: '2026-03-01T00:00:00.000Z' });
  });

  it('lists devices by first sighting', async () => {
    await t.db.write((tx) => upsertDevice(tx, deviceRecord('d-0', { firstSeen: '2025-12-31T00:00:00.000Z' })));
    assert.deepEqual((await listDevices(t.db)).map((d) => d.id), ['d-0', 'd-a', 'd-b']);
  });

  it('refuses a second device with the same key hash, and a write that rolls back leaves nothing', async () => {
    await assert.rejects(t.db.write((tx) => upsertDevice(tx, deviceRecord('d-c', { keyHash: 'hash-of-d-a' }))), CONSTRAINT);
    assert.equal(await findDevice(t.db, 'd-c'), undefined);
  });
});
