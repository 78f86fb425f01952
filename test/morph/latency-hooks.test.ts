import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { requiredPoints } from '../../src/cost/latency-locate.ts';
import { floorWidths } from '../../src/morph/expand.ts';
import { MorphError } from '../../src/errors.ts';
import { analyzeChannels } from '../../src/graph/channel-groups.ts';
import { parseModel } from '../../src/graph/parse.ts';
import { latencyHooks, type DeviceLatencyData } from '../../src/morph/latency-hooks.ts';
import { seedWidths } from '../../src/graph/widths.ts';
import { netOf, resolveTarget } from '../../src/morph/search.ts';
import { seedModel } from '../../src/seeds/index.ts';

/** Tables of the mobilenetv2 seed with a made-up cost per point: 0.01 ms + 1 µs per cIn·cOut/64. */
function device(minimumMs?: number): { data: DeviceLatencyData; graph: ReturnType<typeof parseModel>['graph'] } {
  const graph = parseModel(seedModel('mobilenetv2')).graph;
  const bySig = new Map<string, Map<string, { cIn: number; cOut: number }>>();
  for (const p of requiredPoints(graph)) {
    const m = bySig.get(p.signature) ?? new Map();
    m.set(`${p.cIn}x${p.cOut}`, { cIn: p.cIn, cOut: p.cOut });
    bySig.set(p.signature, m);
  }
  const tables = [...bySig].map(([signature, ps]) => ({
    signature,
    points: [...ps.values()].map(({ cIn, cOut }) => {
      const ms = 0.01 + (1e-3 * cIn * cOut) / 64;
      return { cIn, cOut, medianMs: ms, p10Ms: ms, p90Ms: ms, n: 20 };
    }),
  }));
  const data: DeviceLatencyData = { deviceId: 'd', runtime: 'tflite', tables, calibration: null, seedPredictedMs: Number.POSITIVE_INFINITY, ...(minimumMs === undefined ? {} : { minimumMs }) };
  return { data, graph };
}

describe('latencyHooks expand', () => {
  const { data, graph } = device();
  const analysis = analyzeChannels(graph);
  const base = analysis.groups.map((g) => g.channels);
  const smallest = floorWidths(analysis, 4);
  const predictedMinimum = latencyHooks(data, undefined).costAt(graph, analysis, smallest);

  it('refuses a target below the predicted minimum when nothing measured says it is reachable', () => {
    const hooks = latencyHooks(data, undefined);
    assert.throws(
      () => hooks.expand(graph, analysis, base, predictedMinimum * 0.95, 4),
      (e: unknown) => e instanceof MorphError && e.code === 'MORPH_ERR_TARGET' && Math.abs((e.details.minimum as number) - predictedMinimum) < 1e-12,
    );
  });

  it('gives the smallest network for a target between the measured and the predicted minimum', () => {
    const hooks = latencyHooks(device(predictedMinimum * 0.8).data, undefined);
    const r = hooks.expand(graph, analysis, base, predictedMinimum * 0.95, 4);
    assert.deepEqual(r.widths, smallest);
    assert.ok(Math.abs(r.cost - predictedMinimum) < 1e-12);
  });

  it('still refuses a target below the measured minimum', () => {
    const hooks = latencyHooks(device(predictedMinimum * 0.9).data, undefined);
    assert.throws(() => hooks.expand(graph, analysis, base, predictedMinimum * 0.85, 4), (e: unknown) => e instanceof MorphError && e.code === 'MORPH_ERR_TARGET');
  });
});

describe('resolveTarget on latency hooks', () => {
  const { data, graph } = device();
  const net = netOf(graph);
  const hooks = latencyHooks(data, undefined);
  const predictedMinimum = hooks.costAt(graph, net.analysis, floorWidths(net.analysis, 4));
  const seedMs = hooks.costAt(graph, net.analysis, seedWidths(net.analysis));

  it('reports the predicted smallest network as the minimum', () => {
    const value = (predictedMinimum + seedMs) / 2;
    assert.deepEqual(resolveTarget(net, hooks, { value }, 4), { value, seedCost: seedMs, minimum: predictedMinimum });
  });

  it('takes a target between the measured and the predicted minimum, and reports the target as the minimum', () => {
    const value = predictedMinimum * 0.95;
    assert.deepEqual(resolveTarget(net, latencyHooks(device(predictedMinimum * 0.8).data, undefined), { value }, 4), { value, seedCost: seedMs, minimum: value });
  });

  it('refuses a target below the predicted minimum when nothing measured says it is reachable', () => {
    assert.throws(
      () => resolveTarget(net, hooks, { value: predictedMinimum * 0.95 }, 4),
      (e: unknown) => e instanceof MorphError && e.code === 'MORPH_ERR_TARGET' && e.details.minimum === predictedMinimum && e.message.includes(`${predictedMinimum.toFixed(3)} ms`),
    );
  });
});

describe('latencyHooks anchored to the seed\'s measurement', () => {
  const { data, graph } = device();
  const net = netOf(graph);
  const plain = latencyHooks(data, undefined);
  const seedPredicted = plain.costAt(graph, net.analysis, seedWidths(net.analysis));
  // The device measured the seed 25% slower than the calibration predicts.
  const anchored = latencyHooks({ ...data, seedPredictedMs: seedPredicted, seedMeasuredMs: seedPredicted * 1.25 }, undefined);

  it('scales every prediction by measured/predicted of the seed', () => {
    const half = floorWidths(net.analysis, 4);
    assert.ok(Math.abs(anchored.costAt(graph, net.analysis, half) / plain.costAt(graph, net.analysis, half) - 1.25) < 1e-12);
    assert.ok(Math.abs(anchored.costAt(graph, net.analysis, seedWidths(net.analysis)) - seedPredicted * 1.25) < 1e-12);
  });

  it('takes a target between the seed\'s prediction and its measurement, and expands to a network the anchored prediction puts at or under it', () => {
    const value = seedPredicted * 1.1;
    assert.throws(() => resolveTarget(net, plain, { value }, 4), (e: unknown) => e instanceof MorphError && e.code === 'MORPH_ERR_TARGET');
    const r = resolveTarget(net, anchored, { value }, 4);
    assert.equal(r.value, value);
    assert.ok(Math.abs(r.seedCost - seedPredicted * 1.25) < 1e-12);
    const e = anchored.expand(graph, net.analysis, seedWidths(net.analysis), value, 4);
    assert.ok(e.cost <= value && e.cost > value * 0.9, `expanded to ${e.cost} for ${value}`);
    assert.ok(Math.abs(e.cost - anchored.costAt(graph, net.analysis, e.widths)) < 1e-12);
  });

  it('leaves the prediction alone without a measurement', () => {
    assert.equal(latencyHooks({ ...data, seedPredictedMs: seedPredicted, seedMeasuredMs: null }, undefined).costAt(graph, net.analysis, seedWidths(net.analysis)), seedPredicted);
  });
});
