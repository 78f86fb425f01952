import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { flopsCostModel, type CostOp } from '../../src/cost/cost-model.ts';
import { DEFAULT_MS_PER_FLOP, LatencyCostModel, type LocateTables, type TableRef } from '../../src/cost/latency-model.ts';
import { LatencyTable, LatencyTableSet, type LatencyPoint } from '../../src/cost/latency-table.ts';
import { MorphError } from '../../src/errors.ts';
import { costAt } from '../../src/morph/network-cost.ts';

const DEVICE = 'pi4';
const RUNTIME = 'tfjs-wasm';

function op(layer: string, kind: CostOp['kind'], extra: Partial<CostOp> = {}): CostOp {
  return {
    layer,
    kind,
    inLayout: { tile: 1, segments: [{ group: 0, repeat: 1 }] },
    outLayout: { tile: 1, segments: [{ group: 1, repeat: 1 }] },
    inH: 16,
    inW: 16,
    outH: 16,
    outW: 16,
    kernel: [3, 3],
    strides: [1, 1],
    padding: 'same',
    depthMultiplier: 1,
    groups: 1,
    useBias: true,
    activation: 'relu',
    calls: 1,
    ...extra,
  };
}

const pt = (cIn: number, cOut: number, ms: number): LatencyPoint => ({ cIn, cOut, medianMs: ms, p10Ms: ms * 0.98, p90Ms: ms * 1.02, n: 20 });

/** A latency with a kink at 32 input channels, so slopes differ from cell to cell. */
const convMs = (x: number, y: number): number => 0.001 * y * (x <= 32 ? x : 32 + 2 * (x - 32)) + 0.004 * y + 0.02;
const dwMs = (c: number): number => 0.003 * c + 0.01;
const XS = [8, 16, 32, 48, 64, 128];
const YS = [8, 16, 32, 64, 128, 392];

const table = (signature: string, points: LatencyPoint[], device = DEVICE, mode?: 'tied'): LatencyTable =>
  LatencyTable.fromPoints({ device, runtime: RUNTIME, signature }, points, mode ? { mode } : {});

const tables = new LatencyTableSet([
  table('conv3x3', XS.flatMap((x) => YS.map((y) => pt(x, y, convMs(x, y))))),
  table('pw1x1', XS.flatMap((x) => YS.map((y) => pt(x, y, convMs(x, y) / 9)))),
  table('dw3x3', [8, 16, 32, 64, 128, 256].map((c) => pt(c, c, dwMs(c)))),
  table('dense', [392, 1568, 3136].flatMap((x) => [10, 20].map((y) => pt(x, y, 1e-5 * x * y + 0.001)))),
  table('onlyOnLaptop', [pt(8, 8, 1)], 'laptop'),
]);

const locate: LocateTables = (o) => {
  switch (o.kind) {
    case 'conv2d':
      return o.layer === 'unknown' ? { signature: 'conv5x5' } : o.layer === 'laptop' ? { signature: 'onlyOnLaptop' } : { signature: 'conv3x3' };
    case 'depthwise':
      return { signature: 'dw3x3', outMap: [o.depthMultiplier, 0] };
    case 'separable':
      return [
        { signature: 'dw3x3', outMap: [o.depthMultiplier, 0] },
        { signature: 'pw1x1', inMap: [o.depthMultiplier, 0] },
      ] satisfies TableRef[];
    case 'dense':
      return o.inLayout.tile > 1 ? { signature: 'dense', inMap: [o.inLayout.tile, 0] } : undefined;
  }
};

const model = new LatencyCostModel({ device: DEVICE, runtime: RUNTIME, tables, locate });

function finiteDifferences(o: CostOp, cIn: number, cOut: number, h = 1e-3): { dIn: number; dOut: number } {
  return {
    dIn: (model.cost(o, cIn + h, cOut) - model.cost(o, cIn - h, cOut)) / (2 * h),
    dOut: (model.cost(o, cIn, cOut + h) - model.cost(o, cIn, cOut - h)) / (2 * h),
  };
}

const close = (a: number, b: number, tol = 1e-6): boolean => Math.abs(a - b) <= tol * Math.max(Math.abs(b), 1e-12);

describe('LatencyCostModel', () => {
  it('is a CostModel named latency in ms', () => {
    assert.equal(model.name, 'latency');
    assert.equal(model.unit, 'ms');
  });

  it('prices a conv from its table and repeats it for shared layers', () => {
    const conv = op('c1', 'conv2d');
    assert.ok(close(model.cost(conv, 24, 40), convMs(24, 40), 0.05));
    assert.ok(close(model.cost(conv, 16, 64), convMs(16, 64), 1e-12));
    assert.ok(close(model.cost(op('c2', 'conv2d', { calls: 3 }), 16, 64), 3 * convMs(16, 64), 1e-12));
    const e = model.estimate(conv, 16, 64);
    assert.equal(e.source, 'table');
    assert.equal(e.extrapolated, false);
    assert.equal(model.estimate(conv, 200, 64).extrapolated, true);
  });

  it('gives marginals that match finite differences, finite and non-negative', () => {
    const cases: [CostOp, number, number][] = [
      [op('c', 'conv2d'), 20.5, 40.5],
      [op('c', 'conv2d'), 40.3, 100.7],
      [op('c', 'conv2d'), 150, 500],
      [op('c', 'conv2d', { calls: 2 }), 12.2, 12.2],
      [op('d', 'depthwise'), 40.5, 40.5],
      [op('d', 'depthwise', { depthMultiplier: 2 }), 40.5, 81],
      [op('s', 'separable', { depthMultiplier: 2 }), 20.5, 50.5],
      [op('f', 'dense', { inLayout: { tile: 49, segments: [{ group: 0, repeat: 1 }] } }), 20.5, 15.5],
    ];
    for (const [o, cIn, cOut] of cases) {
      const m = model.marginals(o, cIn, cOut);
      const fd = finiteDifferences(o, cIn, cOut);
      assert.ok(Number.isFinite(m.dIn) && Number.isFinite(m.dOut) && m.dIn >= 0 && m.dOut >= 0, `${o.kind} ${JSON.stringify(m)}`);
      assert.ok(close(m.dIn, fd.dIn), `${o.kind} dIn ${m.dIn} vs ${fd.dIn}`);
      assert.ok(close(m.dOut, fd.dOut, 1e-6) || Math.abs(m.dOut - fd.dOut) < 1e-12, `${o.kind} dOut ${m.dOut} vs ${fd.dOut}`);
    }
  });

  it('prices depthwise ops by c_in only and separable ops as depthwise + pointwise', () => {
    const dw = op('d', 'depthwise');
    assert.ok(close(model.cost(dw, 40, 40), dwMs(40), 1e-12));
    assert.equal(model.marginals(dw, 40, 40).dOut, 0);
    const sep = op('s', 'separable', { depthMultiplier: 2 });
    assert.ok(close(model.cost(sep, 16, 32), dwMs(16) + convMs(32, 32) / 9, 1e-12));
  });

  it('maps a dense layer after Flatten to its flattened input features', () => {
    const fc = op('f', 'dense', { inLayout: { tile: 49, segments: [{ group: 0, repeat: 1 }] }, kernel: [1, 1] });
    assert.ok(close(model.cost(fc, 32, 10), 1e-5 * 1568 * 10 + 0.001, 1e-12));
  });

  it('falls back to a FLOP-proportional estimate, says so, and lists what is missing', () => {
    const m = new LatencyCostModel({ device: DEVICE, runtime: RUNTIME, tables, locate, msPerFlop: 1e-8 });
    const unknown = op('unknown', 'conv2d');
    const e = m.estimate(unknown, 16, 32);
    assert.equal(e.source, 'fallback');
    assert.deepEqual(e.missing, ['conv5x5']);
    assert.ok(close(e.ms, 1e-8 * flopsCostModel.cost(unknown, 16, 32), 1e-12));
    const fm = flopsCostModel.marginals(unknown, 16, 32);
    assert.ok(close(e.dIn, 1e-8 * fm.dIn, 1e-12) && close(e.dOut, 1e-8 * fm.dOut, 1e-12));

    const plainDense = op('fc', 'dense', { kernel: [1, 1] });
    assert.equal(m.estimate(plainDense, 64, 10).source, 'fallback');
    // A table of the same signature on another device is not used.
    assert.equal(m.estimate(op('laptop', 'conv2d'), 8, 8).source, 'fallback');

    assert.deepEqual([...m.fallbacks().keys()].sort(), ['fc', 'laptop', 'unknown']);
    assert.deepEqual(m.missingSignatures([unknown, op('laptop', 'conv2d'), op('c', 'conv2d')]), ['conv5x5', 'onlyOnLaptop']);
    assert.equal(model.msPerFlop, DEFAULT_MS_PER_FLOP);
  });

  it('estimates the device rate from the ops that have tables', () => {
    const conv = op('c', 'conv2d');
    const rate = model.observedMsPerFlop([
      { op: conv, cIn: 32, cOut: 32 },
      { op: op('unknown', 'conv2d'), cIn: 32, cOut: 32 },
    ]);
    assert.ok(rate !== undefined && close(rate, convMs(32, 32) / flopsCostModel.cost(conv, 32, 32), 1e-12));
    assert.equal(model.observedMsPerFlop([{ op: op('unknown', 'conv2d'), cIn: 8, cOut: 8 }]), undefined);
  });

  it('works with the network cost the expand step bisects on', () => {
    const ops = [op('c', 'conv2d'), op('d', 'depthwise', { inLayout: { tile: 1, segments: [{ group: 1, repeat: 1 }] }, outLayout: { tile: 1, segments: [{ group: 1, repeat: 1 }] } })];
    assert.ok(close(costAt(ops, model, [16, 32]), convMs(16, 32) + dwMs(32), 1e-12));
  });

  it('rejects bad options and bad table maps', () => {
    const bad = (e: unknown): boolean => e instanceof MorphError && e.code === 'MORPH_ERR_BAD_ARGUMENT';
    assert.throws(() => new LatencyCostModel({ device: '', runtime: RUNTIME, tables, locate }), bad);
    assert.throws(() => new LatencyCostModel({ device: DEVICE, runtime: RUNTIME, tables, locate, msPerFlop: 0 }), bad);
    const negative = new LatencyCostModel({ device: DEVICE, runtime: RUNTIME, tables, locate: () => ({ signature: 'conv3x3', inMap: [-1, 0] }) });
    assert.throws(() => negative.cost(op('c', 'conv2d'), 8, 8), bad);
  });
});
