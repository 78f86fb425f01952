/**
 * `nextAim` against simulated devices whose measured latency depends on the predicted latency
 * expand aimed at: a constant factor, the offset line recorded on Node tflite (the first
 * MobileNet search of docs/bench/latency-search-first-alone.json), and a curve. The loop is the
 * one closed-loop expand runs: at most 5 measurements, stop within ±3%.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { nextAim, type AimPoint } from '../../src/morph/closed-loop.ts';

function run(target: number, device: (aim: number) => number, next: (steps: AimPoint[]) => number): { steps: AimPoint[]; within: boolean } {
  const steps: AimPoint[] = [];
  let aim = target;
  for (let i = 0; i < 5; i++) {
    const measured = device(aim);
    steps.push({ aimedAt: aim, measured });
    if (Math.abs(measured / target - 1) <= 0.03) return { steps, within: true };
    aim = next(steps);
  }
  return { steps, within: false };
}

const byBracket = (target: number) => (steps: AimPoint[]): number => nextAim(steps, target);
const byRatio = (target: number) => (steps: AimPoint[]): number => steps[steps.length - 1].aimedAt * (target / steps[steps.length - 1].measured);

describe('nextAim', () => {
  it('scales by the measured ratio while every measurement is on one side', () => {
    assert.equal(nextAim([{ aimedAt: 0.2, measured: 0.1 }], 0.15), 0.3);
    assert.equal(nextAim([{ aimedAt: 0.2, measured: 0.1 }, { aimedAt: 0.3, measured: 0.12 }], 0.15), 0.375);
  });

  it('interpolates between the closest measurements on each side of the target', () => {
    const aim = nextAim([{ aimedAt: 0.1, measured: 0.05 }, { aimedAt: 0.4, measured: 0.35 }, { aimedAt: 0.2, measured: 0.12 }, { aimedAt: 0.3, measured: 0.22 }], 0.17);
    // Between (0.2, 0.12) and (0.3, 0.22): 0.2 + 0.05 · 0.1 / 0.1.
    assert.ok(Math.abs(aim - 0.25) < 1e-12, String(aim));
  });

  it('keeps the aim below the ceiling (the seed) expand can reach', () => {
    // Measured at 45% of the target: the ratio step would aim at 0.396, past the seed's 0.3565.
    const aim = nextAim([{ aimedAt: 0.178, measured: 0.08 }], 0.178, 0.3565);
    assert.ok(aim < 0.3565 && aim > 0.3564, String(aim));
  });

  it('meets a constant prediction factor in two measurements', () => {
    const r = run(0.2, (aim) => aim / 1.5, byBracket(0.2));
    assert.equal(r.within, true);
    assert.equal(r.steps.length, 2);
  });

  it('closes on the target where the factor changes with the width (the Node tflite case), which the ratio rule does not', () => {
    // Measured on Node tflite: aimed 0.1788 → 0.0980 ms, aimed 0.3262 → 0.3072 ms; a line through them.
    const device = (aim: number): number => 0.098 + ((aim - 0.1788) * (0.3072 - 0.098)) / (0.3262 - 0.1788);
    const target = 0.1788;
    const bracket = run(target, device, byBracket(target));
    assert.equal(bracket.within, true, JSON.stringify(bracket.steps));
    assert.ok(bracket.steps.length <= 3, JSON.stringify(bracket.steps));
    const ratio = run(target, device, byRatio(target));
    assert.equal(ratio.within, false, 'the old rule jumps between the two sides for 5 measurements');
  });

  it('closes on a convex latency curve within 5 measurements', () => {
    const device = (aim: number): number => 0.04 + 3 * aim * aim;
    const target = 0.25;
    const r = run(target, device, byBracket(target));
    assert.equal(r.within, true, JSON.stringify(r.steps));
  });
});
