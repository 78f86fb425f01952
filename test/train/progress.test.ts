/** The progress reporter: one redrawn line on a terminal, throttled JSON lines otherwise. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { StepEvent } from '../../src/train/loop.ts';
import { createProgressReporter, formatDuration } from '../../src/train/progress.ts';
import { learningRateAt } from '../../src/train/schedule.ts';

function stepEvent(globalStep: number): StepEvent {
  return { epoch: 1, epochs: 2, step: globalStep, stepsPerEpoch: 10, globalStep, totalSteps: 20, loss: 0.5, extraLoss: 0.1, lr: 0.01, imagesPerSec: 640 };
}
const epochEvent = { epoch: 1, epochs: 2, trainLoss: 0.4, trainExtraLoss: 0.1, valLoss: 0.3, valAccuracy: 0.9, seconds: 12, checkpoint: null };

describe('createProgressReporter', () => {
  it('writes throttled step events and every epoch event as JSON lines', () => {
    let clock = 0;
    const out: string[] = [];
    const r = createProgressReporter({ tty: false, write: (t) => out.push(t), now: () => clock });
    for (let i = 1; i <= 10; i++) {
      clock += 250; // 4 steps a second
      r.onStep(stepEvent(i));
    }
    r.onEpochEnd(epochEvent);
    const events = out.map((l) => {
      assert.ok(l.endsWith('\n'));
      return JSON.parse(l) as Record<string, unknown>;
    });
    const steps = events.filter((e) => e.event === 'step');
    assert.ok(steps.length >= 2 && steps.length <= 4, `${steps.length} step events for 2.5 s`);
    assert.deepEqual(Object.keys(steps[1]), ['event', 'epoch', 'epochs', 'step', 'stepsPerEpoch', 'globalStep', 'totalSteps', 'loss', 'extraLoss', 'lr', 'imagesPerSec', 'etaSeconds']);
    // 0.25 s per step, 20 - 5 steps left at the second event.
    assert.equal(steps[1].etaSeconds, Math.round((20 - (steps[1].globalStep as number)) * 0.25));
    assert.deepEqual(events.at(-1), { event: 'epoch', ...epochEvent });
  });

  it('redraws one line on a terminal and ends it at the epoch', () => {
    let clock = 0;
    const out: string[] = [];
    const r = createProgressReporter({ tty: true, write: (t) => out.push(t), now: () => clock, label: 'shrink' });
    for (let i = 1; i <= 3; i++) {
      clock += 1000;
      r.onStep(stepEvent(i));
    }
    assert.equal(out.length, 3);
    for (const line of out) {
      assert.ok(line.startsWith('\r') && !line.includes('\n'), JSON.stringify(line));
      assert.match(line, /shrink epoch 1\/2 step \d+\/10 loss 0\.5 \+reg 0\.1 lr 0\.01 640 img\/s ETA (\d+s|\?)/);
    }
    assert.match(out[2], /ETA 17s/);
    r.onEpochEnd(epochEvent);
    assert.match(out.at(-1)!, /^\rshrink epoch 1\/2 loss 0\.4 val loss 0\.3 acc 90\.0% \(12s\)\x1b\[K\n$/);
    r.close();
    assert.equal(out.length, 4, 'close after a finished line writes nothing');
  });

  it('formats durations', () => {
    assert.equal(formatDuration(5), '5s');
    assert.equal(formatDuration(93), '1m33s');
    assert.equal(formatDuration(4000), '1h06m');
    assert.equal(formatDuration(Number.NaN), '?');
  });
});

describe('learningRateAt', () => {
  it('is constant, cosine from lr to 0, or stepped ×0.1 at 50% and 75%', () => {
    assert.equal(learningRateAt('constant', 0.1, 50, 100), 0.1);
    assert.equal(learningRateAt('cosine', 0.1, 0, 100), 0.1);
    assert.ok(Math.abs(learningRateAt('cosine', 0.1, 50, 100) - 0.05) < 1e-12);
    assert.ok(learningRateAt('cosine', 0.1, 100, 100) < 1e-12);
    assert.equal(learningRateAt('step', 0.1, 49, 100), 0.1);
    assert.ok(Math.abs(learningRateAt('step', 0.1, 50, 100) - 0.01) < 1e-12);
    assert.ok(Math.abs(learningRateAt('step', 0.1, 80, 100) - 0.001) < 1e-12);
  });
});
