/**
 * The one error catalogue of MorphNet Edge. Every failure a user can cause has a stable
 * `MORPH_ERR_*` code, an HTTP status for the API, and a CLI exit code, so that the CLI, the REST
 * API and the tests all speak of the same thing. Messages say what was received and what to do.
 */

export const ERROR_CODES = {
  MORPH_ERR_BAD_ARGUMENT: { status: 400, exit: 2, summary: 'A command-line flag or API field is missing or has a bad value.' },
  MORPH_ERR_NOT_FOUND: { status: 404, exit: 2, summary: 'A file, model, device or other named thing does not exist.' },
  MORPH_ERR_NOT_JSON: { status: 400, exit: 2, summary: 'A file or body that must be JSON does not parse as JSON.' },
  MORPH_ERR_NOT_A_MODEL: { status: 400, exit: 2, summary: 'JSON that is not a tfjs model.json nor a Keras model config.' },
  MORPH_ERR_BAD_TOPOLOGY: { status: 400, exit: 2, summary: 'The model topology is malformed: an unknown tensor reference, a cycle, a missing input.' },
  MORPH_ERR_SHAPE: { status: 400, exit: 2, summary: 'A tensor shape cannot be inferred or does not fit the layer that consumes it.' },
  MORPH_ERR_UNSUPPORTED_LAYER: { status: 400, exit: 2, summary: 'A layer class that neither MorphNet nor TensorFlow.js knows, whose output shape or parameters the file does not state: the model is refused (the error names the layer and its class) rather than counted wrong.' },
  MORPH_ERR_WEIGHTS_MISSING: { status: 400, exit: 2, summary: 'A weights file named by the weightsManifest cannot be read.' },
  MORPH_ERR_WEIGHTS_MISMATCH: { status: 400, exit: 2, summary: 'The weights do not match the topology (missing, extra, wrong shape or size).' },
  MORPH_ERR_BAD_STRUCTURE: { status: 400, exit: 2, summary: 'A width structure names unknown layers, gives non-positive widths or conflicting widths for one group.' },
  MORPH_ERR_OUTPUT_EXISTS: { status: 409, exit: 2, summary: 'The output directory exists and is not empty, or the output file (backup --out) exists.' },
  MORPH_ERR_DATASET: { status: 400, exit: 2, summary: 'A dataset cannot be used: a malformed or truncated file, a wrong magic number, mismatched image/label counts, a label out of range, an undecodable image.' },
  MORPH_ERR_DATASET_MISMATCH: { status: 400, exit: 2, summary: 'The dataset does not fit the model: its image shape or number of classes differs from the model input or output.' },
  MORPH_ERR_BACKEND: { status: 501, exit: 2, summary: 'The requested compute backend (tfjs-node, wasm, cpu) cannot be loaded on this machine.' },
  MORPH_ERR_ENGINE: { status: 501, exit: 2, summary: 'The requested training engine cannot be used: no Python interpreter that imports torch (--engine torch), a layer the torch engine does not build, or a torch worker that crashed, was killed or broke the protocol (its last stderr lines are in the message).' },
  MORPH_ERR_TARGET: { status: 400, exit: 2, summary: 'A cost target the network cannot meet: below the cost of its fixed parts, or above the seed\'s cost.' },
  MORPH_ERR_NAN: { status: 422, exit: 2, summary: 'Training diverged: the loss became NaN or infinite. Training stops at once and keeps the last good checkpoint; lower the learning rate or the regularizer strength.' },
  MORPH_ERR_CHECKPOINT: { status: 400, exit: 2, summary: 'A training checkpoint cannot be resumed: unreadable, from another model, or written with other training options.' },
  MORPH_ERR_MEASUREMENT: { status: 422, exit: 2, summary: 'An op cannot be timed: the clock does not advance even over many runs, or it returns a non-finite time.' },
  MORPH_ERR_LATENCY_TABLE: { status: 400, exit: 2, summary: 'A latency table cannot be used: no points, a non-finite, negative or misordered timing (p10 ≤ median ≤ p90), a non-positive channel count, a duplicate (c_in, c_out) point, or a grid with missing points.' },
  MORPH_ERR_CALIBRATION: { status: 400, exit: 2, summary: 'A latency calibration cannot be fitted or applied: no end-to-end samples, a non-finite or non-positive latency, or samples from more than one device/runtime.' },
  MORPH_ERR_BAD_OP_SPEC: { status: 400, exit: 2, summary: 'An OpSpec (one op as it runs at inference) has a bad or inconsistent field: an unknown kind, activation or dtype, a non-positive size, a window that does not fit its input, channel counts the kind does not allow.' },
  MORPH_ERR_EXPORT: { status: 422, exit: 2, summary: 'The model cannot be written in the requested format: a layer, activation or option the .tflite writer does not support, or a model without weights where weights are needed.' },
  MORPH_ERR_PROTOCOL: { status: 400, exit: 2, summary: 'An agent or server WebSocket message is not valid protocol v1: not JSON, an unknown type or version, a missing or extra field, a non-finite or out-of-range number.' },
  MORPH_ERR_UNAUTHORIZED: { status: 401, exit: 2, summary: 'A token is missing, wrong or expired: the agent token or a pairing code on the WebSocket; the admin token (bearer or login session) on the API and UI when one is set.' },
  MORPH_ERR_MISSING_OPS: { status: 409, exit: 2, summary: 'A latency prediction needs ops the device\'s table lacks; profile the model on that device and runtime first (the missing ops are listed).' },
  MORPH_ERR_UNKNOWN_ITEM: { status: 409, exit: 2, summary: 'A result or failure names a lease or item the server does not hold for this agent (unknown, expired or re-leased); it is not stored.' },
  MORPH_ERR_JOB_FAILED: { status: 422, exit: 2, summary: 'A profiling or measurement job failed: its items could not be run on the device (each item\'s error is in the job).' },
  MORPH_ERR_LIMIT: { status: 413, exit: 2, summary: 'An input is over a configured size limit.' },
  MORPH_ERR_QUOTA: { status: 409, exit: 2, summary: 'The server already holds as many of something as it keeps: queued or running jobs of a device, pairings, queued searches, uploaded models. Free some (cancel, revoke, wait for them to finish) and retry.' },
  MORPH_ERR_FORBIDDEN: { status: 403, exit: 2, summary: 'The request is refused whatever its token: a cross-origin write carrying the session cookie, a WebSocket upgrade from a page of another origin, or a Host name a server without an admin token does not answer (DNS rebinding).' },
  MORPH_ERR_RATE_LIMITED: { status: 429, exit: 2, summary: 'A wrong token from an address that sent too many wrong ones lately; the right token is still accepted (the Retry-After header says when wrong ones get 401 again).' },
  MORPH_ERR_CONFIG: { status: 500, exit: 2, summary: 'The server refuses to start with an unsafe configuration: a non-loopback --host without an admin token, an admin token shorter than 16 characters, the same secret as admin and agent token, a change-me… placeholder from an example file as a token, or a --public-url (MORPHNET_PUBLIC_URL) that is not an http(s) origin.' },
  MORPH_ERR_UNAVAILABLE: { status: 503, exit: 2, summary: 'The server is shutting down and takes no new work; retry once it is back (agents reconnect by themselves).' },
  MORPH_ERR_DATA_DIR_IN_USE: { status: 409, exit: 2, summary: 'Another running MorphNet server holds the data directory (its lock file names the process), or one in another container or on another host refreshed its lock within the last 60 s; stop it first or use another --data-dir (a lock that cannot be checked goes stale 60 s after its last refresh).' },
  MORPH_ERR_BACKUP: { status: 422, exit: 2, summary: 'A database backup cannot be made or restored: the file is not an SQLite database, fails its integrity check, or has a schema newer than this MorphNet Edge.' },
  MORPH_ERR_INTERNAL: { status: 500, exit: 1, summary: 'A bug: please report it with the command that caused it.' },
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;
export const VALID_ERROR_CODES = Object.keys(ERROR_CODES) as ErrorCode[];

/** An error a user can act on: it carries a stable code and a message naming what was wrong. */
export class MorphError extends Error {
  readonly code: ErrorCode;
  /** Extra machine-readable facts (file, layer, limit) for `--json` and API clients. */
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: ErrorCode, message: string, details: Record<string, unknown> = {}) {
    super(message);
    this.name = 'MorphError';
    this.code = code;
    this.details = details;
  }

  get status(): number {
    return ERROR_CODES[this.code].status;
  }

  get exitCode(): number {
    return ERROR_CODES[this.code].exit;
  }

  toJSON(): { code: ErrorCode; message: string; details?: Record<string, unknown> } {
    return Object.keys(this.details).length > 0
      ? { code: this.code, message: this.message, details: { ...this.details } }
      : { code: this.code, message: this.message };
  }
}

export function isMorphError(err: unknown): err is MorphError {
  return err instanceof MorphError;
}
