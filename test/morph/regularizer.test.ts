import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { costOps, flopsCostModel, paramsCostModel } from '../../src/cost/cost-model.ts';
import { analyzeChannels } from '../../src/graph/channel-groups.ts';
import { parseModel } from '../../src/graph/parse.ts';
import { groupCoefficients, regularizerValue } from '../../src/morph/regularizer.ts';
import { FunctionalBuilder } from '../../src/seeds/builder.ts';

/** input 8×8×1 → conv3×3 (6) + BN → conv3×3 s2 (10) + BN → GAP → dense(3). */
function tinyNet() {
  const b = new FunctionalBuilder('tiny');
  let x = b.input('input', [8, 8, 1]);
  x = b.conv2d('c1', x, { filters: 6, kernelSize: 3, padding: 'same', useBias: false });
  x = b.batchNorm('c1_bn', x);
  x = b.relu('c1_relu', x);
  x = b.conv2d('c2', x, { filters: 10, kernelSize: 3, strides: 2, padding: 'same', useBias: false });
  x = b.batchNorm('c2_bn', x);
  x = b.relu('c2_relu', x);
  x = b.globalAveragePooling2d('gap', x);
  x = b.dense('out', x, { units: 3, activation: 'softmax' });
  const graph = parseModel({ format: 'layers-model', modelTopology: b.build([x]) }).graph;
  return { graph, analysis: analyzeChannels(graph) };
}

describe('groupCoefficients', () => {
  it('equals the reference FLOP regularizer coeff·(a_in·Σ|γ_out| + a_out·Σ|γ_in|)', () => {
    const { graph, analysis } = tinyNet();
    const ops = costOps(graph, analysis);
    const g1 = analysis.groups.find((g) => g.layers.includes('c1'))!.id;
    const g2 = analysis.groups.find((g) => g.layers.includes('c2'))!.id;
    const alive = analysis.groups.map((g) => g.channels);
    alive[g1] = 4; // as if two channels of c1 were dead
    alive[g2] = 7;
    const w = groupCoefficients(ops, analysis, flopsCostModel, alive);
    // c1: 8·8 outputs, 3·3 kernel, c_in = 1 (fixed input). c2: 4·4 outputs. out: dense 10→3.
    const coeff1 = 2 * 64 * 9;
    const coeff2 = 2 * 16 * 9;
    const coeffDense = 2 * 1;
    // Group 1 is c1's output (a_in = 1) and c2's input (a_out = 7).
    assert.equal(w[g1], coeff1 * 1 + coeff2 * 7);
    // Group 2 is c2's output (a_in = 4) and the dense input (a_out = 3 units).
    assert.equal(w[g2], coeff2 * 4 + coeffDense * 3);
    // The input and the output groups are fixed: no coefficient.
    for (const g of analysis.groups) if (!g.regularized) assert.equal(w[g.id], 0);
  });

  it('weighs parameters by kernel size under the params cost', () => {
    const { graph, analysis } = tinyNet();
    const ops = costOps(graph, analysis);
    const g2 = analysis.groups.find((g) => g.layers.includes('c2'))!.id;
    const w = groupCoefficients(ops, analysis, paramsCostModel, analysis.groups.map((g) => g.channels));
    // ∂params/∂c_out of c2 = 9·6, ∂params/∂c_in of the dense = 3 units.
    assert.equal(w[g2], 9 * 6 + 3);
  });

  it('gives R = Σ_g w_g·Σ|γ_g|', () => {
    const r = regularizerValue([0, 2, 0.5], [new Float32Array([9]), new Float32Array([1, -1, 0.5]), new Float32Array([4])]);
    assert.equal(r, 2 * 2.5 + 0.5 * 4);
  });
});
