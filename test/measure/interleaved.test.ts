import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MorphError } from '../../src/errors.ts';
import { measureInterleaved } from '../../src/measure/interleaved.ts';
import { measure } from '../../src/measure/timing.ts';

/**
 * A simulated device with two speeds: a run of base cost `ms` takes `ms · slow` while the
 * simulated clock is inside a slow phase (phases of `phaseMs`, alternating fast/slow), as this
 * VM does (docs/benchmarks.md, "The machine has two speeds").
 */
function twoSpeedDevice(phaseMs: number, slow: number, startMs = 0): { now: () => number; op: (ms: number) => () => void } {
  let t = startMs;
  return {
    now: () => t,
    op: (ms) => () => {
      t += Math.floor(t / phaseMs) % 2 === 1 ? ms * slow : ms;
    },
  };
}

describe('measureInterleaved', () => {
  it('reads the true ratio where phases switch between and within measurements; one-after-the-other measurements do not', async () => {
    // Reference 2 ms, candidate 3 ms: the true ratio is 1.5.
    const sep = twoSpeedDevice(400, 1.6);
    const refAlone = await measure(sep.op(2), { now: sep.now, maxMs: 600, minWindowMs: 300 });
    const candAlone = await measure(sep.op(3), { now: sep.now, maxMs: 600, minWindowMs: 300 });
    const separate = candAlone.medianMs / refAlone.medianMs;
    // The reference ran in the fast phase, the candidate mostly in the slow one.
    assert.ok(separate > 1.5 * 1.3, `separate ratio ${separate}`);

    const dev = twoSpeedDevice(400, 1.6);
    const m = await measureInterleaved([dev.op(2), dev.op(3)], { now: dev.now, minRounds: 30, minWindowMs: 2000 });
    assert.ok(Math.abs(m.ratios[1].median / 1.5 - 1) < 0.01, `interleaved ratio ${m.ratios[1].median}`);
    assert.equal(m.ratios[0].median, 1);
    // The per-run times themselves still carry both phases.
    assert.ok(m.each[1].max > m.each[1].min * 1.5);
    assert.ok(m.rounds >= 30);
    assert.equal(m.capped, false);
  });

  it('loops short runs to fill a sample, each runnable with its own loop size', async () => {
    const dev = twoSpeedDevice(1e9, 1);
    const m = await measureInterleaved([dev.op(0.1), dev.op(0.5), dev.op(4)], { now: dev.now, targetSampleMs: 1 });
    assert.deepEqual(m.runsPerSample, [12, 3, 1]);
    assert.ok(Math.abs(m.each[0].median - 0.1) < 1e-9 && Math.abs(m.each[2].median - 4) < 1e-9);
    assert.ok(Math.abs(m.ratios[1].median - 5) < 1e-9 && Math.abs(m.ratios[2].median - 40) < 1e-9);
  });

  it('grows a loop whose runs turn out far shorter than the warm-up said, on a coarse clock', async () => {
    // A browser's clock: 0.1 ms steps. Each runnable's first three runs are slow (compilation),
    // then the reference takes 0.02 ms and the network 0.05 ms; a loop of one run reads 0 ticks.
    let t = 0;
    const now = (): number => Math.floor(t / 0.1) * 0.1;
    const op = (ms: number): (() => void) => {
      let n = 0;
      return () => {
        t += n++ < 3 ? 2 : ms;
      };
    };
    const m = await measureInterleaved([op(0.02), op(0.05)], { now, targetSampleMs: 1, minRounds: 20, minWindowMs: 0 });
    assert.ok(m.runsPerSample[0] >= 12 && m.runsPerSample[1] >= 5, `runs per sample ${m.runsPerSample}`);
    assert.ok(Math.abs(m.ratios[1].median / 2.5 - 1) < 0.1, `ratio ${m.ratios[1].median}`);
    assert.equal(m.rounds, 20);
  });

  it('stops at the time budget, after at least one round, and says so', async () => {
    const dev = twoSpeedDevice(1e9, 1);
    const m = await measureInterleaved([dev.op(50), dev.op(60)], { now: dev.now, maxMs: 400, minRounds: 15 });
    assert.equal(m.capped, true);
    assert.ok(m.rounds >= 1 && m.rounds < 15);
    assert.ok(m.totalMs <= 400 + 110);
  });

  it('alternates the order each round (A B, B A, …)', async () => {
    const dev = twoSpeedDevice(1e9, 1);
    const calls: string[] = [];
    const a = dev.op(2);
    const b = dev.op(2);
    await measureInterleaved(
      [
        () => {
          calls.push('a');
          a();
        },
        () => {
          calls.push('b');
          b();
        },
      ],
      { now: dev.now, warmupRuns: 0, minRounds: 3, minWindowMs: 0 },
    );
    // One warm-up run each (at least one is always taken), then the rounds.
    assert.deepEqual(calls.join(''), 'ab' + 'ab' + 'ba' + 'ab');
  });

  it('refuses fewer than two runnables, bad options and a clock that does not advance', async () => {
    const bad = (e: unknown): boolean => e instanceof MorphError && e.code === 'MORPH_ERR_BAD_ARGUMENT';
    await assert.rejects(measureInterleaved([() => {}]), bad);
    await assert.rejects(measureInterleaved([() => {}, () => {}], { minRounds: 0 }), bad);
    await assert.rejects(measureInterleaved([() => {}, () => {}], { maxMs: Number.NaN }), bad);
    await assert.rejects(
      measureInterleaved([() => {}, () => {}], { now: () => 5, maxRunsPerSample: 10 }),
      (e: unknown) => e instanceof MorphError && e.code === 'MORPH_ERR_MEASUREMENT',
    );
  });
});
