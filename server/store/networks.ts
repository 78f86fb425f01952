/**
 * The `networks` table: end-to-end measurements of whole models (one per measure job), the
 * calibration's samples. Functions over a `Tx` (see devices.ts).
 */
import type { Tx } from '../db.ts';

export interface NetworkRecord {
  readonly deviceId: string;
  readonly runtime: string;
  readonly modelId: string;
  /** The measure job it came from (one measurement per job). */
  readonly jobId: string;
  /** ms per run. */
  readonly medianMs: number;
  readonly p10Ms: number;
  readonly p90Ms: number;
  readonly n: number;
  readonly measuredAt: string;
}

/** A measurement with its model's name, as the tables and calibration read it. */
export interface NetworkReading extends NetworkRecord {
  readonly modelName: string;
}

export async function insertNetwork(tx: Tx, r: NetworkRecord): Promise<void> {
  await tx.run('INSERT INTO networks (device_id, runtime, model_id, job_id, median_ms, p10_ms, p90_ms, n, measured_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)', [
    r.deviceId,
    r.runtime,
    r.modelId,
    r.jobId,
    r.medianMs,
    r.p10Ms,
    r.p90Ms,
    r.n,
    r.measuredAt,
  ]);
}

/** Every measurement on the device and runtime, in the order they were stored. */
export async function listNetworks(q: Tx, deviceId: string, runtime: string): Promise<NetworkReading[]> {
  const rows = await q.all<{ model_id: string; job_id: string; median_ms: number; p10_ms: number; p90_ms: number; n: number; measured_at: string; name: string }>(
    'SELECT n.model_id, n.job_id, n.median_ms, n.p10_ms, n.p90_ms, n.n, n.measured_at, m.name FROM networks n JOIN models m ON m.id = n.model_id WHERE n.device_id = ? AND n.runtime = ? ORDER BY n.id',
    [deviceId, runtime],
  );
  return rows.map((r) => ({
    deviceId,
    runtime,
    modelId: r.model_id,
    modelName: r.name,
    jobId: r.job_id,
    medianMs: r.median_ms,
    p10Ms: r.p10_ms,
    p90Ms: r.p90_ms,
    n: r.n,
    measuredAt: r.measured_at,
  }));
}
