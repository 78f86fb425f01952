/**
 * The REST contract of latency tables, end-to-end measurements, predictions and comparisons
 * (docs/api.md, "Tables and prediction"): views and request schemas. See index.ts.
 */
import { z } from 'zod';
import type { Calibration } from '../../src/cost/calibration.ts';
import type { DeviceComparison } from '../../src/cost/device-comparison.ts';
import type { LatencyPoint, LatencyTableMode } from '../../src/cost/latency-table.ts';
import type { NetworkPrediction, PredictedOp } from '../../src/cost/predict-network.ts';
import { VALID_RUNTIMES } from '../../src/protocol/agent-protocol.ts';
import { deviceIdSchema, deviceRuntimeModel, modelFieldSchema } from './devices.ts';

export type { Calibration, CalibrationQuality } from '../../src/cost/calibration.ts';
export type { ComparisonCell, ComparisonColumn, DeviceComparison } from '../../src/cost/device-comparison.ts';

/** One stored point of a latency table, as the tables read it (server/tables.ts). */
export interface TablePoint extends LatencyPoint {
  readonly cv: number;
  readonly stable: boolean;
  readonly measuredAt: string;
  /**
   * For a point timed against the reference op: the ratio op/reference it was measured at, and
   * the op's own median as timed (beside the reference). `medianMs` (and p10/p90 with it) is then
   * ratio × the reference's settled latency on this device and runtime.
   */
  readonly ratio: number | null;
  readonly timedMs: number;
}

/** One op signature's table: its points, and why they do not form a usable table yet (else null). */
export interface TableView {
  readonly signature: string;
  readonly mode: LatencyTableMode | null;
  readonly problem: string | null;
  readonly points: readonly TablePoint[];
}

/** `GET /api/tables`. */
export interface TablesResponse {
  readonly deviceId: string;
  readonly runtime: string;
  readonly tables: readonly TableView[];
  /** Fitted on every covered network measured end to end; null before the first. */
  readonly calibration: Calibration | null;
}

/** One end-to-end measurement, with what the tables make of the same network. */
export interface NetworkSample {
  readonly modelId: string;
  readonly modelName: string;
  readonly jobId: string;
  readonly measuredMs: number;
  readonly p10Ms: number;
  readonly p90Ms: number;
  readonly measuredAt: string;
  /** Σ of the table latencies of its ops and their number; null when a table is missing. */
  readonly sumOpsMs: number | null;
  readonly nOps: number | null;
  /** Σ over its ops of the MB of activations read and written, and of weights; null likewise. */
  readonly ioMB: number | null;
  readonly weightMB: number | null;
}

/** `GET /api/networks`. */
export interface NetworksResponse {
  readonly deviceId: string;
  readonly runtime: string;
  readonly calibration: Calibration | null;
  /** Each with the calibrated prediction (null without a calibration or a table sum). */
  readonly networks: readonly (NetworkSample & { readonly predictedMs: number | null })[];
}

type PredictionOk = Extract<NetworkPrediction, { ok: true }>;

/** The calibration a prediction applied (identity when none is fitted yet), with the fit's facts when there is one. */
export type PredictionCalibration = PredictionOk['calibration'] & Partial<Pick<Calibration, 'method' | 'note' | 'quality' | 'outOfSample'>>;

/** One layer of a prediction: its calibrated ms, its ops, and the op-alone measurement where the table holds all its ops at these widths. */
export interface PredictedLayerView {
  readonly name: string;
  readonly predictedMs: number;
  readonly measuredMs: number | null;
  readonly ops: readonly PredictedOp[];
}

/** `POST /api/predict`. */
export interface PredictResponse {
  readonly deviceId: string;
  readonly runtime: string;
  readonly modelId: string;
  readonly modelName: string;
  readonly predictedMs: number;
  readonly sumOpsMs: number;
  readonly nOps: number;
  readonly ioMB: number;
  readonly weightMB: number;
  readonly calibration: PredictionCalibration;
  readonly layers: readonly PredictedLayerView[];
  readonly skipped: PredictionOk['skipped'];
}

/** `POST /api/compare`: one model on every device-runtime that has a table or a measurement of it. */
export type CompareResponse = DeviceComparison & { readonly modelId: string; readonly modelName: string };

// ── requests ──────────────────────────────────────────────────────────────────────────────

export const predictBodySchema = z.object(deviceRuntimeModel).strict();
export type PredictBody = z.input<typeof predictBodySchema>;

export const compareBodySchema = z.object({ model: modelFieldSchema, slowest: z.number().int().min(0).max(100).default(3) }).strict();
export type CompareBody = z.input<typeof compareBodySchema>;

/** `GET /api/tables` query. */
export const tablesQuerySchema = z.object({ deviceId: deviceIdSchema, runtime: z.enum(VALID_RUNTIMES), signature: z.string().max(300).optional() }).strict();
/** `GET /api/networks` query. */
export const networksQuerySchema = tablesQuerySchema.omit({ signature: true });
