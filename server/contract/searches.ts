/**
 * The REST contract of server-side searches (docs/api.md, "Searches and models"): the request a
 * search is created from, the config it is stored as, its views, result and artifacts. The
 * progress and the events it streams are in search-events.ts. See index.ts.
 */
import { z } from 'zod';
import type { NetworkSummary, SearchReport, Target } from '../../src/morph/search.ts';
import { searchOptionsSchema, type SearchOptionValues } from '../../src/morph/search-options.ts';
import { VALID_RUNTIMES, type RuntimeName } from '../../src/protocol/agent-protocol.ts';
import { deviceIdSchema, modelFieldSchema } from './devices.ts';
import type { SearchProgress, SearchProgressSummary } from './search-events.ts';

export type { NetworkSummary, VerifyStep } from '../../src/morph/search.ts';

export const VALID_SEARCH_STATES = ['queued', 'preparing', 'running', 'done', 'failed', 'cancelled', 'interrupted'] as const;
export type SearchState = (typeof VALID_SEARCH_STATES)[number];
/** States a search's event stream ends in (`event: end`). */
export const TERMINAL_SEARCH_STATES: readonly SearchState[] = ['done', 'failed', 'cancelled', 'interrupted'];
/** States `POST /api/searches/:id/resume` takes a search from. */
export const RESUMABLE_SEARCH_STATES: readonly SearchState[] = ['interrupted', 'failed', 'cancelled'];
/** How a resumed search restarts: from the seed, with the same config. */
export const RESUME_MODE = 'from-start';

export const VALID_SEARCH_COSTS = ['flops', 'params', 'latency'] as const;
export type SearchCost = (typeof VALID_SEARCH_COSTS)[number];

/** What the latency hook resolved of a latency search's target. */
export interface LatencyTargetResolution {
  /** The target in ms per run. */
  readonly targetMs: number;
  /** The seed's predicted (or measured) latency, ms; null where not known yet (table not profiled). */
  readonly seedMs: number | null;
  /** The smallest reachable latency, ms; null where not known yet. */
  readonly minimumMs: number | null;
  /** Anything else the later hooks need (JSON). */
  readonly plan?: unknown;
}

/** A search as it was asked for and validated (stored as `searches.config_json`; a view's `config`). */
export interface SearchConfig {
  readonly model: { readonly id: string; readonly name: string; readonly source: 'seed' | 'upload' | 'inline' };
  readonly data: { readonly dataset: string; readonly trainLimit: number | null; readonly testLimit: number | null; readonly imageShape: readonly [number, number, number] | null };
  readonly cost: SearchCost;
  readonly deviceId: string | null;
  readonly runtime: RuntimeName | null;
  /** The target as requested (`targetMs` is the latency form). */
  readonly target: Target | null;
  readonly targetMs: number | null;
  /** The target in the cost's unit, checked against the seed's cost and the minimum reachable. */
  readonly resolvedTarget: { readonly value: number; readonly unit: string; readonly seedCost: number | null; readonly minimum: number | null };
  /** What the latency hook resolved (cost `latency` only). */
  readonly latency: LatencyTargetResolution | null;
  /** The search's options with every default applied (src/morph/search-options.ts). */
  readonly options: SearchOptionValues;
}

export interface ExportOutcome {
  readonly tflite: { readonly ok: true; readonly bytes: number; readonly operators: number } | { readonly ok: false; readonly code: string; readonly message: string };
}

/** A done search's `result`: the report without the per-round detail (that is in report.json). */
export interface SearchResultSummary {
  readonly costModel: SearchReport['costModel'];
  readonly seed: Omit<SearchReport['seed'], 'structure'>;
  readonly target: SearchReport['target'];
  readonly minimumCost: number;
  /** The strength used, and the trials that chose it when the options left it to the search. */
  readonly strength: SearchReport['strength'];
  readonly learned: NetworkSummary;
  readonly baseline: NetworkSummary | null;
  /** A latency search's FLOP-MorphNet baseline (shrunk with FLOPs, expanded to the same ms). */
  readonly flopSearch?: NetworkSummary | null;
  readonly exports: { readonly learned: ExportOutcome; readonly baseline: ExportOutcome | null };
  readonly backend: string;
  readonly seconds: number;
}

/** A failed search's `error` (and a failed closed-loop measurement's). */
export interface SearchError {
  readonly code: string;
  readonly message: string;
  readonly details?: unknown;
}

/** Each of `GET /api/searches`. */
export interface SearchSummaryView {
  readonly id: string;
  readonly state: SearchState;
  readonly attempt: number;
  readonly model: SearchConfig['model'];
  readonly cost: SearchCost;
  readonly deviceId: string | null;
  readonly runtime: string | null;
  readonly target: SearchConfig['resolvedTarget'];
  readonly progress: SearchProgressSummary;
  /** Why a queued search is not running yet. */
  readonly waiting: string | null;
  readonly createdAt: string;
  readonly startedAt: string | null;
  readonly finishedAt: string | null;
}

/** `GET /api/searches/:id`; what `POST /api/searches` (201), `DELETE` and `…/resume` (202) answer. */
export interface SearchView extends Omit<SearchSummaryView, 'progress'> {
  readonly config: SearchConfig;
  readonly progress: SearchProgress;
  readonly result: SearchResultSummary | null;
  readonly error: SearchError | null;
  /** Why and when an interrupted or cancelled search stopped. */
  readonly interruption: { readonly reason: string; readonly at: string } | null;
  readonly resume: { readonly available: boolean; readonly mode: typeof RESUME_MODE; readonly action: string | null; readonly note: string };
  /** Names of the artifacts present (`GET …/artifacts/:name`). */
  readonly artifacts: readonly string[];
  readonly updatedAt: string;
}

export interface SearchesResponse {
  readonly searches: readonly SearchSummaryView[];
}

/** A file a search offers for download. */
export interface ArtifactInfo {
  readonly name: string;
  /** Size in bytes; null for zips (built on request). */
  readonly bytes: number | null;
  readonly type: string;
  readonly what: string;
}

/** An artifact as `GET /api/searches/:id/artifacts` lists it: with the URL that downloads it. */
export type ArtifactView = ArtifactInfo & { readonly url: string };

/** `GET /api/searches/:id/artifacts`. */
export interface ArtifactsResponse {
  readonly id: string;
  readonly artifacts: readonly ArtifactView[];
}

// ── requests ──────────────────────────────────────────────────────────────────────────────

export const targetSchema = z.union([z.object({ fraction: z.number().gt(0).lt(1) }).strict(), z.object({ value: z.number().finite().positive() }).strict()]);

const dim = z.number().int().min(1).max(1024);
export const searchDataSchema = z
  .object({
    dataset: z.string().min(1).max(200),
    trainLimit: z.number().int().min(2).max(10_000_000).optional(),
    testLimit: z.number().int().min(1).max(10_000_000).optional(),
    /** Resize/convert the images to [h, w, c] (c 1 or 3). */
    imageShape: z.tuple([dim, dim, z.union([z.literal(1), z.literal(3)])]).optional(),
  })
  .strict();

/** `POST /api/searches`. Which fields go together (one model source, latency's device) is checked after it. */
export const searchBodySchema = z
  .object({
    model: modelFieldSchema.optional(),
    modelId: z.string().min(1).max(64).optional(),
    seed: z.string().min(1).max(100).optional(),
    data: searchDataSchema,
    cost: z.enum(VALID_SEARCH_COSTS).optional(),
    deviceId: deviceIdSchema.optional(),
    runtime: z.enum(VALID_RUNTIMES).optional(),
    targetMs: z.number().finite().positive().max(3_600_000).optional(),
    target: targetSchema.optional(),
    /** cost 'latency': move a target below the smallest reachable latency up to a reachable one (with a note) instead of failing. */
    clampTarget: z.boolean().optional(),
    options: searchOptionsSchema.optional(),
  })
  .strict();
export type SearchBody = z.input<typeof searchBodySchema>;

/** `GET /api/searches` query. */
export const searchesQuerySchema = z.object({ state: z.enum(VALID_SEARCH_STATES).optional(), limit: z.coerce.number().int().min(1).max(1000).optional() }).strict();
/** `GET /api/searches/:id/events` query (`Last-Event-ID` wins over it). */
export const searchEventsQuerySchema = z.object({ after: z.string().regex(/^\d{1,9}$/, 'a non-negative event number').optional() }).strict();
