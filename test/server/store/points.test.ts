/**
 * server/store/points.ts on a real SQLite database: a point in and out, the upsert that replaces a
 * point at the same (device, runtime, signature, c_in, c_out) including its reference ratio and
 * ms, and the schema's refusals of bad points.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { signature } from '../../../src/ops/op-spec.ts';
import { pointKeys, tablePoints, upsertPoint, type PointRecord } from '../../../server/store/points.ts';
import { CONSTRAINT, openTempDb, type TempDb } from '../../helpers/temp-db.ts';
import { conv, deviceRecord, seedRefs } from './fixtures.ts';

function point(cIn: number, cOut: number, more: Partial<PointRecord> = {}): PointRecord {
  const spec = conv(cIn, cOut);
  return {
    deviceId: 'd-1',
    runtime: 'tfjs-wasm',
    signature: signature(spec),
    cIn,
    cOut,
    medianMs: 1.5,
    p10Ms: 1.4,
    p90Ms: 1.7,
    n: 20,
    cv: 0.05,
    stable: true,
    spec,
    env: { env: deviceRecord('d-1').env, runtime: { name: 'tfjs-wasm', version: 'fake 1.0' }, agentVersion: 'test' },
    jobId: null,
    itemId: null,
    measuredAt: '2026-01-01T00:00:00.000Z',
    refRatio: null,
    refMs: null,
    ...more,
  };
}

const reading = (p: PointRecord) => ({
  signature: p.signature,
  cIn: p.cIn,
  cOut: p.cOut,
  medianMs: p.medianMs,
  p10Ms: p.p10Ms,
  p90Ms: p.p90Ms,
  n: p.n,
  cv: p.cv,
  stable: p.stable,
  measuredAt: p.measuredAt,
  refRatio: p.refRatio,
  refMs: p.refMs,
});

describe('store: points', () => {
  let t: TempDb;
  before(async () => {
    t = await openTempDb();
    await t.db.write((tx) => seedRefs(tx));
  });
  after(() => t.dispose());

  it('stores a point with its spec and environment, and the tables read it back', async () => {
    const p = point(16, 32, { refRatio: 2.5, refMs: 0.6 });
    await t.db.write((tx) => upsertPoint(tx, p));
    assert.deepEqual(await tablePoints(t.db, 'd-1', 'tfjs-wasm'), [reading(p)]);
    const raw = await t.db.get<{ spec_json: string; env_json: string; stable: number }>('SELECT spec_json, env_json, stable FROM points');
    assert.deepEqual(JSON.parse(raw!.spec_json), p.spec);
    assert.deepEqual(JSON.parse(raw!.env_json), p.env);
    assert.equal(raw!.stable, 1);
    assert.deepEqual(await tablePoints(t.db, 'd-1', 'tflite'), []);
  });

  it('an upsert replaces the point at the same key, ref_ratio and ref_ms included (a later unpaired timing clears them)', async () => {
    const paired = point(16, 32, { medianMs: 2, p10Ms: 1.9, p90Ms: 2.2, refRatio: 3.1, refMs: 0.65, stable: false, measuredAt: '2026-01-02T00:00:00.000Z' });
    await t.db.write((tx) => upsertPoint(tx, paired));
    assert.deepEqual(await tablePoints(t.db, 'd-1', 'tfjs-wasm'), [reading(paired)]);
    const plain = point(16, 32, { medianMs: 2.1, measuredAt: '2026-01-03T00:00:00.000Z', jobId: null, itemId: null });
    await t.db.write((tx) => upsertPoint(tx, plain));
    assert.deepEqual(await tablePoints(t.db, 'd-1', 'tfjs-wasm'), [reading(plain)]);
    assert.equal((await t.db.get<{ n: number }>('SELECT COUNT(*) AS n FROM points'))?.n, 1);
  });

  it('reads points by signature, then c_in, then c_out; pointKeys gives their keys', async () => {
    await t.db.write(async (tx) => {
      await upsertPoint(tx, point(32, 16));
      await upsertPoint(tx, point(8, 64));
      await upsertPoint(tx, point(16, 8));
    });
    assert.deepEqual((await tablePoints(t.db, 'd-1', 'tfjs-wasm')).map((p) => [p.cIn, p.cOut]), [[8, 64], [16, 8], [16, 32], [32, 16]]);
    const keys = await pointKeys(t.db, 'd-1', 'tfjs-wasm');
    assert.deepEqual(keys.map((k) => `${k.cIn}x${k.cOut}`).sort(), ['16x32', '16x8', '32x16', '8x64']);
    assert.ok(keys.every((k) => k.signature === signature(conv(1, 1))));
  });

  it('refuses a point with a median of 0, no samples, a ratio or reference ms ≤ 0, or an unknown device', async () => {
    const before = await tablePoints(t.db, 'd-1', 'tfjs-wasm');
    for (const bad of [point(1, 1, { medianMs: 0 }), point(1, 1, { n: 0 }), point(1, 1, { refRatio: 0, refMs: 1 }), point(1, 1, { refRatio: 1, refMs: -1 }), point(1, 1, { deviceId: 'd-unknown' })]) {
      await assert.rejects(t.db.write((tx) => upsertPoint(tx, bad)), CONSTRAINT, JSON.stringify(bad));
    }
    assert.deepEqual(await tablePoints(t.db, 'd-1', 'tfjs-wasm'), before);
  });
});
