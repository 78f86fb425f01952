/**
 * Tables: per device and runtime, every op signature's latency table as a heat map over
 * (c_in, c_out) (a curve for depthwise, pooling and add) with the measured points marked, and the
 * predicted vs measured latency of the networks measured end to end, with the ±10% band.
 */
import type { VNode } from 'preact';
import { html } from 'htm/preact';
import { useMemo } from 'preact/hooks';
import { api } from '../api.ts';
import { Card, ErrorNote, Notice } from '../components.ts';
import { ChartView } from '../charts.ts';
import { defaultRuntime, DevicePicker } from '../device-picker.ts';
import { ms, pct } from '../format.ts';
import { navigate, useLoad, type Route } from '../hooks.ts';
import { predictedVsMeasured, tableChart } from '../heatmap.ts';
import type { Calibration, DeviceView, NetworksResponse, TablesResponse } from '../../contract/index.ts';

type StoredTableView = TablesResponse['tables'][number];

function Legend(props: { min: number; max: number }): VNode {
  return html`<div class="legend" aria-hidden="true">
    <span>${ms(props.min)}</span><span class="ramp"></span><span>${ms(props.max)}</span>
  </div>`;
}

function TableCard(props: { table: StoredTableView }): VNode {
  const t = props.table;
  const chart = useMemo(() => tableChart(t.signature, t.points), [t]);
  const [kind, ...rest] = t.signature.split('/');
  return html`<article class="card table-card" data-signature=${t.signature} data-points=${t.points.length}>
    <header class="card-head"><h3><span class="kind">${kind}</span> <code>${rest.join('/')}</code></h3></header>
    ${chart
      ? html`<${ChartView} name="table" config=${chart.config} height=${240} label=${`latency table ${t.signature}`} facts=${chart.facts} />${chart.facts.mode === 'grid' ? html`<${Legend} min=${chart.range.min} max=${chart.range.max} />` : null}`
      : html`<${Notice} kind="warn">Not a usable table yet: ${t.problem ?? 'too few points'}<//>`}
    <p class="hint">${t.points.length} measured point${t.points.length === 1 ? '' : 's'}${t.mode ? ` · ${t.mode}` : ''} · medians ${ms(Math.min(...t.points.map((p) => p.medianMs)))} – ${ms(Math.max(...t.points.map((p) => p.medianMs)))}</p>
  </article>`;
}

/** The fitted terms in words, e.g. "1.050·Σops − 0.0030 ms/op − 0.180 ms/MB moved + 0.060 ms/MB of weights + 0.100 ms". */
function calibrationFormula(c: Calibration): string {
  const signed = (v: number, digits: number, unit: string): string => ` ${v >= 0 ? '+' : '−'} ${Math.abs(v).toFixed(digits)} ${unit}`;
  const memory = c.method === 'bytes' ? `${signed(c.d ?? 0, 3, 'ms/MB of activations')}${signed(c.e ?? 0, 3, 'ms/MB of weights')}` : '';
  return `${c.a.toFixed(3)}·Σops${signed(c.b, 4, 'ms/op')}${memory} + ${c.c.toFixed(3)} ms`;
}

function NetworksCard(props: { networks: NetworksResponse }): VNode {
  const n = props.networks;
  const chart = useMemo(() => predictedVsMeasured(n.networks), [n]);
  const q = n.calibration?.quality;
  return html`<${Card} title="Predicted vs measured, whole networks" id="networks">
    ${n.networks.length === 0
      ? html`<p>No network measured end to end on this runtime yet. Measure one from a model's page; each measurement also calibrates the predictions.</p>`
      : html`<${ChartView} name="pred-vs-measured" config=${chart.config} height=${300} label="predicted against measured latency of the measured networks, with a ±10% band" facts=${{ points: chart.total, within: chart.within }} />
          <p data-within=${chart.within} data-total=${chart.total}>
            ${chart.within} of ${chart.total} network${chart.total === 1 ? '' : 's'} predicted within ±10% (in sample: the calibration is fitted on them).
            ${n.calibration ? html` Calibration (${n.calibration.method}, ${n.calibration.samples} sample${n.calibration.samples === 1 ? '' : 's'}): <span data-calibration-terms>${calibrationFormula(n.calibration)}</span>${q ? `, median error ${pct(q.medianApe)}` : ''}.` : null}
          </p>
          ${n.calibration?.outOfSample
            ? html`<p data-out-of-sample=${n.calibration.outOfSample.withinCount} data-out-of-sample-n=${n.calibration.outOfSample.n}>
                Out of sample (leave-one-out: each model predicted by the calibration fitted on the others): <strong>${n.calibration.outOfSample.withinCount} of ${n.calibration.outOfSample.n}</strong> within ±10%, median error ${pct(n.calibration.outOfSample.medianApe)}. This is what a model not measured here can expect.
              </p>`
            : null}
          ${n.calibration?.note ? html`<p class="hint">${n.calibration.note}</p>` : null}`}
  <//>`;
}

export function TablesPage(props: { route: Route; devices: readonly DeviceView[] }): VNode {
  const deviceId = props.route.query.get('device') ?? props.devices[0]?.id ?? '';
  const device = props.devices.find((d) => d.id === deviceId);
  const runtime = props.route.query.get('runtime') ?? defaultRuntime(device);
  const tables = useLoad(() => (deviceId && runtime ? api<TablesResponse>(`/api/tables?deviceId=${encodeURIComponent(deviceId)}&runtime=${runtime}`) : Promise.resolve(undefined)), [deviceId, runtime]);
  const networks = useLoad(() => (deviceId && runtime ? api<NetworksResponse>(`/api/networks?deviceId=${encodeURIComponent(deviceId)}&runtime=${runtime}`) : Promise.resolve(undefined)), [deviceId, runtime]);
  const list = tables.data?.tables ?? [];
  return html`<div class="page" data-page="tables">
    <header class="page-head"><h1>Latency tables</h1><div class="actions"><button type="button" onClick=${() => { tables.reload(); networks.reload(); }}>Reload</button></div></header>
    <${DevicePicker} idPrefix="tables" devices=${props.devices} deviceId=${deviceId} runtime=${runtime} onChange=${(d: string, r: string) => navigate(['tables'], { device: d, runtime: r })} />
    ${props.devices.length === 0 ? html`<p>No device yet: <a href="#/devices">add one</a>.</p>` : null}
    <${ErrorNote} error=${tables.error} what="Tables" />
    <${ErrorNote} error=${networks.error} what="Networks" />
    ${networks.data ? html`<${NetworksCard} networks=${networks.data} />` : null}
    ${tables.data
      ? html`<p class="lead" data-tables=${list.length}>${list.length === 0 ? 'Nothing measured on this runtime yet: profile a model on this device from its Models page, or start a latency search.' : `${list.length} op signature${list.length === 1 ? '' : 's'}, ${list.reduce((s, t) => s + t.points.length, 0)} measured points. Colour: interpolated latency; dots: measured points.`}</p>
          <div class="grid-cards tables">${list.map((t) => html`<${TableCard} key=${t.signature} table=${t} />`)}</div>`
      : tables.loading ? html`<p>Loading…</p>` : null}
  </div>`;
}
