import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { applyGroupProx, proxMaxAbs, type GammaPlan } from '../../src/graph/gamma-plan.ts';

function prox(values: number[], t: number): number[] {
  const v = Float64Array.from(values);
  proxMaxAbs(v, t);
  return Array.from(v, (x) => Number(x.toFixed(10)));
}

/** Brute force: argmin_x ½‖x − v‖² + t·max|x| over a fine grid of the clip level. */
function bruteForce(values: number[], t: number): number[] {
  let best = { cost: Infinity, x: values };
  const top = Math.max(...values.map(Math.abs));
  for (let i = 0; i <= 20000; i++) {
    const level = (top * i) / 20000;
    const x = values.map((v) => Math.sign(v) * Math.min(Math.abs(v), level));
    const cost = 0.5 * x.reduce((s, xi, k) => s + (xi - values[k]) ** 2, 0) + t * level;
    if (cost < best.cost) best = { cost, x };
  }
  return best.x;
}

describe('proxMaxAbs', () => {
  it('is the soft threshold for one member', () => {
    assert.deepEqual(prox([0.8], 0.3), [0.5]);
    assert.deepEqual(prox([-0.8], 0.3), [-0.5]);
    assert.deepEqual(prox([0.2], 0.3), [0]);
  });

  it('zeroes every member when their total |γ| is within the threshold', () => {
    assert.deepEqual(prox([0.1, -0.05, 0.1], 0.3), [0, 0, 0]);
  });

  it('clips the largest members first, as the proximal map of t·max|x| must', () => {
    // 0.9 and 0.7 are cut to θ where (0.9 − θ) + (0.7 − θ) = 0.4: θ = 0.6; 0.2 is untouched.
    assert.deepEqual(prox([0.9, -0.7, 0.2], 0.4), [0.6, -0.6, 0.2]);
    for (const [values, t] of [[[0.5, 0.4, 0.3, 0.1], 0.25], [[1, -1, 0.2], 0.5], [[0.3, 0.9], 1.5]] as [number[], number][]) {
      const ours = prox(values, t);
      bruteForce(values, t).forEach((x, i) => assert.ok(Math.abs(x - ours[i]) < 1e-3, `${values} t=${t}: ${ours} vs ${bruteForce(values, t)}`));
    }
  });
});

describe('applyGroupProx', () => {
  it('treats the batch norms and repeats covering a channel as one max', () => {
    // Group 0: channels 0..1 of bn_a, and of bn_b at offset 2 with a depthwise repeat of 2.
    const plan: GammaPlan = {
      slices: [
        [
          { layer: 'bn_a', offset: 0, channels: 2, repeat: 1, tile: 1, stride: 2 },
          { layer: 'bn_b', offset: 2, channels: 2, repeat: 2, tile: 1, stride: 6 },
        ],
        [],
      ],
    };
    const arrays = new Map([
      ['bn_a', Float32Array.from([1, 0.1])],
      ['bn_b', Float32Array.from([5, 5, 0.5, 0.2, 0.05, 0.05])],
    ]);
    applyGroupProx(plan, arrays, [0.3, 0]);
    // Channel 0 members 1, 0.5, 0.2: the largest is cut to 0.7. Channel 1 members sum to 0.2 ≤ 0.3: zeroed.
    assert.deepEqual(Array.from(arrays.get('bn_a')!, (x) => Number(x.toFixed(6))), [0.7, 0]);
    assert.deepEqual(Array.from(arrays.get('bn_b')!, (x) => Number(x.toFixed(6))), [5, 5, 0.5, 0.2, 0, 0]);
  });
});
