/**
 * A whole network's latency from its ops' latency tables (DESIGN "Measuring latency"):
 * Σ over the ops it runs of the table's interpolated latency, then the device's calibration
 * (`applyCalibration`). Per layer, each op counts its calibrated share (`calibratedOpMs`), so the
 * layers add up to the total less c.
 */
import type { GraphSpecs } from '../ops/graph-specs.ts';
import { signature, specBytes, type OpSpec } from '../ops/op-spec.ts';
import { applyCalibration, calibratedOpMs, IDENTITY_CALIBRATION, type Calibration, type CalibrationTerms } from './calibration.ts';
import type { LatencyTable } from './latency-table.ts';

export interface PredictedOp {
  readonly key: string;
  readonly signature: string;
  readonly cIn: number;
  readonly cOut: number;
  /** Table latency of the op, before calibration, ms. */
  readonly tableMs: number;
  /** Whether (cIn, cOut) lies outside the table's measured range. */
  readonly extrapolated: boolean;
  /** MB of activations the op reads and writes, and of its weights (`specBytes`). */
  readonly ioMB: number;
  readonly weightMB: number;
}

export interface PredictedLayer {
  readonly name: string;
  /** Calibrated latency of the layer's ops, ms. */
  readonly predictedMs: number;
  readonly ops: readonly PredictedOp[];
}

export interface MissingTable {
  readonly signature: string;
  /** The channel counts the network needs from it. */
  readonly points: readonly { readonly cIn: number; readonly cOut: number }[];
  readonly layers: readonly string[];
}

export type NetworkPrediction =
  | {
      readonly ok: true;
      readonly predictedMs: number;
      /** Σ of the ops' table latencies, ms. */
      readonly sumOpsMs: number;
      readonly nOps: number;
      /** Σ over the ops of `ioMB` and of `weightMB`. */
      readonly ioMB: number;
      readonly weightMB: number;
      /** The calibration applied (identity a = 1, the other terms 0, when there is none yet). */
      readonly calibration: CalibrationTerms & { readonly fitted: boolean; readonly samples: number };
      readonly layers: readonly PredictedLayer[];
      /** Layers the prediction leaves out, with why (see `graphSpecs`). */
      readonly skipped: GraphSpecs['skipped'];
    }
  | { readonly ok: false; readonly missing: readonly MissingTable[] };

/**
 * Predicts from `specs` (see `graphSpecs`). `tableOf` returns the device's table for a signature.
 * Fails, listing every missing signature with the points needed, when any op has no table.
 */
export function predictNetwork(specs: GraphSpecs, tableOf: (signature: string) => LatencyTable | undefined, calibration?: CalibrationTerms & Pick<Calibration, 'samples'>): NetworkPrediction {
  const byKey = new Map<string, OpSpec>(specs.specs.map((s) => [s.key, s.spec]));
  const missing = new Map<string, { points: Map<string, { cIn: number; cOut: number }>; layers: Set<string> }>();
  const ops: { layer: string; op: PredictedOp }[] = [];
  for (const { layer, key } of specs.occurrences) {
    const spec = byKey.get(key) as OpSpec;
    const sig = signature(spec);
    const table = tableOf(sig);
    if (!table) {
      const m = missing.get(sig) ?? { points: new Map(), layers: new Set() };
      m.points.set(`${spec.cIn}x${spec.cOut}`, { cIn: spec.cIn, cOut: spec.cOut });
      m.layers.add(layer);
      missing.set(sig, m);
      continue;
    }
    // A measured point is predicted by its measurement (the monotone fit may move it); others are interpolated.
    const e = table.estimate(spec.cIn, spec.cOut);
    const ms = table.measured(spec.cIn, spec.cOut) ?? e.ms;
    ops.push({ layer, op: { key, signature: sig, cIn: spec.cIn, cOut: spec.cOut, tableMs: ms, extrapolated: e.extrapolated, ...specBytes(spec) } });
  }
  if (missing.size > 0) {
    return {
      ok: false,
      missing: [...missing.entries()].map(([sig, m]) => ({ signature: sig, points: [...m.points.values()], layers: [...m.layers] })),
    };
  }
  const terms: Required<CalibrationTerms> = calibration ? { a: calibration.a, b: calibration.b, c: calibration.c, d: calibration.d ?? 0, e: calibration.e ?? 0 } : IDENTITY_CALIBRATION;
  const cal = { ...terms, fitted: calibration !== undefined, samples: calibration?.samples ?? 0 };
  const layers = new Map<string, { predictedMs: number; ops: PredictedOp[] }>();
  let sumOpsMs = 0;
  let ioMB = 0;
  let weightMB = 0;
  for (const { layer, op } of ops) {
    sumOpsMs += op.tableMs;
    ioMB += op.ioMB;
    weightMB += op.weightMB;
    const entry = layers.get(layer) ?? { predictedMs: 0, ops: [] };
    entry.predictedMs += calibratedOpMs(terms, op.tableMs, op);
    entry.ops.push(op);
    layers.set(layer, entry);
  }
  const nOps = ops.length;
  return {
    ok: true,
    predictedMs: applyCalibration(terms, { sumOpsMs, nOps, ioMB, weightMB }),
    sumOpsMs,
    nOps,
    ioMB,
    weightMB,
    calibration: cal,
    layers: [...layers.entries()].map(([name, e]) => ({ name, predictedMs: e.predictedMs, ops: e.ops })),
    skipped: specs.skipped,
  };
}
