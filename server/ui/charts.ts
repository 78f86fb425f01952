/**
 * Chart.js, registered with only what the pages use (line, bar, scatter, and the matrix chart of
 * chartjs-chart-matrix for heat maps), wrapped in one preact component. Animations are off: the
 * charts update live several times a second, and screenshots must show the final frame.
 */
import {
  BarController,
  BarElement,
  CategoryScale,
  Chart,
  Filler,
  Legend,
  LinearScale,
  LineController,
  LineElement,
  LogarithmicScale,
  PointElement,
  ScatterController,
  Title,
  Tooltip,
  type ChartConfiguration,
} from 'chart.js';
import { MatrixController, MatrixElement } from 'chartjs-chart-matrix';
import type { VNode } from 'preact';
import { html } from 'htm/preact';
import { useEffect, useRef } from 'preact/hooks';

Chart.register(BarController, BarElement, CategoryScale, Filler, Legend, LinearScale, LineController, LineElement, LogarithmicScale, PointElement, ScatterController, Title, Tooltip, MatrixController, MatrixElement);
Chart.defaults.animation = false;
Chart.defaults.maintainAspectRatio = false;
Chart.defaults.font.family = 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';

/** Series colours, distinguishable for the common colour-vision deficiencies (Okabe–Ito). */
export const COLORS = {
  latency: '#0072b2',
  uniform: '#e69f00',
  flops: '#009e73',
  seed: '#7f7f7f',
  target: '#d55e00',
  accent: '#cc79a7',
  sky: '#56b4e9',
} as const;

export interface ChartProps {
  readonly config: ChartConfiguration;
  /** Height in px (the width follows the container). Default 260. */
  readonly height?: number;
  /** What the chart shows, for screen readers and tests. */
  readonly label: string;
  /** `data-*` facts about what is drawn (e.g. points=12), for tests. */
  readonly facts?: Record<string, string | number>;
  readonly name?: string;
}

/** A Chart.js chart that updates in place when its config changes. */
export function ChartView(props: ChartProps): VNode {
  const canvas = useRef<HTMLCanvasElement>(null);
  const chart = useRef<Chart | null>(null);
  useEffect(() => {
    if (!canvas.current) return;
    chart.current = new Chart(canvas.current, props.config);
    return () => {
      chart.current?.destroy();
      chart.current = null;
    };
    // The chart type never changes for one component; data and options are updated below.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);
  useEffect(() => {
    const c = chart.current;
    if (!c) return;
    c.data = props.config.data;
    if (props.config.options) c.options = props.config.options;
    c.update('none');
  }, [props.config]);
  const facts = Object.fromEntries(Object.entries(props.facts ?? {}).map(([k, v]) => [`data-${k}`, String(v)]));
  return html`<div class="chart" style=${{ height: `${props.height ?? 260}px` }} data-chart=${props.name ?? ''} ...${facts}>
    <canvas ref=${canvas} role="img" aria-label=${props.label}></canvas>
  </div>`;
}

/** Viridis, sampled: low latency dark blue, high yellow. */
const VIRIDIS = ['#440154', '#482878', '#3e4989', '#31688e', '#26828e', '#1f9e89', '#35b779', '#6ece58', '#b5de2b', '#fde725'];

export function viridis(t: number): string {
  const x = Math.min(1, Math.max(0, t)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(x));
  const f = x - i;
  const a = hex(VIRIDIS[i]);
  const b = hex(VIRIDIS[i + 1]);
  return `rgb(${a.map((v, k) => Math.round(v + (b[k] - v) * f)).join(',')})`;
}

export const VIRIDIS_STOPS: readonly string[] = VIRIDIS;

function hex(c: string): [number, number, number] {
  return [parseInt(c.slice(1, 3), 16), parseInt(c.slice(3, 5), 16), parseInt(c.slice(5, 7), 16)];
}
