import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compareDevices, type ColumnInput } from '../../src/cost/device-comparison.ts';

const column = (deviceId: string, runtime: string, layers: [string, number, number | null][] | number, measured: number | null = null): ColumnInput => ({
  deviceId,
  deviceName: `${deviceId} name`,
  runtime,
  online: true,
  prediction: typeof layers === 'number' ? { missingSignatures: layers } : { predictedMs: layers.reduce((s, [, p]) => s + p, 0), layers: layers.map(([name, predictedMs, measuredMs]) => ({ name, predictedMs, measuredMs })) },
  measured: measured === null ? null : { medianMs: measured, p10Ms: measured * 0.9, p90Ms: measured * 1.1, measuredAt: '2026-12-06T00:00:00.000Z' },
});

describe('compareDevices', () => {
  it('marks each figure measured or predicted, flags the slowest layers per column and orders columns by total', () => {
    const phone = column('phone', 'tflite', [
      ['conv1', 2, 2.5],
      ['conv2', 1, null],
      ['gap', 0.1, 0.05],
      ['dense', 0.3, null],
    ]);
    const laptop = column('laptop', 'tfjs-wasm', [
      ['conv1', 0.4, null],
      ['conv2', 0.5, null],
      ['gap', 0.01, null],
      ['dense', 0.6, 0.02],
    ], 1.2);
    const board = column('board', 'tflite', 3);
    const c = compareDevices([phone, board, laptop], 2);
    assert.deepEqual(c.layers, ['conv1', 'conv2', 'gap', 'dense']);
    // laptop (1.2 ms measured) < phone (3.4 ms predicted) < board (nothing known).
    assert.deepEqual(c.columns.map((col) => col.deviceId), ['laptop', 'phone', 'board']);
    const [l, p, b] = c.columns;
    assert.deepEqual(l.total, { ms: 1.2, source: 'measured' });
    assert.ok(Math.abs((l.predictedMs as number) - 1.51) < 1e-12);
    assert.deepEqual(p.total, { ms: 3.4, source: 'predicted' });
    assert.equal(b.total, null);
    assert.equal(b.missingSignatures, 3);
    assert.deepEqual(b.layers, [null, null, null, null]);
    assert.deepEqual(b.slowest, []);
    // A layer's own measurement (the op alone at these widths) wins over its prediction.
    assert.deepEqual(p.layers, [
      { ms: 2.5, source: 'measured', slow: true },
      { ms: 1, source: 'predicted', slow: true },
      { ms: 0.05, source: 'measured', slow: false },
      { ms: 0.3, source: 'predicted', slow: false },
    ]);
    assert.deepEqual(p.slowest, ['conv1', 'conv2']);
    // The laptop's dense measured 0.02 ms alone: it is not among the slowest, conv2 and conv1 are.
    assert.deepEqual(l.slowest, ['conv2', 'conv1']);
    assert.deepEqual(l.layers.map((x) => x?.slow), [true, true, false, false]);
  });

  it('keeps a layer that only some columns have, with no figure where it is missing', () => {
    const a = column('a', 'tflite', [['x', 1, null], ['y', 2, null]]);
    const b = column('b', 'tflite', [['x', 1, null], ['z', 3, null]]);
    const c = compareDevices([a, b]);
    assert.deepEqual(c.layers, ['x', 'y', 'z']);
    const colB = c.columns.find((col) => col.deviceId === 'b');
    assert.equal(colB?.layers[1], null);
    assert.equal(colB?.layers[2]?.ms, 3);
  });
});
