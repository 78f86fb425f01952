/**
 * The whole offline search on a tiny model and synthetic data (seconds): shrink, expand, final
 * training, baseline and every output file, with the target met and the regularizer shown to act.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { analyzeChannels } from '../../src/graph/channel-groups.ts';
import { planGammas } from '../../src/graph/gamma-plan.ts';
import { parseModel } from '../../src/graph/parse.ts';
import { isMorphError } from '../../src/errors.ts';
import { flopsCostModel } from '../../src/cost/cost-model.ts';
import { seedWidths } from '../../src/graph/widths.ts';
import { minimumCost } from '../../src/morph/expand.ts';
import { netOf, resolveTarget, runSearch, type SearchOptions } from '../../src/morph/search.ts';
import { costModelHooks } from '../../src/morph/search-cost.ts';
import { FunctionalBuilder } from '../../src/seeds/builder.ts';
import { selectBackend } from '../../src/train/backend.ts';
import { openDataset, type Dataset } from '../../src/train/data/index.ts';

/** 12×12×1 → conv 16 → conv 32 /2 → conv 32 → GAP → dense 3; every conv with BN + ReLU. */
function tinyGraph() {
  const b = new FunctionalBuilder('tiny', { momentum: 0.9 });
  let x = b.input('input', [12, 12, 1]);
  const block = (name: string, filters: number, strides = 1): void => {
    x = b.relu(`${name}_relu`, b.batchNorm(`${name}_bn`, b.conv2d(name, x, { filters, kernelSize: 3, strides, padding: 'same', useBias: false })));
  };
  block('c1', 16);
  block('c2', 32, 2);
  block('c3', 32);
  x = b.globalAveragePooling2d('gap', x);
  x = b.dense('out', x, { units: 3, activation: 'softmax' });
  return parseModel({ format: 'layers-model', modelTopology: b.build([x]) }).graph;
}

const base: SearchOptions = {
  cost: 'flops',
  target: { fraction: 0.5 },
  strength: 30,
  threshold: 0.05,
  shrinkEpochs: 3,
  finalEpochs: 3,
  rounds: 1,
  seed: 1,
  baseline: true,
  keepWeights: false,
  divisor: 1,
  train: { batchSize: 32, optimizer: { kind: 'sgd', lr: 0.1 }, schedule: 'cosine' },
};

let data: Dataset;
before(async () => {
  await selectBackend({ backend: 'wasm' });
  data = await openDataset('synthetic:h=12,w=12,c=1,classes=3,train=320,test=90,noise=0.2', { seed: 1 });
});

describe('runSearch (flops, synthetic data, tiny model)', () => {
  it('shrinks, expands to the target within 2%, trains the result and the baseline', async () => {
    const graph = tinyGraph();
    const phases: string[] = [];
    const r = await runSearch({ graph, weights: null }, data, base, (e) => {
      if (e.type === 'phase') phases.push(e.phase);
    });
    assert.deepEqual(phases, ['shrink', 'expand', 'final', 'baseline']);
    const { report } = r;
    const target = report.target.value;
    assert.equal(target, report.seed.cost / 2);
    // The learned network's FLOPs meet the target within 2%, and so does the baseline's.
    assert.ok(report.learned.flops <= target && report.learned.flops >= 0.98 * target, `learned ${report.learned.flops} vs target ${target}`);
    // The baseline moves every group at once, so on a model this small its steps are coarser.
    assert.ok(report.baseline!.flops <= target && report.baseline!.flops >= 0.95 * target, `baseline ${report.baseline!.flops} vs ${target}`);
    // The regularizer removed channels: the alive structure is smaller than the seed.
    const round = report.rounds[0];
    const alive = round.groups.filter((g) => g.coefficient > 0);
    assert.ok(alive.some((g) => g.alive < g.channels), `no channel died: ${JSON.stringify(alive.map((g) => [g.channels, g.alive]))}`);
    // Both networks learned something (3 classes: chance is 1/3).
    assert.ok(report.learned.accuracy > 0.6, `learned accuracy ${report.learned.accuracy}`);
    assert.ok(report.baseline!.accuracy > 0.6, `baseline accuracy ${report.baseline!.accuracy}`);
    // The result is a loadable model whose structure matches the report.
    assert.equal(r.structure.out, 3);
    assert.equal(r.structure.c2, report.learned.structure.c2);
    const reparsed = parseModel({ format: 'layers-model', modelTopology: r.model.modelTopology }).graph;
    assert.equal(reparsed.layers.find((l) => l.name === 'c2')!.calls[0].outputShape[3], r.structure.c2);
  });

  it('drives the gammas of expensive channels down (the regularizer is not a no-op)', async () => {
    const graph = tinyGraph();
    const options = { ...base, baseline: false, finalEpochs: 1 };
    const on = await runSearch({ graph, weights: null }, data, options);
    const off = await runSearch({ graph, weights: null }, data, { ...options, strength: 0 });
    const groupsOn = on.report.rounds[0].groups.filter((g) => g.coefficient > 0);
    const groupsOff = off.report.rounds[0].groups;
    // The most expensive group per channel is c2's output (c2 and c3 read and write it).
    const expensive = groupsOn.reduce((a, g) => (g.coefficient > a.coefficient ? g : a));
    const same = groupsOff.find((g) => g.id === expensive.id)!;
    assert.ok(expensive.meanGammaAfter < 0.7 * same.meanGammaAfter, `mean |γ| with λ: ${expensive.meanGammaAfter}, without: ${same.meanGammaAfter}`);
    // Without the regularizer nothing dies.
    assert.ok(groupsOff.every((g) => g.alive === g.channels));
  });

  it('refuses a target below the fixed cost or above the seed, before any training', async () => {
    const graph = tinyGraph();
    for (const target of [{ value: 10 }, { fraction: 1.5 }]) {
      const events: string[] = [];
      await assert.rejects(
        runSearch({ graph, weights: null }, data, { ...base, target }, (e) => events.push(e.type)),
        (e: unknown) => isMorphError(e) && e.code === 'MORPH_ERR_TARGET' && /minimum reachable|not below the seed/.test(e.message),
      );
      assert.deepEqual(events, [], 'no phase started');
    }
  });

  it('lets a batch norm over flattened features vote on channels through every position', async () => {
    const b = new FunctionalBuilder('flat', { momentum: 0.9 });
    let x = b.input('input', [12, 12, 1]);
    x = b.relu('c1_relu', b.batchNorm('c1_bn', b.conv2d('c1', x, { filters: 8, kernelSize: 3, strides: 2, padding: 'same', useBias: false })));
    x = b.batchNorm('flat_bn', b.flatten('flat', x));
    x = b.dense('out', x, { units: 3, activation: 'softmax' });
    const graph = parseModel({ format: 'layers-model', modelTopology: b.build([x]) }).graph;
    const analysis = analyzeChannels(graph);
    const c1 = analysis.groups.find((g) => g.layers.includes('c1'))!;
    assert.deepEqual(c1.gammaLayers, ['c1_bn', 'flat_bn']);
    const plan = planGammas(graph, analysis);
    // flat_bn has 6·6 positions × 8 channels; channel 3 of c1 is gamma 3, 11, 19, … of it.
    const flat = plan.slices[c1.id].find((s) => s.layer === 'flat_bn')!;
    assert.deepEqual([flat.tile, flat.stride, flat.offset], [36, 8, 0]);
    const r = await runSearch({ graph, weights: null }, data, { ...base, baseline: false, finalEpochs: 1 });
    assert.ok(r.report.learned.flops <= r.report.target.value);
  });

  it('without a strength, chooses one of 5, 20, 80 by the procedure: short trials judged on validation accuracy, never the test set', async () => {
    const events: string[] = [];
    const r = await runSearch({ graph: tinyGraph(), weights: null }, data, { ...base, strength: null, baseline: false, shrinkEpochs: 1, finalEpochs: 1 }, (e) => {
      if (e.type === 'phase') events.push(e.message);
    });
    const s = r.report.strength;
    assert.equal(s.source, 'tuned');
    assert.deepEqual(s.trials.map((t) => t.strength), [5, 20, 80]);
    // 288 training images / 32 = 9 steps an epoch: the short run's floor of 20 is capped at one epoch.
    assert.equal(s.steps, 9);
    const scored = s.trials.filter((t) => t.valAccuracy !== null);
    assert.ok(scored.length > 0);
    const best = Math.max(...scored.map((t) => t.valAccuracy as number));
    assert.equal(s.trials.find((t) => t.strength === s.strength)!.valAccuracy, best);
    assert.equal(r.report.rounds[0].lambda, s.strength / r.report.seed.cost);
    // A stronger regularizer keeps fewer channels alive in its trial.
    const aliveSum = (k: number): number => s.trials.find((t) => t.strength === k)!.alive.reduce((a, b) => a + b, 0);
    assert.ok(aliveSum(80) <= aliveSum(5), `alive ${aliveSum(80)} at k = 80, ${aliveSum(5)} at k = 5`);
    assert.ok(events.some((m) => /^strength k = \d+ chosen on validation accuracy/.test(m)));
    // A given strength skips the trials.
    const given = await runSearch({ graph: tinyGraph(), weights: null }, data, { ...base, strength: 30, baseline: false, shrinkEpochs: 1, finalEpochs: 1 });
    assert.deepEqual(given.report.strength, { strength: 30, source: 'given', trials: [], steps: null });
  });

  it('refuses a dataset that does not fit the model', async () => {
    const wrong = await openDataset('synthetic:h=10,w=10,c=1,classes=3,train=20,test=10');
    await assert.rejects(runSearch({ graph: tinyGraph(), weights: null }, wrong, base), (e: unknown) => isMorphError(e) && e.code === 'MORPH_ERR_DATASET_MISMATCH');
  });
});

describe('resolveTarget (every cost, through its hooks)', () => {
  const net = netOf(tinyGraph());
  const flops = costModelHooks(flopsCostModel);
  const seedFlops = flops.costAt(net.graph, net.analysis, seedWidths(net.analysis));

  it('takes a fraction of the seed\'s cost and reports the smallest network\'s cost as the minimum', () => {
    const r = resolveTarget(net, flops, { fraction: 0.5 }, 4);
    assert.deepEqual(r, { value: 0.5 * seedFlops, seedCost: seedFlops, minimum: minimumCost(net.ops, net.analysis, flopsCostModel, 4) });
  });

  it('refuses a target that is not positive, not below the seed, or below the minimum, with the figures in details', () => {
    const floor = minimumCost(net.ops, net.analysis, flopsCostModel, 4);
    assert.throws(() => resolveTarget(net, flops, { value: -1 }, 4), { code: 'MORPH_ERR_TARGET', message: /positive number of FLOPs/ });
    assert.throws(() => resolveTarget(net, flops, { fraction: 1 }, 4), (e: unknown) => isMorphError(e) && e.code === 'MORPH_ERR_TARGET' && e.details.seed === seedFlops && /not below the seed's/.test(e.message));
    assert.throws(() => resolveTarget(net, flops, { value: floor * 0.9 }, 4), (e: unknown) => isMorphError(e) && e.code === 'MORPH_ERR_TARGET' && e.details.minimum === floor && /below the minimum reachable/.test(e.message));
  });
});
