import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { costOps, flopsCostModel } from '../../src/cost/cost-model.ts';
import { networkCost } from '../../src/cost/counts.ts';
import { analyzeChannels } from '../../src/graph/channel-groups.ts';
import { parseModel } from '../../src/graph/parse.ts';
import { isMorphError } from '../../src/errors.ts';
import { seedWidths } from '../../src/graph/widths.ts';
import { costAt } from '../../src/morph/network-cost.ts';
import { costModelCost, expandToTarget, minimumCost, type WidthCost } from '../../src/morph/expand.ts';
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
        const r = expandToTarget(analysis, costModelCost(ops, flopsCostModel), seedWidths(analysis), target);
        assert.ok(r.cost <= target, `${r.cost} > ${target}`);
        // Rounding is filled back greedily, so the cost lands within 2% of the target.
        assert.ok(r.cost >= 0.98 * target, `cost ${r.cost} is more than 2% under ${target}`);
        assert.ok(r.multiplier < 1);
      }
    });

    it('grows a shrunken structure back to the target', () => {
      const full = costAt(ops, flopsCostModel, seedWidths(analysis));
      const alive = analysis.groups.map((g, i) => (g.regularized ? Math.max(1, Math.floor(g.channels / (i % 3 === 0 ? 8 : 2))) : g.channels));
      const r = expandToTarget(analysis, costModelCost(ops, flopsCostModel), alive, 0.5 * full, { divisor: 4 });
      assert.ok(r.multiplier > 1);
      assert.ok(r.cost <= 0.5 * full);
      for (const g of analysis.groups) if (g.regularized) assert.equal(r.widths[g.id] % 4, 0);
    });

    it('refuses a target below the minimum, saying what the minimum is', () => {
      const floor = minimumCost(ops, analysis, flopsCostModel, 4);
      assert.throws(
        () => expandToTarget(analysis, costModelCost(ops, flopsCostModel), seedWidths(analysis), floor * 0.9, { divisor: 4 }),
        (e: unknown) => isMorphError(e) && e.code === 'MORPH_ERR_TARGET' && /below the minimum reachable/.test(e.message) && e.details.minimum === floor,
      );
    });
  });
}

describe('expandToTarget over any cost of the widths', () => {
  const analysis = analyzeChannels(parseModel(seedModel('mobilenet')).graph);
  // Monotone in every width, and nothing like FLOPs: Σ width².
  const squares: WidthCost = { at: (widths) => widths.reduce((s, w) => s + w * w, 0), unit: 'units', digits: 1 };
  const seedCost = squares.at(seedWidths(analysis));

  it('meets the target, and one more step on any regularized group overshoots it', () => {
    const target = 0.4 * seedCost;
    const r = expandToTarget(analysis, squares, seedWidths(analysis), target, { divisor: 4 });
    assert.equal(r.cost, squares.at(r.widths));
    assert.ok(r.cost <= target);
    for (const g of analysis.groups) {
      if (!g.regularized) continue;
      const up = [...r.widths];
      up[g.id] += 4;
      assert.ok(squares.at(up) > target, `group ${g.id} could take one more step`);
    }
  });

  it('refuses a target above the ceiling, saying the seed\'s cost in the cost\'s unit', () => {
    assert.throws(
      () => expandToTarget(analysis, squares, seedWidths(analysis), seedCost * 1.01, { ceiling: seedCost }),
      (e: unknown) => isMorphError(e) && e.code === 'MORPH_ERR_TARGET' && e.details.seed === seedCost && e.message.includes(`${seedCost.toFixed(1)} units`),
    );
    // No ceiling: a target above the seed widens it.
    assert.ok(expandToTarget(analysis, squares, seedWidths(analysis), seedCost * 1.5).multiplier > 1);
  });

  it('refuses a bad divisor, tolerance, base or target', () => {
    const base = seedWidths(analysis);
    assert.throws(() => expandToTarget(analysis, squares, base, seedCost / 2, { divisor: 0 }), { code: 'MORPH_ERR_BAD_ARGUMENT' });
    assert.throws(() => expandToTarget(analysis, squares, base, seedCost / 2, { tolerance: 1 }), { code: 'MORPH_ERR_BAD_ARGUMENT' });
    assert.throws(() => expandToTarget(analysis, squares, [1, 2], seedCost / 2), { code: 'MORPH_ERR_BAD_ARGUMENT' });
    assert.throws(() => expandToTarget(analysis, squares, base, 0), { code: 'MORPH_ERR_TARGET', message: /positive number of units/ });
  });
});
