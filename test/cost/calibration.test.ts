import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { applyCalibration, calibratedOpMs, calibrationQuality, fitCalibration, fitCalibrations, MAX_LEAVE_ONE_OUT, MIN_BYTES_NETWORKS, type CalibrationSample } from '../../src/cost/calibration.ts';
import { MorphError } from '../../src/errors.ts';

/** Deterministic pseudo-random numbers in [0, 1). */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function synthetic(n: number, a: number, b: number, c: number, noise = 0, seed = 1, device = 'pi4', runtime = 'tflite'): CalibrationSample[] {
  const r = rng(seed);
  return Array.from({ length: n }, (_, i) => {
    const sumOpsMs = 0.5 + 80 * r() ** 2;
    const nOps = 5 + Math.floor(60 * r());
    const exact = a * sumOpsMs + b * nOps + c;
    return { device, runtime, sumOpsMs, nOps, measuredMs: exact * (1 + noise * (2 * r() - 1)), model: `net${i}` };
  });
}

const close = (x: number, y: number, tol: number): boolean => Math.abs(x - y) <= tol * Math.max(Math.abs(y), 1);
const calibrationErr = (e: unknown): boolean => e instanceof MorphError && e.code === 'MORPH_ERR_CALIBRATION';

describe('fitCalibration', () => {
  it('recovers known coefficients from exact data, with either weighting', () => {
    const samples = synthetic(30, 1.15, 0.04, 0.8);
    for (const weighting of ['relative', 'absolute'] as const) {
      const cal = fitCalibration(samples, { weighting });
      assert.equal(cal.method, 'full');
      assert.ok(close(cal.a, 1.15, 1e-8) && close(cal.b, 0.04, 1e-8) && close(cal.c, 0.8, 1e-8), `${weighting}: ${cal.a} ${cal.b} ${cal.c}`);
      assert.equal(cal.quality.within, 1);
      assert.ok(cal.quality.medianApe < 1e-9);
      assert.equal(cal.samples, 30);
      assert.equal(cal.device, 'pi4');
      assert.equal(cal.runtime, 'tflite');
    }
  });

  it('recovers them closely from noisy data (±3%) and predicts held-out networks within ±10%', () => {
    const cal = fitCalibration(synthetic(40, 1.3, 0.02, 1.5, 0.03, 5));
    assert.ok(close(cal.a, 1.3, 0.03), `a ${cal.a}`);
    assert.ok(Math.abs(cal.b - 0.02) < 0.01, `b ${cal.b}`);
    assert.ok(Math.abs(cal.c - 1.5) < 0.3, `c ${cal.c}`);
    const held = calibrationQuality(cal, synthetic(30, 1.3, 0.02, 1.5, 0.03, 99));
    assert.equal(held.within, 1);
    assert.ok(held.medianApe < 0.03);
  });

  it('fits a negative per-op term (single-op timings that include a per-call overhead)', () => {
    const cal = fitCalibration(synthetic(20, 1.1, -0.005, 0.5));
    assert.ok(Math.abs(cal.b + 0.005) < 0.001, `b ${cal.b}`);
    assert.ok(cal.quality.medianApe < 0.05);
  });

  it('keeps a and c non-negative when the unconstrained fit would not', () => {
    // The truth has a negative constant: the constrained fit sets c = 0 and refits the rest.
    const cal = fitCalibration(synthetic(20, 1.2, 0.05, -0.4));
    assert.ok(cal.a >= 0 && cal.c >= 0);
    assert.equal(cal.c, 0);
    assert.ok(cal.quality.medianApe < 0.05);
  });

  it('falls back to simpler fits with fewer than 3 networks and says so', () => {
    const two = fitCalibration(synthetic(2, 1.1, 0, 0.5));
    assert.equal(two.method, 'scale-offset');
    assert.equal(two.b, 0);
    assert.ok(close(two.a, 1.1, 1e-9) && close(two.c, 0.5, 1e-9));
    assert.match(two.note, /only 2 networks/);
    const one = fitCalibration([{ device: 'd', runtime: 'r', sumOpsMs: 10, nOps: 7, measuredMs: 12 }]);
    assert.equal(one.method, 'scale');
    assert.ok(close(one.a, 1.2, 1e-12) && one.b === 0 && one.c === 0);
    assert.match(one.note, /only 1 network/);
    assert.match(fitCalibration(synthetic(3, 1, 0.1, 0.1)).note, /on 3 networks/);
  });

  it('handles collinear features (every network with the same op count)', () => {
    const samples = synthetic(6, 1.2, 0.05, 0.3).map((s) => ({ ...s, nOps: 10, measuredMs: 1.2 * s.sumOpsMs + 0.5 + 0.3 }));
    const cal = fitCalibration(samples);
    for (const s of samples) assert.ok(close(applyCalibration(cal, s), s.measuredMs, 1e-9));
  });

  it('fits each device and runtime separately', () => {
    const mixed = [...synthetic(5, 1.1, 0.01, 0.2, 0, 1, 'pi4', 'tflite'), ...synthetic(4, 2, 0.1, 1, 0, 2, 'pixel', 'wasm')];
    const cals = fitCalibrations(mixed);
    assert.deepEqual(cals.map((c) => `${c.device}/${c.runtime}`), ['pi4/tflite', 'pixel/wasm']);
    assert.ok(close(cals[1].a, 2, 1e-8) && close(cals[1].b, 0.1, 1e-8) && close(cals[1].c, 1, 1e-8));
    assert.throws(() => fitCalibration(mixed), (e: unknown) => calibrationErr(e) && /one device and runtime/.test((e as Error).message));
  });

  it('rejects empty, NaN and non-positive inputs', () => {
    const ok = synthetic(3, 1, 0.1, 0.1);
    assert.throws(() => fitCalibration([]), calibrationErr);
    assert.throws(() => fitCalibration([...ok, { ...ok[0], measuredMs: Number.NaN }]), calibrationErr);
    assert.throws(() => fitCalibration([...ok, { ...ok[0], measuredMs: 0 }]), calibrationErr);
    assert.throws(() => fitCalibration([...ok, { ...ok[0], sumOpsMs: -1 }]), calibrationErr);
    assert.throws(() => fitCalibration([...ok, { ...ok[0], nOps: 2.5 }]), calibrationErr);
    assert.throws(() => fitCalibration(ok.map((x) => ({ ...x, sumOpsMs: 0 }))), calibrationErr);
    assert.throws(() => applyCalibration({ a: 1, b: 0, c: 0 }, { sumOpsMs: Number.POSITIVE_INFINITY, nOps: 1 }), calibrationErr);
  });
});

describe('leave-one-out quality (outOfSample)', () => {
  it('is perfect on exact data and null with one network', () => {
    const cal = fitCalibration(synthetic(6, 1.15, 0.04, 0.8));
    assert.ok(cal.outOfSample);
    assert.equal(cal.outOfSample.n, 6);
    assert.equal(cal.outOfSample.within, 1);
    assert.equal(fitCalibration(synthetic(1, 1.15, 0.04, 0.8)).outOfSample, null);
  });

  it('predicts each network from a fit on the others, which an outlier shows and the in-sample figure hides', () => {
    // Four networks on a = 2 exactly and one at 3× what that predicts. In sample the outlier pulls
    // the fit toward itself; out of sample each network is judged by a fit it did not shape.
    const s = (sumOpsMs: number, measuredMs: number): CalibrationSample => ({ device: 'd', runtime: 'r', sumOpsMs, nOps: 10, measuredMs, model: `n${sumOpsMs}` });
    const samples = [s(1, 2), s(2, 4), s(3, 6), s(4, 8), s(5, 30)];
    const cal = fitCalibration(samples);
    assert.ok(cal.outOfSample);
    // By hand: leaving out the outlier, the others fit a = 2 exactly and predict it at 10 ms: 67% low.
    const left = fitCalibration(samples.slice(0, 4));
    assert.ok(Math.abs(applyCalibration(left, samples[4]) - 10) < 1e-9);
    assert.ok(cal.outOfSample.withinCount < cal.outOfSample.n);
    assert.ok(cal.outOfSample.medianApe >= cal.quality.medianApe, `${cal.outOfSample.medianApe} vs ${cal.quality.medianApe}`);
  });
});

/** Networks whose latency depends on the memory they move as well (truth: a, b, c, d, e). */
function withBytes(n: number, t: { a: number; b: number; c: number; d: number; e: number }, noise = 0, seed = 3): CalibrationSample[] {
  const r = rng(seed);
  return Array.from({ length: n }, (_, i) => {
    const sumOpsMs = 0.5 + 20 * r();
    const nOps = 8 + Math.floor(40 * r());
    // Activations move independently of the op time: a large-image network of cheap ops moves many.
    const ioMB = 0.5 + 10 * r();
    const weightMB = 0.05 + 3 * r();
    const exact = t.a * sumOpsMs + t.b * nOps + t.d * ioMB + t.e * weightMB + t.c;
    return { device: 'd', runtime: 'r', sumOpsMs, nOps, ioMB, weightMB, measuredMs: exact * (1 + noise * (2 * r() - 1)), model: `net${i}` };
  });
}

describe('the memory terms (method bytes)', () => {
  const truth = { a: 1.05, b: -0.003, c: 0.1, d: -0.18, e: 0.06 };

  it('recovers d and e from exact data and keeps them, because only they predict unseen networks within the tolerance', () => {
    const samples = withBytes(20, truth);
    assert.ok(samples.every((x) => x.measuredMs > 0));
    const cal = fitCalibration(samples, { tolerance: 0.001 });
    assert.equal(cal.method, 'bytes');
    for (const k of ['a', 'b', 'c', 'd', 'e'] as const) assert.ok(Math.abs(cal[k] - truth[k]) < 1e-6, `${k}: ${cal[k]} vs ${truth[k]}`);
    assert.equal(cal.outOfSample?.within, 1);
    assert.match(cal.note, /terms chosen out of sample .*: a·Σops \+ b·nOps \+ d·Σ activation MB \+ e·Σ weight MB \+ c, 20\/20 within ±0% \(RMS 0\.0%\).*memory terms kept/);
    // The classic fit cannot bend to the bytes: out of sample it misses some of these networks.
    const classic = fitCalibration(samples.map(({ ioMB: _i, weightMB: _w, ...rest }) => rest));
    assert.equal(classic.method, 'full');
    assert.ok((classic.outOfSample?.withinCount ?? 0) < 20, `classic ${classic.outOfSample?.withinCount}/20`);
  });

  it('leaves them out when the bytes do not explain the latency, and says why', () => {
    // The truth has no memory terms and the data ±3% noise: five unknowns only fit the noise.
    const samples = withBytes(12, { ...truth, d: 0, e: 0 }, 0.03, 11);
    const cal = fitCalibration(samples);
    assert.notEqual(cal.method, 'bytes');
    assert.equal(cal.d, 0);
    assert.equal(cal.e, 0);
    assert.match(cal.note, /terms chosen out of sample .*\d+\/12 within ±10% \(RMS [\d.]+%\), against \d+\/12 for the classic .*memory terms left out/);
    assert.ok((cal.outOfSample?.withinCount ?? 0) >= 11, JSON.stringify(cal.outOfSample));
  });

  it('is not tried with fewer networks than MIN_BYTES_NETWORKS, nor when a network has no byte counts', () => {
    assert.equal(fitCalibration(withBytes(MIN_BYTES_NETWORKS - 1, truth)).method, 'full');
    assert.doesNotMatch(fitCalibration(withBytes(MIN_BYTES_NETWORKS - 1, truth)).note, /memory terms/);
    const samples = withBytes(20, truth);
    assert.equal(fitCalibration([...samples.slice(1), { ...samples[0], ioMB: undefined }]).method, 'full');
  });

  it('judges many networks by 10-fold cross-validation, every network predicted out of sample once', () => {
    const samples = withBytes(MAX_LEAVE_ONE_OUT + 10, truth);
    const exact = fitCalibration(samples);
    assert.equal(exact.method, 'bytes');
    assert.equal(exact.outOfSample?.n, samples.length);
    assert.equal(exact.outOfSample?.within, 1);
    // One network far off: held out, no fit it shaped predicts it, so it is the one miss.
    const off = samples.map((x, i) => (i === 7 ? { ...x, measuredMs: x.measuredMs * 3 } : x));
    const cal = fitCalibration(off);
    assert.ok(cal.outOfSample && cal.outOfSample.withinCount < samples.length && cal.outOfSample.withinCount >= samples.length - 8, JSON.stringify(cal.outOfSample));
  });

  it('applies per op, so the ops add up to the network less c', () => {
    const ops = [
      { tableMs: 0.4, ioMB: 1.2, weightMB: 0.3 },
      { tableMs: 1.1, ioMB: 0.4, weightMB: 0.9 },
      { tableMs: 0.2, ioMB: 2.5, weightMB: 0 },
    ];
    const total = applyCalibration(truth, {
      sumOpsMs: 1.7,
      nOps: 3,
      ioMB: 4.1,
      weightMB: 1.2,
    });
    const byOps = ops.reduce((s, o) => s + calibratedOpMs(truth, o.tableMs, o), 0);
    assert.ok(Math.abs(byOps + truth.c - total) < 1e-12, `${byOps} + ${truth.c} vs ${total}`);
    // By hand: 1.05·1.7 − 0.003·3 − 0.18·4.1 + 0.06·1.2 + 0.1.
    assert.ok(Math.abs(total - (1.785 - 0.009 - 0.738 + 0.072 + 0.1)) < 1e-12);
    assert.throws(() => applyCalibration(truth, { sumOpsMs: 1, nOps: 1, ioMB: -1 }), calibrationErr);
  });
});

describe('calibrationQuality', () => {
  it('counts networks within ±10% and takes the median absolute percentage error', () => {
    const cal = { a: 1, b: 0, c: 0 };
    const s = (sumOpsMs: number, measuredMs: number): CalibrationSample => ({ device: 'd', runtime: 'r', sumOpsMs, nOps: 1, measuredMs });
    const q = calibrationQuality(cal, [s(100, 100), s(105, 100), s(90, 100), s(80, 100)]);
    assert.equal(q.n, 4);
    assert.equal(q.withinCount, 3);
    assert.equal(q.within, 0.75);
    assert.ok(Math.abs(q.medianApe - 0.075) < 1e-12);
    assert.equal(calibrationQuality(cal, [s(100, 100), s(105, 100), s(90, 100), s(80, 100)], 0.05).withinCount, 2);
  });
});
