/**
 * The REST contract of devices and jobs (docs/api.md, "Devices", "Jobs"): the views the server
 * sends, and the zod schemas it checks requests with. Imported by the server's routes, the CLI's
 * client and (as types only) the web UI; see index.ts.
 */
import { z } from 'zod';
import type { GridOptions } from '../../src/ops/graph-specs.ts';
import type { OpSpec } from '../../src/ops/op-spec.ts';
import { measureOptionsSchema, VALID_RUNTIMES, type AgentEnv, type RuntimeInfo, type RuntimeName, type WireMeasureOptions, type WireMeasurement } from '../../src/protocol/agent-protocol.ts';

export type { AgentEnv, RuntimeInfo, RuntimeName };

// ── devices ───────────────────────────────────────────────────────────────────────────────

/** One agent connected for a device. */
export interface DeviceAgentView {
  readonly id: string;
  readonly name: string;
  readonly connectedAt: string;
  /** It holds a lease now. */
  readonly busy: boolean;
  /** Results it stored since it connected. */
  readonly itemsDone: number;
}

/** `GET /api/devices/:id`, and each of `GET /api/devices`. */
export interface DeviceView {
  readonly id: string;
  readonly name: string;
  readonly platform: string;
  /** An agent of the device is connected. */
  readonly online: boolean;
  /** Every runtime the device's agents have reported (online or not), the newest report of each. */
  readonly runtimes: readonly RuntimeInfo[];
  /** The environment the device's last agent reported. */
  readonly env: AgentEnv;
  readonly agentVersion: string;
  readonly firstSeen: string;
  /** Now while online. */
  readonly lastSeen: string;
  readonly agents: readonly DeviceAgentView[];
  /** The device times something now (one lease per device at a time). */
  readonly busy: boolean;
}

export interface DevicesResponse {
  readonly devices: readonly DeviceView[];
}

/** The agent hub's counters. */
export interface HubStats {
  readonly connected: number;
  readonly framesIn: number;
  readonly rejected: number;
}

/** `GET /api/health`: without the admin token, `ok` and `version` only. */
export interface HealthResponse {
  readonly ok: true;
  readonly version: string;
  readonly devices?: number;
  readonly online?: number;
  readonly hub?: HubStats;
}

// ── jobs ──────────────────────────────────────────────────────────────────────────────────

export type JobKind = 'profile' | 'measure';
export const VALID_JOB_STATES = ['queued', 'running', 'done', 'failed', 'cancelled'] as const;
export type JobState = (typeof VALID_JOB_STATES)[number];

/** A job's options as it was created (what `options` shows). */
export interface JobOptions {
  /** The protocol every item is timed with. */
  readonly measure: WireMeasureOptions;
  /** Measure jobs: the model every network item is timed against. */
  readonly referenceModelId?: string;
  /** Profile jobs: the op every op item is timed against (`paired`, the default). */
  readonly referenceOp?: OpSpec;
  /** Profile jobs: the grid asked for, whether it was a search's, why the job exists, and whether it re-measures and refines. */
  readonly grid?: GridOptions;
  readonly forSearch?: boolean;
  readonly purpose?: string;
  readonly force?: boolean;
  readonly refine?: boolean;
  /** A refinement job: the profile job it refines. */
  readonly refinementOf?: string;
}

/** A finished measure job's `result`: the network's time per run, ms. */
export interface MeasureResult {
  readonly medianMs: number;
  readonly p10Ms: number;
  readonly p90Ms: number;
  readonly n: number;
  readonly cv: number;
  readonly stable: boolean;
  /** With a reference (`POST /api/measure` `reference`): its median and the ratio model/reference, timed interleaved. */
  readonly reference?: WireMeasurement['reference'];
}

/** A finished profile job's `result`. */
export interface ProfileJobResult {
  /** Items stored, and items given up. */
  readonly measured: number;
  readonly failed: number;
  /** Op signatures among its items. */
  readonly signatures: number;
  /** Time inside timed runs (the samples), time measuring (with warm-up) and the job's wall time, ms. */
  readonly sampledMs: number;
  readonly measuringMs: number;
  readonly wallMs: number;
}

/** Why an item failed: the agent's report (with who and which attempt), or why its payload could not be built. */
export interface ItemError {
  readonly code: string;
  readonly message: string;
  readonly agentId?: string;
  readonly attempts?: number;
}

/** A failed job's `error`: the first 20 items that could not be run. */
export interface JobError {
  readonly code: 'MORPH_ERR_JOB_FAILED';
  readonly message: string;
  readonly items: readonly { readonly idx: number; readonly signature: string | null; readonly cIn: number | null; readonly cOut: number | null; readonly error: ItemError | null }[];
}

export interface JobProgress {
  readonly total: number;
  readonly done: number;
  readonly failed: number;
  readonly leased: number;
  readonly pending: number;
}

interface JobViewOf<K extends JobKind, R> {
  readonly id: string;
  readonly kind: K;
  readonly state: JobState;
  readonly deviceId: string;
  readonly runtime: RuntimeName;
  readonly modelId: string;
  readonly modelName: string;
  readonly progress: JobProgress;
  /** Why a queued job is not moving, when it is not. */
  readonly waiting: string | null;
  /** Set once the job is done (or failed, with what it did measure). */
  readonly result: R | null;
  readonly error: JobError | null;
  readonly options: JobOptions;
  readonly createdAt: string;
  readonly updatedAt: string;
  readonly finishedAt: string | null;
}

export type ProfileJobView = JobViewOf<'profile', ProfileJobResult>;
export type MeasureJobView = JobViewOf<'measure', MeasureResult>;
/** `GET /api/jobs/:id`; what `POST /api/profile` and `POST /api/measure` answer (202). */
export type JobView = ProfileJobView | MeasureJobView;

export interface JobsResponse {
  readonly jobs: readonly JobView[];
}

// ── requests ──────────────────────────────────────────────────────────────────────────────

/** The `model` field of a request: a built-in seed's name, or a model.json / Keras config object. */
export const modelFieldSchema = z.union([z.string().min(1).max(100), z.record(z.unknown())]);

export const deviceIdSchema = z.string().min(1).max(64);

/** `grid` of `POST /api/profile` (src/ops/graph-specs.ts `GridOptions`). */
export const gridSchema = z
  .object({
    step: z.number().int().min(1).max(1024),
    maxPerAxis: z.number().int().min(2).max(64),
    maxScale: z.number().finite().min(0.01).max(4),
    seedOnly: z.boolean(),
  })
  .partial()
  .strict();

/** The fields of a request about one model on one device-runtime. */
export const deviceRuntimeModel = {
  deviceId: deviceIdSchema,
  runtime: z.enum(VALID_RUNTIMES),
  model: modelFieldSchema,
};

export const profileBodySchema = z
  .object({
    ...deviceRuntimeModel,
    grid: gridSchema.optional(),
    measure: measureOptionsSchema.optional(),
    force: z.boolean().optional(),
    refine: z.boolean().optional(),
    forSearch: z.boolean().optional(),
    paired: z.boolean().optional(),
  })
  .strict();
export type ProfileBody = z.input<typeof profileBodySchema>;

export const measureBodySchema = z.object({ ...deviceRuntimeModel, reference: modelFieldSchema.optional(), measure: measureOptionsSchema.optional() }).strict();
export type MeasureBody = z.input<typeof measureBodySchema>;

/** `GET /api/jobs` query. */
export const jobsQuerySchema = z
  .object({ deviceId: z.string().max(64).optional(), state: z.enum(VALID_JOB_STATES).optional(), limit: z.coerce.number().int().min(1).max(1000).optional() })
  .strict();
