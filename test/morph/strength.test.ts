/**
 * The strength procedure's pure parts: how long a trial runs, how its λ is scaled to apply the
 * real shrink's pressure, and which trial wins.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pickStrength, shortSteps, trialStrength, type StrengthTrial } from '../../src/morph/strength.ts';

const trial = (strength: number, valAccuracy: number | null, valLoss: number | null = 1): StrengthTrial => ({ strength, lambda: strength, alive: [], multiplier: 1, cost: 1, valAccuracy, valLoss });

describe('strength procedure', () => {
  it('runs a trial for a third of an epoch, at least 20 steps, never more than an epoch', () => {
    assert.equal(shortSteps(300), 100);
    assert.equal(shortSteps(30), 20);
    assert.equal(shortSteps(10), 10);
  });

  it('scales a trial λ so that its steps apply the real shrink’s total pressure', () => {
    // 3 epochs of 300 steps against a 100-step trial: 9× the λ.
    assert.ok(Math.abs(trialStrength(2e-3, 900, 100) - 1.8e-2) < 1e-15);
    // A trial as long as the real shrink (or longer) keeps λ.
    assert.equal(trialStrength(2e-3, 100, 100), 2e-3);
    assert.equal(trialStrength(2e-3, 50, 100), 2e-3);
  });

  it('picks the best validation accuracy, then the lower loss, then the first', () => {
    assert.equal(pickStrength([trial(5, 0.7), trial(20, 0.8), trial(80, 0.75)]).strength, 20);
    assert.equal(pickStrength([trial(5, 0.8, 0.5), trial(20, 0.8, 0.4), trial(80, 0.8, 0.4)]).strength, 20);
    // An unreachable target (no score) never wins; none scored: the middle candidate.
    assert.equal(pickStrength([trial(5, null), trial(20, 0.1), trial(80, null)]).strength, 20);
    assert.equal(pickStrength([trial(5, null), trial(20, null), trial(80, null)]).strength, 20);
  });
});
