import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { costOps, flopsCostModel } from '../../src/cost/cost-model.ts';
import { networkCost } from '../../src/cost/counts.ts';
import { analyzeChannels } from '../../src/graph/channel-groups.ts';
import { parseModel } from '../../src/graph/parse.ts';
import { isMorphError } from '../../src/errors.ts';
import { seedWidths } from '../../src/graph/widths.ts';
import { costAt } from '../../src/morph/network-cost.ts';
import { expandToTarget, minimumCost } from '../../src/morph/expand.ts';
import { seedModel, VALID_SEEDS } from '../../src/seeds/index.ts';

for (const seed of VALID_SEEDS) {
  describe(`expand on the ${seed} seed`, () => {
    const graph = parseModel(seedModel(seed)).graph;
    const analysis = analyzeChannels(graph);
    const ops = costOps(graph, analysis);

    it('prices the seed exactly at its FLOPs', () => {
      assert.equal(costAt(ops, flopsCostModel, seedWidths(analysis)), networkCost(graph).flops);
    });

    it('finds the largest multiplier within the target, close to it', () => {
      const full = costAt(ops, flopsCostModel, seedWidths(analysis));
      for (const fraction of [0.25, 0.5, 0.8]) {
        const target = fraction * full;
        const r = expandToTarget(ops, analysis, flopsCostModel, seedWidths(analysis), target);
        assert.ok(r.cost <= target, `${r.cost} > ${target}`);
        // Rounding is filled back greedily, so the cost lands within 2% of the target.
        assert.ok(r.cost >= 0.98 * target, `cost ${r.cost} is more than 2% under ${target}`);
        assert.ok(r.multiplier < 1);
      }
    });

    it('grows a shrunken structure back to the target', () => {
      const full = costAt(ops, flopsCostModel, seedWidths(analysis));
      const alive = analysis.groups.map((g, i) => (g.regularized ? Math.max(1, Math.floor(g.channels / (i % 3 === 0 ? 8 : 2))) : g.channels));
      const r = expandToTarget(ops, analysis, flopsCostModel, alive, 0.5 * full, { divisor: 4 });
      assert.ok(r.multiplier > 1);
      assert.ok(r.cost <= 0.5 * full);
      for (const g of analysis.groups) if (g.regularized) assert.equal(r.widths[g.id] % 4, 0);
    });

    it('refuses a target below the minimum, saying what the minimum is', () => {
      const floor = minimumCost(ops, analysis, flopsCostModel, 4);
      assert.throws(
        () => expandToTarget(ops, analysis, flopsCostModel, seedWidths(analysis), floor * 0.9, { divisor: 4 }),
        (e: unknown) => isMorphError(e) && e.code === 'MORPH_ERR_TARGET' && /below the minimum reachable/.test(e.message) && e.details.minimum === floor,
      );
    });
  });
}
