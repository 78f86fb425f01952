/**
 * The `points` table: the latency tables, one row per (device, runtime, signature, c_in, c_out),
 * a later measurement replacing an earlier one. A point timed against the reference op also holds
 * the ratio op/reference and the reference's own median (`refRatio`, `refMs`); server/tables.ts
 * reads such a point at the reference's settled scale. Functions over a `Tx` (see devices.ts).
 */
import type { OpSpec } from '../../src/ops/op-spec.ts';
import type { AgentEnv, RuntimeInfo } from '../../src/protocol/agent-protocol.ts';
import type { Tx } from '../db.ts';

/** Where a point was measured: the device's environment, the runtime as reported, the agent's version. */
export interface PointEnv {
  readonly env: AgentEnv;
  readonly runtime: RuntimeInfo | null;
  readonly agentVersion: string;
}

/** One point as the tables read it (without the spec and environment it was measured with). */
export interface PointReading {
  readonly signature: string;
  readonly cIn: number;
  readonly cOut: number;
  /** ms per run, as timed. */
  readonly medianMs: number;
  readonly p10Ms: number;
  readonly p90Ms: number;
  readonly n: number;
  readonly cv: number;
  readonly stable: boolean;
  readonly measuredAt: string;
  /** Timed against the reference op: the median ratio op/reference, and the reference's median ms; else null. */
  readonly refRatio: number | null;
  readonly refMs: number | null;
}

export interface PointRecord extends PointReading {
  readonly deviceId: string;
  readonly runtime: string;
  readonly spec: OpSpec;
  readonly env: PointEnv;
  /** The job and item that measured it (null for points from elsewhere). */
  readonly jobId: string | null;
  readonly itemId: number | null;
}

/** Stores the point, replacing the one stored at its (device, runtime, signature, c_in, c_out). */
export async function upsertPoint(tx: Tx, p: PointRecord): Promise<void> {
  await tx.run(
    `INSERT INTO points (device_id, runtime, signature, c_in, c_out, median_ms, p10_ms, p90_ms, n, cv, stable, spec_json, env_json, job_id, item_id, measured_at, ref_ratio, ref_ms)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
     ON CONFLICT (device_id, runtime, signature, c_in, c_out) DO UPDATE SET median_ms = excluded.median_ms, p10_ms = excluded.p10_ms,
       p90_ms = excluded.p90_ms, n = excluded.n, cv = excluded.cv, stable = excluded.stable, spec_json = excluded.spec_json,
       env_json = excluded.env_json, job_id = excluded.job_id, item_id = excluded.item_id, measured_at = excluded.measured_at,
       ref_ratio = excluded.ref_ratio, ref_ms = excluded.ref_ms`,
    [
      p.deviceId,
      p.runtime,
      p.signature,
      p.cIn,
      p.cOut,
      p.medianMs,
      p.p10Ms,
      p.p90Ms,
      p.n,
      p.cv,
      p.stable ? 1 : 0,
      JSON.stringify(p.spec),
      JSON.stringify(p.env),
      p.jobId,
      p.itemId,
      p.measuredAt,
      p.refRatio,
      p.refMs,
    ],
  );
}

/** The (signature, c_in, c_out) of every point of the device and runtime. */
export async function pointKeys(q: Tx, deviceId: string, runtime: string): Promise<{ signature: string; cIn: number; cOut: number }[]> {
  const rows = await q.all<{ signature: string; c_in: number; c_out: number }>('SELECT signature, c_in, c_out FROM points WHERE device_id = ? AND runtime = ?', [deviceId, runtime]);
  return rows.map((r) => ({ signature: r.signature, cIn: r.c_in, cOut: r.c_out }));
}

interface ReadingRow {
  signature: string;
  c_in: number;
  c_out: number;
  median_ms: number;
  p10_ms: number;
  p90_ms: number;
  n: number;
  cv: number;
  stable: number;
  measured_at: string;
  ref_ratio: number | null;
  ref_ms: number | null;
}

/** Every point of the device and runtime, by signature, then c_in, then c_out. */
export async function tablePoints(q: Tx, deviceId: string, runtime: string): Promise<PointReading[]> {
  const rows = await q.all<ReadingRow>(
    'SELECT signature, c_in, c_out, median_ms, p10_ms, p90_ms, n, cv, stable, measured_at, ref_ratio, ref_ms FROM points WHERE device_id = ? AND runtime = ? ORDER BY signature, c_in, c_out',
    [deviceId, runtime],
  );
  return rows.map((r) => ({
    signature: r.signature,
    cIn: r.c_in,
    cOut: r.c_out,
    medianMs: r.median_ms,
    p10Ms: r.p10_ms,
    p90Ms: r.p90_ms,
    n: r.n,
    cv: r.cv,
    stable: r.stable === 1,
    measuredAt: r.measured_at,
    refRatio: r.ref_ratio,
    refMs: r.ref_ms,
  }));
}
