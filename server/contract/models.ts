/**
 * The REST contract of models and the read-only views of the web UI (docs/api.md, "Searches and
 * models", "Views for the web UI"): uploaded models, seeds, datasets, inspection, table coverage.
 * See index.ts.
 */
import { z } from 'zod';
import type { InspectReport } from '../../src/cost/inspect-report.ts';

export type { InspectReport } from '../../src/cost/inspect-report.ts';

/** What the API says of a model everywhere it lists one. */
export interface ModelFacts {
  readonly id: string;
  readonly name: string;
  readonly layers: number;
  readonly params: number;
  readonly macs: number;
  /** Input shape without the batch dimension, e.g. [28, 28, 1]. */
  readonly inputShape: readonly (number | null)[];
  /** Units of the (first) output, e.g. the number of classes. */
  readonly outputs: number | null;
}

/** An uploaded model's facts: `POST /api/models` (201, or 200 when stored already), `GET /api/models/:id`. */
export interface ModelInfo extends ModelFacts {
  readonly uploadedAt: string;
}

export interface ModelsResponse {
  readonly models: readonly ModelInfo[];
}

/** A seed or stored model in lists: the facts the UI shows before inspecting it. */
export interface ModelSummary extends ModelFacts {
  /** `seed:NAME` for a seed, else the `m-…` content id. */
  readonly ref: string;
}

/** `GET /api/seeds`. */
export interface SeedsResponse {
  readonly seeds: readonly ModelSummary[];
}

/** `GET /api/models/:ref/inspect`: what `morphnet inspect --json` prints. */
export type InspectResponse = ModelSummary & { readonly report: InspectReport };

/** `GET /api/models/:ref/model.json`. */
export interface ModelJsonResponse {
  readonly format: 'layers-model';
  readonly modelTopology: unknown;
}

export interface DatasetInfo {
  readonly name: string;
  readonly available: boolean;
  /** Image shape [h, w, c] as the dataset comes (a search may resize with data.imageShape). */
  readonly imageShape: readonly [number, number, number];
  readonly classes: number;
  readonly note: string;
}

/** `GET /api/datasets`. */
export interface DatasetsResponse {
  readonly datasets: readonly DatasetInfo[];
}

/** How much of one device-runtime's latency tables is filled. */
export interface CoverageRow {
  readonly deviceId: string;
  readonly runtime: string;
  /** Op signatures with at least one stored point, and how many of them form a usable table. */
  readonly signatures: number;
  readonly usable: number;
  readonly points: number;
  /** End-to-end measurements of whole networks (calibration samples). */
  readonly networks: number;
  readonly lastMeasuredAt: string | null;
}

/** `GET /api/coverage`. */
export interface CoverageResponse {
  readonly coverage: readonly CoverageRow[];
}

// ── requests ──────────────────────────────────────────────────────────────────────────────

/** `GET /api/models` query. */
export const modelsQuerySchema = z.object({ limit: z.coerce.number().int().min(1).max(1000).optional() }).strict();
/** `GET /api/coverage` query. */
export const coverageQuerySchema = z.object({ deviceId: z.string().min(1).max(64).optional() }).strict();
