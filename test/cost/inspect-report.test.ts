import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { analyzeChannels } from '../../src/graph/channel-groups.ts';
import { parseModel } from '../../src/graph/parse.ts';
import { networkCost } from '../../src/cost/counts.ts';
import { inspectReport } from '../../src/cost/inspect-report.ts';
import { seedModel } from '../../src/seeds/index.ts';

describe('inspectReport', () => {
  it('reports a seed: its totals as networkCost counts them, one row per layer, every group', () => {
    const { graph, format } = parseModel(seedModel('resnet'), { source: 'seed:resnet' });
    const analysis = analyzeChannels(graph);
    const r = inspectReport({ path: 'seed:resnet', format, graph, analysis, weights: null });
    const cost = networkCost(graph);
    assert.equal(r.model, 'seed:resnet');
    assert.equal(r.hasWeights, false);
    assert.deepEqual([r.layers, r.macs, r.flops, r.params], [graph.layers.length, cost.macs, cost.flops, cost.params]);
    assert.deepEqual(r.perLayer.map((l) => l.name), graph.layers.map((l) => l.name));
    assert.deepEqual(r.groups.map((g) => g.id), analysis.groups.map((g) => g.id));
    assert.deepEqual(r.inputs.map((i) => i.layer), graph.inputs.map((i) => i.layer));
    // A residual add joins its inputs' groups: some group spans more than one layer.
    assert.ok(r.groups.some((g) => g.layers.length > 1));
  });
});
