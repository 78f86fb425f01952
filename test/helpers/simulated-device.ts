/**
 * A simulated device for latency-search tests: every work item gets a deterministic latency, so
 * what a search does with it (the target, the closed loop, where it stops) is the same on every
 * run however fast or busy the machine is. Use it with `FakeAgent`'s `measurementOf`.
 *
 * An op costs a fixed overhead plus a time per multiply-add and per output element; a network
 * costs the sum of its fused ops (`graphSpecs`, as the server prices it), raised to
 * `networkExponent`, times `networkScale`, plus `networkOverheadMs`. A network timed against a reference reports the two latencies' ratio, as
 * the agents' interleaved measurement does (src/measure/interleaved.ts).
 */
import { parseModel } from '../../src/graph/parse.ts';
import { graphSpecs } from '../../src/ops/graph-specs.ts';
import { outputShape, specMacs, type OpSpec } from '../../src/ops/op-spec.ts';
import type { WireMeasurement, WorkItem } from '../../src/protocol/agent-protocol.ts';

export interface SimulatedDeviceOptions {
  /** ms per op run. Default 0.01. */
  readonly perOpMs?: number;
  /** ms per multiply-add. Default 1e-7 (10 GMAC/s). */
  readonly perMacMs?: number;
  /** ms per output element. Default 2e-8. */
  readonly perElementMs?: number;
  /** A network runs this many times slower than the sum of its ops. Default 1.2. */
  readonly networkScale?: number;
  /** ms per network run on top of its ops. Default 0.05. */
  readonly networkOverheadMs?: number;
  /**
   * A network's ops cost (sum)^exponent ms together, which no linear calibration fits: above 1,
   * predictions between the networks the calibration saw come out short, and the closed loop has
   * to correct them. Default 1.
   */
  readonly networkExponent?: number;
}

export interface SimulatedDevice {
  opMs(spec: OpSpec): number;
  /** A network given as a Keras model config (what a tfjs runtime's work item carries). */
  networkMs(modelTopology: unknown): number;
  /** What the device reports for a work item (`FakeAgent`'s `measurementOf`). */
  measurementOf(item: WorkItem): WireMeasurement;
}

export function simulatedDevice(options: SimulatedDeviceOptions = {}): SimulatedDevice {
  const o = { perOpMs: 0.01, perMacMs: 1e-7, perElementMs: 2e-8, networkScale: 1.2, networkOverheadMs: 0.05, networkExponent: 1, ...options };
  const opMs = (spec: OpSpec): number => o.perOpMs + o.perMacMs * specMacs(spec) + o.perElementMs * outputShape(spec).reduce((a, b) => a * b, 1);
  const networkMs = (modelTopology: unknown): number => {
    if (modelTopology === undefined) throw new Error('the simulated device times networks from their modelTopology (a tfjs runtime)');
    const specs = graphSpecs(parseModel(modelTopology).graph);
    const byKey = new Map(specs.specs.map((s) => [s.key, s.spec]));
    const sum = specs.occurrences.reduce((ms, occ) => ms + opMs(byKey.get(occ.key) as OpSpec), 0);
    return o.networkScale * sum ** o.networkExponent + o.networkOverheadMs;
  };
  const steady = (ms: number): WireMeasurement => ({ medianMs: ms, p10Ms: ms, p90Ms: ms, meanMs: ms, cv: 0, n: 20, runsPerSample: 1, stable: true, attempts: 1, totalMs: 20 * ms });
  return {
    opMs,
    networkMs,
    measurementOf(item) {
      if (item.kind === 'op') return steady(opMs(item.spec));
      const ms = networkMs(item.modelTopology);
      if (!item.reference) return steady(ms);
      const refMs = networkMs(item.reference.modelTopology);
      return { ...steady(ms), reference: { medianMs: refMs, ratio: ms / refMs, ratioP10: ms / refMs, ratioP90: ms / refMs, rounds: 100 } };
    },
  };
}
