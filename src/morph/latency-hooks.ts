/**
 * The cost hooks of a latency-targeted search, built from one device's measured tables: the
 * regularizer prices channels by the table's marginals, expand bisects on predicted (calibrated)
 * latency, and `verify`, when given, measures candidates on the device (closed loop). Shared by
 * the server's search worker and the offline `morphnet search --cost latency --local`, so both
 * price a network the same way.
 */
import { flopsCostModel } from '../cost/cost-model.ts';
import { latencyCostModel, networkLatencyAt, planNetworkLatency, type CalibrationTerms, type NetworkLatencyPlan } from '../cost/latency-locate.ts';
import { LatencyTable, tableModeOf, type LatencyPoint } from '../cost/latency-table.ts';
import type { ChannelAnalysis } from '../graph/channel-groups.ts';
import type { Graph } from '../graph/graph.ts';
import { expandToLatency } from './expand-latency.ts';
import type { SearchCostHooks } from './search-cost.ts';
import { MorphError } from '../errors.ts';

/** What the hooks need to know about the device: its tables, its calibration, the seed's predicted latency. */
export interface DeviceLatencyData {
  readonly deviceId: string;
  readonly runtime: string;
  readonly tables: readonly { readonly signature: string; readonly points: readonly LatencyPoint[] }[];
  readonly calibration: CalibrationTerms | null;
  /** The seed's predicted (calibrated) latency, ms. */
  readonly seedPredictedMs: number;
  /**
   * The seed's measured latency, ms, where it was measured: every prediction is scaled by
   * measured/predicted of the seed, and the seed's measurement is the ceiling of expand. Why: the
   * closed loop reads each candidate as its ratio to the seed times this same measurement, and a
   * `{fraction}` target is a fraction of it; a calibration 18% below the seed's measurement
   * (Chromium tfjs-wasm) made a target between the two unreachable on paper though the device
   * measured it below the seed.
   */
  readonly seedMeasuredMs?: number | null;
  /**
   * The smallest reachable network's measured latency, ms, where it was measured. A target at or
   * above it is reachable on the device even where the calibration predicts the smallest network
   * above the target; expand then gives the smallest network instead of refusing, and the closed
   * loop goes by what the device measures.
   */
  readonly minimumMs?: number | null;
}

/**
 * @param regularizer 'flops' gives the FLOP-MorphNet baseline: shrink with FLOPs, but expand and
 *   verify in ms on the same device.
 */
export function latencyHooks(data: DeviceLatencyData, verify: SearchCostHooks['verify'], regularizer: 'latency' | 'flops' = 'latency'): SearchCostHooks {
  const tables = buildTables(data);
  const bySig = new Map(tables.map((t) => [t.key.signature, t]));
  const tableOf = (sig: string): LatencyTable | undefined => bySig.get(sig);
  const calibration = data.calibration ?? undefined;
  const scale = anchorScale(data);
  const seedMs = data.seedPredictedMs * scale;
  // Each shrink round works on a new graph; the plan of one graph is reused by every call on it.
  const plans = new WeakMap<Graph, NetworkLatencyPlan>();
  const planOf = (graph: Graph, analysis: ChannelAnalysis): NetworkLatencyPlan => {
    let plan = plans.get(graph);
    if (!plan) {
      plan = planNetworkLatency(graph, analysis);
      plans.set(graph, plan);
    }
    return plan;
  };
  return {
    name: regularizer === 'latency' ? 'latency' : 'latency (FLOP regularizer)',
    unit: 'ms',
    digits: 3,
    costModel: (graph, analysis) => (regularizer === 'flops' ? flopsCostModel : latencyCostModel(graph, { device: data.deviceId, runtime: data.runtime, tables, analysis })),
    costAt: (graph, analysis, widths) => networkLatencyAt(planOf(graph, analysis), widths, tableOf, calibration).predictedMs * scale,
    expand: (graph, analysis, base, target, divisor) => {
      const plan = planOf(graph, analysis);
      const options = { divisor, calibration, seedMs, scale };
      try {
        return expandToLatency(plan, base, target, tableOf, options);
      } catch (err) {
        // Below the predicted minimum but not below the measured one: the prediction is off at the
        // small end (a 0.231 ms prediction for a network measured under a 0.225 ms target).
        const predictedMinimum = err instanceof MorphError && err.code === 'MORPH_ERR_TARGET' ? err.details.minimum : undefined;
        if (typeof predictedMinimum !== 'number' || data.minimumMs == null || target < data.minimumMs) throw err;
        return expandToLatency(plan, base, predictedMinimum, tableOf, options);
      }
    },
    verify,
  };
}

/** measured/predicted of the seed where both are known and positive, else 1. */
export function anchorScale(data: Pick<DeviceLatencyData, 'seedPredictedMs' | 'seedMeasuredMs'>): number {
  const m = data.seedMeasuredMs;
  const p = data.seedPredictedMs;
  return m != null && m > 0 && Number.isFinite(m) && p > 0 && Number.isFinite(p) ? m / p : 1;
}

/** The device's tables as the server interpolates them (holes filled by the bilinear fit). */
function buildTables(data: Pick<DeviceLatencyData, 'deviceId' | 'runtime' | 'tables'>): LatencyTable[] {
  return data.tables.map((t) => LatencyTable.fromPoints({ device: data.deviceId, runtime: data.runtime, signature: t.signature }, t.points, { mode: tableModeOf(t.signature), fillMissing: true }));
}

/**
 * The network's predicted (calibrated) latency at its own widths, ms.
 * @throws MorphError MORPH_ERR_MISSING_OPS when the tables lack one of its ops.
 */
export function predictedLatencyMs(data: Omit<DeviceLatencyData, 'seedPredictedMs'>, graph: Graph): number {
  const bySig = new Map(buildTables(data).map((t) => [t.key.signature, t]));
  const plan = planNetworkLatency(graph);
  return networkLatencyAt(plan, plan.analysis.groups.map((g) => g.channels), (sig) => bySig.get(sig), data.calibration ?? undefined).predictedMs;
}
