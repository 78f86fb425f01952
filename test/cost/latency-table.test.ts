import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isotonic1d, isotonic2d } from '../../src/cost/isotonic.ts';
import { LatencyTable, LatencyTableSet, missingGridPoints, tableKey, type LatencyPoint, type LatencyTableKey } from '../../src/cost/latency-table.ts';
import { MorphError } from '../../src/errors.ts';

const KEY: LatencyTableKey = { device: 'pi4', runtime: 'tfjs-wasm', signature: 'conv2d:56x56:k3:s1:same:relu' };

/** A latency that is bilinear in the channel counts: compute ∝ cIn·cOut, traffic ∝ cIn and cOut, overhead. */
const bilinear = (cIn: number, cOut: number): number => 0.002 * cIn * cOut + 0.01 * cIn + 0.02 * cOut + 0.05;

function point(cIn: number, cOut: number, ms: number, spread = 0.02): LatencyPoint {
  return { cIn, cOut, medianMs: ms, p10Ms: ms * (1 - spread), p90Ms: ms * (1 + spread), n: 20 };
}

function gridOf(xs: number[], ys: number[], f: (x: number, y: number) => number, spread?: number): LatencyPoint[] {
  return xs.flatMap((x) => ys.map((y) => point(x, y, f(x, y), spread)));
}

/** Deterministic pseudo-random numbers in [0, 1). */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const rel = (a: number, b: number): number => Math.abs(a - b) / Math.abs(b);
const codeOf = (code: string) => (e: unknown): boolean => e instanceof MorphError && e.code === code;

const XS = [8, 16, 32, 48, 64];
const YS = [8, 24, 40, 64];

describe('LatencyTable interpolation', () => {
  const table = LatencyTable.fromPoints(KEY, gridOf(XS, YS, bilinear));

  it('is a grid table with sorted axes', () => {
    assert.equal(table.mode, 'grid');
    assert.deepEqual(table.cIns, XS);
    assert.deepEqual(table.cOuts, YS);
    assert.equal(table.points.length, 20);
  });

  it('reproduces a bilinear latency exactly, inside the grid and beyond it', () => {
    for (let cIn = 1; cIn <= 128; cIn += 3) {
      for (let cOut = 1; cOut <= 128; cOut += 5) {
        const e = table.estimate(cIn, cOut);
        assert.ok(rel(e.ms, bilinear(cIn, cOut)) < 1e-9, `(${cIn}, ${cOut}): ${e.ms} vs ${bilinear(cIn, cOut)}`);
        assert.equal(e.extrapolated, !(cIn >= 8 && cIn <= 64 && cOut >= 8 && cOut <= 64));
      }
    }
  });

  it('gives marginals equal to the exact partial derivatives of a bilinear latency', () => {
    for (const [cIn, cOut] of [[10, 10], [33, 50], [63.5, 9], [100, 100], [4, 70]]) {
      const e = table.estimate(cIn, cOut);
      assert.ok(rel(e.dIn, 0.002 * cOut + 0.01) < 1e-9, `dIn at (${cIn}, ${cOut})`);
      assert.ok(rel(e.dOut, 0.002 * cIn + 0.02) < 1e-9, `dOut at (${cIn}, ${cOut})`);
    }
  });

  it('gives marginals that match central finite differences of the interpolant off the knots', () => {
    const f = (x: number, y: number): number => 0.1 + 0.01 * x * y + (x > 30 ? 0.5 * (x - 30) : 0) + Math.sqrt(y);
    const kinked = LatencyTable.fromPoints(KEY, gridOf(XS, YS, f));
    const h = 1e-3;
    for (const [cIn, cOut] of [[12.3, 17.1], [40.2, 30.7], [55.5, 60.2], [20.7, 50.1]]) {
      const e = kinked.estimate(cIn, cOut);
      const fdIn = (kinked.latency(cIn + h, cOut) - kinked.latency(cIn - h, cOut)) / (2 * h);
      const fdOut = (kinked.latency(cIn, cOut + h) - kinked.latency(cIn, cOut - h)) / (2 * h);
      assert.ok(rel(e.dIn, fdIn) < 1e-6, `dIn ${e.dIn} vs ${fdIn}`);
      assert.ok(rel(e.dOut, fdOut) < 1e-6, `dOut ${e.dOut} vs ${fdOut}`);
      assert.ok(e.dIn > 0 && e.dOut > 0);
    }
  });

  it('uses the forward cell at a grid knot (the cost of one more channel)', () => {
    const f = (x: number): number => (x <= 32 ? x : 32 + 3 * (x - 32));
    const t = LatencyTable.fromPoints(KEY, gridOf(XS, [16, 32], (x) => f(x)));
    assert.ok(rel(t.estimate(32, 16).dIn, 3) < 1e-12);
    assert.ok(rel(t.estimate(16, 16).dIn, 1) < 1e-12);
    assert.ok(rel(t.estimate(64, 16).dIn, 3) < 1e-12);
  });

  it('stays close to a noisy bilinear latency (3% noise → well under 3% error between points)', () => {
    const r = rng(7);
    const noisy = gridOf(XS, YS, (x, y) => bilinear(x, y) * (1 + 0.06 * (r() - 0.5)));
    const t = LatencyTable.fromPoints(KEY, noisy);
    let worst = 0;
    for (let cIn = 8; cIn <= 64; cIn += 2) for (let cOut = 8; cOut <= 64; cOut += 2) worst = Math.max(worst, rel(t.latency(cIn, cOut), bilinear(cIn, cOut)));
    assert.ok(worst < 0.035, `worst relative error ${worst}`);
  });

  it('makes noisy dips monotone so that every marginal is ≥ 0', () => {
    const pts = gridOf(XS, YS, bilinear).map((p) => (p.cIn === 48 && p.cOut === 40 ? point(48, 40, bilinear(32, 40) * 0.9) : p));
    const t = LatencyTable.fromPoints(KEY, pts);
    for (let i = 0; i < XS.length; i++) {
      for (let j = 0; j < YS.length; j++) {
        if (i > 0) assert.ok(t.values[i][j] >= t.values[i - 1][j]);
        if (j > 0) assert.ok(t.values[i][j] >= t.values[i][j - 1]);
      }
    }
    for (let cIn = 1; cIn <= 100; cIn += 1.5) {
      for (let cOut = 1; cOut <= 100; cOut += 3.5) {
        const e = t.estimate(cIn, cOut);
        assert.ok(e.dIn >= 0 && e.dOut >= 0 && Number.isFinite(e.dIn) && Number.isFinite(e.dOut) && e.ms >= 0);
      }
    }
    const raw = LatencyTable.fromPoints(KEY, pts, { monotone: false });
    assert.ok(raw.values[3][2] < raw.values[2][2]);
    assert.equal(raw.estimate(40, 40).dIn, 0, 'negative slopes are clamped at 0');
  });

  it('reads tied tables (depthwise: c_out = c_in) as piecewise linear in c_in with dOut = 0', () => {
    const f = (c: number): number => 0.01 + 0.003 * c;
    const t = LatencyTable.fromPoints(KEY, [8, 16, 32, 64].map((c) => point(c, c, f(c))));
    assert.equal(t.mode, 'tied');
    for (const c of [4, 8, 20, 64, 100]) {
      const e = t.estimate(c, c);
      assert.ok(rel(e.ms, f(c)) < 1e-9, `c=${c}`);
      assert.ok(rel(e.dIn, 0.003) < 1e-9);
      assert.equal(e.dOut, 0);
    }
    assert.equal(LatencyTable.fromPoints(KEY, [8, 16].map((c) => point(c, 2 * c, f(c)))).mode, 'tied');
  });

  it('scales an axis with a single measured value proportionally', () => {
    const one = LatencyTable.fromPoints(KEY, [point(3, 32, 2)]);
    assert.ok(rel(one.latency(3, 64), 4) < 1e-12);
    assert.ok(rel(one.latency(6, 32), 4) < 1e-12);
    assert.ok(rel(one.estimate(3, 32).dOut, 2 / 32) < 1e-12);
    const firstConv = LatencyTable.fromPoints(KEY, [8, 16, 32].map((c) => point(3, c, 0.1 + 0.01 * c)));
    assert.ok(rel(firstConv.latency(3, 24), 0.34) < 1e-12);
    const tiedOne = LatencyTable.fromPoints(KEY, [point(16, 16, 1)], { mode: 'tied' });
    assert.ok(rel(tiedOne.latency(32, 32), 2) < 1e-12);
  });
});

describe('LatencyTable validation', () => {
  it('rejects an empty table', () => {
    assert.throws(() => LatencyTable.fromPoints(KEY, []), codeOf('MORPH_ERR_LATENCY_TABLE'));
  });

  it('rejects NaN, negative and misordered timings, and bad counts, listing every problem', () => {
    const bad: LatencyPoint[] = [
      { cIn: 8, cOut: 8, medianMs: Number.NaN, p10Ms: 1, p90Ms: 2, n: 20 },
      { cIn: 8, cOut: 16, medianMs: -1, p10Ms: -2, p90Ms: 0, n: 20 },
      { cIn: 16, cOut: 8, medianMs: 1, p10Ms: 1.5, p90Ms: 2, n: 20 },
      { cIn: 16, cOut: 16.5, medianMs: 1, p10Ms: 1, p90Ms: 1, n: 0 },
    ];
    assert.throws(() => LatencyTable.fromPoints(KEY, bad), (e: unknown) => {
      assert.ok(e instanceof MorphError && e.code === 'MORPH_ERR_LATENCY_TABLE');
      const problems = e.details.problems as string[];
      assert.ok(problems.some((p) => p.includes('(8, 8)') && p.includes('NaN')));
      assert.ok(problems.some((p) => p.includes('(8, 16)') && p.includes('-1')));
      assert.ok(problems.some((p) => p.includes('(16, 8)') && p.includes('p10Ms')));
      assert.ok(problems.some((p) => p.includes('(16, 16.5)') && p.includes('positive integers')));
      assert.ok(problems.some((p) => p.includes('n must be')));
      assert.match(e.message, /pi4\/tfjs-wasm/);
      return true;
    });
    assert.throws(() => LatencyTable.fromPoints(KEY, [point(8, 8, Number.POSITIVE_INFINITY)]), codeOf('MORPH_ERR_LATENCY_TABLE'));
  });

  it('rejects duplicate points', () => {
    assert.throws(() => LatencyTable.fromPoints(KEY, [point(8, 8, 1), point(8, 8, 1.1)]), (e: unknown) => {
      assert.ok(e instanceof MorphError && e.code === 'MORPH_ERR_LATENCY_TABLE');
      assert.match(e.message, /\(8, 8\) appears twice/);
      return true;
    });
  });

  it('rejects a grid with holes and lists the missing points', () => {
    const pts = gridOf([8, 16, 32], [8, 16], bilinear).filter((p) => !(p.cIn === 16 && p.cOut === 8));
    assert.deepEqual(missingGridPoints(pts), [{ cIn: 16, cOut: 8 }]);
    assert.throws(() => LatencyTable.fromPoints(KEY, pts), (e: unknown) => {
      assert.ok(e instanceof MorphError && e.code === 'MORPH_ERR_LATENCY_TABLE');
      assert.deepEqual(e.details.missing, [{ cIn: 16, cOut: 8 }]);
      return true;
    });
    assert.throws(() => LatencyTable.fromPoints(KEY, gridOf([8, 16], [8, 16], bilinear), { mode: 'tied' }), codeOf('MORPH_ERR_LATENCY_TABLE'));
  });

  it('with fillMissing, completes scattered points (several models on one table) by the bilinear fit', () => {
    // Points as three networks with their own channel counts leave them: no full grid, and a
    // shape that looks tied; a conv table must still be a grid.
    const pts = [point(16, 32, bilinear(16, 32)), point(24, 48, bilinear(24, 48)), point(40, 40, bilinear(40, 40)), point(64, 16, bilinear(64, 16)), point(8, 96, bilinear(8, 96))];
    const t = LatencyTable.fromPoints(KEY, pts, { mode: 'grid', fillMissing: true });
    assert.equal(t.mode, 'grid');
    assert.equal(t.points.length, 5);
    assert.equal(t.filled.length, 5 * 5 - 5);
    // The latency is exactly bilinear, so the fit and therefore every cell reproduce it.
    for (const [x, y] of [[16, 32], [30, 50], [64, 96], [10, 20]]) assert.ok(rel(t.latency(x, y), bilinear(x, y)) < 1e-6, `${x}, ${y}`);
    // Measured points read back as measured, filled ones do not.
    assert.equal(t.measured(24, 48), bilinear(24, 48));
    assert.equal(t.measured(24, 32), undefined);
    // Too few points for the fit: the nearest point scaled by c_in·c_out.
    const two = LatencyTable.fromPoints(KEY, [point(16, 16, 1), point(32, 64, 8)], { mode: 'grid', fillMissing: true });
    assert.ok(rel(two.latency(16, 64), (1 * 16 * 64) / (16 * 16)) < 1e-9 || rel(two.latency(16, 64), (8 * 16 * 64) / (32 * 64)) < 1e-9);
    assert.throws(() => LatencyTable.fromPoints(KEY, pts, { mode: 'grid' }), codeOf('MORPH_ERR_LATENCY_TABLE'));
  });

  it('rejects an empty key and bad query points', () => {
    assert.throws(() => LatencyTable.fromPoints({ ...KEY, device: '' }, [point(8, 8, 1)]), codeOf('MORPH_ERR_LATENCY_TABLE'));
    const t = LatencyTable.fromPoints(KEY, [point(8, 8, 1)]);
    assert.throws(() => t.estimate(Number.NaN, 8), codeOf('MORPH_ERR_BAD_ARGUMENT'));
    assert.throws(() => t.estimate(8, -1), codeOf('MORPH_ERR_BAD_ARGUMENT'));
  });
});

describe('LatencyTableSet', () => {
  it('keys tables by device, runtime and signature without ambiguity', () => {
    const a = LatencyTable.fromPoints({ device: 'a"b', runtime: 'c', signature: 's' }, [point(8, 8, 1)]);
    const b = LatencyTable.fromPoints({ device: 'a', runtime: 'b"c', signature: 's' }, [point(8, 8, 2)]);
    assert.notEqual(tableKey(a.key), tableKey(b.key));
    const set = new LatencyTableSet([a, b]);
    assert.equal(set.size, 2);
    assert.equal(set.get({ device: 'a', runtime: 'b"c', signature: 's' }), b);
    assert.equal(set.has({ device: 'a', runtime: 'c', signature: 's' }), false);
  });
});

describe('isotonic fits', () => {
  it('pools adjacent violators in 1-D', () => {
    assert.deepEqual(isotonic1d([1, 3, 2, 4]), [1, 2.5, 2.5, 4]);
    assert.deepEqual(isotonic1d([1, 2, 3]), [1, 2, 3]);
  });

  it('leaves a monotone grid unchanged and makes a noisy one monotone in both axes', () => {
    const g = [[1, 2, 3], [2, 3, 4], [3, 5, 6]];
    assert.deepEqual(isotonic2d(g), g);
    const r = rng(3);
    const noisy = Array.from({ length: 6 }, (_, i) => Array.from({ length: 5 }, (_, j) => i + j + 2 * (r() - 0.5)));
    const fit = isotonic2d(noisy);
    for (let i = 0; i < 6; i++) for (let j = 0; j < 5; j++) {
      if (i > 0) assert.ok(fit[i][j] >= fit[i - 1][j]);
      if (j > 0) assert.ok(fit[i][j] >= fit[i][j - 1]);
    }
    // A least-squares fit keeps the mean of the data.
    const mean = (m: number[][]): number => m.flat().reduce((a, b) => a + b, 0) / m.flat().length;
    assert.ok(Math.abs(mean(fit) - mean(noisy)) < 1e-6);
  });
});
