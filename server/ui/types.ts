/**
 * The API's shapes as the UI reads them. Server types are imported as types only (esbuild drops
 * them), so the UI breaks at type-check time, not in a browser, when a view changes.
 */
export type { DeviceView, JobView } from '../fleet.ts';
export type { SearchView, SearchState } from '../searches.ts';
export type { SearchProgress, GroupInfo, ShrinkPoint, CurvePoint } from '../search-progress.ts';
export type { SearchResultSummary } from '../search-worker.ts';
export type { NetworkSummary, VerifyStep } from '../../src/morph/search.ts';
export type { ModelInfo } from '../model-store.ts';
import type { NetworkSample } from '../tables.ts';
export type { CoverageRow, DatasetInfo, ModelSummary } from '../views-api.ts';
export type { InspectReport } from '../../src/cost/inspect-report.ts';
import type { DeviceComparison } from '../../src/cost/device-comparison.ts';
export type { ComparisonCell, ComparisonColumn } from '../../src/cost/device-comparison.ts';

/** `POST /api/compare`: one model on every device-runtime that has a table or a measurement of it. */
export type CompareResponse = DeviceComparison & { readonly modelId: string; readonly modelName: string };

/** A runtime as a device reports it in its hello. */
export interface RuntimeInfo {
  readonly name: string;
  readonly version?: string;
  readonly threads?: number;
  readonly simd?: boolean;
  readonly note?: string;
  readonly available?: boolean;
}

/** The environment of a device (Node agents fill all of it, browsers part of it). */
export interface DeviceEnv {
  readonly platform?: string;
  readonly os?: string;
  readonly osRelease?: string;
  readonly arch?: string;
  readonly cpuModel?: string;
  readonly cores?: number;
  readonly memoryMb?: number;
  readonly hostname?: string;
  readonly nodeVersion?: string;
  readonly userAgent?: string;
}

export interface TablePoint {
  readonly cIn: number;
  readonly cOut: number;
  readonly medianMs: number;
  readonly p10Ms: number;
  readonly p90Ms: number;
  readonly n: number;
  readonly cv: number;
  readonly stable: boolean;
  readonly measuredAt: string;
}

export interface CalibrationView {
  readonly a: number;
  readonly b: number;
  readonly c: number;
  /** The memory terms, ms per MB (0 unless `method` is 'bytes'). */
  readonly d?: number;
  readonly e?: number;
  readonly method?: string;
  readonly samples: number;
  readonly note?: string;
  readonly quality?: CalibrationQualityView;
  /** Leave-one-out: each network predicted by the fit on the others; null with one network. */
  readonly outOfSample?: CalibrationQualityView | null;
}

export interface CalibrationQualityView {
  readonly n: number;
  readonly tolerance: number;
  readonly withinCount: number;
  readonly within: number;
  readonly medianApe: number;
}

export interface TablesResponse {
  readonly deviceId: string;
  readonly runtime: string;
  readonly tables: readonly { readonly signature: string; readonly mode: 'grid' | 'tied' | null; readonly problem: string | null; readonly points: readonly TablePoint[] }[];
  readonly calibration: CalibrationView | null;
}

export interface NetworksResponse {
  readonly deviceId: string;
  readonly runtime: string;
  readonly calibration: CalibrationView | null;
  readonly networks: readonly (NetworkSample & { readonly predictedMs: number | null })[];
}

export interface PredictResponse {
  readonly modelId: string;
  readonly modelName: string;
  readonly predictedMs: number;
  readonly sumOpsMs: number;
  readonly nOps: number;
  readonly ioMB: number;
  readonly weightMB: number;
  readonly calibration: CalibrationView & { readonly fitted: boolean };
  readonly layers: readonly { readonly name: string; readonly predictedMs: number; readonly measuredMs: number | null; readonly ops: readonly { readonly key: string; readonly tableMs: number; readonly extrapolated: boolean }[] }[];
  readonly skipped: readonly { readonly layer: string; readonly reason: string }[];
}

/** `/ui/agent-info.json`: what the Node agent's command line needs. */
export interface AgentInfo {
  readonly agentToken: string;
  readonly agentsPath: string;
  readonly listenHost: string;
  readonly loopbackOnly: boolean;
  readonly version: string;
}

export interface ArtifactInfo {
  readonly name: string;
  readonly bytes: number | null;
  readonly type: string;
  readonly what: string;
  readonly url: string;
}
