import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { analyzeChannels, expandLayout, layoutOf, layoutWidth, type ChannelAnalysis, type ChannelGroup } from '../../src/graph/channel-groups.ts';
import type { Graph } from '../../src/graph/graph.ts';
import type { LayerJson, ModelConfigJson, TfjsModelJson } from '../../src/graph/keras-json.ts';
import { parseModel } from '../../src/graph/parse.ts';
import { seedModel } from '../../src/seeds/index.ts';
import { concatNet, depthwiseNet, residualNet, type ReferenceModel } from '../fixtures/reference-models.ts';

const built: ReferenceModel[] = [];
after(() => {
  for (const r of built) r.model.dispose();
});

function analyze(json: unknown): { graph: Graph; analysis: ChannelAnalysis } {
  const graph = parseModel(json).graph;
  return { graph, analysis: analyzeChannels(graph) };
}

/** The group a layer's output forms, for layers whose output is exactly one group. */
function groupOf(analysis: ChannelAnalysis, layer: string): ChannelGroup {
  const layout = layoutOf(analysis, { layer, nodeIndex: 0, tensorIndex: 0 });
  assert.equal(layout.tile, 1, layer);
  assert.equal(layout.segments.length, 1, layer);
  assert.equal(layout.segments[0].repeat, 1, layer);
  return analysis.groups[layout.segments[0].group];
}

/** Groups as comparable records: sorted members, gamma layers, flags. */
function summary(g: ChannelGroup): { layers: string[]; channels: number; resizable: boolean; regularized: boolean; gammaLayers: string[] } {
  return { layers: [...g.layers].sort(), channels: g.channels, resizable: g.resizable, regularized: g.regularized, gammaLayers: [...g.gammaLayers].sort() };
}

const bnRelu = (n: string): string[] => [n, `${n}_bn`, `${n}_relu`];

describe('analyzeChannels', () => {
  it('residual net: Add ties both operands; projections join the group; input and output fixed', () => {
    const r = residualNet();
    built.push(r);
    const { analysis } = analyze(r.modelJson);
    const expected = [
      { layers: ['input'], channels: 3, resizable: false, regularized: false, gammaLayers: [] },
      {
        layers: ['stem', 'stem_bn', 'stem_relu', 'res1_conv2', 'res1_conv2_bn', 'res1_add', 'res1_out'],
        channels: 16,
        resizable: true,
        regularized: true,
        gammaLayers: ['res1_conv2_bn', 'stem_bn'],
      },
      { layers: bnRelu('res1_conv1'), channels: 16, resizable: true, regularized: true, gammaLayers: ['res1_conv1_bn'] },
      { layers: bnRelu('res2_conv1'), channels: 32, resizable: true, regularized: true, gammaLayers: ['res2_conv1_bn'] },
      {
        layers: ['res2_conv2', 'res2_conv2_bn', 'res2_proj', 'res2_proj_bn', 'res2_add', 'res2_out', 'res3_conv2', 'res3_conv2_bn', 'res3_add', 'res3_out', 'gap'],
        channels: 32,
        resizable: true,
        regularized: true,
        gammaLayers: ['res2_conv2_bn', 'res2_proj_bn', 'res3_conv2_bn'],
      },
      { layers: bnRelu('res3_conv1'), channels: 32, resizable: true, regularized: true, gammaLayers: ['res3_conv1_bn'] },
      { layers: ['predictions'], channels: 10, resizable: false, regularized: false, gammaLayers: [] },
    ].map((g) => ({ ...g, layers: [...g.layers].sort(), gammaLayers: [...g.gammaLayers].sort() }));
    assert.deepEqual(analysis.groups.map(summary), expected);
    assert.deepEqual(analysis.groups.map((g) => g.id), [0, 1, 2, 3, 4, 5, 6]);
    assert.deepEqual(groupOf(analysis, 'input').fixedReasons, ['network input']);
    assert.deepEqual(groupOf(analysis, 'predictions').fixedReasons, ['network output']);
    for (const g of analysis.groups.filter((x) => x.resizable)) assert.deepEqual(g.fixedReasons, []);
    // Both operands of every Add are one group.
    assert.equal(groupOf(analysis, 'res2_conv2_bn').id, groupOf(analysis, 'res2_proj_bn').id);
    assert.equal(groupOf(analysis, 'stem').id, groupOf(analysis, 'res1_conv2').id);
    assert.equal(groupOf(analysis, 'res3_conv2').id, groupOf(analysis, 'res2_conv2').id);
  });

  it('concat net: the concat output is the list of its inputs\' groups and a BN on it covers each', () => {
    const r = concatNet();
    built.push(r);
    const { analysis } = analyze(r.modelJson);
    const a = groupOf(analysis, 'branch_a_1x1');
    const b = groupOf(analysis, 'branch_b_3x3');
    const c = groupOf(analysis, 'branch_c_1x1');
    const mixed = layoutOf(analysis, { layer: 'mixed', nodeIndex: 0, tensorIndex: 0 });
    assert.deepEqual(mixed, { tile: 1, segments: [{ group: a.id, repeat: 1 }, { group: b.id, repeat: 1 }, { group: c.id, repeat: 1 }] });
    assert.deepEqual(layoutOf(analysis, { layer: 'mixed_bn', nodeIndex: 0, tensorIndex: 0 }), mixed);
    assert.equal(layoutWidth(mixed, (g) => analysis.groups[g].channels), 32);
    assert.deepEqual([...a.gammaLayers].sort(), ['branch_a_1x1_bn', 'mixed_bn']);
    assert.deepEqual([...b.gammaLayers].sort(), ['branch_b_3x3_bn', 'mixed_bn']);
    assert.deepEqual([...c.gammaLayers].sort(), ['branch_c_1x1_bn', 'mixed_bn']);
    assert.deepEqual(summary(a).layers, bnRelu('branch_a_1x1'));
    // A layer whose output spans several groups is a member of none.
    for (const g of analysis.groups) assert.ok(!g.layers.includes('mixed') && !g.layers.includes('mixed_bn'));
    // The stem feeds three branches and a pool; its group passes through the pool.
    assert.deepEqual(summary(groupOf(analysis, 'stem')), {
      layers: [...bnRelu('stem'), 'branch_c_pool'].sort(),
      channels: 16,
      resizable: true,
      regularized: true,
      gammaLayers: ['stem_bn'],
    });
    assert.deepEqual(summary(groupOf(analysis, 'branch_b_1x1')), { layers: bnRelu('branch_b_1x1'), channels: 8, resizable: true, regularized: true, gammaLayers: ['branch_b_1x1_bn'] });
    // The outer concat joins the conv's group and the three slices again: all stay resizable.
    const mix = groupOf(analysis, 'mixed_conv');
    assert.deepEqual(summary(mix), { layers: bnRelu('mixed_conv'), channels: 32, resizable: true, regularized: true, gammaLayers: ['mixed_conv_bn'] });
    assert.deepEqual(layoutOf(analysis, { layer: 'mixed_out', nodeIndex: 0, tensorIndex: 0 }).segments, [mix.id, a.id, b.id, c.id].map((group) => ({ group, repeat: 1 })));
    assert.deepEqual(layoutOf(analysis, { layer: 'gap', nodeIndex: 0, tensorIndex: 0 }).segments.length, 4);
    for (const g of [a, b, c, mix]) {
      assert.equal(g.resizable, true, `group ${g.id}`);
      assert.equal(g.regularized, true, `group ${g.id}`);
      assert.deepEqual(g.fixedReasons, []);
    }
    assert.equal(analysis.groups.length, 8);
    assert.deepEqual(groupOf(analysis, 'input').fixedReasons, ['network input']);
    assert.deepEqual(groupOf(analysis, 'predictions').fixedReasons, ['network output']);
  });

  it('an element-wise merge of differently split tensors keeps both sides fixed, with a reason', () => {
    // Add(conv output, concat of two groups): the analysis does not split a conv's group into
    // slices, so it fixes every group on both sides and says why.
    const conv = (name: string, filters: number, src: string): LayerJson => ({
      class_name: 'Conv2D',
      name,
      config: { name, filters, kernel_size: 1 },
      inbound_nodes: [[[src, 0, 0, {}]]],
    });
    const json: ModelConfigJson = {
      class_name: 'Functional',
      config: {
        name: 'split_add',
        layers: [
          { class_name: 'InputLayer', name: 'in', config: { name: 'in', batch_input_shape: [null, 4, 4, 3] }, inbound_nodes: [] },
          conv('a', 2, 'in'),
          conv('b', 3, 'in'),
          conv('c', 5, 'in'),
          { class_name: 'Concatenate', name: 'cat', config: { name: 'cat' }, inbound_nodes: [[['a', 0, 0, {}], ['b', 0, 0, {}]]] },
          { class_name: 'Add', name: 'sum', config: { name: 'sum' }, inbound_nodes: [[['c', 0, 0, {}], ['cat', 0, 0, {}]]] },
          conv('out', 2, 'sum'),
        ],
        input_layers: [['in', 0, 0]],
        output_layers: [['out', 0, 0]],
      },
    };
    const { analysis } = analyze(json);
    for (const name of ['a', 'b', 'c']) {
      const g = groupOf(analysis, name);
      assert.equal(g.resizable, false, name);
      assert.ok(g.fixedReasons.some((r) => r.includes('"sum"')), g.fixedReasons.join('; '));
    }
  });

  it('depthwise net: depthwise convs and padding pass channels through; separable starts a group', () => {
    const r = depthwiseNet();
    built.push(r);
    const { analysis } = analyze(r.modelJson);
    assert.deepEqual(analysis.groups.map(summary), [
      { layers: ['input', 'pad'], channels: 3, resizable: false, regularized: false, gammaLayers: [] },
      { layers: [...bnRelu('conv1'), ...bnRelu('dw1')].sort(), channels: 16, resizable: true, regularized: true, gammaLayers: ['conv1_bn', 'dw1_bn'] },
      { layers: bnRelu('pw1'), channels: 32, resizable: true, regularized: true, gammaLayers: ['pw1_bn'] },
      { layers: [...bnRelu('sep1'), 'avg_pool', ...bnRelu('dw2')].sort(), channels: 64, resizable: true, regularized: true, gammaLayers: ['dw2_bn', 'sep1_bn'] },
      { layers: [...bnRelu('pw2'), 'gap'].sort(), channels: 64, resizable: true, regularized: true, gammaLayers: ['pw2_bn'] },
      { layers: ['predictions'], channels: 10, resizable: false, regularized: false, gammaLayers: [] },
    ]);
  });

  it('a depthwise multiplier repeats each input channel in the output layout', () => {
    const { analysis } = analyze({
      class_name: 'Sequential',
      config: {
        layers: [
          { class_name: 'Conv2D', config: { name: 'c', filters: 4, kernel_size: 1, batch_input_shape: [null, 6, 6, 2] } },
          { class_name: 'DepthwiseConv2D', config: { name: 'dw', kernel_size: 3, depth_multiplier: 3, padding: 'same' } },
          { class_name: 'BatchNormalization', config: { name: 'dw_bn' } },
          { class_name: 'Conv2D', config: { name: 'out', filters: 2, kernel_size: 1 } },
        ],
      },
    });
    const c = groupOf(analysis, 'c');
    assert.deepEqual(layoutOf(analysis, { layer: 'dw', nodeIndex: 0, tensorIndex: 0 }), { tile: 1, segments: [{ group: c.id, repeat: 3 }] });
    // The BN after the multiplier covers the conv's group: its gammas count towards it.
    assert.deepEqual(c.gammaLayers, ['dw_bn']);
    assert.equal(c.regularized, true);
    assert.ok(!c.layers.includes('dw'));
    const pos = expandLayout(layoutOf(analysis, { layer: 'dw', nodeIndex: 0, tensorIndex: 0 }), (g) => analysis.groups[g].channels);
    assert.deepEqual(pos.slice(0, 4), [
      { group: c.id, channel: 0 },
      { group: c.id, channel: 0 },
      { group: c.id, channel: 0 },
      { group: c.id, channel: 1 },
    ]);
  });

  it('a flatten tiles the channel layout over positions (vgg seed)', () => {
    const { analysis } = analyze(seedModel('vgg'));
    const last = groupOf(analysis, 'block3_conv2');
    assert.deepEqual(layoutOf(analysis, { layer: 'flatten', nodeIndex: 0, tensorIndex: 0 }), { tile: 3 * 3, segments: [{ group: last.id, repeat: 1 }] });
    assert.equal(last.resizable, true);
    assert.deepEqual([...last.layers].sort(), [...bnRelu('block3_conv2'), 'block3_pool'].sort());
    const fc1 = groupOf(analysis, 'fc1');
    assert.deepEqual(summary(fc1), { layers: ['fc1', 'fc1_bn', 'fc1_dropout', 'fc1_relu'], channels: 128, resizable: true, regularized: true, gammaLayers: ['fc1_bn'] });
  });

  it('a conv without a batch norm after it is resizable but not regularized', () => {
    const keras3 = JSON.parse(readFileSync(new URL('../fixtures/keras3-small.json', import.meta.url), 'utf8')) as ModelConfigJson;
    const { analysis } = analyze(keras3);
    const conv3 = groupOf(analysis, 'conv3');
    assert.equal(conv3.resizable, true);
    assert.equal(conv3.regularized, false);
    assert.deepEqual(conv3.gammaLayers, []);
    const conv1 = groupOf(analysis, 'conv1');
    assert.deepEqual(summary(conv1), { layers: ['add', 'bn1', 'bn2', 'conv1', 'conv2', 'relu1'], channels: 8, resizable: true, regularized: true, gammaLayers: ['bn1', 'bn2'] });
    assert.deepEqual(layoutOf(analysis, { layer: 'gap', nodeIndex: 0, tensorIndex: 0 }).segments, [
      { group: conv1.id, repeat: 1 },
      { group: conv3.id, repeat: 1 },
    ]);
  });

  it('a layer class we do not model (tfjs knows it) fixes the groups on both sides of it, with a reason naming it', () => {
    const json: ModelConfigJson = {
      class_name: 'Functional',
      config: {
        name: 'custom',
        layers: [
          { class_name: 'InputLayer', name: 'in', config: { name: 'in', batch_input_shape: [null, 8, 8, 3] }, inbound_nodes: [] },
          { class_name: 'Conv2D', name: 'c1', config: { name: 'c1', filters: 4, kernel_size: 3, padding: 'same' }, inbound_nodes: [[['in', 0, 0, {}]]] },
          { class_name: 'BatchNormalization', name: 'c1_bn', config: { name: 'c1_bn' }, inbound_nodes: [[['c1', 0, 0, {}]]] },
          { class_name: 'LayerNormalization', name: 'swish', config: { name: 'swish', axis: -1 }, inbound_nodes: [[['c1_bn', 0, 0, {}]]] },
          { class_name: 'Conv2D', name: 'c2', config: { name: 'c2', filters: 6, kernel_size: 3, padding: 'same' }, inbound_nodes: [[['swish', 0, 0, {}]]] },
          { class_name: 'BatchNormalization', name: 'c2_bn', config: { name: 'c2_bn' }, inbound_nodes: [[['c2', 0, 0, {}]]] },
          { class_name: 'GlobalAveragePooling2D', name: 'gap', config: { name: 'gap' }, inbound_nodes: [[['c2_bn', 0, 0, {}]]] },
          { class_name: 'Dense', name: 'out', config: { name: 'out', units: 2 }, inbound_nodes: [[['gap', 0, 0, {}]]] },
        ],
        input_layers: [['in', 0, 0]],
        output_layers: [['out', 0, 0]],
      },
    };
    const { graph, analysis } = analyze(json);
    assert.equal(graph.warnings.length, 1);
    assert.match(graph.warnings[0], /not costed.*swish \(LayerNormalization\)/);
    // tfjs built it: its gamma and beta are counted.
    assert.deepEqual(graph.layers.find((l) => l.name === 'swish')!.weights.map((w) => w.shape), [[4], [4]]);
    const before = groupOf(analysis, 'c1');
    const after_ = groupOf(analysis, 'swish');
    assert.notEqual(before.id, after_.id);
    assert.equal(before.resizable, false);
    assert.equal(before.regularized, false);
    assert.ok(before.fixedReasons.some((r) => r.includes('"swish"') && r.includes('LayerNormalization')), before.fixedReasons.join('; '));
    assert.equal(after_.resizable, false);
    assert.deepEqual(after_.layers, ['swish']);
    assert.ok(after_.fixedReasons.some((r) => r.includes('"swish"')));
    // Beyond the boundary the next conv is free again.
    const c2 = groupOf(analysis, 'c2');
    assert.equal(c2.resizable, true);
    assert.equal(c2.regularized, true);
  });

  it('a shared layer ties the inputs of all its calls, even a call on a later layer', () => {
    // c1 → shared → bn → shared again: the second call consumes a layer listed after `shared`.
    const json: ModelConfigJson = {
      class_name: 'Functional',
      config: {
        name: 'shared',
        layers: [
          { class_name: 'InputLayer', name: 'in', config: { name: 'in', batch_input_shape: [null, 8, 8, 3] }, inbound_nodes: [] },
          { class_name: 'Conv2D', name: 'c1', config: { name: 'c1', filters: 5, kernel_size: 3, padding: 'same' }, inbound_nodes: [[['in', 0, 0, {}]]] },
          {
            class_name: 'Conv2D',
            name: 'shared',
            config: { name: 'shared', filters: 5, kernel_size: 3, padding: 'same' },
            inbound_nodes: [[['c1', 0, 0, {}]], [['bn', 0, 0, {}]]],
          },
          { class_name: 'BatchNormalization', name: 'bn', config: { name: 'bn' }, inbound_nodes: [[['shared', 0, 0, {}]]] },
          { class_name: 'GlobalAveragePooling2D', name: 'gap', config: { name: 'gap' }, inbound_nodes: [[['shared', 1, 0, {}]]] },
          { class_name: 'Dense', name: 'out', config: { name: 'out', units: 2 }, inbound_nodes: [[['gap', 0, 0, {}]]] },
        ],
        input_layers: [['in', 0, 0]],
        output_layers: [['out', 0, 0]],
      },
    };
    const { graph, analysis } = analyze(json);
    assert.equal(graph.layers.find((l) => l.name === 'shared')!.calls.length, 2);
    const g = groupOf(analysis, 'c1');
    assert.deepEqual(summary(g), { layers: ['bn', 'c1', 'gap', 'shared'], channels: 5, resizable: true, regularized: true, gammaLayers: ['bn'] });
    assert.deepEqual(layoutOf(analysis, { layer: 'shared', nodeIndex: 1, tensorIndex: 0 }).segments, [{ group: g.id, repeat: 1 }]);
  });

  it('the seeds regularize every conv group except where residual adds tie them', () => {
    for (const name of ['mobilenet', 'resnet', 'vgg'] as const) {
      const seed: TfjsModelJson = seedModel(name);
      const { analysis } = analyze(seed);
      const fixed = analysis.groups.filter((g) => !g.resizable);
      assert.deepEqual(fixed.map((g) => g.fixedReasons).flat().sort(), ['network input', 'network output'], name);
      for (const g of analysis.groups.filter((x) => x.resizable)) assert.ok(g.regularized, `${name} group ${g.id} ${g.layers[0]}`);
    }
  });
});
