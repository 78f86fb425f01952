import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { MorphError, type ErrorCode } from '../../src/errors.ts';
import { analyzeChannels, layoutOf, type ChannelAnalysis, type ChannelGroup } from '../../src/graph/channel-groups.ts';
import type { Graph } from '../../src/graph/graph.ts';
import { parseModel } from '../../src/graph/parse.ts';
import type { WeightMap } from '../../src/graph/weights.ts';
import {
  aliveSelection,
  groupGammas,
  identitySelection,
  roundWidth,
  structureSelection,
  uniformSelection,
  widthOf,
} from '../../src/graph/widths.ts';
import { concatNet, residualNet } from '../fixtures/reference-models.ts';

function throwsCode(fn: () => unknown, code: ErrorCode, ...parts: string[]): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof MorphError, `expected a MorphError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    for (const p of parts) assert.ok(err.message.includes(p), `message ${JSON.stringify(err.message)} lacks ${JSON.stringify(p)}`);
    return true;
  });
}

const res = residualNet();
const cat = concatNet();
after(() => {
  res.model.dispose();
  cat.model.dispose();
});
const resGraph = parseModel(res.modelJson).graph;
const resAnalysis = analyzeChannels(resGraph);
const catGraph = parseModel(cat.modelJson).graph;
const catAnalysis = analyzeChannels(catGraph);

function groupOf(analysis: ChannelAnalysis, layer: string): ChannelGroup {
  return analysis.groups[layoutOf(analysis, { layer, nodeIndex: 0, tensorIndex: 0 }).segments[0].group];
}

/** Batch-norm weights with gamma from `gamma(layer, channel)`; other weights omitted. */
function bnWeights(graph: Graph, gamma: (layer: string, channel: number) => number): WeightMap {
  const map: WeightMap = new Map();
  for (const l of graph.layers) {
    if (l.kind !== 'batchnorm') continue;
    const n = l.weights[0].shape[0];
    map.set(l.name, new Map([['gamma', { shape: [n], data: Float32Array.from({ length: n }, (_, c) => gamma(l.name, c)) }]]));
  }
  return map;
}

describe('identitySelection and uniformSelection', () => {
  it('identity keeps every channel of every group in order', () => {
    const sel = identitySelection(resAnalysis);
    resAnalysis.groups.forEach((g) => assert.deepEqual(sel[g.id], { keep: Array.from({ length: g.channels }, (_, i) => i), add: 0 }));
  });

  it('scales resizable groups and leaves fixed ones', () => {
    const half = uniformSelection(resAnalysis, 0.5);
    for (const g of resAnalysis.groups) {
      assert.equal(widthOf(half[g.id]), g.resizable ? g.channels / 2 : g.channels, `group ${g.id}`);
      assert.equal(half[g.id].add, 0);
    }
    assert.deepEqual(half[groupOf(resAnalysis, 'stem').id].keep, [0, 1, 2, 3, 4, 5, 6, 7]);
    const wide = uniformSelection(resAnalysis, 1.5);
    const stem = wide[groupOf(resAnalysis, 'stem').id];
    assert.equal(stem.keep.length, 16);
    assert.equal(stem.add, 8);
    assert.equal(widthOf(wide[groupOf(resAnalysis, 'input').id]), 3);
    assert.equal(widthOf(wide[groupOf(resAnalysis, 'predictions').id]), 10);
  });

  it('rounds to the divisor, never below it', () => {
    assert.equal(roundWidth(13, 8), 16);
    assert.equal(roundWidth(11, 8), 8);
    assert.equal(roundWidth(2, 8), 8);
    assert.equal(roundWidth(0.2), 1);
    const sel = uniformSelection(resAnalysis, 0.3, 4);
    assert.equal(widthOf(sel[groupOf(resAnalysis, 'stem').id]), 4); // 4.8 → 4
    assert.equal(widthOf(sel[groupOf(resAnalysis, 'res3_conv1').id]), 8); // 9.6 → 8
  });

  it('refuses a non-positive or non-finite multiplier (MORPH_ERR_BAD_ARGUMENT)', () => {
    for (const m of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) throwsCode(() => uniformSelection(resAnalysis, m), 'MORPH_ERR_BAD_ARGUMENT', 'multiplier');
  });
});

describe('structureSelection', () => {
  it('sets a group width from any member layer; others keep theirs', () => {
    const sel = structureSelection(resGraph, resAnalysis, { res1_conv1: 5, res2_add: 20, res3_conv1_bn: 7 });
    assert.equal(widthOf(sel[groupOf(resAnalysis, 'res1_conv1').id]), 5);
    assert.equal(widthOf(sel[groupOf(resAnalysis, 'res2_conv2').id]), 20);
    assert.equal(widthOf(sel[groupOf(resAnalysis, 'res3_conv1').id]), 7);
    assert.equal(widthOf(sel[groupOf(resAnalysis, 'stem').id]), 16);
    assert.deepEqual(sel[groupOf(resAnalysis, 'res1_conv1').id].keep, [0, 1, 2, 3, 4]);
    const grow = structureSelection(resGraph, resAnalysis, { stem: 24 });
    assert.deepEqual(grow[groupOf(resAnalysis, 'stem').id].add, 8);
  });

  it('accepts equal widths for layers of one group, and a fixed layer at its own width', () => {
    const sel = structureSelection(resGraph, resAnalysis, { stem: 12, res1_conv2: 12, res1_add: 12, predictions: 10, input: 3 });
    assert.equal(widthOf(sel[groupOf(resAnalysis, 'stem').id]), 12);
  });

  it('refuses unknown layer names, listing them (MORPH_ERR_BAD_STRUCTURE)', () => {
    throwsCode(() => structureSelection(resGraph, resAnalysis, { stem: 8, nope: 3, 'also-not': 4 }), 'MORPH_ERR_BAD_STRUCTURE', '"nope"', '"also-not"');
  });

  it('refuses zero, negative and non-integer widths (MORPH_ERR_BAD_STRUCTURE)', () => {
    throwsCode(() => structureSelection(resGraph, resAnalysis, { stem: 0 }), 'MORPH_ERR_BAD_STRUCTURE', 'stem=0');
    throwsCode(() => structureSelection(resGraph, resAnalysis, { stem: -4 }), 'MORPH_ERR_BAD_STRUCTURE', 'stem=-4');
    throwsCode(() => structureSelection(resGraph, resAnalysis, { stem: 2.5 }), 'MORPH_ERR_BAD_STRUCTURE', 'stem=2.5');
    throwsCode(() => structureSelection(resGraph, resAnalysis, { stem: '8' }), 'MORPH_ERR_BAD_STRUCTURE', 'stem="8"');
  });

  it('refuses conflicting widths in one group, naming both layers (MORPH_ERR_BAD_STRUCTURE)', () => {
    throwsCode(() => structureSelection(resGraph, resAnalysis, { res2_conv2: 16, res2_proj: 24 }), 'MORPH_ERR_BAD_STRUCTURE', '"res2_conv2"', '"res2_proj"', '16', '24');
    throwsCode(() => structureSelection(resGraph, resAnalysis, { stem: 8, res1_out: 12 }), 'MORPH_ERR_BAD_STRUCTURE', '"stem"', '"res1_out"');
  });

  it('refuses another width for a fixed layer (MORPH_ERR_BAD_STRUCTURE)', () => {
    throwsCode(() => structureSelection(resGraph, resAnalysis, { predictions: 5 }), 'MORPH_ERR_BAD_STRUCTURE', '"predictions"', 'network output');
    throwsCode(() => structureSelection(resGraph, resAnalysis, { input: 4 }), 'MORPH_ERR_BAD_STRUCTURE', '"input"', 'network input');
  });

  it('refuses a layer whose output spans several groups (a concat)', () => {
    throwsCode(() => structureSelection(catGraph, catAnalysis, { mixed: 16 }), 'MORPH_ERR_BAD_STRUCTURE', '"mixed"');
    throwsCode(() => structureSelection(catGraph, catAnalysis, { mixed_bn: 16 }), 'MORPH_ERR_BAD_STRUCTURE', '"mixed_bn"');
  });

  it('refuses a structure that is not an object (MORPH_ERR_BAD_STRUCTURE)', () => {
    for (const s of [null, [1], 'stem=3', 4]) throwsCode(() => structureSelection(resGraph, resAnalysis, s), 'MORPH_ERR_BAD_STRUCTURE', 'JSON object');
  });
});

describe('groupGammas and aliveSelection', () => {
  it('takes the max |gamma| over every batch norm covering a group channel, concat slices included', () => {
    // Each BN's gamma = -(index+1)/100 except mixed_bn, which is larger on odd channels.
    const w = bnWeights(catGraph, (layer, c) => (layer === 'mixed_bn' ? (c % 2 === 1 ? 5 + c : 0) : -(c + 1) / 100));
    const gam = groupGammas(catGraph, catAnalysis, w);
    const a = groupOf(catAnalysis, 'branch_a_1x1'); // concat channels 0..7
    const b = groupOf(catAnalysis, 'branch_b_3x3'); // concat channels 8..23
    const c = groupOf(catAnalysis, 'branch_c_1x1'); // concat channels 24..31
    assert.equal(gam[a.id][0], Math.fround(0.01));
    assert.equal(gam[a.id][1], 6);
    assert.equal(gam[b.id][0], Math.fround(0.01));
    assert.equal(gam[b.id][1], 5 + 9);
    assert.equal(gam[c.id][7], 5 + 31);
    assert.equal(gam[c.id][6], Math.fround(0.07));
    assert.equal(gam[groupOf(catAnalysis, 'input').id].length, 0);
  });

  it('keeps regularized channels above the threshold and every channel of other groups', () => {
    const stem = groupOf(resAnalysis, 'stem');
    // stem group: stem_bn and res1_conv2_bn cover it; channel c is alive if either is.
    const w = bnWeights(resGraph, (layer, c) => {
      if (layer === 'stem_bn') return c < 4 ? 1 : 0;
      if (layer === 'res1_conv2_bn') return c === 10 ? -0.5 : 1e-4;
      return 1;
    });
    const r = aliveSelection(resGraph, resAnalysis, w, 1e-3);
    assert.deepEqual(r.selection[stem.id], { keep: [0, 1, 2, 3, 10], add: 0 });
    assert.deepEqual(r.alive[stem.id], { group: stem.id, layers: stem.layers, channels: 16, alive: 5, regularized: true });
    for (const g of resAnalysis.groups.filter((x) => x.id !== stem.id)) assert.equal(r.alive[g.id].alive, g.channels);
    assert.deepEqual(r.warnings, []);
  });

  it('keeps the largest channel of a group that would die, and warns', () => {
    const w = bnWeights(resGraph, (layer, c) => (layer === 'res1_conv1_bn' ? (c === 3 ? 1e-4 : 0) : 1));
    const r = aliveSelection(resGraph, resAnalysis, w, 1e-2);
    assert.deepEqual(r.selection[groupOf(resAnalysis, 'res1_conv1').id], { keep: [3], add: 0 });
    assert.equal(r.warnings.length, 1);
    assert.match(r.warnings[0], /res1_conv1/);
  });

  it('refuses a negative or non-finite threshold (MORPH_ERR_BAD_ARGUMENT)', () => {
    const w = bnWeights(resGraph, () => 1);
    throwsCode(() => aliveSelection(resGraph, resAnalysis, w, -1), 'MORPH_ERR_BAD_ARGUMENT', 'threshold');
    throwsCode(() => aliveSelection(resGraph, resAnalysis, w, Number.NaN), 'MORPH_ERR_BAD_ARGUMENT', 'threshold');
  });
});
