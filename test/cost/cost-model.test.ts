import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { costOps, flopsCostModel, opMacs, opParams, paramsCostModel, type CostModel, type CostOp } from '../../src/cost/cost-model.ts';
import { networkCost } from '../../src/cost/counts.ts';
import { analyzeChannels, layoutOf, layoutWidth, type ChannelAnalysis } from '../../src/graph/channel-groups.ts';
import type { Graph } from '../../src/graph/graph.ts';
import { parseModel } from '../../src/graph/parse.ts';
import { seedModel } from '../../src/seeds/index.ts';
import { concatNet, depthwiseNet, residualNet, type ReferenceModel } from '../fixtures/reference-models.ts';

const built: ReferenceModel[] = [];
after(() => {
  for (const r of built) r.model.dispose();
});

function setup(json: unknown): { graph: Graph; analysis: ChannelAnalysis; ops: CostOp[] } {
  const graph = parseModel(json).graph;
  const analysis = analyzeChannels(graph);
  return { graph, analysis, ops: costOps(graph, analysis) };
}

const width = (analysis: ChannelAnalysis, layout: CostOp['inLayout']): number => layoutWidth(layout, (g) => analysis.groups[g].channels);

const dw = depthwiseNet();
const res = residualNet();
const cat = concatNet();
built.push(dw, res, cat);

describe('costOps', () => {
  it('lists conv, depthwise, separable and dense ops with their geometry (depthwise net)', () => {
    const { ops, analysis } = setup(dw.modelJson);
    const pick = (name: string): CostOp => ops.find((o) => o.layer === name)!;
    assert.deepEqual(ops.map((o) => [o.layer, o.kind]), [
      ['conv1', 'conv2d'],
      ['dw1', 'depthwise'],
      ['pw1', 'conv2d'],
      ['sep1', 'separable'],
      ['dw2', 'depthwise'],
      ['pw2', 'conv2d'],
      ['predictions', 'dense'],
    ]);
    const geo = (o: CostOp): unknown => ({ inH: o.inH, inW: o.inW, outH: o.outH, outW: o.outW, kernel: o.kernel, strides: o.strides, padding: o.padding });
    assert.deepEqual(geo(pick('conv1')), { inH: 34, inW: 34, outH: 32, outW: 32, kernel: [3, 3], strides: [1, 1], padding: 'valid' });
    assert.deepEqual(geo(pick('dw1')), { inH: 32, inW: 32, outH: 32, outW: 32, kernel: [3, 3], strides: [1, 1], padding: 'same' });
    assert.deepEqual(geo(pick('pw1')), { inH: 32, inW: 32, outH: 32, outW: 32, kernel: [1, 1], strides: [1, 1], padding: 'same' });
    assert.deepEqual(geo(pick('sep1')), { inH: 32, inW: 32, outH: 32, outW: 32, kernel: [3, 3], strides: [1, 1], padding: 'same' });
    assert.deepEqual(geo(pick('dw2')), { inH: 16, inW: 16, outH: 8, outW: 8, kernel: [3, 3], strides: [2, 2], padding: 'same' });
    assert.deepEqual(geo(pick('predictions')), { inH: 1, inW: 1, outH: 1, outW: 1, kernel: [1, 1], strides: [1, 1], padding: 'valid' });
    assert.equal(pick('conv1').useBias, false);
    assert.equal(pick('predictions').useBias, true);
    assert.equal(pick('predictions').activation, 'softmax');
    assert.equal(pick('dw1').depthMultiplier, 1);
    for (const o of ops) assert.equal(o.calls, 1);
    // Layouts: dw1 reads and writes conv1's group; sep1 reads pw1's group and starts its own.
    assert.deepEqual(pick('dw1').inLayout, pick('dw1').outLayout);
    assert.deepEqual(pick('dw1').inLayout, layoutOf(analysis, { layer: 'conv1', nodeIndex: 0, tensorIndex: 0 }));
    assert.deepEqual(pick('sep1').inLayout, pick('pw1').outLayout);
    assert.equal(width(analysis, pick('sep1').outLayout), 64);
  });

  it('reads a concat input as the list of its slices', () => {
    const { ops, analysis } = setup(cat.modelJson);
    const mixed = ops.find((o) => o.layer === 'mixed_conv')!;
    assert.equal(mixed.inLayout.segments.length, 3);
    assert.equal(width(analysis, mixed.inLayout), 32);
  });

  it('a dense after Flatten reads its channels once per flattened position (vgg seed)', () => {
    const { ops, analysis } = setup(seedModel('vgg'));
    const fc1 = ops.find((o) => o.layer === 'fc1')!;
    assert.equal(fc1.kind, 'dense');
    assert.equal(fc1.inLayout.tile, 9);
    assert.equal(width(analysis, fc1.inLayout), 128);
    assert.equal(opMacs(fc1, 128, 128), 9 * 128 * 128);
    assert.equal(opParams(fc1, 128, 128), 9 * 128 * 128);
  });

  it('a dense on a rank-4 tensor runs once per position', () => {
    const { ops } = setup({
      class_name: 'Sequential',
      config: { layers: [{ class_name: 'Dense', config: { name: 'd', units: 5, batch_input_shape: [null, 4, 3, 2] } }] },
    });
    assert.equal(ops[0].outH * ops[0].outW, 12);
    assert.equal(opMacs(ops[0], 2, 5), 12 * 2 * 5);
  });
});

describe('flopsCostModel and paramsCostModel', () => {
  for (const [name, json] of [
    ['residual_net', res.modelJson],
    ['concat_net', cat.modelJson],
    ['depthwise_net', dw.modelJson],
    ['mobilenet seed', seedModel('mobilenet')],
    ['vgg seed', seedModel('vgg')],
  ] as const) {
    it(`${name}: FLOPs at full width sum to networkCost().flops = 2·macs, op by op`, () => {
      const { graph, analysis, ops } = setup(json);
      const cost = networkCost(graph);
      assert.equal(cost.flops, 2 * cost.macs);
      let total = 0;
      for (const op of ops) {
        const f = flopsCostModel.cost(op, width(analysis, op.inLayout), width(analysis, op.outLayout));
        assert.equal(f, cost.layers.find((l) => l.layer === op.layer)!.flops, op.layer);
        total += f;
      }
      assert.equal(total, cost.flops);
    });

    it(`${name}: params of the ops plus batch-norm parameters equal networkCost().params`, () => {
      const { graph, analysis, ops } = setup(json);
      const bn = graph.layers.filter((l) => l.kind === 'batchnorm').reduce((a, l) => a + l.weights.reduce((s, w) => s + w.shape[0], 0), 0);
      const sum = ops.reduce((a, op) => a + paramsCostModel.cost(op, width(analysis, op.inLayout), width(analysis, op.outLayout)), 0);
      assert.equal(sum + bn, networkCost(graph).params);
    });

    it(`${name}: marginals equal finite differences at several channel counts`, () => {
      const { ops } = setup(json);
      for (const model of [flopsCostModel, paramsCostModel] as CostModel[]) {
        for (const op of ops) {
          for (const [cIn, cOut] of [
            [1, 1],
            [3, 17],
            [16, 8],
            [64, 128],
          ]) {
            const m = model.marginals(op, cIn, cOut);
            const c = (i: number, o: number): number => model.cost(op, i, o);
            // Forward and backward differences agree: the costs are bilinear in (cIn, cOut).
            assert.equal(m.dIn, c(cIn + 1, cOut) - c(cIn, cOut), `${model.name} ${op.layer} dIn`);
            assert.equal(m.dIn, c(cIn, cOut) - c(cIn - 1, cOut), `${model.name} ${op.layer} dIn backward`);
            const dOut = op.kind === 'depthwise' ? 0 : c(cIn, cOut + 1) - c(cIn, cOut);
            assert.equal(m.dOut, dOut, `${model.name} ${op.layer} dOut`);
          }
        }
      }
    });
  }

  it('marginals match the closed forms of DESIGN.md', () => {
    const { ops } = setup(dw.modelJson);
    const pick = (name: string): CostOp => ops.find((o) => o.layer === name)!;
    // conv: FLOPs = 2·H·W·k·k·cIn·cOut.
    assert.deepEqual(flopsCostModel.marginals(pick('conv1'), 3, 16), { dIn: 2 * 32 * 32 * 9 * 16, dOut: 2 * 32 * 32 * 9 * 3 });
    // depthwise: FLOPs = 2·H·W·k·k·c; only cIn matters.
    assert.deepEqual(flopsCostModel.marginals(pick('dw2'), 64, 64), { dIn: 2 * 8 * 8 * 9, dOut: 0 });
    assert.equal(flopsCostModel.cost(pick('dw2'), 64, 999), 2 * 8 * 8 * 9 * 64);
    // separable: 2·H·W·(k·k·cIn + cIn·cOut).
    assert.deepEqual(flopsCostModel.marginals(pick('sep1'), 32, 64), { dIn: 2 * 32 * 32 * (9 + 64), dOut: 2 * 32 * 32 * 32 });
    // dense: 2·cIn·cOut.
    assert.deepEqual(flopsCostModel.marginals(pick('predictions'), 64, 10), { dIn: 2 * 10, dOut: 2 * 64 });
    // params: k·k·cIn·cOut (+ bias per output channel).
    assert.deepEqual(paramsCostModel.marginals(pick('conv1'), 3, 16), { dIn: 9 * 16, dOut: 9 * 3 });
    assert.deepEqual(paramsCostModel.marginals(pick('predictions'), 64, 10), { dIn: 10, dOut: 64 + 1 });
    assert.equal(flopsCostModel.unit, 'FLOPs');
    assert.equal(paramsCostModel.unit, 'params');
  });

  it('a grouped conv divides its MACs by the groups', () => {
    const { graph, ops } = setup({
      class_name: 'Sequential',
      config: { layers: [{ class_name: 'Conv2D', config: { name: 'g', filters: 8, kernel_size: 3, groups: 2, padding: 'same', batch_input_shape: [null, 5, 5, 4] } }] },
    });
    assert.equal(ops[0].groups, 2);
    assert.equal(opMacs(ops[0], 4, 8), (25 * 9 * 4 * 8) / 2);
    assert.equal(networkCost(graph).macs, (25 * 9 * 4 * 8) / 2);
    assert.equal(networkCost(graph).params, 9 * 2 * 8 + 8);
  });
});
