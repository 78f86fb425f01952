/**
 * The agent wire protocol (version 1): the JSON messages a device agent and the server exchange
 * over the WebSocket at `/agents`. Shared by the server, the Node agent and the browser agent, so
 * nothing here may import Node modules.
 *
 * Every message is one JSON object `{ v: 1, type, ... }`, validated on arrival by the schemas
 * below (strict: unknown fields are refused, numbers must be finite, strings and arrays bounded).
 *
 *   agent → server  hello        first message; carries the token, the device key and what the agent can run
 *                   result       one measured item of a lease
 *                   item-failed  one item the agent could not run (the server retries it elsewhere or fails it)
 *   server → agent  welcome      the hello was accepted; names the device the agent serves
 *                   work         a lease: items to measure on one runtime, with the protocol options
 *                   ack          a result or item-failed was received (stored, or a duplicate)
 *                   cancel       drop a lease (its job was cancelled or re-leased)
 *                   error        a message was refused; says why (the connection stays open unless
 *                                the close code says otherwise)
 */
import { z } from 'zod';
import { VALID_FUSED_ACTIVATIONS, VALID_OP_DTYPES, VALID_OP_KINDS, VALID_OP_PADDINGS, validateSpec, type OpSpec } from '../ops/op-spec.ts';
import { MorphError } from '../errors.ts';

/**
 * v2: a network item may carry a `reference` network, timed interleaved with it, and a result may
 * carry the `reference` figures. A v1 agent would refuse such items mid-lease; the version makes it
 * refuse at hello instead, with a message that says to update.
 * v3: an op item may carry a `reference` op, likewise (profile jobs time every op against one).
 */
export const PROTOCOL_VERSION = 3;

/** Largest message an agent may send (bytes); results are small, so this is generous. */
export const MAX_AGENT_MESSAGE_BYTES = 256 * 1024;
/** Largest message the server sends (a `work` lease can carry a whole network's `.tflite`). */
export const MAX_SERVER_MESSAGE_BYTES = 64 * 1024 * 1024;
/** The agent must say hello within this many ms of connecting. */
export const HELLO_TIMEOUT_MS = 10_000;

/** WebSocket close codes the server uses (4000–4999 are for applications). */
export const CLOSE_CODES = {
  /** The first message was not a valid hello. */
  badHello: 4400,
  /** The token is wrong. */
  unauthorized: 4401,
  /** No hello within HELLO_TIMEOUT_MS. */
  helloTimeout: 4408,
  /** Too many invalid messages; the agent is misbehaving. */
  tooManyErrors: 4429,
  /** The server is shutting down; reconnect later. */
  shuttingDown: 4503,
} as const;

/**
 * Runtime names. Node agents serve `tfjs-wasm`, `tfjs-cpu`, `tfjs-node` (where it installs) and
 * `tflite`; browser agents `tfjs-wasm`, `tfjs-webgl` and `tflite`.
 */
export const VALID_RUNTIMES = ['tfjs-wasm', 'tfjs-cpu', 'tfjs-node', 'tfjs-webgl', 'tflite'] as const;
export type RuntimeName = (typeof VALID_RUNTIMES)[number];

export function isRuntimeName(x: unknown): x is RuntimeName {
  return typeof x === 'string' && (VALID_RUNTIMES as readonly string[]).includes(x);
}

const finite = z.number().finite();
const positive = finite.positive();
const nonNegative = finite.nonnegative();
const count = z.number().int().nonnegative().max(1e9);
const text = (max: number) => z.string().max(max);
const id = z.string().min(1).max(64).regex(/^[A-Za-z0-9_.:-]+$/, 'only letters, digits and _ . : -');

const pair = z.tuple([z.number().int().positive().max(65536), z.number().int().positive().max(65536)]);

/** An OpSpec on the wire; `validateSpec` then checks its consistency. */
export const opSpecSchema = z
  .object({
    kind: z.enum(VALID_OP_KINDS),
    inH: z.number().int().positive().max(65536),
    inW: z.number().int().positive().max(65536),
    cIn: z.number().int().positive().max(65536),
    cOut: z.number().int().positive().max(65536),
    kernel: pair,
    stride: pair,
    padding: z.enum(VALID_OP_PADDINGS),
    dilation: pair,
    activation: z.enum(VALID_FUSED_ACTIVATIONS),
    numInputs: z.number().int().positive().max(64),
    batch: z.number().int().positive().max(4096),
    dtype: z.enum(VALID_OP_DTYPES),
  })
  .strict();

/** One runtime an agent can serve, as it reports it. */
export const runtimeInfoSchema = z
  .object({
    name: z.enum(VALID_RUNTIMES),
    /** Package or engine version, e.g. "@tensorflow/tfjs 4.22.0". */
    version: text(200),
    /** Threads the runtime computes on. */
    threads: z.number().int().positive().max(1024).optional(),
    simd: z.boolean().optional(),
    /** Anything else worth knowing (the GPU renderer for webgl, the wasm file used…). */
    note: text(500).optional(),
  })
  .strict();
export type RuntimeInfo = z.infer<typeof runtimeInfoSchema>;

/** The agent's environment: what the device is. */
export const agentEnvSchema = z
  .object({
    /** 'node' or 'browser'. */
    platform: z.enum(['node', 'browser']),
    os: text(100),
    osRelease: text(100).optional(),
    arch: text(50),
    cpuModel: text(200),
    cores: z.number().int().positive().max(4096),
    memoryMb: z.number().int().positive().max(1e8).optional(),
    hostname: text(255).optional(),
    userAgent: text(500).optional(),
    nodeVersion: text(50).optional(),
  })
  .strict();
export type AgentEnv = z.infer<typeof agentEnvSchema>;

export const helloSchema = z
  .object({
    v: z.literal(PROTOCOL_VERSION),
    type: z.literal('hello'),
    token: z.string().min(1).max(256),
    /** Stable per physical device (agents on one machine share it); never shown in full. */
    deviceKey: z.string().min(8).max(128).regex(/^[A-Za-z0-9_-]+$/, 'only letters, digits, _ and -'),
    /** Human name of the device. */
    name: z.string().min(1).max(100),
    agentVersion: text(50),
    env: agentEnvSchema,
    runtimes: z.array(runtimeInfoSchema).min(1).max(VALID_RUNTIMES.length),
  })
  .strict();
export type HelloMessage = z.infer<typeof helloSchema>;

/** What the agent measured for one item; times are per run, in ms. */
export const measurementSchema = z
  .object({
    medianMs: positive.max(1e7),
    p10Ms: nonNegative.max(1e7),
    p90Ms: positive.max(1e7),
    meanMs: positive.max(1e7),
    cv: nonNegative,
    n: z.number().int().positive().max(1e6),
    runsPerSample: z.number().int().positive().max(1e7),
    stable: z.boolean(),
    attempts: z.number().int().positive().max(100),
    totalMs: nonNegative,
    /**
     * For an item timed against a reference (a network, or an op; interleaved, sample by sample): the
     * reference's median, and the median and spread of the per-round ratio item/reference, which
     * a change of the machine's speed moves much less than either time (src/measure/interleaved.ts).
     */
    reference: z
      .object({
        medianMs: positive.max(1e7),
        ratio: positive.max(1e6),
        ratioP10: positive.max(1e6),
        ratioP90: positive.max(1e6),
        rounds: z.number().int().positive().max(1e6),
      })
      .strict()
      .refine((r) => r.ratioP10 <= r.ratio && r.ratio <= r.ratioP90, { message: 'need ratioP10 ≤ ratio ≤ ratioP90' })
      .optional(),
  })
  .strict()
  .refine((m) => m.p10Ms <= m.medianMs && m.medianMs <= m.p90Ms, { message: 'need p10Ms ≤ medianMs ≤ p90Ms' });
export type WireMeasurement = z.infer<typeof measurementSchema>;

export const resultSchema = z
  .object({
    v: z.literal(PROTOCOL_VERSION),
    type: z.literal('result'),
    leaseId: id,
    itemId: count,
    measurement: measurementSchema,
  })
  .strict();
export type ResultMessage = z.infer<typeof resultSchema>;

export const itemFailedSchema = z
  .object({
    v: z.literal(PROTOCOL_VERSION),
    type: z.literal('item-failed'),
    leaseId: id,
    itemId: count,
    error: z.object({ code: text(64), message: text(2000) }).strict(),
  })
  .strict();
export type ItemFailedMessage = z.infer<typeof itemFailedSchema>;

export const agentMessageSchema = z.discriminatedUnion('type', [helloSchema, resultSchema, itemFailedSchema]);
export type AgentMessage = z.infer<typeof agentMessageSchema>;

/** Measurement protocol options a lease may set (see `src/measure/timing.ts`), bounded. */
export const measureOptionsSchema = z
  .object({
    warmupRuns: z.number().int().min(1).max(1000),
    warmupMs: nonNegative.max(60_000),
    minSamples: z.number().int().min(1).max(10_000),
    minWindowMs: nonNegative.max(600_000),
    maxSamples: z.number().int().min(1).max(100_000),
    targetSampleMs: positive.max(1000),
    maxRunsPerSample: z.number().int().min(1).max(1e7),
    maxCv: positive.max(10),
    maxSpread: positive.max(100),
    maxAttempts: z.number().int().min(1).max(10),
    maxMs: positive.max(600_000),
  })
  .partial()
  .strict();
export type WireMeasureOptions = z.infer<typeof measureOptionsSchema>;

/** A single op to time. */
/** One op to time; with `reference`, timed interleaved with that op and reported with the ratio to it. */
export const opItemSchema = z.object({ itemId: count, kind: z.literal('op'), spec: opSpecSchema, reference: opSpecSchema.optional() }).strict();

/** Exactly one of the two payloads a network item can carry. */
const onePayload = (n: { modelTopology?: unknown; tfliteBase64?: unknown }): boolean => (n.modelTopology === undefined) !== (n.tfliteBase64 === undefined);
const ONE_PAYLOAD = { message: 'a network carries exactly one of modelTopology and tfliteBase64' };

/**
 * A network as the agent gets it. tfjs runtimes get the Keras topology (`modelTopology` of a
 * model.json; weights are random, which does not change the time); `tflite` gets the float32
 * `.tflite` the server wrote, base64-encoded.
 */
const networkFields = {
  name: text(200),
  modelTopology: z.record(z.unknown()).optional(),
  tfliteBase64: z.string().max(MAX_SERVER_MESSAGE_BYTES).optional(),
};
export const networkPayloadSchema = z.object(networkFields).strict().refine(onePayload, ONE_PAYLOAD);
export type NetworkPayload = z.infer<typeof networkPayloadSchema>;

/**
 * A whole network to time end to end; with `reference`, timed interleaved with that network
 * (alternating samples) and reported with the per-round ratio to it.
 */
export const networkItemSchema = z
  .object({ itemId: count, kind: z.literal('network'), ...networkFields, reference: networkPayloadSchema.optional() })
  .strict()
  .refine(onePayload, ONE_PAYLOAD);

export const workItemSchema = z.union([opItemSchema, networkItemSchema]);
export interface OpWorkItem {
  itemId: number;
  kind: 'op';
  spec: OpSpec;
  reference?: OpSpec;
}
export type NetworkWorkItem = z.infer<typeof networkItemSchema>;
export type WorkItem = OpWorkItem | NetworkWorkItem;

export const welcomeSchema = z
  .object({
    v: z.literal(PROTOCOL_VERSION),
    type: z.literal('welcome'),
    deviceId: id,
    agentId: id,
    serverVersion: text(50),
  })
  .strict();
export type WelcomeMessage = z.infer<typeof welcomeSchema>;

export const workSchema = z
  .object({
    v: z.literal(PROTOCOL_VERSION),
    type: z.literal('work'),
    leaseId: id,
    jobId: id,
    runtime: z.enum(VALID_RUNTIMES),
    /** The server re-queues the items when no result arrives for this long. */
    leaseMs: positive,
    measure: measureOptionsSchema,
    items: z.array(workItemSchema).min(1).max(1000),
  })
  .strict();
export type WorkMessage = Omit<z.infer<typeof workSchema>, 'items'> & { items: WorkItem[] };

export const ackSchema = z
  .object({
    v: z.literal(PROTOCOL_VERSION),
    type: z.literal('ack'),
    leaseId: id,
    itemId: count,
    /** 'stored': first copy, kept; 'duplicate': already had it, nothing changed; 'failed-noted': an item-failed was recorded. */
    status: z.enum(['stored', 'duplicate', 'failed-noted']),
  })
  .strict();
export type AckMessage = z.infer<typeof ackSchema>;

export const cancelSchema = z.object({ v: z.literal(PROTOCOL_VERSION), type: z.literal('cancel'), leaseId: id, reason: text(500) }).strict();
export type CancelMessage = z.infer<typeof cancelSchema>;

export const errorSchema = z
  .object({
    v: z.literal(PROTOCOL_VERSION),
    type: z.literal('error'),
    code: text(64),
    message: text(2000),
    /** The leaseId/itemId of the refused message, when it had them. */
    ref: z.object({ leaseId: z.string().max(64).optional(), itemId: z.number().optional() }).strict().optional(),
  })
  .strict();
export type ErrorMessage = z.infer<typeof errorSchema>;

export const serverMessageSchema = z.discriminatedUnion('type', [welcomeSchema, workSchema, ackSchema, cancelSchema, errorSchema]);
export type ServerMessage = WelcomeMessage | WorkMessage | AckMessage | CancelMessage | ErrorMessage;

/** The parse result of one incoming frame. */
export type Parsed<T> = { ok: true; message: T } | { ok: false; code: 'MORPH_ERR_PROTOCOL' | 'MORPH_ERR_LIMIT'; message: string };

function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((i) => `${i.path.length > 0 ? i.path.join('.') : '(message)'}: ${i.message}`)
    .join('; ');
}

function parseFrame<T>(raw: string, maxBytes: number, schema: z.ZodType<unknown>, check?: (m: T) => string | undefined): Parsed<T> {
  // UTF-16 length ≤ UTF-8 bytes ≤ 3 × length: a cheap bound before measuring exactly.
  if (raw.length > maxBytes || (raw.length * 3 > maxBytes && new TextEncoder().encode(raw).length > maxBytes)) {
    return { ok: false, code: 'MORPH_ERR_LIMIT', message: `message is larger than ${maxBytes} bytes` };
  }
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    return { ok: false, code: 'MORPH_ERR_PROTOCOL', message: 'message is not JSON' };
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return { ok: false, code: 'MORPH_ERR_PROTOCOL', message: 'message must be a JSON object' };
  const v = (json as { v?: unknown }).v;
  if (v !== PROTOCOL_VERSION) return { ok: false, code: 'MORPH_ERR_PROTOCOL', message: `unsupported protocol version ${JSON.stringify(v)}; this side speaks v${PROTOCOL_VERSION}` };
  const result = schema.safeParse(json);
  if (!result.success) return { ok: false, code: 'MORPH_ERR_PROTOCOL', message: `invalid ${String((json as { type?: unknown }).type ?? 'message')}: ${describeIssues(result.error)}` };
  const message = result.data as T;
  const problem = check?.(message);
  if (problem !== undefined) return { ok: false, code: 'MORPH_ERR_PROTOCOL', message: problem };
  return { ok: true, message };
}

function checkSpecs(items: readonly { kind: string; spec?: unknown }[]): string | undefined {
  for (const item of items) {
    if (item.kind !== 'op') continue;
    try {
      validateSpec(item.spec as OpSpec);
    } catch (err) {
      return err instanceof MorphError ? err.message : String(err);
    }
  }
  return undefined;
}

/** Parses and validates a frame an agent sent. */
export function parseAgentMessage(raw: string): Parsed<AgentMessage> {
  return parseFrame<AgentMessage>(raw, MAX_AGENT_MESSAGE_BYTES, agentMessageSchema);
}

/** Parses and validates a frame the server sent (agents check what they are told to run, too). */
export function parseServerMessage(raw: string): Parsed<ServerMessage> {
  return parseFrame<ServerMessage>(raw, MAX_SERVER_MESSAGE_BYTES, serverMessageSchema, (m) => (m.type === 'work' ? checkSpecs(m.items) : undefined));
}

/** The wire form of a protocol measurement (drops the raw samples). */
export function toWireMeasurement(m: WireMeasurement & Record<string, unknown>): WireMeasurement {
  return {
    medianMs: m.medianMs,
    p10Ms: m.p10Ms,
    p90Ms: m.p90Ms,
    meanMs: m.meanMs,
    cv: m.cv,
    n: m.n,
    runsPerSample: m.runsPerSample,
    stable: m.stable,
    attempts: m.attempts,
    totalMs: m.totalMs,
    ...(m.reference ? { reference: { ...m.reference } } : {}),
  };
}
