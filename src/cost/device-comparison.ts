/**
 * One model's latency on several devices and runtimes side by side, the way device farms show a
 * model across phones: per device-runtime a column with the total and every layer, each figure
 * marked measured or predicted, and the slowest layers of each column flagged.
 *
 * Measured wins where there is a measurement: the total when the whole network was timed end to
 * end on that device-runtime, a layer when the table holds its op(s) at exactly this model's
 * widths (timed alone: no runtime here gives per-op times inside a network; TFLite's profiler
 * reports the whole XNNPACK-delegated network as one node). Elsewhere the calibrated prediction.
 */

/** A layer as the prediction of one device-runtime gives it. */
export interface PredictedLayer {
  readonly name: string;
  readonly predictedMs: number;
  /** The table's own point(s) at the model's widths, summed over the layer's ops; null where any is interpolated. */
  readonly measuredMs: number | null;
}

/** What is known of the model on one device-runtime. */
export interface ColumnInput {
  readonly deviceId: string;
  readonly deviceName: string;
  readonly runtime: string;
  readonly online: boolean;
  /** The table prediction, or how many op signatures the table lacks. */
  readonly prediction: { readonly predictedMs: number; readonly layers: readonly PredictedLayer[] } | { readonly missingSignatures: number };
  /** The latest end-to-end measurement of this model here. */
  readonly measured: { readonly medianMs: number; readonly p10Ms: number; readonly p90Ms: number; readonly measuredAt: string } | null;
}

export type Source = 'measured' | 'predicted';

export interface ComparisonCell {
  readonly ms: number;
  readonly source: Source;
  /** Among the column's `slowest` largest layers. */
  readonly slow: boolean;
}

export interface ComparisonColumn {
  readonly deviceId: string;
  readonly deviceName: string;
  readonly runtime: string;
  readonly online: boolean;
  /** The end-to-end time: measured when timed, else predicted; null when neither is known. */
  readonly total: { readonly ms: number; readonly source: Source } | null;
  readonly predictedMs: number | null;
  readonly measured: ColumnInput['measured'];
  /** Op signatures the table lacks (then no layer is predicted here). */
  readonly missingSignatures: number;
  /** Per layer, in the comparison's layer order; null where this column has no figure. */
  readonly layers: readonly (ComparisonCell | null)[];
  /** The slowest layers' names, slowest first. */
  readonly slowest: readonly string[];
}

export interface DeviceComparison {
  /** Layer names in model order (the first column with a prediction gives it). */
  readonly layers: readonly string[];
  readonly columns: readonly ComparisonColumn[];
}

/**
 * The side-by-side view of `inputs` (one per device-runtime), with each column's `slowest` largest
 * layers flagged. Columns come fastest first by their total (unknown totals last).
 */
export function compareDevices(inputs: readonly ColumnInput[], slowest = 3): DeviceComparison {
  const names: string[] = [];
  const seen = new Set<string>();
  for (const c of inputs) {
    if (!('layers' in c.prediction)) continue;
    for (const l of c.prediction.layers) if (!seen.has(l.name)) (seen.add(l.name), names.push(l.name));
  }
  const columns = inputs.map((c): ComparisonColumn => {
    const p = 'layers' in c.prediction ? c.prediction : null;
    const byName = new Map((p?.layers ?? []).map((l) => [l.name, l]));
    const cells = names.map((n): Omit<ComparisonCell, 'slow'> | null => {
      const l = byName.get(n);
      if (!l) return null;
      return l.measuredMs !== null ? { ms: l.measuredMs, source: 'measured' } : { ms: l.predictedMs, source: 'predicted' };
    });
    const ranked = cells
      .map((cell, i) => ({ cell, i }))
      .filter((x): x is { cell: Omit<ComparisonCell, 'slow'>; i: number } => x.cell !== null)
      .sort((a, b) => b.cell.ms - a.cell.ms || a.i - b.i)
      .slice(0, slowest);
    const slow = new Set(ranked.map((x) => x.i));
    const total = c.measured ? { ms: c.measured.medianMs, source: 'measured' as const } : p ? { ms: p.predictedMs, source: 'predicted' as const } : null;
    return {
      deviceId: c.deviceId,
      deviceName: c.deviceName,
      runtime: c.runtime,
      online: c.online,
      total,
      predictedMs: p?.predictedMs ?? null,
      measured: c.measured,
      missingSignatures: 'missingSignatures' in c.prediction ? c.prediction.missingSignatures : 0,
      layers: cells.map((cell, i) => (cell ? { ...cell, slow: slow.has(i) } : null)),
      slowest: ranked.map((x) => names[x.i]),
    };
  });
  columns.sort((a, b) => (a.total?.ms ?? Number.POSITIVE_INFINITY) - (b.total?.ms ?? Number.POSITIVE_INFINITY));
  return { layers: names, columns };
}
