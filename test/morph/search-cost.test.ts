import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { costOps, flopsCostModel, paramsCostModel } from '../../src/cost/cost-model.ts';
import { networkCost } from '../../src/cost/counts.ts';
import { analyzeChannels } from '../../src/graph/channel-groups.ts';
import { parseModel } from '../../src/graph/parse.ts';
import { seedWidths } from '../../src/graph/widths.ts';
import { costModelCost, expandToTarget } from '../../src/morph/expand.ts';
import { costAt } from '../../src/morph/network-cost.ts';
import { costModelHooks } from '../../src/morph/search-cost.ts';
import { seedModel } from '../../src/seeds/index.ts';

describe('costModelHooks: a CostModel as search cost hooks', () => {
  const graph = parseModel(seedModel('mobilenet')).graph;
  const analysis = analyzeChannels(graph);
  const ops = costOps(graph, analysis);

  it('names the model, prices the network with it, and measures nothing', () => {
    for (const model of [flopsCostModel, paramsCostModel]) {
      const hooks = costModelHooks(model);
      assert.equal(hooks.name, model.name);
      assert.equal(hooks.unit, model.unit);
      assert.equal(hooks.digits, 0);
      assert.equal(hooks.costModel(graph, analysis), model);
      assert.equal(hooks.verify, undefined);
    }
    assert.equal(costModelHooks(flopsCostModel).costAt(graph, analysis, seedWidths(analysis)), networkCost(graph).flops);
    const half = analysis.groups.map((g) => (g.regularized ? Math.ceil(g.channels / 2) : g.channels));
    assert.equal(costModelHooks(paramsCostModel).costAt(graph, analysis, half), costAt(ops, paramsCostModel, half));
  });

  it('expands as expandToTarget on the model, with no ceiling', () => {
    const hooks = costModelHooks(flopsCostModel);
    const full = hooks.costAt(graph, analysis, seedWidths(analysis));
    for (const target of [0.3 * full, 0.7 * full, 1.2 * full]) {
      assert.deepEqual(hooks.expand(graph, analysis, seedWidths(analysis), target, 8), expandToTarget(analysis, costModelCost(ops, flopsCostModel), seedWidths(analysis), target, { divisor: 8 }));
    }
  });
});
