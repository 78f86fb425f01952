/**
 * Models: upload a model.json or pick a seed; inspect it (layers, channel groups, MACs, params);
 * and its per-layer latency on a chosen device and runtime: predicted from the device's tables,
 * measured on demand (the layers' own points, and the whole network end to end).
 */
import type { VNode } from 'preact';
import { html } from 'htm/preact';
import { useMemo, useState } from 'preact/hooks';
import type { ChartConfiguration } from 'chart.js';
import { api, ApiError, fieldErrors, followJob } from '../api.ts';
import { Card, ErrorNote, Field, Notice, Progress, Scroll } from '../components.ts';
import { ChartView, COLORS } from '../charts.ts';
import { defaultRuntime, DevicePicker } from '../device-picker.ts';
import { count, ms, pct, shape } from '../format.ts';
import { href, navigate, useLoad, type Route } from '../hooks.ts';
import type { CompareResponse, ComparisonCell, DeviceView, InspectReport, JobView, ModelInfo, ModelsResponse, ModelSummary, NetworksResponse, PredictResponse, SeedsResponse } from '../../contract/index.ts';

type Inspected = ModelSummary & { report: InspectReport };

/** What `/api/predict`, `/profile` and `/measure` take as `model`: the seed's name, or the stored model.json. */
async function modelField(ref: string): Promise<string | object> {
  return ref.startsWith('seed:') ? ref : api<object>(`/api/models/${ref}/model.json`);
}

function UploadForm(): VNode {
  const [files, setFiles] = useState<File[]>([]);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const submit = async (e: Event): Promise<void> => {
    e.preventDefault();
    setError(null);
    const json = files.find((f) => f.name === 'model.json') ?? files.find((f) => f.name.endsWith('.json'));
    if (!json) {
      setError(new ApiError(400, 'MORPH_ERR_BAD_ARGUMENT', 'choose a model.json (a tfjs layers model or a Keras model config); weights files are optional', { field: 'body' }));
      return;
    }
    setBusy(true);
    try {
      let body: unknown;
      try {
        body = JSON.parse(await json.text());
      } catch (err) {
        throw new ApiError(400, 'MORPH_ERR_NOT_JSON', `${json.name} is not JSON: ${(err as Error).message}`, { field: 'body' });
      }
      const info = await api<ModelInfo>('/api/models', { body });
      navigate(['models', info.id]);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const weights = files.filter((f) => !f.name.endsWith('.json'));
  const errors = fieldErrors(error);
  const fieldError = errors.body ?? errors.model ?? (error instanceof ApiError && error.status === 400 ? error.message : undefined);
  return html`<form class="upload" onSubmit=${submit} novalidate>
    <${Field} label="model.json (and its weights, optional)" name="body" error=${fieldError} hint=${weights.length > 0 ? `${weights.length} weights file(s) chosen: not uploaded, a search trains from fresh weights; only the topology is needed to time and search a model.` : 'A tfjs layers model (format "layers-model") or a bare Keras model config. Weights are not needed.'}>
      <input type="file" name="model-file" accept=".json,.bin,application/json,application/octet-stream" multiple onChange=${(e: Event) => setFiles(Array.from((e.target as HTMLInputElement).files ?? []))} />
    <//>
    <button type="submit" class="primary" disabled=${busy || files.length === 0} data-action="upload">${busy ? 'Uploading…' : 'Upload'}</button>
    ${error && !fieldError ? html`<${ErrorNote} error=${error} />` : null}
  </form>`;
}

function ModelRow(props: { m: ModelSummary | ModelInfo; mref: string; kind: string }): VNode {
  const m = props.m;
  return html`<tr data-model=${props.mref}>
    <th scope="row"><a href=${href(["models", props.mref])}>${m.name}</a></th>
    <td>${props.kind}</td>
    <td class="num">${m.layers}</td>
    <td class="num">${count(m.macs)}</td>
    <td class="num">${count(m.params)}</td>
    <td>${shape(m.inputShape)} → ${m.outputs ?? '?'}</td>
  </tr>`;
}

function ModelList(): VNode {
  const seeds = useLoad(() => api<SeedsResponse>('/api/seeds'), []);
  const uploads = useLoad(() => api<ModelsResponse>('/api/models'), []);
  return html`<div class="page" data-page="models">
    <header class="page-head"><h1>Models</h1></header>
    <${Card} title="Upload a model"><${UploadForm} /><//>
    <${Card} title="Seeds and uploads">
      <${ErrorNote} error=${seeds.error ?? uploads.error} />
      <${Scroll}>
        <table class="models">
          <thead><tr><th>Model</th><th>Source</th><th class="num">Layers</th><th class="num">MACs</th><th class="num">Params</th><th>Input → classes</th></tr></thead>
          <tbody>
            ${(seeds.data?.seeds ?? []).map((m) => html`<${ModelRow} key=${m.ref} m=${m} mref=${m.ref} kind="built-in seed" />`)}
            ${(uploads.data?.models ?? []).map((m) => html`<${ModelRow} key=${m.id} m=${m} mref=${m.id} kind=${`upload, ${new Date(m.uploadedAt).toLocaleString()}`} />`)}
          </tbody>
        </table>
      <//>
    <//>
  </div>`;
}

function InspectView(props: { m: Inspected }): VNode {
  const r = props.m.report;
  return html`<${Card} title="Structure" id="inspect">
    <p data-layers=${r.layers}>${r.modelClass}, ${r.layers} layers, input ${r.inputs.map((i) => shape(i.shape)).join(', ')} → output ${r.outputs.map((o) => shape(o.shape)).join(', ')}. ${count(r.macs)} MACs, ${count(r.flops)} FLOPs, ${count(r.params)} params, ${count(r.activationBytes)}B of activations at batch 1.</p>
    ${r.warnings.map((w) => html`<${Notice} kind="warn">${w}<//>`)}
    <details open=${r.groups.length <= 16}>
      <summary>${r.groups.length} channel groups (layers whose widths stay equal)</summary>
      <${Scroll}>
        <table class="groups">
          <thead><tr><th class="num">Group</th><th class="num">Channels</th><th>State</th><th>Layers</th></tr></thead>
          <tbody>${r.groups.map((g) => html`<tr data-group=${g.id}><td class="num">${g.id}</td><td class="num">${g.channels}</td><td>${g.regularized ? 'searched' : g.resizable ? 'resizable' : `fixed: ${g.fixedReasons.join('; ')}`}</td><td class="layers">${g.layers.join(', ')}</td></tr>`)}</tbody>
        </table>
      <//>
    </details>
    <details>
      <summary>${r.perLayer.length} layers: class, output shape, MACs, params, group</summary>
      <${Scroll}>
        <table class="layers-table">
          <thead><tr><th>Layer</th><th>Class</th><th>Output</th><th class="num">MACs</th><th class="num">Params</th><th class="num">Group</th></tr></thead>
          <tbody>${r.perLayer.map((l) => html`<tr><th scope="row">${l.name}</th><td>${l.className}</td><td>${shape(l.outputShape)}</td><td class="num">${count(l.macs)}</td><td class="num">${count(l.params)}</td><td class="num">${Array.isArray(l.group) ? l.group.join('+') : l.group}</td></tr>`)}</tbody>
        </table>
      <//>
    </details>
  <//>`;
}

function breakdownChart(p: PredictResponse): ChartConfiguration {
  return {
    type: 'bar',
    data: {
      labels: p.layers.map((l) => l.name),
      datasets: [
        { label: 'predicted (calibrated)', data: p.layers.map((l) => l.predictedMs), backgroundColor: COLORS.latency },
        { label: 'measured (op alone, table)', data: p.layers.map((l) => l.measuredMs), backgroundColor: COLORS.uniform },
      ],
    },
    options: {
      indexAxis: 'y',
      scales: { x: { type: 'linear', beginAtZero: true, title: { display: true, text: 'ms per run' } }, y: { type: 'category', ticks: { autoSkip: false, font: { size: 11 } } } },
      plugins: { legend: { position: 'bottom' } },
    },
  };
}

interface JobRun {
  readonly what: string;
  readonly job: JobView;
}

/** The per-layer latency of a model on one device and runtime, and the actions that measure it. */
function LatencyBreakdown(props: { m: Inspected; devices: readonly DeviceView[]; route: Route; onMeasured?: () => void }): VNode {
  const first = props.devices.find((d) => d.online) ?? props.devices[0];
  const [pick, setPick] = useState<{ deviceId: string; runtime: string }>({ deviceId: props.route.query.get('device') ?? first?.id ?? '', runtime: props.route.query.get('runtime') ?? defaultRuntime(first) });
  const deviceId = pick.deviceId || first?.id || '';
  const runtime = pick.runtime || defaultRuntime(props.devices.find((d) => d.id === deviceId));
  const [run, setRun] = useState<JobRun | null>(null);
  const [actionError, setActionError] = useState<unknown>(null);
  const [version, setVersion] = useState(0);
  const ref = props.m.ref;
  const predict = useLoad(async () => (deviceId && runtime ? api<PredictResponse>('/api/predict', { body: { deviceId, runtime, model: await modelField(ref) } }) : undefined), [deviceId, runtime, ref, version]);
  const networks = useLoad(() => (deviceId && runtime ? api<NetworksResponse>(`/api/networks?deviceId=${encodeURIComponent(deviceId)}&runtime=${runtime}`) : Promise.resolve(undefined)), [deviceId, runtime, version]);
  const measured = networks.data?.networks.filter((n) => n.modelId === props.m.id).at(-1);
  const missing = predict.error instanceof ApiError && predict.error.code === 'MORPH_ERR_MISSING_OPS' ? (predict.error.details.missing as unknown[]).length : 0;
  const chart = useMemo(() => (predict.data ? breakdownChart(predict.data) : null), [predict.data]);

  const start = async (what: string, path: '/api/profile' | '/api/measure', extra: Record<string, unknown>): Promise<void> => {
    setActionError(null);
    try {
      const job = await api<JobView>(path, { body: { deviceId, runtime, model: await modelField(ref), ...extra } });
      const last = await followJob(job, (j) => setRun({ what, job: j }));
      if (last.state === 'failed') setActionError(new ApiError(422, 'MORPH_ERR_JOB_FAILED', `${what} failed: ${JSON.stringify(last.error?.message ?? last.error)}`));
    } catch (err) {
      setActionError(err);
    } finally {
      setVersion((v) => v + 1);
      props.onMeasured?.();
    }
  };
  const busy = run !== null && !['done', 'failed', 'cancelled'].includes(run.job.state);
  const p = predict.data;
  return html`<${Card} title="Latency per layer" id="breakdown">
    <${DevicePicker} idPrefix="breakdown" devices=${props.devices} deviceId=${deviceId} runtime=${runtime} onChange=${(d: string, r: string) => setPick({ deviceId: d, runtime: r })} />
    ${props.devices.length === 0 ? html`<p>No device yet: <a href="#/devices">add one</a> to time this model.</p>` : null}
    <div class="actions wrap">
      <button type="button" data-action="profile-layers" disabled=${busy || !deviceId} onClick=${() => start('profiling the layers', '/api/profile', { grid: { seedOnly: true }, refine: false })}>Measure the layers</button>
      <button type="button" data-action="profile-grid" disabled=${busy || !deviceId} onClick=${() => start('profiling a grid of widths', '/api/profile', {})}>Profile a grid of widths</button>
      <button type="button" data-action="measure" disabled=${busy || !deviceId} onClick=${() => start('measuring end to end', '/api/measure', {})}>Measure end to end</button>
    </div>
    <p class="hint">"Measure the layers" times each layer's op at this model's own widths; "Profile a grid" also times the smaller widths a search may pick; "Measure end to end" times the whole network once, which calibrates the predictions.</p>
    ${run
      ? html`<${Progress} name="job" value=${run.job.progress.total > 0 ? (run.job.progress.done + run.job.progress.failed) / run.job.progress.total : null}
          label=${html`<span data-job-state=${run.job.state}>${run.what}: ${run.job.state}, ${run.job.progress.done}/${run.job.progress.total} item(s)${run.job.progress.failed ? `, ${run.job.progress.failed} failed` : ''}${run.job.waiting ? ` (${run.job.waiting})` : ''}</span>`} />`
      : null}
    <${ErrorNote} error=${actionError} />
    ${missing > 0
      ? html`<${Notice} kind="info"><span data-missing=${missing}>The ${runtime} table of this device lacks ${missing} of this model's op signature(s): measure the layers (quick) or profile a grid to predict its latency here.</span><//>`
      : html`<${ErrorNote} error=${predict.error} what="Prediction" />`}
    ${p && chart
      ? html`<div class="summary-row" data-predicted=${p.predictedMs.toFixed(6)}>
            <div class="stat"><span class="stat-label">Predicted</span><span class="stat-value">${ms(p.predictedMs)}</span><span class="hint">${p.calibration.fitted ? `calibrated on ${p.calibration.samples} network(s)` : 'not calibrated: Σ of the ops'}</span></div>
            <div class="stat" data-network-ms=${measured ? measured.measuredMs.toFixed(6) : ''}><span class="stat-label">Measured end to end</span><span class="stat-value">${measured ? ms(measured.measuredMs) : '–'}</span><span class="hint">${measured ? `p10 ${ms(measured.p10Ms)}, p90 ${ms(measured.p90Ms)}, error ${pct(p.predictedMs / measured.measuredMs - 1)}` : 'not measured yet'}</span></div>
            <div class="stat"><span class="stat-label">Ops</span><span class="stat-value">${p.nOps}</span><span class="hint">Σ ops ${ms(p.sumOpsMs)}</span></div>
          </div>
          <${ChartView} name="breakdown" config=${chart} height=${Math.max(180, p.layers.length * 22 + 80)} label="per-layer latency, predicted and measured" facts=${{ layers: p.layers.length, measured: p.layers.filter((l) => l.measuredMs !== null).length }} />
          <${Scroll}>
            <table class="breakdown">
              <thead><tr><th>Layer</th><th class="num">Predicted</th><th class="num">Measured (op alone)</th><th class="num">Share</th></tr></thead>
              <tbody>${p.layers.map((l) => html`<tr data-layer=${l.name}><th scope="row">${l.name}${l.ops.some((o) => o.extrapolated) ? html` <span class="hint" title="outside the table's measured widths">(extrapolated)</span>` : null}</th><td class="num">${ms(l.predictedMs)}</td><td class="num">${ms(l.measuredMs)}</td><td class="num">${pct(l.predictedMs / p.predictedMs)}</td></tr>`)}</tbody>
            </table>
          <//>
          ${p.skipped.length > 0 ? html`<p class="hint">Not timed (no cost or no op kind): ${p.skipped.map((s) => s.layer).join(', ')}.</p>` : null}`
      : predict.loading ? html`<p>Predicting…</p>` : null}
  <//>`;
}

function Cell(props: { cell: ComparisonCell | null }): VNode {
  const c = props.cell;
  if (!c) return html`<td class="num cmp-none">–</td>`;
  return html`<td class=${`num cmp-${c.source}${c.slow ? ' cmp-slow' : ''}`} data-source=${c.source} data-slow=${c.slow ? 'yes' : null} title=${`${c.source === 'measured' ? 'measured (the op alone, at these widths)' : 'predicted from the table'}${c.slow ? '; among the slowest layers here' : ''}`}>${ms(c.ms)}${c.source === 'predicted' ? html`<sup>p</sup>` : null}</td>`;
}

/** The model on every device-runtime with a table or a measurement of it, side by side. */
function SideBySide(props: { m: Inspected; version: number }): VNode {
  const ref = props.m.ref;
  const cmp = useLoad(async () => api<CompareResponse>('/api/compare', { body: { model: await modelField(ref) } }), [ref, props.version]);
  const c = cmp.data;
  return html`<${Card} title="On every device" id="compare">
    <${ErrorNote} error=${cmp.error} what="Comparison" />
    ${c && c.columns.length === 0 ? html`<p>No device has a table or a measurement of this model yet: measure it on one (above).</p>` : null}
    ${c && c.columns.length > 0
      ? html`<p class="hint">Each device and runtime that has timed this model's ops or the model itself. <span class="cmp-measured">Measured</span> figures are the device's own (the total end to end; a layer's op alone at these widths); <span class="cmp-predicted">predicted<sup>p</sup></span> ones come from its table; the <span class="cmp-slow">slowest ${c.columns[0]?.slowest.length ?? 3} layers</span> of each column are marked.</p>
          <${Scroll}>
            <table class="compare" data-columns=${c.columns.length}>
              <thead>
                <tr><th>Layer</th>${c.columns.map((col) => html`<th class="num" scope="col" data-device=${col.deviceId} data-runtime=${col.runtime}>${col.deviceName}<br /><span class="hint">${col.runtime}${col.online ? '' : ', offline'}</span></th>`)}</tr>
                <tr class="cmp-total"><th scope="row">Total</th>${c.columns.map((col) =>
                  col.total
                    ? html`<td class=${`num cmp-${col.total.source}`} data-source=${col.total.source} data-total=${col.total.ms.toFixed(6)}>${ms(col.total.ms)}${col.total.source === 'predicted' ? html`<sup>p</sup>` : null}${col.total.source === 'measured' && col.predictedMs !== null ? html`<br /><span class="hint">predicted ${ms(col.predictedMs)}</span>` : null}</td>`
                    : html`<td class="num cmp-none" data-total="">–${col.missingSignatures > 0 ? html`<br /><span class="hint">table lacks ${col.missingSignatures} op(s)</span>` : null}</td>`,
                )}</tr>
              </thead>
              <tbody>${c.layers.map((name, i) => html`<tr data-layer=${name}><th scope="row">${name}</th>${c.columns.map((col) => html`<${Cell} cell=${col.layers[i]} />`)}</tr>`)}</tbody>
            </table>
          <//>`
      : cmp.loading ? html`<p>Comparing…</p>` : null}
  <//>`;
}

function ModelDetail(props: { refId: string; devices: readonly DeviceView[]; route: Route }): VNode {
  const m = useLoad(() => api<Inspected>(`/api/models/${encodeURIComponent(props.refId)}/inspect`), [props.refId]);
  // Bumped when the breakdown's job ends, so the side-by-side view reloads what it measured.
  const [version, setVersion] = useState(0);
  return html`<div class="page" data-page="model" data-model=${props.refId}>
    <p class="crumbs"><a href="#/models">Models</a> /</p>
    <header class="page-head">
      <h1>${m.data?.name ?? props.refId}</h1>
      <div class="actions">${m.data ? html`<a class="button primary" href=${href(['searches', 'new'], { model: m.data.ref })} data-action="search-model">Search widths for a latency target</a>` : null}</div>
    </header>
    <${ErrorNote} error=${m.error} />
    ${m.data
      ? html`<p class="lead">${props.refId.startsWith('seed:') ? 'Built-in seed' : 'Uploaded model'} <code>${m.data.id}</code>: ${count(m.data.macs)} MACs, ${count(m.data.params)} params.</p>
          <${LatencyBreakdown} m=${m.data} devices=${props.devices} route=${props.route} onMeasured=${() => setVersion((v) => v + 1)} />
          <${SideBySide} m=${m.data} version=${version} />
          <${InspectView} m=${m.data} />`
      : null}
  </div>`;
}

export function ModelsPage(props: { route: Route; devices: readonly DeviceView[] }): VNode {
  const ref = props.route.path[1];
  return ref ? html`<${ModelDetail} key=${ref} refId=${ref} devices=${props.devices} route=${props.route} />` : html`<${ModelList} />`;
}
