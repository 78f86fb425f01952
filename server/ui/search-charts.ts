/** Chart configs of a search: live curves, alive channels, widths, and the Pareto plot. */
import type { ChartConfiguration, ChartDataset } from 'chart.js';
import { COLORS } from './charts.ts';
import type { NetworkSummary, SearchProgress, SearchView } from '../contract/index.ts';

// FLOP-MorphNet's run is drawn in COLORS.flops, so the phases of the search's own run avoid it.
const PHASE_COLORS = { shrink: COLORS.latency, final: COLORS.accent, baseline: COLORS.uniform } as const;
type Phase = keyof typeof PHASE_COLORS;
const PHASES: readonly Phase[] = ['shrink', 'final', 'baseline'];

/** One live training step (SSE `step` events are not stored: the page keeps them). */
export interface LiveStep {
  readonly phase: Phase;
  readonly globalStep: number;
  readonly loss: number;
}

const lin = (title: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({ type: 'linear', title: { display: true, text: title }, ...extra });

/** One run's share of the per-phase lists a search's progress keeps. */
export interface RunProgress {
  readonly curves: SearchProgress['curves'];
  readonly shrink: SearchProgress['shrink'];
}

/**
 * A search's own run and, for a latency search with baselines, the FLOP-MorphNet baseline's run,
 * which the server keeps apart (`progress.flop`; absent in progress stored before it existed).
 */
export function splitRuns(view: SearchView): { main: RunProgress; flop: RunProgress | null } {
  const f = view.progress.flop ?? null;
  const main = { curves: view.progress.curves, shrink: view.progress.shrink };
  return { main, flop: f ? { curves: { ...f.curves, baseline: [] }, shrink: f.shrink } : null };
}

type CurveKey = 'trainLoss' | 'valLoss' | 'valAccuracy';

function curveSets(view: SearchView, key: CurveKey, dashed: boolean): ChartDataset<'line'>[] {
  const { main, flop } = splitRuns(view);
  const sets: ChartDataset<'line'>[] = [];
  const add = (label: string, pts: readonly { trainLoss: number; valLoss: number | null; valAccuracy: number | null }[], color: string, dash: number[]): void => {
    if (pts.length === 0 || pts.every((c) => c[key] === null)) return;
    sets.push({ label, data: pts.map((c, i) => ({ x: i + 1, y: c[key] })), borderColor: color, backgroundColor: color, borderDash: dash, pointRadius: 3 } as never);
  };
  const what = key === 'trainLoss' ? 'train' : key === 'valLoss' ? 'val' : 'val accuracy';
  const dash = dashed ? [5, 4] : [];
  for (const phase of PHASES) add(`${phase === 'baseline' ? 'uniform' : phase} ${what}`, main.curves[phase], PHASE_COLORS[phase], dash);
  if (flop) {
    add(`FLOP-MorphNet shrink ${what}`, flop.curves.shrink, COLORS.flops, dashed ? [5, 4] : [2, 2]);
    add(`FLOP-MorphNet final ${what}`, flop.curves.final, COLORS.flops, dash);
  }
  return sets;
}

/** Train and validation loss per epoch of each phase (and of the FLOP-MorphNet baseline's run). */
export function lossChart(view: SearchView): ChartConfiguration {
  return {
    type: 'line',
    data: { datasets: [...curveSets(view, 'trainLoss', false), ...curveSets(view, 'valLoss', true)] },
    options: { parsing: false, scales: { x: lin('epoch (of each phase)', { min: 0 }), y: lin('loss') }, plugins: { legend: { position: 'bottom', labels: { boxWidth: 12 } } } },
  } as ChartConfiguration;
}

/** The training loss of every step of the phase running now (live only: steps are not stored). */
export function stepChart(steps: readonly LiveStep[]): { config: ChartConfiguration; phase: Phase | null; points: number } {
  // The trailing run of one phase: steps count up within a phase and start again at the next one.
  let first = steps.length - 1;
  while (first > 0 && steps[first - 1].phase === steps[first].phase && steps[first - 1].globalStep < steps[first].globalStep) first--;
  const live = steps.slice(Math.max(0, first));
  const phase = live.length > 0 ? live[0].phase : null;
  return {
    phase,
    points: live.length,
    config: {
      type: 'line',
      data: { datasets: [{ label: phase ? `${phase}: loss per step` : 'loss per step', data: live.map((s) => ({ x: s.globalStep, y: s.loss })), borderColor: phase ? PHASE_COLORS[phase] : COLORS.accent, borderWidth: 1.5, pointRadius: live.length < 40 ? 2 : 0 }] },
      options: { parsing: false, scales: { x: lin('step', { min: 0 }), y: lin('loss') }, plugins: { legend: { position: 'bottom', labels: { boxWidth: 12 } } } },
    } as ChartConfiguration,
  };
}

export function accuracyChart(view: SearchView): ChartConfiguration {
  return {
    type: 'line',
    data: { datasets: curveSets(view, 'valAccuracy', false) },
    options: { parsing: false, scales: { x: lin('epoch (of each phase)', { min: 0 }), y: lin('validation accuracy', { min: 0, max: 1 }) }, plugins: { legend: { position: 'bottom', labels: { boxWidth: 12 } } } },
  } as ChartConfiguration;
}

/** The alive network's predicted cost after each shrink epoch against the target (the expand step closes the gap). */
export function costChart(view: SearchView): ChartConfiguration {
  const unit = view.target.unit;
  const pts = splitRuns(view).main.shrink.map((s, i) => ({ x: i + 1, y: s.aliveCost }));
  const n = Math.max(1, pts.length);
  const datasets: Record<string, unknown>[] = [
    { label: `predicted ${unit}, alive channels after each shrink epoch`, data: pts, borderColor: COLORS.latency, backgroundColor: COLORS.latency, pointRadius: 3 },
  ];
  if (view.target.value > 0) datasets.push({ label: `target ${fmt(view.target.value)} ${unit}`, data: [{ x: 0, y: view.target.value }, { x: n, y: view.target.value }], borderColor: COLORS.target, borderDash: [6, 4], pointRadius: 0 });
  const seedCost = view.target.seedCost ?? 0;
  if (seedCost > 0) datasets.push({ label: `seed ${fmt(seedCost)} ${unit}`, data: [{ x: 0, y: seedCost }, { x: n, y: seedCost }], borderColor: COLORS.seed, borderDash: [2, 3], pointRadius: 0 });
  const learned = view.result?.learned;
  if (learned) datasets.push({ label: `found network: predicted ${fmt(learned.cost)}${learned.measured !== null ? `, measured ${fmt(learned.measured)}` : ''} ${unit}`, data: [{ x: n, y: learned.measured ?? learned.cost }], borderColor: COLORS.target, backgroundColor: COLORS.target, pointRadius: 6, pointStyle: 'star', showLine: false });
  return {
    type: 'line',
    data: { datasets },
    options: { parsing: false, scales: { x: lin('shrink epoch', { min: 0 }), y: lin(unit, { beginAtZero: true }) }, plugins: { legend: { position: 'bottom', labels: { boxWidth: 12 } } } },
  } as unknown as ChartConfiguration;
}

function fmt(v: number): string {
  if (v >= 1e6) return `${(v / 1e6).toPrecision(3)}M`;
  if (v >= 1e3) return `${(v / 1e3).toPrecision(3)}k`;
  return v.toPrecision(3);
}

/**
 * Alive channels of each group after the latest shrink epoch of a run, against its width in the
 * seed: the search's own run, or while it trains the FLOP-MorphNet baseline, that one's.
 */
export function aliveChart(view: SearchView, active: boolean): { config: ChartConfiguration; groups: number; epochs: number; run: string } {
  const p = view.progress;
  const { main, flop } = splitRuns(view);
  const run = active && flop && flop.shrink.length > 0 ? { name: 'FLOP-MorphNet baseline', shrink: flop.shrink } : { name: '', shrink: main.shrink };
  const last = run.shrink.at(-1);
  const groups = p.groups.filter((g) => g.channels > 1 && !(last && last.alive[g.id] === undefined));
  const label = (g: (typeof groups)[number]): string => (g.layers.length > 1 ? `${g.layers[0]} +${g.layers.length - 1}` : g.layers[0]);
  return {
    groups: groups.length,
    epochs: run.shrink.length,
    run: run.name,
    config: {
      type: 'bar',
      data: {
        labels: groups.map(label),
        datasets: [
          { label: 'seed width', data: groups.map((g) => g.channels), backgroundColor: 'rgba(127,127,127,0.35)', grouped: false, order: 2 },
          { label: last ? `${run.name ? `${run.name}: ` : ''}alive after round ${last.round}, epoch ${last.epoch}` : 'alive (shrink not started)', data: groups.map((g) => (last ? last.alive[g.id] : g.channels)), backgroundColor: COLORS.latency, grouped: false, order: 1, barPercentage: 0.6 },
        ],
      },
      options: { indexAxis: 'y', scales: { x: lin('channels', { beginAtZero: true }), y: { type: 'category', ticks: { autoSkip: false, font: { size: 11 } } } }, plugins: { legend: { position: 'bottom' } } },
    } as ChartConfiguration,
  };
}

export interface NamedNetwork {
  readonly key: 'learned' | 'baseline' | 'flopSearch';
  readonly label: string;
  readonly color: string;
  readonly net: NetworkSummary;
}

/** The networks of a finished search, side by side: latency-MorphNet, uniform, FLOP-MorphNet. */
export function networksOf(view: SearchView): NamedNetwork[] {
  const r = view.result;
  if (!r) return [];
  const main = view.cost === 'latency' ? 'latency-MorphNet' : `${view.cost === 'flops' ? 'FLOP' : 'param'}-MorphNet`;
  const out: NamedNetwork[] = [{ key: 'learned', label: main, color: COLORS.latency, net: r.learned }];
  if (r.baseline) out.push({ key: 'baseline', label: 'uniform multiplier', color: COLORS.uniform, net: r.baseline });
  if (r.flopSearch) out.push({ key: 'flopSearch', label: 'FLOP-MorphNet', color: COLORS.flops, net: r.flopSearch });
  return out;
}

/** Seed width vs each network's width, for every layer the structures name. */
export function widthsChart(view: SearchView): { config: ChartConfiguration; layers: string[] } {
  const nets = networksOf(view);
  const layers = Object.keys(nets[0]?.net.structure ?? {});
  const seed = (layer: string): number | null => view.progress.groups.find((g) => g.layers.includes(layer))?.channels ?? null;
  return {
    layers,
    config: {
      type: 'bar',
      data: {
        labels: layers,
        datasets: [
          { label: 'seed', data: layers.map(seed), backgroundColor: 'rgba(127,127,127,0.55)' },
          ...nets.map((n) => ({ label: n.label, data: layers.map((l) => n.net.structure[l] ?? null), backgroundColor: n.color })),
        ],
      },
      options: { indexAxis: 'y', scales: { x: lin('channels', { beginAtZero: true }), y: { type: 'category', ticks: { autoSkip: false, font: { size: 11 } } } }, plugins: { legend: { position: 'bottom' } } },
    } as ChartConfiguration,
  };
}

export interface ParetoPoint {
  readonly x: number;
  readonly y: number;
  readonly search: string;
  readonly kind: NamedNetwork['label'];
  readonly current: boolean;
}

/** Accuracy vs measured latency of every network of the given finished searches, with the frontier. */
export function paretoChart(searches: readonly SearchView[], currentId: string): { config: ChartConfiguration; points: ParetoPoint[] } {
  const points: ParetoPoint[] = searches.flatMap((s) =>
    networksOf(s)
      .filter((n) => n.net.measured !== null)
      .map((n) => ({ x: n.net.measured as number, y: n.net.accuracy, search: s.id, kind: n.label, current: s.id === currentId })),
  );
  const sorted = [...points].sort((a, b) => a.x - b.x || b.y - a.y);
  const frontier: ParetoPoint[] = [];
  for (const p of sorted) if (frontier.length === 0 || p.y > frontier[frontier.length - 1].y) frontier.push(p);
  const kinds = [
    { label: 'latency-MorphNet', color: COLORS.latency, style: 'circle' },
    { label: 'uniform multiplier', color: COLORS.uniform, style: 'rect' },
    { label: 'FLOP-MorphNet', color: COLORS.flops, style: 'triangle' },
  ];
  return {
    points,
    config: {
      type: 'scatter',
      data: {
        datasets: [
          { type: 'line', label: 'Pareto frontier', data: frontier.map((p) => ({ x: p.x, y: p.y })), borderColor: 'rgba(80,80,80,0.6)', stepped: 'before', pointRadius: 0, borderWidth: 1.5 },
          ...kinds.map((k) => ({
            label: k.label,
            data: points.filter((p) => p.kind === k.label),
            backgroundColor: k.color,
            borderColor: points.filter((p) => p.kind === k.label).map((p) => (p.current ? '#000' : k.color)),
            borderWidth: points.filter((p) => p.kind === k.label).map((p) => (p.current ? 2 : 0)),
            pointStyle: k.style,
            pointRadius: points.filter((p) => p.kind === k.label).map((p) => (p.current ? 8 : 5)),
          })),
        ],
      },
      options: {
        scales: { x: lin('measured latency, ms', { beginAtZero: true }), y: lin('test accuracy') },
        plugins: {
          legend: { position: 'bottom' },
          tooltip: { callbacks: { label: (c: { raw: unknown }) => { const p = c.raw as ParetoPoint; return p.search ? `${p.kind} (${p.search}${p.current ? ', this search' : ''}): ${p.x.toPrecision(3)} ms, ${(p.y * 100).toFixed(1)}%` : ''; } } },
        },
      },
    } as ChartConfiguration,
  };
}
