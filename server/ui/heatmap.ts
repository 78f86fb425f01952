/**
 * Chart configs for latency tables: a heat map of the interpolated latency over (c_in, c_out) for
 * grid tables, a curve over c_in for tied ones (depthwise, pooling, add), with the measured points
 * marked on both. The interpolation is the server's own (`LatencyTable` from src/cost, bundled
 * into the page): bilinear after the monotone fit, holes filled the same way, so the map shows
 * exactly what the latency model reads.
 */
import type { ChartConfiguration } from 'chart.js';
import { LatencyTable, tableModeOf } from '../../src/cost/latency-table.ts';
import { viridis } from './charts.ts';
import type { NetworksResponse, TablePoint } from '../contract/index.ts';

/** Up to `n` evenly spaced integer channel counts from lo to hi (both included). */
export function axisSamples(lo: number, hi: number, n = 16): number[] {
  if (hi <= lo) return [lo];
  const step = Math.max(1, Math.ceil((hi - lo) / (n - 1)));
  const out: number[] = [];
  for (let v = lo; v < hi; v += step) out.push(v);
  out.push(hi);
  return out;
}

export interface TableChart {
  readonly config: ChartConfiguration;
  readonly facts: Record<string, string | number>;
  readonly range: { readonly min: number; readonly max: number };
}

const fmt = (v: number): string => (v >= 100 ? v.toFixed(0) : v.toPrecision(3));

/** The chart of one stored table; null when its points do not form a usable table. */
export function tableChart(signature: string, points: readonly TablePoint[]): TableChart | null {
  let table: LatencyTable;
  try {
    table = LatencyTable.fromPoints({ device: 'ui', runtime: 'ui', signature }, points, { mode: tableModeOf(signature), fillMissing: true });
  } catch {
    return null;
  }
  const measured = points.map((p) => ({ x: p.cIn, y: table.mode === 'tied' ? p.medianMs : p.cOut, p }));
  const xs = axisSamples(table.cIns[0], table.cIns[table.cIns.length - 1], table.mode === 'tied' ? 40 : 16);

  if (table.mode === 'tied') {
    const curve = xs.map((x) => ({ x, y: table.latency(x, x) }));
    const values = [...curve.map((c) => c.y), ...points.map((p) => p.medianMs)];
    const config: ChartConfiguration = {
      type: 'scatter',
      data: {
        datasets: [
          { type: 'line', label: 'interpolated', data: curve, borderColor: '#31688e', pointRadius: 0, borderWidth: 2 },
          { label: 'measured', data: measured, backgroundColor: '#000', borderColor: '#fff', borderWidth: 1.5, pointRadius: 5 },
        ],
      },
      options: {
        scales: { x: { type: 'linear', title: { display: true, text: 'channels (c_in; c_out follows)' } }, y: { type: 'linear', beginAtZero: true, title: { display: true, text: 'ms' } } },
        plugins: {
          legend: { display: true, position: 'bottom' },
          tooltip: { callbacks: { label: (c) => `${(c.raw as { x: number }).x} ch: ${fmt((c.raw as { y: number }).y)} ms` } },
        },
      },
    };
    return { config, facts: { mode: 'tied', measured: points.length, cells: curve.length }, range: { min: Math.min(...values), max: Math.max(...values) } };
  }

  const ys = axisSamples(table.cOuts[0], table.cOuts[table.cOuts.length - 1], 16);
  const cells = xs.flatMap((x) => ys.map((y) => ({ x, y, v: table.latency(x, y) })));
  const vmin = Math.min(...cells.map((c) => c.v));
  const vmax = Math.max(...cells.map((c) => c.v));
  const half = (vals: number[]): number => (vals.length > 1 ? (vals[1] - vals[0]) / 2 : 0.5);
  const dx = half(xs);
  const dy = half(ys);
  const config: ChartConfiguration = {
    type: 'matrix',
    data: {
      datasets: [
        {
          type: 'matrix',
          label: 'interpolated ms',
          data: cells,
          backgroundColor: (c) => viridis((((c.raw as { v?: number } | undefined)?.v ?? vmin) - vmin) / (vmax - vmin || 1)),
          borderWidth: 0,
          // Drawn under the measured points (Chart.js draws lower `order` on top).
          order: 2,
          width: ({ chart }) => (chart.chartArea?.width ?? 0) / xs.length + 0.5,
          height: ({ chart }) => (chart.chartArea?.height ?? 0) / ys.length + 0.5,
        },
        // The measured points, drawn over the map.
        { type: 'scatter', label: 'measured', data: measured, backgroundColor: '#fff', borderColor: '#000', borderWidth: 1.5, pointRadius: 4.5, pointStyle: 'circle', order: 1 } as never,
      ],
    },
    options: {
      scales: {
        x: { type: 'linear', min: xs[0] - dx, max: xs[xs.length - 1] + dx, title: { display: true, text: 'c_in' }, grid: { display: false } },
        y: { type: 'linear', min: ys[0] - dy, max: ys[ys.length - 1] + dy, title: { display: true, text: 'c_out' }, grid: { display: false } },
      },
      plugins: {
        legend: { display: false },
        tooltip: {
          callbacks: {
            label: (c) => {
              const raw = c.raw as { x: number; y: number; v?: number; p?: TablePoint };
              if (raw.p) return `measured (${raw.x}, ${raw.y}): ${fmt(raw.p.medianMs)} ms (p10 ${fmt(raw.p.p10Ms)}, p90 ${fmt(raw.p.p90Ms)}, n ${raw.p.n})`;
              return `(${raw.x}, ${raw.y}): ${fmt(raw.v ?? 0)} ms interpolated`;
            },
          },
        },
      },
    },
  };
  return { config, facts: { mode: 'grid', measured: points.length, cells: cells.length }, range: { min: vmin, max: vmax } };
}

/**
 * Predicted vs measured latency of every network measured end to end on the device, with y = x
 * and the ±10% band (nn-Meter's quality figure).
 */
export function predictedVsMeasured(networks: NetworksResponse['networks']): { config: ChartConfiguration; within: number; total: number } {
  const pts = networks.filter((n) => n.predictedMs !== null).map((n) => ({ x: n.measuredMs, y: n.predictedMs as number, name: n.modelName }));
  const top = Math.max(1e-3, ...pts.map((p) => Math.max(p.x, p.y))) * 1.15;
  const line = (k: number): { x: number; y: number }[] => [
    { x: 0, y: 0 },
    { x: top, y: k * top },
  ];
  const within = pts.filter((p) => Math.abs(p.y / p.x - 1) <= 0.1).length;
  const config: ChartConfiguration = {
    type: 'scatter',
    data: {
      datasets: [
        { type: 'line', label: '+10%', data: line(1.1), borderColor: 'rgba(0,114,178,0.35)', backgroundColor: 'rgba(0,114,178,0.12)', fill: '+1', pointRadius: 0, borderWidth: 1 },
        { type: 'line', label: '−10%', data: line(0.9), borderColor: 'rgba(0,114,178,0.35)', pointRadius: 0, borderWidth: 1, fill: false },
        { type: 'line', label: 'predicted = measured', data: line(1), borderColor: '#555', borderDash: [4, 4], pointRadius: 0, borderWidth: 1, fill: false },
        { label: 'networks', data: pts, backgroundColor: '#d55e00', pointRadius: 5 },
      ],
    },
    options: {
      scales: {
        x: { type: 'linear', min: 0, max: top, title: { display: true, text: 'measured ms (median, end to end)' } },
        y: { type: 'linear', min: 0, max: top, title: { display: true, text: 'predicted ms' } },
      },
      plugins: {
        legend: { display: true, position: 'bottom', labels: { filter: (item) => item.text !== '−10%' } },
        tooltip: {
          filter: (item) => item.datasetIndex === 3,
          callbacks: { label: (c) => `${(c.raw as { name: string }).name}: measured ${fmt((c.raw as { x: number }).x)} ms, predicted ${fmt((c.raw as { y: number }).y)} ms` },
        },
      },
    },
  };
  return { config, within, total: pts.length };
}
