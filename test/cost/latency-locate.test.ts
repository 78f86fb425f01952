import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { costOps, VALID_COST_OP_KINDS, type CostOp } from '../../src/cost/cost-model.ts';
import {
  latencyCostModel,
  locateTables,
  networkLatencyAt,
  planNetworkLatency,
  requiredPoints,
  type NetworkLatencyPlan,
  type RequiredPoint,
  type TableOf,
} from '../../src/cost/latency-locate.ts';
import type { TableRef } from '../../src/cost/latency-model.ts';
import { LatencyTable, LatencyTableSet, type LatencyPoint } from '../../src/cost/latency-table.ts';
import { predictNetwork } from '../../src/cost/predict-network.ts';
import { isMorphError, MorphError } from '../../src/errors.ts';
import { analyzeChannels, type ChannelAnalysis } from '../../src/graph/channel-groups.ts';
import type { Graph } from '../../src/graph/graph.ts';
import type { ModelConfigJson, TfjsModelJson } from '../../src/graph/keras-json.ts';
import { parseModel } from '../../src/graph/parse.ts';
import { rebuild } from '../../src/graph/rebuild.ts';
import { seedWidths, selectionFromWidths } from '../../src/graph/widths.ts';
import { widthsAt } from '../../src/morph/expand.ts';
import { expandToLatency } from '../../src/morph/expand-latency.ts';
import { costAt, opChannels } from '../../src/morph/network-cost.ts';
import { graphSpecs } from '../../src/ops/graph-specs.ts';
import { specKey } from '../../src/ops/op-spec.ts';
import { seedModel, VALID_SEEDS } from '../../src/seeds/index.ts';
import { createRng } from '../../src/util/random.ts';
import { randomCnn } from '../bench/random-cnns.ts';

const DEVICE = 'pi4';
const RUNTIME = 'tfjs-wasm';
const CAL = { a: 1.15, b: 0.012, c: 0.4 };

/**
 * A model with what the seeds lack: a SeparableConv2D with depth multiplier 2, a depthwise ×2
 * feeding a 1×1 conv (a repeated layout), a Concatenate, a shared conv called twice, an Add, a
 * max pool and a dense after Flatten.
 */
function customModel(): TfjsModelJson {
  const conv = (name: string, filters: number, k: number, input: string): object => ({
    class_name: 'Conv2D',
    name,
    config: { name, filters, kernel_size: k, padding: 'same', use_bias: false },
    inbound_nodes: [[[input, 0, 0, {}]]],
  });
  const bn = (name: string, input: string, node = 0): object => ({ class_name: 'BatchNormalization', name, config: { name }, inbound_nodes: [[[input, node, 0, {}]]] });
  const relu = (name: string, input: string): object => ({ class_name: 'ReLU', name, config: { name }, inbound_nodes: [[[input, 0, 0, {}]]] });
  const modelTopology: ModelConfigJson = {
    class_name: 'Functional',
    config: {
      name: 'custom',
      layers: [
        { class_name: 'InputLayer', name: 'in', config: { name: 'in', batch_input_shape: [null, 16, 16, 3] }, inbound_nodes: [] },
        conv('c1', 8, 3, 'in'),
        bn('bn1', 'c1'),
        relu('r1', 'bn1'),
        {
          class_name: 'SeparableConv2D',
          name: 'sep',
          config: { name: 'sep', filters: 12, kernel_size: 3, padding: 'same', depth_multiplier: 2, use_bias: false },
          inbound_nodes: [[['r1', 0, 0, {}]]],
        },
        bn('bn2', 'sep'),
        relu('r2', 'bn2'),
        { class_name: 'DepthwiseConv2D', name: 'dw', config: { name: 'dw', kernel_size: 3, padding: 'same', depth_multiplier: 2, use_bias: false }, inbound_nodes: [[['r2', 0, 0, {}]]] },
        bn('bn3', 'dw'),
        relu('r3', 'bn3'),
        conv('pw', 16, 1, 'r3'),
        bn('bn4', 'pw'),
        relu('r4', 'bn4'),
        conv('br', 16, 3, 'r2'),
        bn('bn5', 'br'),
        relu('r5', 'bn5'),
        { class_name: 'Concatenate', name: 'cat', config: { name: 'cat', axis: -1 }, inbound_nodes: [[['r4', 0, 0, {}], ['r5', 0, 0, {}]]] },
        conv('c6', 20, 3, 'cat'),
        bn('bn6', 'c6'),
        relu('r6', 'bn6'),
        {
          class_name: 'Conv2D',
          name: 'sh',
          config: { name: 'sh', filters: 20, kernel_size: 3, padding: 'same', use_bias: false },
          inbound_nodes: [[['r6', 0, 0, {}]], [['r7', 0, 0, {}]]],
        },
        bn('bn7', 'sh'),
        relu('r7', 'bn7'),
        { class_name: 'Add', name: 'add', config: { name: 'add' }, inbound_nodes: [[['sh', 1, 0, {}], ['r6', 0, 0, {}]]] },
        relu('radd', 'add'),
        { class_name: 'MaxPooling2D', name: 'mp', config: { name: 'mp', pool_size: [2, 2], strides: [2, 2], padding: 'valid' }, inbound_nodes: [[['radd', 0, 0, {}]]] },
        { class_name: 'Flatten', name: 'flat', config: { name: 'flat' }, inbound_nodes: [[['mp', 0, 0, {}]]] },
        { class_name: 'Dense', name: 'fc', config: { name: 'fc', units: 16, use_bias: false }, inbound_nodes: [[['flat', 0, 0, {}]]] },
        bn('bnfc', 'fc'),
        relu('rfc', 'bnfc'),
        { class_name: 'Dense', name: 'out', config: { name: 'out', units: 10, activation: 'softmax' }, inbound_nodes: [[['rfc', 0, 0, {}]]] },
      ] as never,
      input_layers: [['in', 0, 0]],
      output_layers: [['out', 0, 0]],
    },
  };
  return { format: 'layers-model', generatedBy: 'test', convertedBy: null, modelTopology };
}

interface Net {
  readonly name: string;
  readonly graph: Graph;
  readonly analysis: ChannelAnalysis;
  readonly plan: NetworkLatencyPlan;
  readonly ops: CostOp[];
}

function netOf(name: string, model: TfjsModelJson): Net {
  const graph = parseModel(model).graph;
  const analysis = analyzeChannels(graph);
  return { name, graph, analysis, plan: planNetworkLatency(graph, analysis), ops: costOps(graph, analysis) };
}

const NETS: Net[] = [
  ...VALID_SEEDS.map((s) => netOf(s, seedModel(s))),
  netOf('custom', customModel()),
  ...[0, 1, 2, 3].map((s) => netOf(`random-cnn-${s}`, randomCnn(s))),
];
const SEED_NETS = NETS.filter((n) => (VALID_SEEDS as readonly string[]).includes(n.name) || n.name === 'custom');

/** A bilinear latency α·x·y + β·x + γ·y + δ (tied kinds: β·x + δ) with coefficients drawn from the signature. */
function synthetic(sig: string): (x: number, y: number) => number {
  let h = 2166136261;
  for (let i = 0; i < sig.length; i++) h = Math.imul(h ^ sig.charCodeAt(i), 16777619);
  const rng = createRng(h >>> 0);
  const [a, b, c, d] = [1e-5 + 9e-5 * rng(), 1e-4 + 9e-4 * rng(), 1e-4 + 9e-4 * rng(), 0.005 + 0.045 * rng()];
  return isGrid(sig) ? (x, y) => a * x * y + b * x + c * y + d : (x) => b * x + d;
}

const isGrid = (sig: string): boolean => ['conv2d', 'dense', 'concat'].includes(sig.split('/')[0]);
const pt = (cIn: number, cOut: number, ms: number): LatencyPoint => ({ cIn, cOut, medianMs: ms, p10Ms: ms, p90Ms: ms, n: 20 });

/** Full tables over the points: grid kinds on the cross product of their c_in and c_out values. */
function tablesFor(points: readonly RequiredPoint[]): LatencyTableSet {
  const bySig = new Map<string, RequiredPoint[]>();
  for (const p of points) bySig.set(p.signature, [...(bySig.get(p.signature) ?? []), p]);
  const set = new Set<LatencyTable>();
  for (const [sig, ps] of bySig) {
    const f = synthetic(sig);
    const key = { device: DEVICE, runtime: RUNTIME, signature: sig };
    if (isGrid(sig)) {
      const xs = [...new Set(ps.map((p) => p.cIn))];
      const ys = [...new Set(ps.map((p) => p.cOut))];
      set.add(LatencyTable.fromPoints(key, xs.flatMap((x) => ys.map((y) => pt(x, y, f(x, y)))), { mode: 'grid' }));
    } else {
      set.add(LatencyTable.fromPoints(key, ps.map((p) => pt(p.cIn, p.cOut, f(p.cIn, p.cOut))), { mode: 'tied' }));
    }
  }
  return new LatencyTableSet(set);
}

const lookup = (tables: LatencyTableSet): TableOf => (sig) => tables.get({ device: DEVICE, runtime: RUNTIME, signature: sig });
const TABLES = new Map(NETS.map((n) => [n.name, tablesFor(requiredPoints(n.graph, n.analysis))]));
const tablesOf = (n: Net): LatencyTableSet => TABLES.get(n.name)!;

const close = (a: number, b: number, rel: number, abs = 1e-12): boolean => Math.abs(a - b) <= rel * Math.max(Math.abs(a), Math.abs(b)) + abs;

function predictRebuilt(n: Net, widths: number[]): ReturnType<typeof predictNetwork> {
  const rebuilt = rebuild(n.graph, n.analysis, selectionFromWidths(n.analysis, widths), null);
  const graph = parseModel({ format: 'layers-model', modelTopology: rebuilt.modelTopology }).graph;
  return predictNetwork(graphSpecs(graph), lookup(tablesOf(n)), { ...CAL, samples: 3 });
}

describe('locateTables and latencyCostModel', () => {
  for (const n of NETS) {
    it(`${n.name}: Σ of the cost model over the CostOps is the weighted ops' share of predictNetwork`, () => {
      const model = latencyCostModel(n.graph, { device: DEVICE, runtime: RUNTIME, tables: tablesOf(n), analysis: n.analysis });
      const total = costAt(n.ops, model, seedWidths(n.analysis));
      assert.deepEqual([...model.fallbacks().keys()], [], 'every CostOp has its tables');
      const p = predictNetwork(graphSpecs(n.graph), lookup(tablesOf(n)));
      assert.ok(p.ok);
      const weighted = new Set(n.graph.layers.filter((l) => (VALID_COST_OP_KINDS as readonly string[]).includes(l.kind)).map((l) => l.name));
      let expected = 0;
      for (const layer of p.layers) if (weighted.has(layer.name.split('#')[0])) for (const op of layer.ops) expected += op.tableMs;
      // Same points, same values, same order of summation: exactly equal.
      assert.equal(total, expected);
      assert.ok(expected < p.sumOpsMs || n.plan.ops.every((o) => weighted.has(o.layer)));
    });
  }

  it('maps a separable conv to its two halves, a depthwise to m·c_in, a dense after Flatten to tile·c_in, a shared conv to its calls', () => {
    const n = NETS.find((x) => x.name === 'custom')!;
    const locate = locateTables(n.graph, n.analysis);
    const op = (name: string): CostOp => n.ops.find((o) => o.layer === name)!;
    const refs = (name: string): readonly TableRef[] => {
      const r = locate(op(name));
      return r === undefined ? [] : Array.isArray(r) ? (r as readonly TableRef[]) : [r as TableRef];
    };
    const sep = refs('sep');
    assert.equal(sep.length, 2);
    assert.match(sep[0].signature, /^depthwise\/16x16\/k3x3\/.*\/none\/m2\//);
    assert.deepEqual(sep[0].outMap, [2, 0]);
    assert.match(sep[1].signature, /^conv2d\/16x16\/k1x1\/.*\/relu\//);
    assert.deepEqual(sep[1].inMap, [2, 0]);
    assert.deepEqual(refs('dw')[0].outMap, [2, 0]);
    assert.deepEqual(refs('fc')[0].inMap, [64, 0]);
    const sh = refs('sh');
    assert.deepEqual(sh.map((r) => r.repeat), [2]);
    // The shared conv runs twice without fusion (a shared layer keeps its BN and ReLU apart).
    assert.match(sh[0].signature, /\/none\//);
  });

  it('returns undefined for an op no OpSpec describes, so the model falls back to FLOPs', () => {
    const n = NETS[0];
    const locate = locateTables(n.graph, n.analysis);
    assert.equal(locate({ ...n.ops[0], layer: 'no-such-layer' }), undefined);
  });

  for (const n of SEED_NETS) {
    it(`${n.name}: marginals equal finite differences of the cost`, () => {
      const model = latencyCostModel(n.graph, { device: DEVICE, runtime: RUNTIME, tables: tablesOf(n) });
      const rng = createRng(7);
      const h = 1e-4;
      for (const o of n.ops) {
        const seed = opChannels(o, seedWidths(n.analysis));
        for (const [cIn, cOut] of [
          [seed.cIn, seed.cOut],
          [Math.max(1, Math.round(seed.cIn * (0.2 + 0.8 * rng()))) + 0.37, Math.max(1, Math.round(seed.cOut * (0.2 + 0.8 * rng()))) + 0.61],
        ]) {
          const m = model.marginals(o, cIn, cOut);
          const c = model.cost(o, cIn, cOut);
          const fdIn = (model.cost(o, cIn + h, cOut) - c) / h;
          const fdOut = (model.cost(o, cIn, cOut + h) - c) / h;
          assert.ok(close(m.dIn, fdIn, 1e-6, 1e-9), `${o.layer} dIn ${m.dIn} vs ${fdIn} at (${cIn}, ${cOut})`);
          assert.ok(close(m.dOut, fdOut, 1e-6, 1e-9), `${o.layer} dOut ${m.dOut} vs ${fdOut} at (${cIn}, ${cOut})`);
          assert.ok(m.dIn > 0);
          if (o.kind === 'depthwise') assert.equal(m.dOut, 0);
        }
      }
    });
  }

  it('serves graphs rebuilt from the seed: signatures do not depend on widths', () => {
    const n = NETS.find((x) => x.name === 'custom')!;
    const model = latencyCostModel(n.graph, { device: DEVICE, runtime: RUNTIME, tables: tablesOf(n) });
    const widths = widthsAt(n.analysis, seedWidths(n.analysis), 0.5, 4);
    const rebuilt = parseModel({ format: 'layers-model', modelTopology: rebuild(n.graph, n.analysis, selectionFromWidths(n.analysis, widths), null).modelTopology }).graph;
    const a2 = analyzeChannels(rebuilt);
    assert.equal(costAt(costOps(rebuilt, a2), model, seedWidths(a2)), costAt(n.ops, model, widths));
    assert.deepEqual([...model.fallbacks().keys()], []);
  });
});

describe('networkLatencyAt', () => {
  for (const n of NETS) {
    it(`${n.name}: at the seed widths it is predictNetwork of the seed`, () => {
      const p = predictNetwork(graphSpecs(n.graph), lookup(tablesOf(n)), { ...CAL, samples: 3 });
      assert.ok(p.ok);
      const r = networkLatencyAt(n.plan, seedWidths(n.analysis), lookup(tablesOf(n)), CAL);
      assert.equal(r.nOps, p.nOps);
      assert.equal(r.sumOpsMs, p.sumOpsMs);
      assert.equal(r.predictedMs, p.predictedMs);
    });
  }

  for (const n of [...SEED_NETS, ...NETS.filter((x) => x.name === 'random-cnn-0' || x.name === 'random-cnn-1')]) {
    it(`${n.name}: equals predictNetwork of the rebuilt graph at uniform multipliers and a random alive structure`, () => {
      const rng = createRng(11);
      const cases = [0.25, 0.4, 0.5, 0.7, 1].map((w) => widthsAt(n.analysis, seedWidths(n.analysis), w, 1));
      cases.push(n.analysis.groups.map((g) => (g.regularized ? 1 + Math.floor(rng() * g.channels) : g.channels)));
      for (const widths of cases) {
        const expected = predictRebuilt(n, widths);
        assert.ok(expected.ok);
        const r = networkLatencyAt(n.plan, widths, lookup(tablesOf(n)), CAL);
        assert.equal(r.nOps, expected.nOps);
        assert.ok(close(r.sumOpsMs, expected.sumOpsMs, 1e-9), `${r.sumOpsMs} vs ${expected.sumOpsMs} at ${widths.join(',')}`);
        assert.ok(close(r.predictedMs, expected.predictedMs, 1e-9), `${r.predictedMs} vs ${expected.predictedMs}`);
        const keys = expected.layers.flatMap((l) => l.ops.map((o) => o.key));
        assert.deepEqual(r.ops.map((o) => o.key), keys);
      }
    });
  }

  it('without a table, lists every missing signature with the points needed', () => {
    const n = NETS.find((x) => x.name === 'custom')!;
    const widths = widthsAt(n.analysis, seedWidths(n.analysis), 0.5, 4);
    const hidden = n.plan.ops.filter((o) => o.spec.kind === 'concat' || o.name === 'sep#depthwise').map((o) => o.signature);
    const tableOf: TableOf = (sig) => (hidden.includes(sig) ? undefined : lookup(tablesOf(n))(sig));
    assert.throws(
      () => networkLatencyAt(n.plan, widths, tableOf),
      (err: unknown) => {
        assert.ok(err instanceof MorphError);
        assert.equal(err.code, 'MORPH_ERR_MISSING_OPS');
        const missing = err.details.missing as { signature: string; points: { cIn: number; cOut: number }[]; layers: string[] }[];
        assert.deepEqual(missing.map((m) => m.signature).sort(), [...hidden].sort());
        const cat = missing.find((m) => m.layers.includes('cat'))!;
        // r4 (pw: 16 → 8) and r5 (br: 16 → 8) at half width.
        assert.deepEqual(cat.points, [{ cIn: 8, cOut: 16 }]);
        const dw = missing.find((m) => m.layers.includes('sep#depthwise'))!;
        assert.deepEqual(dw.points, [{ cIn: 4, cOut: 8 }]);
        assert.match(err.message, /\(8, 16\)/);
        return true;
      },
    );
  });

  it('refuses widths that change a fixed group or are not positive integers', () => {
    const n = NETS[0];
    const bad = seedWidths(n.analysis);
    const fixed = n.analysis.groups.find((g) => !g.resizable)!;
    bad[fixed.id] += 1;
    assert.throws(() => networkLatencyAt(n.plan, bad, lookup(tablesOf(n))), { code: 'MORPH_ERR_BAD_ARGUMENT' });
    const frac = seedWidths(n.analysis);
    frac[n.analysis.groups.find((g) => g.regularized)!.id] = 2.5;
    assert.throws(() => networkLatencyAt(n.plan, frac, lookup(tablesOf(n))), /not a positive integer/);
    assert.throws(() => networkLatencyAt(n.plan, [1, 2], lookup(tablesOf(n))), /channel groups/);
  });
});

describe('expandToLatency', () => {
  for (const n of SEED_NETS) {
    const tableOf = lookup(tablesOf(n));
    const latency = (widths: number[]): number => networkLatencyAt(n.plan, widths, tableOf, CAL).predictedMs;
    const seedMs = latency(seedWidths(n.analysis));

    it(`${n.name}: meets the target within one rounding step, from the seed and from a shrunk structure`, () => {
      const alive = n.analysis.groups.map((g, i) => (g.regularized ? Math.max(1, Math.floor(g.channels / (i % 3 === 0 ? 6 : 2))) : g.channels));
      for (const divisor of [4, 8]) {
        for (const base of [seedWidths(n.analysis), alive]) {
          for (const fraction of [0.35, 0.6, 0.9]) {
            const minimum = latency(n.analysis.groups.map((g) => (g.regularized ? divisor : g.channels)));
            const target = minimum + fraction * (seedMs - minimum);
            const r = expandToLatency(n.plan, base, target, tableOf, { divisor, calibration: CAL });
            assert.ok(r.cost <= target, `${r.cost} > ${target}`);
            assert.equal(r.cost, latency(r.widths));
            for (const g of n.analysis.groups) {
              if (g.regularized) assert.equal(r.widths[g.id] % divisor, 0);
              else assert.equal(r.widths[g.id], g.channels);
            }
            // One more rounding step on every regularized group overshoots.
            const up = r.widths.map((w, id) => (n.analysis.groups[id].regularized ? w + divisor : w));
            assert.ok(latency(up) > target, `one step up (${latency(up)}) still meets ${target}`);
          }
        }
      }
    });

    it(`${n.name}: refuses a target below the minimum reachable latency, saying the minimum, and one above the seed's`, () => {
      const minimum = latency(n.analysis.groups.map((g) => (g.regularized ? 8 : g.channels)));
      assert.throws(
        () => expandToLatency(n.plan, seedWidths(n.analysis), minimum * 0.99, tableOf, { divisor: 8, calibration: CAL }),
        (err: unknown) => {
          assert.ok(isMorphError(err));
          assert.equal(err.code, 'MORPH_ERR_TARGET');
          assert.equal(err.details.minimum, minimum);
          assert.ok(err.message.includes(`${minimum.toFixed(3)} ms`), err.message);
          return true;
        },
      );
      // Exactly the minimum is reachable.
      assert.equal(expandToLatency(n.plan, seedWidths(n.analysis), minimum, tableOf, { divisor: 8, calibration: CAL }).cost, minimum);
      assert.throws(
        () => expandToLatency(n.plan, seedWidths(n.analysis), seedMs * 1.01, tableOf, { divisor: 8, calibration: CAL }),
        (err: unknown) => isMorphError(err) && err.code === 'MORPH_ERR_TARGET' && err.details.seed === seedMs && err.message.includes(`${seedMs.toFixed(3)} ms`),
      );
      // A later round passes the original seed's latency as the ceiling.
      const r = expandToLatency(n.plan, seedWidths(n.analysis), seedMs * 1.01, tableOf, { divisor: 8, calibration: CAL, seedMs: seedMs * 2 });
      assert.ok(r.cost <= seedMs * 1.01);
    });
  }
});

describe('requiredPoints', () => {
  for (const n of NETS) {
    it(`${n.name}: covers the seed and every uniform width from the divisor up without extrapolating`, () => {
      const points = requiredPoints(n.graph, n.analysis);
      const keys = new Set(points.map((p) => specKey(p.spec)));
      assert.equal(keys.size, points.length, 'unique');
      for (const p of points) assert.equal(specKey(p.spec), `${p.signature}@${p.cIn}x${p.cOut}`);
      for (const o of n.plan.ops) assert.ok(keys.has(specKey(o.spec)), `seed point ${specKey(o.spec)}`);
      const tableOf = lookup(tablesOf(n));
      for (const w of [0.01, 0.3, 0.55, 0.8, 1]) {
        const r = networkLatencyAt(n.plan, widthsAt(n.analysis, seedWidths(n.analysis), w, 8), tableOf);
        const out = r.ops.filter((o) => o.extrapolated).map((o) => `${o.name} ${o.key}`);
        assert.deepEqual(out, [], `ω = ${w}`);
      }
    });
  }

  it('samples the input of a dense after Flatten and both parts of a concat', () => {
    const vgg = NETS.find((x) => x.name === 'vgg')!;
    const fc1 = requiredPoints(vgg.graph, vgg.analysis).filter((p) => p.signature.startsWith('dense/') && p.spec.activation === 'relu');
    // 3×3 positions of block3's 128 channels: 9·8 = 72 … 9·128 = 1152.
    assert.deepEqual([...new Set(fc1.map((p) => p.cIn))].sort((a, b) => a - b).slice(0, 1), [72]);
    assert.ok(fc1.some((p) => p.cIn === 1152 && p.cOut === 128));
    const custom = NETS.find((x) => x.name === 'custom')!;
    const cat = requiredPoints(custom.graph, custom.analysis).filter((p) => p.signature.startsWith('concat/'));
    assert.ok(new Set(cat.map((p) => p.cIn)).size > 1);
    assert.ok(new Set(cat.map((p) => p.cOut - p.cIn)).size > 1);
    assert.ok(cat.some((p) => p.cIn === 16 && p.cOut === 32));
  });

  it('with seedOnly, is exactly the seed ops', () => {
    for (const n of NETS) {
      const keys = requiredPoints(n.graph, n.analysis, { seedOnly: true }).map((p) => specKey(p.spec));
      assert.deepEqual(keys.sort(), [...new Set(n.plan.ops.map((o) => specKey(o.spec)))].sort());
    }
  });
});
