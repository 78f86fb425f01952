import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MorphError } from '../../src/errors.ts';
import { analyzeChannels } from '../../src/graph/channel-groups.ts';
import { parseModel } from '../../src/graph/parse.ts';
import { axisValues, graphSpecs, tableGrid } from '../../src/ops/graph-specs.ts';
import { concatParts, makeSpec, outputShape, signature, specBytes, specKey, validateSpec, withChannels, type OpSpec, type OpSpecInput } from '../../src/ops/op-spec.ts';
import { seedModel } from '../../src/seeds/index.ts';
import { planNetworkLatency } from '../../src/cost/latency-locate.ts';
import { squeezeExcitationNet } from '../fixtures/byom-models.ts';

const isSpecError = (field?: string) => (err: unknown): boolean =>
  err instanceof MorphError && err.code === 'MORPH_ERR_BAD_OP_SPEC' && (field === undefined || err.details.field === field);

describe('OpSpec', () => {
  it('fills defaults and canonicalises fields a kind ignores', () => {
    const s = makeSpec({ kind: 'conv2d', inH: 28, inW: 28, cIn: 3, cOut: 16, kernel: 3 });
    assert.deepEqual(s, { kind: 'conv2d', inH: 28, inW: 28, cIn: 3, cOut: 16, kernel: [3, 3], stride: [1, 1], padding: 'same', dilation: [1, 1], activation: 'none', numInputs: 1, batch: 1, dtype: 'float32' });
    assert.equal(makeSpec({ kind: 'add', inH: 4, inW: 4, cIn: 8, padding: 'same' }).padding, 'valid');
    assert.equal(makeSpec({ kind: 'depthwise', inH: 4, inW: 4, cIn: 8 }).cOut, 8);
    // 1×1 'same' and 'valid' compute the same thing: one signature.
    const a = makeSpec({ kind: 'conv2d', inH: 7, inW: 7, cIn: 8, cOut: 8, kernel: 1, padding: 'same' });
    const b = makeSpec({ kind: 'conv2d', inH: 7, inW: 7, cIn: 8, cOut: 8, kernel: 1, padding: 'valid' });
    assert.equal(specKey(a), specKey(b));
  });

  it('has a stable signature without channels and a key with them', () => {
    const s = makeSpec({ kind: 'depthwise', inH: 14, inW: 14, cIn: 32, cOut: 64, kernel: 3, stride: 2, activation: 'relu6' });
    assert.equal(signature(s), 'depthwise/14x14/k3x3/s2x2/same/d1x1/relu6/m2/b1/float32');
    assert.equal(specKey(s), 'depthwise/14x14/k3x3/s2x2/same/d1x1/relu6/m2/b1/float32@32x64');
    assert.equal(signature(withChannels(s, 8, 0)), signature(s));
    assert.equal(withChannels(s, 8, 0).cOut, 16);
    assert.equal(signature(makeSpec({ kind: 'add', inH: 2, inW: 2, cIn: 4, numInputs: 3 })), 'add/2x2/k1x1/s1x1/valid/d1x1/none/n3/b1/float32');
  });

  it('computes output shapes and concat parts', () => {
    assert.deepEqual(outputShape(makeSpec({ kind: 'conv2d', inH: 9, inW: 9, cIn: 1, cOut: 4, kernel: 3, stride: 2, padding: 'valid' })), [1, 4, 4, 4]);
    assert.deepEqual(outputShape(makeSpec({ kind: 'globalavgpool', inH: 9, inW: 9, cIn: 5, batch: 2 })), [2, 5]);
    assert.deepEqual(concatParts(makeSpec({ kind: 'concat', inH: 2, inW: 2, cIn: 4, cOut: 11, numInputs: 3 })), [4, 4, 3]);
  });

  const BAD: [string, OpSpecInput, string][] = [
    ['unknown kind', { kind: 'lstm' as never, inH: 1, inW: 1, cIn: 1 }, 'kind'],
    ['zero channels', { kind: 'conv2d', inH: 4, inW: 4, cIn: 0, cOut: 4 }, 'cIn'],
    ['fractional size', { kind: 'conv2d', inH: 4.5, inW: 4, cIn: 1, cOut: 4 }, 'inH'],
    ['missing cOut', { kind: 'conv2d', inH: 4, inW: 4, cIn: 1 }, 'cOut'],
    ['unknown activation', { kind: 'conv2d', inH: 4, inW: 4, cIn: 1, cOut: 1, activation: 'gelu' as never }, 'activation'],
    ['int8 dtype', { kind: 'dense', cIn: 4, cOut: 4, dtype: 'int8' as never }, 'dtype'],
    ['window too large', { kind: 'conv2d', inH: 2, inW: 2, cIn: 1, cOut: 1, kernel: 3, padding: 'valid' }, 'kernel'],
    ['pool changing channels', { kind: 'maxpool', inH: 4, inW: 4, cIn: 4, cOut: 8, kernel: 2 }, 'cOut'],
    ['depthwise cOut not a multiple', { kind: 'depthwise', inH: 4, inW: 4, cIn: 4, cOut: 6 }, 'cOut'],
    ['add with one input', { kind: 'add', inH: 4, inW: 4, cIn: 4, numInputs: 1 }, 'numInputs'],
    ['concat without room for the other input', { kind: 'concat', inH: 4, inW: 4, cIn: 4, cOut: 4 }, 'cOut'],
    ['dense with a spatial input', { kind: 'dense', inH: 3, inW: 3, cIn: 4, cOut: 4 }, 'inH'],
    ['kernel on a windowless kind', { kind: 'add', inH: 4, inW: 4, cIn: 4, kernel: 3 }, 'kernel'],
    ['huge size', { kind: 'conv2d', inH: 1e9, inW: 4, cIn: 1, cOut: 1 }, 'inH'],
  ];
  for (const [what, input, field] of BAD) {
    it(`rejects ${what}`, () => {
      assert.throws(() => makeSpec(input), isSpecError(field));
    });
  }

  it('validates specs from elsewhere (e.g. the wire) without fixing them', () => {
    const good = makeSpec({ kind: 'add', inH: 4, inW: 4, cIn: 4 });
    validateSpec(good);
    assert.throws(() => validateSpec({ ...good, padding: 'same' } as OpSpec), isSpecError('kernel'));
    assert.throws(() => validateSpec({ ...good, stride: [1] } as unknown as OpSpec), isSpecError('stride'));
  });
});

describe('graph specs', () => {
  it('prices an SE network: swish and sigmoid as ops, the SE Multiply as mul by a per-channel gate', () => {
    const g = parseModel(squeezeExcitationNet()).graph;
    const r = graphSpecs(g, { analysis: analyzeChannels(g) });
    const count = (kind: string): number => r.occurrences.filter((o) => r.specs.find((s) => s.key === o.key)!.spec.kind === kind).length;
    assert.equal(count('mul'), 3);
    // stem + 2 per block as layers, + each SE reduce conv's own swish.
    assert.equal(count('swish'), 1 + 3 * 2 + 3);
    // Each SE expand conv's own sigmoid runs after it: `layer#activation`.
    assert.equal(count('sigmoid'), 3);
    assert.ok(r.occurrences.some((o) => o.layer === 'block2_se_expand#activation'));
    const mul = r.specs.find((s) => s.layers.includes('block2_se_excite'))!.spec;
    assert.deepEqual([mul.kind, mul.inH, mul.inW, mul.cIn], ['mul', 8, 8, 64]);
    assert.deepEqual(r.skipped.map((s) => s.layer), ['rescale']);
    // The latency plan places every spec on the channel analysis (it throws when they disagree).
    const plan = planNetworkLatency(g);
    assert.equal(plan.ops.length, r.occurrences.length);
  });

  it('prices Conv2DTranspose as transposeconv and UpSampling2D as upsample', () => {
    const g = parseModel({
      class_name: 'Sequential',
      config: {
        name: 'decoder',
        layers: [
          { class_name: 'Conv2DTranspose', config: { name: 'up1', filters: 8, kernel_size: 3, strides: 2, padding: 'same', activation: 'relu', batch_input_shape: [null, 4, 4, 16] } },
          { class_name: 'UpSampling2D', config: { name: 'up2', size: [2, 2], interpolation: 'bilinear' } },
          { class_name: 'Conv2D', config: { name: 'out', filters: 3, kernel_size: 3, padding: 'same' } },
        ],
      },
    }).graph;
    const r = graphSpecs(g, { analysis: analyzeChannels(g) });
    assert.deepEqual(r.specs.map((s) => s.key), [
      'transposeconv/4x4/k3x3/s2x2/same/d1x1/relu/b1/float32@16x8',
      'upsample_bilinear/8x8/k1x1/s2x2/valid/d1x1/none/b1/float32@8x8',
      'conv2d/16x16/k3x3/s1x1/same/d1x1/none/b1/float32@8x3',
    ]);
    assert.deepEqual(outputShape(r.specs[0].spec), [1, 8, 8, 8]);
    assert.deepEqual(outputShape(r.specs[1].spec), [1, 16, 16, 8]);
    assert.equal(planNetworkLatency(g).ops.length, 3);
  });

  it('derives mobilenet: BN folded, ReLU fused, one spec per distinct op', () => {
    const g = parseModel(seedModel('mobilenet')).graph;
    const r = graphSpecs(g, { analysis: analyzeChannels(g) });
    // conv1, 7 depthwise + 7 pointwise, global pool, dense: all distinct (17), nothing skipped.
    assert.equal(r.specs.length, 17);
    assert.equal(r.occurrences.length, 17);
    assert.deepEqual(r.skipped, []);
    const convs = r.specs.filter((s) => s.spec.kind === 'conv2d' || s.spec.kind === 'depthwise');
    assert.ok(convs.every((s) => s.spec.activation === 'relu'));
    assert.equal(r.specs[0].key, 'conv2d/28x28/k3x3/s1x1/same/d1x1/relu/b1/float32@1x16');
    assert.equal(r.specs[0].cInFixed, true);
    const dense = r.specs.at(-1)!;
    assert.equal(dense.spec.kind, 'dense');
    assert.equal(dense.spec.activation, 'none');
    assert.equal(dense.cOutFixed, true);
  });

  it('dedups repeated resnet blocks and fuses the ReLU after Add', () => {
    const g = parseModel(seedModel('resnet')).graph;
    const r = graphSpecs(g);
    assert.equal(r.occurrences.length, 23);
    assert.equal(r.specs.length, 16);
    assert.equal(r.specs.reduce((n, s) => n + s.count, 0), 23);
    const adds = r.specs.filter((s) => s.spec.kind === 'add');
    assert.equal(adds.length, 3);
    assert.ok(adds.every((s) => s.spec.activation === 'relu' && s.count === 2));
    // The second conv of a block is followed by BN then Add: folded, not fused.
    assert.ok(r.specs.some((s) => s.layers.includes('stage1_block1_conv2') && s.spec.activation === 'none'));
  });

  it('derives vgg with max pooling and a dense after Flatten', () => {
    const g = parseModel(seedModel('vgg')).graph;
    const r = graphSpecs(g);
    assert.equal(r.specs.length, 11);
    assert.equal(r.specs.filter((s) => s.spec.kind === 'maxpool').length, 3);
    assert.ok(r.specs.some((s) => s.spec.kind === 'dense' && s.spec.cIn === 1152 && s.spec.activation === 'relu'));
  });

  it('samples multiples of the step up to the seed, always with the seed value', () => {
    assert.deepEqual(axisValues(32), [8, 16, 24, 32]);
    assert.deepEqual(axisValues(20), [8, 16, 20]);
    assert.deepEqual(axisValues(3), [3]);
    const wide = axisValues(256, { maxPerAxis: 5 });
    assert.equal(wide.length, 5);
    assert.deepEqual([wide[0], wide.at(-1)], [8, 256]);
    assert.ok(wide.every((c) => c % 8 === 0));
    assert.deepEqual(axisValues(16, { maxScale: 2 }), [8, 16, 24, 32]);
  });

  it('grids both axes of a conv, one axis of a depthwise, and keeps fixed axes', () => {
    const conv = makeSpec({ kind: 'conv2d', inH: 8, inW: 8, cIn: 16, cOut: 24, kernel: 3 });
    assert.equal(tableGrid({ spec: conv, cInFixed: false, cOutFixed: false }).length, 2 * 3);
    assert.deepEqual(tableGrid({ spec: conv, cInFixed: true, cOutFixed: false }).map((p) => p.cIn), [16, 16, 16]);
    const dw = makeSpec({ kind: 'depthwise', inH: 8, inW: 8, cIn: 16, cOut: 32 });
    assert.deepEqual(tableGrid({ spec: dw, cInFixed: false, cOutFixed: false }), [{ cIn: 8, cOut: 16 }, { cIn: 16, cOut: 32 }]);
    const cat = makeSpec({ kind: 'concat', inH: 8, inW: 8, cIn: 16, cOut: 20 });
    assert.deepEqual(tableGrid({ spec: cat, cInFixed: false, cOutFixed: false }), [{ cIn: 8, cOut: 12 }, { cIn: 16, cOut: 20 }]);
  });
});

describe('specBytes', () => {
  const mb = (bytes: number): number => bytes / 1e6;
  const near = (x: number, y: number): boolean => Math.abs(x - y) < 1e-15;

  it('counts every input, the output and the weights with bias, in float32 bytes (by hand)', () => {
    // 8×8×3 in, 8×8×16 out; 3·3·3·16 weights + 16 biases.
    const conv = specBytes(makeSpec({ kind: 'conv2d', inH: 8, inW: 8, cIn: 3, cOut: 16, kernel: 3 }));
    assert.ok(near(conv.ioMB, mb((8 * 8 * 3 + 8 * 8 * 16) * 4)) && near(conv.weightMB, mb((3 * 3 * 3 * 16 + 16) * 4)), JSON.stringify(conv));
    // Stride 2 'same': 16×16×8 in, 8×8×8 out; a 3×3 kernel per channel + bias.
    const dw = specBytes(makeSpec({ kind: 'depthwise', inH: 16, inW: 16, cIn: 8, kernel: 3, stride: 2 }));
    assert.ok(near(dw.ioMB, mb((16 * 16 * 8 + 8 * 8 * 8) * 4)) && near(dw.weightMB, mb((9 * 8 + 8) * 4)), JSON.stringify(dw));
    // Two 4×4×5 inputs and one output, no weights.
    const add = specBytes(makeSpec({ kind: 'add', inH: 4, inW: 4, cIn: 5 }));
    assert.ok(near(add.ioMB, mb(3 * 4 * 4 * 5 * 4)) && add.weightMB === 0, JSON.stringify(add));
    // The SE gate: the tensor, its [1, 1, c] gate, and the output.
    const mul = specBytes(makeSpec({ kind: 'mul', inH: 4, inW: 4, cIn: 6 }));
    assert.ok(near(mul.ioMB, mb((2 * 4 * 4 * 6 + 6) * 4)), JSON.stringify(mul));
    const dense = specBytes(makeSpec({ kind: 'dense', cIn: 32, cOut: 10 }));
    assert.ok(near(dense.ioMB, mb(42 * 4)) && near(dense.weightMB, mb((320 + 10) * 4)), JSON.stringify(dense));
  });
});
