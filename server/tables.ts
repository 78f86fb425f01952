/**
 * Reading the stored latency tables and end-to-end measurements back as the cost module's
 * objects: `LatencyTable`s per signature, and the device's calibration fitted on every network
 * measured end to end whose ops the tables cover.
 */
import { fitCalibration, type Calibration } from '../src/cost/calibration.ts';
import { LatencyTable, tableModeOf, type LatencyPoint } from '../src/cost/latency-table.ts';
import { predictNetwork } from '../src/cost/predict-network.ts';
import { isMorphError } from '../src/errors.ts';
import type { Db } from './db.ts';
import { resolveModel, type ResolvedModel } from './models.ts';

interface PointRow {
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
}

export interface StoredPoint extends LatencyPoint {
  readonly cv: number;
  readonly stable: boolean;
  readonly measuredAt: string;
}

export interface StoredTable {
  readonly signature: string;
  readonly points: readonly StoredPoint[];
  /** The interpolant, or null with the reason when the points do not form a usable table yet. */
  readonly table: LatencyTable | null;
  readonly problem: string | null;
}

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

export class TableReader {
  readonly #db: Db;
  readonly #models = new Map<string, ResolvedModel>();

  constructor(db: Db) {
    this.#db = db;
  }

  async tables(deviceId: string, runtime: string): Promise<StoredTable[]> {
    const rows = await this.#db.all<PointRow>('SELECT * FROM points WHERE device_id = ? AND runtime = ? ORDER BY signature, c_in, c_out', [deviceId, runtime]);
    const bySig = new Map<string, StoredPoint[]>();
    for (const r of rows) {
      const list = bySig.get(r.signature) ?? [];
      list.push({ cIn: r.c_in, cOut: r.c_out, medianMs: r.median_ms, p10Ms: r.p10_ms, p90Ms: r.p90_ms, n: r.n, cv: r.cv, stable: r.stable === 1, measuredAt: r.measured_at });
      bySig.set(r.signature, list);
    }
    return [...bySig.entries()].map(([signature, points]) => {
      try {
        const table = LatencyTable.fromPoints({ device: deviceId, runtime, signature }, points, { mode: tableModeOf(signature), fillMissing: true });
        return { signature, points, table, problem: null };
      } catch (err) {
        if (!isMorphError(err)) throw err;
        return { signature, points, table: null, problem: err.message };
      }
    });
  }

  /** The stored model by id (parsed once). */
  async model(modelId: string): Promise<ResolvedModel | undefined> {
    const cached = this.#models.get(modelId);
    if (cached) return cached;
    const row = await this.#db.get<{ topology_json: string }>('SELECT topology_json FROM models WHERE id = ?', [modelId]);
    if (!row) return undefined;
    const model = resolveModel(JSON.parse(row.topology_json));
    this.#models.set(modelId, model);
    return model;
  }

  /** Every end-to-end measurement on the device and runtime, with its uncalibrated table sum. */
  async networks(deviceId: string, runtime: string, tables?: StoredTable[]): Promise<NetworkSample[]> {
    const rows = await this.#db.all<{ model_id: string; job_id: string; median_ms: number; p10_ms: number; p90_ms: number; measured_at: string; name: string }>(
      'SELECT n.model_id, n.job_id, n.median_ms, n.p10_ms, n.p90_ms, n.measured_at, m.name FROM networks n JOIN models m ON m.id = n.model_id WHERE n.device_id = ? AND n.runtime = ? ORDER BY n.id',
      [deviceId, runtime],
    );
    const bySig = new Map((tables ?? (await this.tables(deviceId, runtime))).filter((t) => t.table).map((t) => [t.signature, t.table as LatencyTable]));
    const out: NetworkSample[] = [];
    for (const r of rows) {
      const model = await this.model(r.model_id);
      const p = model ? predictNetwork(model.specs, (s) => bySig.get(s)) : null;
      out.push({
        modelId: r.model_id,
        modelName: r.name,
        jobId: r.job_id,
        measuredMs: r.median_ms,
        p10Ms: r.p10_ms,
        p90Ms: r.p90_ms,
        measuredAt: r.measured_at,
        sumOpsMs: p?.ok ? p.sumOpsMs : null,
        nOps: p?.ok ? p.nOps : null,
        ioMB: p?.ok ? p.ioMB : null,
        weightMB: p?.ok ? p.weightMB : null,
      });
    }
    return out;
  }

  /**
   * The calibration fitted on the covered networks (the latest measurement of each model), or
   * null when none is covered yet.
   */
  async calibration(deviceId: string, runtime: string, tables?: StoredTable[], exclude?: string): Promise<Calibration | null> {
    const latest = new Map<string, NetworkSample>();
    for (const n of await this.networks(deviceId, runtime, tables)) if (n.sumOpsMs !== null && n.sumOpsMs > 0 && n.modelId !== exclude) latest.set(n.modelId, n);
    if (latest.size === 0) return null;
    return fitCalibration(
      [...latest.values()].map((n) => ({ device: deviceId, runtime, sumOpsMs: n.sumOpsMs as number, nOps: n.nOps as number, ioMB: n.ioMB ?? undefined, weightMB: n.weightMB ?? undefined, measuredMs: n.measuredMs, model: n.modelName })),
    );
  }
}
