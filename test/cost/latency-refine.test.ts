import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { refinementPoints } from '../../src/cost/latency-refine.ts';
import { LatencyTable, type LatencyPoint, type LatencyTableKey } from '../../src/cost/latency-table.ts';
import { MorphError } from '../../src/errors.ts';

const KEY: LatencyTableKey = { device: 'laptop', runtime: 'tflite', signature: 'conv2d:28x28:k3' };

function point(cIn: number, cOut: number, ms: number, spread = 0.02): LatencyPoint {
  return { cIn, cOut, medianMs: ms, p10Ms: ms * (1 - spread), p90Ms: ms * (1 + spread), n: 20 };
}

const gridOf = (xs: number[], ys: number[], f: (x: number, y: number) => number, spread?: number): LatencyPoint[] =>
  xs.flatMap((x) => ys.map((y) => point(x, y, f(x, y), spread)));

/** Latency per input channel jumps 4× past 32 input channels (a cache edge); linear in c_out. */
const kinked = (x: number, y: number): number => 0.01 * y * (x <= 32 ? x : 32 + 4 * (x - 32)) + 0.05;

const XS = [8, 16, 24, 40, 48, 64];
const YS = [8, 16, 32, 64];

describe('refinementPoints', () => {
  it('proposes nothing for a table the interpolant already fits', () => {
    const t = LatencyTable.fromPoints(KEY, gridOf(XS, YS, (x, y) => 0.002 * x * y + 0.01 * x + 0.1));
    assert.deepEqual(refinementPoints(t), []);
  });

  it('proposes c_in lines around a kink, with every measured c_out, and none along c_out', () => {
    const t = LatencyTable.fromPoints(KEY, gridOf(XS, YS, kinked));
    const proposed = refinementPoints(t);
    assert.ok(proposed.length > 0);
    assert.ok(proposed.every((p) => p.axis === 'cIn'));
    const newIns = [...new Set(proposed.map((p) => p.cIn))].sort((a, b) => a - b);
    // The lines at 24 and 40 straddle the kink; their neighbouring midpoints are 20, 32 and 44.
    assert.deepEqual(newIns, [20, 32, 44]);
    for (const cIn of newIns) assert.deepEqual(proposed.filter((p) => p.cIn === cIn).map((p) => p.cOut), YS);
    assert.ok(proposed.every((p) => !XS.includes(p.cIn)));
    // Largest error first: the line at 24 (33%) before the line at 40 (12.5%).
    assert.ok(proposed[0].error > 0.3 && proposed[proposed.length - 1].error < 0.2);

    // Measuring the proposals (the kink point 32 among them) makes the table exact at the kink.
    const refined = LatencyTable.fromPoints(KEY, [...t.points, ...proposed.map((p) => point(p.cIn, p.cOut, kinked(p.cIn, p.cOut)))]);
    for (const cIn of [28, 30, 34, 36]) assert.ok(Math.abs(refined.latency(cIn, 16) - kinked(cIn, 16)) < 1e-9, `cIn ${cIn}`);
    assert.ok(Math.abs(t.latency(30, 16) - kinked(30, 16)) / kinked(30, 16) > 0.1, 'the unrefined table is poor there');
  });

  it('keeps the table a full grid when both axes need refining, and respects maxPoints by whole lines', () => {
    const f = (x: number, y: number): number => kinked(x, 8) * (y <= 32 ? y : 32 + 4 * (y - 32));
    const t = LatencyTable.fromPoints(KEY, gridOf(XS, [8, 16, 24, 40, 48, 64], f));
    const proposed = refinementPoints(t);
    assert.ok(proposed.some((p) => p.axis === 'cIn') && proposed.some((p) => p.axis === 'cOut'));
    const all = [...t.points, ...proposed.map((p) => point(p.cIn, p.cOut, f(p.cIn, p.cOut)))];
    assert.equal(LatencyTable.fromPoints(KEY, all).mode, 'grid');

    const capped = refinementPoints(t, { maxPoints: 10 });
    assert.ok(capped.length <= 10 && capped.length > 0);
    const cappedAll = [...t.points, ...capped.map((p) => point(p.cIn, p.cOut, f(p.cIn, p.cOut)))];
    assert.equal(LatencyTable.fromPoints(KEY, cappedAll).mode, 'grid');
  });

  it('does not refine where the error is within the measurement noise', () => {
    const t = LatencyTable.fromPoints(KEY, gridOf(XS, YS, kinked, 0.5));
    assert.deepEqual(refinementPoints(t), []);
    assert.ok(refinementPoints(t, { tolerance: 0.01 }).length === 0);
  });

  it('rounds proposals to a multiple and skips existing knots', () => {
    const t = LatencyTable.fromPoints(KEY, gridOf(XS, YS, kinked));
    const ins = new Set(refinementPoints(t, { multiple: 8 }).map((p) => p.cIn));
    // Midpoints 20, 32, 44 round to 24 (a knot: skipped), 32, and 48 (a knot: skipped).
    assert.deepEqual([...ins], [32]);
  });

  it('refines tied tables along c_in, keeping c_out tied', () => {
    const f = (c: number): number => (c <= 32 ? c : 32 + 4 * (c - 32)) * 0.01;
    const t = LatencyTable.fromPoints(KEY, [8, 16, 24, 40, 48, 64].map((c) => point(c, 2 * c, f(c))));
    assert.equal(t.mode, 'tied');
    const proposed = refinementPoints(t);
    assert.deepEqual(proposed.map((p) => [p.cIn, p.cOut]).sort((a, b) => a[0] - b[0]), [[20, 40], [32, 64], [44, 88]]);
  });

  it('rejects bad options', () => {
    const t = LatencyTable.fromPoints(KEY, gridOf(XS, YS, kinked));
    const bad = (e: unknown): boolean => e instanceof MorphError && e.code === 'MORPH_ERR_BAD_ARGUMENT';
    assert.throws(() => refinementPoints(t, { tolerance: -1 }), bad);
    assert.throws(() => refinementPoints(t, { multiple: 0 }), bad);
    assert.throws(() => refinementPoints(t, { maxPoints: 1.5 }), bad);
  });
});
