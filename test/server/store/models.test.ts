/** server/store/models.ts on a real SQLite database: models by content id, uploads, the constraints. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { countUploads, findModel, findUpload, insertModel, insertUpload, listUploads, modelName } from '../../../server/store/models.ts';
import type { ModelInfo } from '../../../server/contract/models.ts';
import { CONSTRAINT, openTempDb, type TempDb } from '../../helpers/temp-db.ts';
import { modelRecord } from './fixtures.ts';

const upload = (id: string, uploadedAt: string): ModelInfo => ({ id, name: `model ${id}`, layers: 7, params: 1234, macs: 56789, inputShape: [28, 28, 1], outputs: 10, uploadedAt });

describe('store: models', () => {
  let t: TempDb;
  before(async () => (t = await openTempDb()));
  after(() => t.dispose());

  it('stores a model once per id (the first copy stays) and reads its topology back parsed', async () => {
    const m = modelRecord('m-1', 'first');
    assert.equal(await t.db.write((tx) => insertModel(tx, m)), true);
    assert.equal(await t.db.write((tx) => insertModel(tx, { ...modelRecord('m-1', 'second'), createdAt: '2027-01-01T00:00:00.000Z' })), false);
    assert.deepEqual(await findModel(t.db, 'm-1'), m);
    assert.equal(await modelName(t.db, 'm-1'), 'first');
    assert.equal(await findModel(t.db, 'm-none'), undefined);
    assert.equal(await modelName(t.db, 'm-none'), undefined);
  });

  it('stores uploads and lists them newest first, then by id', async () => {
    for (const id of ['m-a', 'm-b', 'm-c']) await t.db.write((tx) => insertModel(tx, modelRecord(id)));
    await t.db.write(async (tx) => {
      await insertUpload(tx, upload('m-a', '2026-01-01T00:00:00.000Z'));
      await insertUpload(tx, upload('m-c', '2026-01-02T00:00:00.000Z'));
      await insertUpload(tx, upload('m-b', '2026-01-02T00:00:00.000Z'));
    });
    assert.deepEqual(await findUpload(t.db, 'm-a'), upload('m-a', '2026-01-01T00:00:00.000Z'));
    assert.deepEqual((await listUploads(t.db, 10)).map((u) => u.id), ['m-b', 'm-c', 'm-a']);
    assert.deepEqual((await listUploads(t.db, 1)).map((u) => u.id), ['m-b']);
    assert.equal(await countUploads(t.db), 3);
  });

  it('refuses an upload whose model is not stored and a second upload of one id', async () => {
    await assert.rejects(t.db.write((tx) => insertUpload(tx, upload('m-missing', '2026-01-01T00:00:00.000Z'))), CONSTRAINT);
    await assert.rejects(t.db.write((tx) => insertUpload(tx, upload('m-a', '2026-01-03T00:00:00.000Z'))), CONSTRAINT);
    assert.equal(await countUploads(t.db), 3);
  });

  it('stores no model without a name (INSERT OR IGNORE: the NOT NULL refusal is silent, and says so by returning false)', async () => {
    assert.equal(await t.db.write((tx) => insertModel(tx, { ...modelRecord('m-x'), name: null as unknown as string })), false);
    assert.equal(await findModel(t.db, 'm-x'), undefined);
  });
});
