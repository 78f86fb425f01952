/**
 * The database schema, as migrations (see `db.ts`). Version n is the first n entries; append,
 * never edit.
 *
 * - devices: one row per physical device (agents on one machine share its device key).
 * - models: model topologies the jobs refer to, by content hash.
 * - jobs / job_items: profiling and measuring work. An item is pending, leased, done or failed;
 *   leases live in memory, and a leased item is put back to pending when the server restarts.
 * - points: the latency tables, one row per (device, runtime, signature, c_in, c_out).
 * - networks: end-to-end measurements, the calibration's samples.
 * - (2) model_uploads: models stored by POST /api/models (their topology is in `models`).
 * - (2) searches / search_events: server-side searches, their state, config, progress and result,
 *   and their stored events (numbered per search) for replays.
 * - (3) points.ref_ratio / points.ref_ms: a point timed against the reference op (`REFERENCE_OP`),
 *   interleaved: the median per-round ratio op/reference and the reference's own median. The
 *   tables read such a point as ratio × the reference's settled latency (server/tables.ts).
 */
import type { Migration } from './db.ts';

export const MIGRATIONS: readonly Migration[] = [
  `
  CREATE TABLE devices (
    id TEXT PRIMARY KEY,
    key_hash TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    platform TEXT NOT NULL,
    env_json TEXT NOT NULL,
    runtimes_json TEXT NOT NULL,
    agent_version TEXT NOT NULL,
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL
  );
  CREATE TABLE models (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    topology_json TEXT NOT NULL,
    created_at TEXT NOT NULL
  );
  CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('profile', 'measure')),
    device_id TEXT NOT NULL REFERENCES devices(id),
    runtime TEXT NOT NULL,
    model_id TEXT NOT NULL REFERENCES models(id),
    state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    options_json TEXT NOT NULL,
    result_json TEXT,
    error_json TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    finished_at TEXT
  );
  CREATE INDEX jobs_by_state ON jobs(state, created_at);
  CREATE TABLE job_items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL REFERENCES jobs(id),
    idx INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('op', 'network')),
    spec_json TEXT,
    signature TEXT,
    c_in INTEGER,
    c_out INTEGER,
    state TEXT NOT NULL CHECK (state IN ('pending', 'leased', 'done', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    agent_id TEXT,
    result_json TEXT,
    error_json TEXT,
    done_at TEXT,
    UNIQUE (job_id, idx)
  );
  CREATE INDEX items_by_job_state ON job_items(job_id, state);
  CREATE TABLE points (
    device_id TEXT NOT NULL REFERENCES devices(id),
    runtime TEXT NOT NULL,
    signature TEXT NOT NULL,
    c_in INTEGER NOT NULL,
    c_out INTEGER NOT NULL,
    median_ms REAL NOT NULL CHECK (median_ms > 0),
    p10_ms REAL NOT NULL,
    p90_ms REAL NOT NULL,
    n INTEGER NOT NULL CHECK (n > 0),
    cv REAL NOT NULL,
    stable INTEGER NOT NULL,
    spec_json TEXT NOT NULL,
    env_json TEXT NOT NULL,
    job_id TEXT,
    item_id INTEGER,
    measured_at TEXT NOT NULL,
    PRIMARY KEY (device_id, runtime, signature, c_in, c_out)
  );
  CREATE TABLE networks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id TEXT NOT NULL REFERENCES devices(id),
    runtime TEXT NOT NULL,
    model_id TEXT NOT NULL REFERENCES models(id),
    job_id TEXT NOT NULL UNIQUE REFERENCES jobs(id),
    median_ms REAL NOT NULL CHECK (median_ms > 0),
    p10_ms REAL NOT NULL,
    p90_ms REAL NOT NULL,
    n INTEGER NOT NULL,
    measured_at TEXT NOT NULL
  );
  CREATE INDEX networks_by_device ON networks(device_id, runtime);
  `,
  // 2: searches run by the server (server/search/service.ts) and models uploaded by POST /api/models.
  `
  CREATE TABLE model_uploads (
    id TEXT PRIMARY KEY REFERENCES models(id),
    name TEXT NOT NULL,
    layers INTEGER NOT NULL,
    params INTEGER NOT NULL,
    macs INTEGER NOT NULL,
    input_shape_json TEXT NOT NULL,
    outputs INTEGER,
    uploaded_at TEXT NOT NULL
  );
  CREATE TABLE searches (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN ('queued', 'preparing', 'running', 'done', 'failed', 'cancelled', 'interrupted')),
    model_id TEXT NOT NULL REFERENCES models(id),
    cost TEXT NOT NULL,
    device_id TEXT REFERENCES devices(id),
    runtime TEXT,
    config_json TEXT NOT NULL,
    progress_json TEXT NOT NULL,
    result_json TEXT,
    error_json TEXT,
    artifacts_dir TEXT NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT
  );
  CREATE INDEX searches_by_state ON searches(state, created_at);
  CREATE TABLE search_events (
    search_id TEXT NOT NULL REFERENCES searches(id),
    seq INTEGER NOT NULL,
    type TEXT NOT NULL,
    data_json TEXT NOT NULL,
    at TEXT NOT NULL,
    PRIMARY KEY (search_id, seq)
  );
  `,
  // 3: points timed against the reference op.
  `
  ALTER TABLE points ADD COLUMN ref_ratio REAL CHECK (ref_ratio IS NULL OR ref_ratio > 0);
  ALTER TABLE points ADD COLUMN ref_ms REAL CHECK (ref_ms IS NULL OR ref_ms > 0);
  `,
];
