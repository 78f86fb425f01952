/** The search progress reducer (server/search/progress.ts): what the search page's bar shows. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { applyEvent, emptyProgress, type ProgressPlan } from '../../../server/search/progress.ts';

const PLAN: ProgressPlan = { rounds: 1, shrinkEpochs: 1, finalEpochs: 1, baseline: false };

describe('search progress', () => {
  it('follows the preparation job while profiling (the bar is not empty then), and keeps lines without progress', () => {
    let p = emptyProgress();
    assert.equal(p.prepare, null);
    p = applyEvent(p, { type: 'note', message: 'profiling 314 op timing(s) the tfjs-wasm table lacks' }, PLAN);
    assert.equal(p.phase, 'prepare');
    assert.equal(p.prepare, null);
    p = applyEvent(p, { type: 'note', message: 'profiling: 93/314', progress: { label: 'profiling', done: 93, total: 314 } }, PLAN);
    assert.deepEqual(p.prepare, { label: 'profiling', done: 93, total: 314 });
    assert.equal(p.message, 'profiling: 93/314');
    // A line without a job's progress keeps the last one.
    p = applyEvent(p, { type: 'note', message: 'target 1.9 ms' }, PLAN);
    assert.deepEqual(p.prepare, { label: 'profiling', done: 93, total: 314 });
    assert.equal(p.fraction, 0, 'training has not started: the training fraction stays 0');
  });
});
