/**
 * Reading the stored latency tables and end-to-end measurements back as the cost module's
 * objects: `LatencyTable`s per signature, and the device's calibration fitted on every network
 * measured end to end whose ops the tables cover.
 */
import { fitCalibration, type Calibration } from '../src/cost/calibration.ts';
import { LatencyTable, tableModeOf } from '../src/cost/latency-table.ts';
import { predictNetwork } from '../src/cost/predict-network.ts';
import { isMorphError } from '../src/errors.ts';
import type { NetworkSample, TablePoint } from './contract/tables.ts';
import type { Db } from './db.ts';
import { resolveModel, type ResolvedModel } from './models.ts';
import { findModel } from './store/models.ts';
import { listNetworks } from './store/networks.ts';
import { tablePoints } from './store/points.ts';

/**
 * The reference op's settled latency on a device and runtime: the median of its medians beside
 * every point timed against it. A single slow or fast phase moves it little, and every point is
 * read at this one scale, so two points timed in different phases compare as their ratios do.
 */
export function settledReferenceMs(refMs: readonly number[]): number | null {
  if (refMs.length === 0) return null;
  const s = [...refMs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export interface StoredTable {
  readonly signature: string;
  readonly points: readonly TablePoint[];
  /** The interpolant, or null with the reason when the points do not form a usable table yet. */
  readonly table: LatencyTable | null;
  readonly problem: string | null;
}

export class TableReader {
  readonly #db: Db;
  readonly #models = new Map<string, ResolvedModel>();

  constructor(db: Db) {
    this.#db = db;
  }

  async tables(deviceId: string, runtime: string): Promise<StoredTable[]> {
    const rows = await tablePoints(this.#db, deviceId, runtime);
    const settled = settledReferenceMs(rows.flatMap((r) => (r.refRatio !== null && r.refMs !== null ? [r.refMs] : [])));
    const bySig = new Map<string, TablePoint[]>();
    for (const r of rows) {
      const list = bySig.get(r.signature) ?? [];
      // A point timed against the reference op is read at the settled scale; p10/p90 keep their spread.
      const scale = r.refRatio !== null && settled !== null ? (r.refRatio * settled) / r.medianMs : 1;
      list.push({
        cIn: r.cIn,
        cOut: r.cOut,
        medianMs: r.medianMs * scale,
        p10Ms: r.p10Ms * scale,
        p90Ms: r.p90Ms * scale,
        n: r.n,
        cv: r.cv,
        stable: r.stable,
        measuredAt: r.measuredAt,
        ratio: r.refRatio,
        timedMs: r.medianMs,
      });
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
    const row = await findModel(this.#db, modelId);
    if (!row) return undefined;
    const model = resolveModel(row.topology);
    this.#models.set(modelId, model);
    return model;
  }

  /** The latest end-to-end measurement of one model on the device and runtime, ms, or null. */
  async lastMeasuredMs(deviceId: string, runtime: string, modelId: string): Promise<number | null> {
    return (await listNetworks(this.#db, deviceId, runtime)).filter((r) => r.modelId === modelId).at(-1)?.medianMs ?? null;
  }

  /** Every end-to-end measurement on the device and runtime, with its uncalibrated table sum. */
  async networks(deviceId: string, runtime: string, tables?: StoredTable[]): Promise<NetworkSample[]> {
    const rows = await listNetworks(this.#db, deviceId, runtime);
    const bySig = new Map((tables ?? (await this.tables(deviceId, runtime))).filter((t) => t.table).map((t) => [t.signature, t.table as LatencyTable]));
    const out: NetworkSample[] = [];
    for (const r of rows) {
      const model = await this.model(r.modelId);
      const p = model ? predictNetwork(model.specs, (s) => bySig.get(s)) : null;
      out.push({
        modelId: r.modelId,
        modelName: r.modelName,
        jobId: r.jobId,
        measuredMs: r.medianMs,
        p10Ms: r.p10Ms,
        p90Ms: r.p90Ms,
        measuredAt: r.measuredAt,
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
