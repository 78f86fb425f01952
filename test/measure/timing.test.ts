import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MorphError } from '../../src/errors.ts';
import { clockTickMs, DEFAULT_MEASURE_OPTIONS, MIN_TICKS_PER_SAMPLE, measure, summarize, withClockFloor, type MeasureOptions } from '../../src/measure/timing.ts';

/** A fake clock and a run that advances it by `durations(i)` ms on its i-th call. */
function fake(durations: (i: number) => number): { now: () => number; run: () => void; calls: () => number } {
  let t = 1000;
  let i = 0;
  return {
    now: () => t,
    run: () => {
      t += durations(i++);
    },
    calls: () => i,
  };
}

const close = (a: number, b: number, tol = 1e-9): boolean => Math.abs(a - b) <= tol * Math.max(1, Math.abs(b));

describe('summarize', () => {
  it('gives median, p10, p90 (linear interpolation), mean, std and CV', () => {
    const s = summarize([5, 1, 4, 2, 3, 10, 9, 8, 7, 6, 11]);
    assert.equal(s.n, 11);
    assert.equal(s.median, 6);
    assert.equal(s.p10, 2);
    assert.equal(s.p90, 10);
    assert.equal(s.mean, 6);
    assert.ok(close(s.std, Math.sqrt(11)));
    assert.ok(close(s.cv, Math.sqrt(11) / 6));
    assert.equal(s.min, 1);
    assert.equal(s.max, 11);
    const one = summarize([2.5]);
    assert.deepEqual([one.median, one.p10, one.p90, one.std, one.cv], [2.5, 2.5, 2.5, 0, 0]);
    assert.ok(close(summarize([1, 2]).p10, 1.1));
  });

  it('rejects empty and non-finite samples', () => {
    assert.throws(() => summarize([]), (e: unknown) => e instanceof MorphError && e.code === 'MORPH_ERR_BAD_ARGUMENT');
    assert.throws(() => summarize([1, Number.NaN]), (e: unknown) => e instanceof MorphError && e.code === 'MORPH_ERR_BAD_ARGUMENT');
  });
});

describe('measure (fake clock)', () => {
  it('loops a fast op even when its single warm-up run was slow (compilation) and the clock is coarse', async () => {
    // First run 5 ms (compiling), then 20 µs; the clock reads in 0.1 ms steps, as browsers do.
    let t = 1000;
    let i = 0;
    const now = (): number => Math.floor(t * 10) / 10;
    const run = (): void => {
      t += i++ === 0 ? 5 : 0.02;
    };
    const m = await measure(run, { now, warmupRuns: 1, warmupMs: 0, minSamples: 3, minWindowMs: 0 });
    assert.ok(m.runsPerSample > 10, `runsPerSample ${m.runsPerSample}`);
    assert.ok(Math.abs(m.medianMs - 0.02) < 0.005, `median ${m.medianMs}`);
  });

  it('re-sizes the loop when the op runs far faster than its slow warm-up said, on a coarse clock', async () => {
    // The warm-up runs take 1.5 ms each (a busy machine), every later run 20 µs; the clock reads
    // in 0.1 ms steps. The warm-up's estimate says one run per sample, whose samples read 0 ms.
    let t = 1000;
    let i = 0;
    const now = (): number => Math.floor(t * 10) / 10;
    const run = (): void => {
      t += i++ < 4 ? 1.5 : 0.02;
    };
    const m = await measure(run, { now, warmupRuns: 2, warmupMs: 5, minSamples: 3, minWindowMs: 0, maxMs: 1000 });
    assert.ok(m.runsPerSample >= 50, `runsPerSample ${m.runsPerSample}`);
    assert.ok(Math.abs(m.medianMs - 0.02) < 0.005, `median ${m.medianMs}`);
    assert.ok(m.samplesMs.every((s) => s > 0), 'no sample reads 0 ms');
  });

  it('times one run per sample for slow ops and meets the minimums', async () => {
    const f = fake(() => 4);
    const m = await measure(f.run, { now: f.now });
    assert.equal(m.runsPerSample, 1);
    assert.equal(m.medianMs, 4);
    assert.equal(m.p10Ms, 4);
    assert.equal(m.p90Ms, 4);
    assert.equal(m.cv, 0);
    assert.equal(m.stable, true);
    assert.equal(m.attempts, 1);
    assert.equal(m.capped, false);
    // Warm-up: ≥ 5 runs and ≥ 50 ms → 13 runs of 4 ms; sampling: ≥ 20 samples and ≥ 200 ms → 50.
    assert.equal(m.warmupRuns, 13);
    assert.equal(m.n, 50);
    assert.equal(f.calls(), 63);
    assert.equal(m.samplesMs.length, 50);
  });

  it('loops sub-millisecond ops so that each sample lasts ≥ 1 ms and reports per-run times', async () => {
    const f = fake(() => 0.01);
    const m = await measure(f.run, { now: f.now });
    assert.ok(m.runsPerSample >= 100, `runsPerSample ${m.runsPerSample}`);
    assert.ok(m.runsPerSample * 0.01 >= 1);
    assert.ok(close(m.medianMs, 0.01, 1e-6), `median ${m.medianMs}`);
    assert.ok(m.n >= 20);
    assert.ok(m.n * m.runsPerSample * 0.01 >= 200 - 1e-6);
    assert.equal(m.stable, true);
  });

  it('grows the loop until a coarse clock advances (1 ms ticks, 0.02 ms runs)', async () => {
    let exact = 0;
    const now = (): number => Math.floor(exact);
    const run = (): void => {
      exact += 0.02;
    };
    const m = await measure(run, { now, targetSampleMs: 5 });
    assert.ok(m.runsPerSample * 0.02 >= 5, `runsPerSample ${m.runsPerSample}`);
    assert.ok(Math.abs(m.medianMs - 0.02) / 0.02 < 0.25, `median ${m.medianMs}`);
  });

  it('re-measures a noisy op and keeps the tight attempt', async () => {
    // Warm-up (6 runs) and the first attempt (20 runs) alternate 1 ms and 3 ms; then steady 2 ms.
    const f = fake((i) => (i < 26 ? (i % 2 === 0 ? 1 : 3) : 2));
    const m = await measure(f.run, { now: f.now, warmupRuns: 5, warmupMs: 10, minSamples: 20, minWindowMs: 40 });
    assert.equal(f.calls(), 46);
    assert.equal(m.attempts, 2);
    assert.equal(m.stable, true);
    assert.equal(m.medianMs, 2);
    assert.equal(m.cv, 0);
  });

  it('flags an op that stays noisy as unstable after maxAttempts, keeping the tightest attempt', async () => {
    // Spread shrinks but never passes: ±60%, ±50%, ±40% around 10 ms.
    const f = fake((i) => {
      const spread = i < 130 ? 0.6 : i < 160 ? 0.5 : 0.4;
      return 10 * (1 + (i % 2 === 0 ? spread : -spread));
    });
    const m = await measure(f.run, { now: f.now, warmupRuns: 100, warmupMs: 0, minSamples: 30, minWindowMs: 0, maxAttempts: 3 });
    assert.equal(m.attempts, 3);
    assert.equal(m.stable, false);
    assert.ok(close(m.medianMs, 10, 1e-6));
    // The kept attempt is the third (±40%): p10 = 6, p90 = 14.
    assert.ok(close(m.p10Ms, 6, 1e-6) && close(m.p90Ms, 14, 1e-6), `${m.p10Ms} ${m.p90Ms}`);
  });

  it('respects maxMs for slow ops and says it was capped', async () => {
    const f = fake(() => 100);
    const m = await measure(f.run, { now: f.now, maxMs: 1000 });
    assert.ok(m.totalMs <= 1000, `totalMs ${m.totalMs}`);
    assert.equal(m.capped, true);
    assert.ok(m.n >= 1 && m.n < 20);
    assert.equal(m.medianMs, 100);
  });

  it('always takes one warm-up run and one sample, even past the budget', async () => {
    const f = fake(() => 3000);
    const m = await measure(f.run, { now: f.now, maxMs: 1000 });
    assert.equal(m.warmupRuns, 1);
    assert.equal(m.n, 1);
    assert.equal(m.capped, true);
    assert.equal(m.totalMs, 6000);
  });

  it('respects maxSamples', async () => {
    const f = fake(() => 2);
    const m = await measure(f.run, { now: f.now, maxSamples: 30 });
    assert.equal(m.n, 30);
    assert.equal(m.capped, true);
  });

  it('spends no more than maxMs on re-measurement', async () => {
    const f = fake((i) => (i % 2 === 0 ? 1 : 5));
    const m = await measure(f.run, { now: f.now, maxMs: 400, maxAttempts: 10 });
    assert.ok(m.totalMs <= 400, `totalMs ${m.totalMs}`);
    assert.equal(m.stable, false);
    assert.ok(m.attempts < 10);
  });

  it('awaits async runs', async () => {
    const f = fake(() => 2);
    const m = await measure(async () => {
      await Promise.resolve();
      f.run();
    }, { now: f.now, minWindowMs: 50, warmupMs: 10 });
    assert.equal(m.medianMs, 2);
  });

  it('fails clearly when the clock never advances, and on a non-finite clock or bad options', async () => {
    await assert.rejects(measure(() => {}, { now: () => 0, maxRunsPerSample: 1000 }), (e: unknown) => e instanceof MorphError && e.code === 'MORPH_ERR_MEASUREMENT');
    await assert.rejects(measure(() => {}, { now: () => Number.NaN }), (e: unknown) => e instanceof MorphError && e.code === 'MORPH_ERR_MEASUREMENT');
    await assert.rejects(measure(() => {}, { minSamples: 0, maxCv: -1 }), (e: unknown) => {
      assert.ok(e instanceof MorphError && e.code === 'MORPH_ERR_BAD_ARGUMENT');
      assert.match(e.message, /minSamples/);
      assert.match(e.message, /maxCv/);
      return true;
    });
  });

  it('propagates errors thrown by the run', async () => {
    await assert.rejects(measure(() => {
      throw new Error('kernel failed');
    }), /kernel failed/);
  });
});

/**
 * The default clock (performance.now). What is asserted holds however fast or busy the machine
 * is: a busy loop can run longer than asked, never shorter, so per-run times have a floor and no
 * ceiling. How close the medians come to the loop's length is a benchmark
 * (test/bench/measure-busy-loop.ts), not a test: on a loaded machine a 2 ms loop read 5.6 ms.
 */
describe('measure (real clock)', () => {
  const spin = (ms: number) => (): void => {
    const end = performance.now() + ms;
    while (performance.now() < end) {
      // busy
    }
  };
  /** Clock readings are doubles: a difference can come out a rounding error under the loop's length. */
  const EPS = 1e-9;

  it('times a 2 ms busy loop one run per sample, never shorter than the loop, on the real clock', async () => {
    const m = await measure(spin(2), { maxMs: 1500, warmupMs: 20, minWindowMs: 100 });
    // Every run lasts ≥ 2 ms ≥ targetSampleMs (1 ms), so no run is looped, whatever the load.
    assert.equal(m.runsPerSample, 1);
    assert.ok(m.samplesMs.length === m.n && m.n >= 1, `n ${m.n}`);
    assert.ok(m.samplesMs.every((s) => Number.isFinite(s) && s >= 2 - EPS), `samples ${m.samplesMs.join(', ')}`);
    assert.ok(m.medianMs >= 2 - EPS, `median ${m.medianMs}`);
    assert.ok(m.p10Ms <= m.medianMs && m.medianMs <= m.p90Ms, `${m.p10Ms} ${m.medianMs} ${m.p90Ms}`);
    // The kept attempt's samples lie inside the whole measurement, and the warm-up ran first.
    assert.ok(m.warmupRuns >= 1);
    assert.ok(m.totalMs >= m.samplesMs.reduce((a, b) => a + b, 0) + 2 * m.warmupRuns - EPS * (m.n + m.warmupRuns), `totalMs ${m.totalMs}`);
    // Either the minimums were met or the result says the budget cut it short.
    assert.ok(m.capped || m.n >= DEFAULT_MEASURE_OPTIONS.minSamples, `n ${m.n}, capped ${m.capped}`);
  });

  it('times a 0.05 ms busy loop per run, never shorter than the loop, on the real clock', async () => {
    const m = await measure(spin(0.05), { maxMs: 1500, warmupMs: 20, minWindowMs: 100 });
    // How many runs a sample loops depends on how fast they ran (a fake clock tests the sizing
    // above); that each sample is a per-run time does not.
    assert.ok(Number.isInteger(m.runsPerSample) && m.runsPerSample >= 1, `runsPerSample ${m.runsPerSample}`);
    assert.ok(m.samplesMs.every((s) => Number.isFinite(s) && s >= 0.05 - EPS), `samples ${m.samplesMs.join(', ')}`);
    assert.ok(m.medianMs >= 0.05 - EPS, `median ${m.medianMs}`);
    assert.ok(m.p10Ms <= m.medianMs && m.medianMs <= m.p90Ms, `${m.p10Ms} ${m.medianMs} ${m.p90Ms}`);
    assert.ok(m.totalMs >= m.samplesMs.reduce((a, b) => a + b, 0) * m.runsPerSample - EPS * m.n * m.runsPerSample, `totalMs ${m.totalMs}`);
  });
});

describe('the clock floor on a sample', () => {
  /** A clock that reads in steps of `step` ms, each value read `repeat` times, like a coarsened browser clock. */
  function stepped(step: number, repeat: number): () => number {
    let reads = 0;
    return () => Math.floor(reads++ / repeat) * step;
  }

  it('reads the step of a coarse clock and of a fine one, and 0 for a clock that never advances', () => {
    assert.ok(close(clockTickMs(stepped(0.1, 50)), 0.1));
    assert.ok(close(clockTickMs(stepped(0.005, 3)), 0.005));
    assert.equal(clockTickMs(() => 42, 20, 10_000), 0);
  });

  it('raises the sample to 100 ticks of a coarse clock and leaves a fine clock alone', () => {
    assert.equal(MIN_TICKS_PER_SAMPLE, 100);
    assert.ok(close(withClockFloor<MeasureOptions>({ minSamples: 5 }, 0.1).targetSampleMs ?? 0, 10));
    assert.equal(withClockFloor<MeasureOptions>({ minSamples: 5 }, 0.1).minSamples, 5);
    // What the server asked stays where it is already long enough.
    assert.equal(withClockFloor({ targetSampleMs: 25 }, 0.1).targetSampleMs, 25);
    const fine = { targetSampleMs: 1 };
    assert.equal(withClockFloor(fine, 0.0001), fine);
    assert.deepEqual(withClockFloor(undefined, 0), {});
  });

  it('makes a sample on a 0.1 ms clock read to within 1%', async () => {
    // A 0.013 ms run on a clock of 0.1 ms steps: a 1 ms sample reads 10 or 11 ticks; 10 ms, 100 or 101.
    let t = 0;
    const now = (): number => Math.floor(t / 0.1) * 0.1;
    const run = (): void => {
      t += 0.013;
    };
    const m = await measure(run, { ...withClockFloor({}, 0.1), now, warmupRuns: 2, minSamples: 10, minWindowMs: 0 });
    assert.ok(m.runsPerSample * 0.013 >= 10, `${m.runsPerSample} runs a sample`);
    assert.ok(Math.abs(m.medianMs - 0.013) / 0.013 < 0.011, `median ${m.medianMs}`);
  });
});
