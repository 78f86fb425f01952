/**
 * One search, live: its state and progress from the search's event stream (SSE), curves of loss,
 * accuracy and predicted cost against the target, the alive channels of each group moving as the
 * shrink phase prunes; once done, the learned widths against the seed's, the three networks side
 * by side, the Pareto plot of every finished search on the same device and runtime, and the files.
 */
import type { VNode } from 'preact';
import { html } from 'htm/preact';
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { api } from '../api.ts';
import { Badge, Card, ErrorNote, Notice, Progress, Scroll } from '../components.ts';
import { ChartView } from '../charts.ts';
import { bytes, count, ms, pct, seconds } from '../format.ts';
import { href, useLoad } from '../hooks.ts';
import { accuracyChart, aliveChart, costChart, lossChart, networksOf, paretoChart, stepChart, widthsChart, type LiveStep } from '../search-charts.ts';
import type { ArtifactsResponse, DeviceView, SearchEventRecord, SearchesResponse, SearchView } from '../../contract/index.ts';
import { STATE_KIND, targetText } from './searches.ts';

const ACTIVE = ['queued', 'preparing', 'running'];
const STORED_EVENTS = ['state', 'ready', 'groups', 'note', 'phase', 'epoch', 'shrink-epoch', 'evaluated', 'export'];
const MAX_LOG = 300;
const MAX_STEPS = 5000;

interface LogLine {
  readonly at: string;
  readonly text: string;
}

function logText(e: SearchEventRecord): string | null {
  switch (e.type) {
    case 'state': {
      const d = e.data;
      return `state: ${d.state}${d.backend ? ` (${d.backend})` : ''}${d.reason ? `: ${d.reason}` : ''}${d.error?.message ? `: ${d.error.message}` : ''}`;
    }
    case 'ready':
      return `ready: ${e.data.backend}; ${e.data.dataset?.name ?? ''}`;
    case 'note':
    case 'export':
      return e.data.message;
    case 'phase':
      return `${e.data.phase}${e.data.round ? ` (round ${e.data.round})` : ''}: ${e.data.message}`;
    case 'evaluated':
      return `${e.data.phase} network: test accuracy ${pct(e.data.accuracy)}`;
    default:
      return null;
  }
}

/**
 * Follows the search's event stream: stored events refetch the view (the server folds them into
 * `progress`, so the page never re-implements that), live `step` events feed the step curve.
 */
function useSearchStream(id: string): { view: SearchView | undefined; error: unknown; steps: LiveStep[]; log: LogLine[]; ended: boolean; reload: () => void } {
  const view = useLoad(() => api<SearchView>(`/api/searches/${id}`), [id]);
  const [steps, setSteps] = useState<LiveStep[]>([]);
  const [log, setLog] = useState<LogLine[]>([]);
  const [ended, setEnded] = useState(false);
  const pending = useRef<ReturnType<typeof setTimeout> | null>(null);
  const reload = view.reload;
  useEffect(() => {
    setSteps([]);
    setLog([]);
    setEnded(false);
    const source = new EventSource(`/api/searches/${encodeURIComponent(id)}/events`);
    const refetchSoon = (): void => {
      if (pending.current === null) pending.current = setTimeout(() => ((pending.current = null), reload()), 400);
    };
    const onStored = (m: MessageEvent): void => {
      const e = JSON.parse(m.data as string) as SearchEventRecord;
      const text = logText(e);
      if (text !== null) setLog((l) => [...l.slice(-(MAX_LOG - 1)), { at: e.at, text }]);
      refetchSoon();
    };
    const onStep = (m: MessageEvent): void => {
      const e = JSON.parse(m.data as string) as Extract<SearchEventRecord, { type: 'step' }>;
      const step = e.data.step;
      setSteps((s) => [...s.slice(-(MAX_STEPS - 1)), { phase: e.data.phase, globalStep: step.globalStep, loss: step.loss }]);
    };
    const onEnd = (): void => {
      // The server closes the stream after `end`; without close() EventSource would reconnect.
      source.close();
      setEnded(true);
      reload();
    };
    for (const t of STORED_EVENTS) source.addEventListener(t, onStored as EventListener);
    source.addEventListener('step', onStep as EventListener);
    source.addEventListener('end', onEnd);
    return () => {
      source.close();
      if (pending.current !== null) clearTimeout(pending.current);
      pending.current = null;
    };
  }, [id, reload]);
  return { view: view.data, error: view.error, steps, log, ended, reload };
}

function Networks(props: { view: SearchView }): VNode {
  const nets = networksOf(props.view);
  const v = props.view;
  const unit = v.target.unit;
  const row = (label: string, cell: (n: (typeof nets)[number]) => unknown): VNode => html`<tr><th scope="row">${label}</th>${nets.map((n) => html`<td class="num">${cell(n)}</td>`)}</tr>`;
  return html`<${Card} title="The networks side by side" id="networks">
    <${Scroll}>
      <table class="side-by-side" data-networks=${nets.length}>
        <thead><tr><th></th>${nets.map((n) => html`<th class="num" data-network=${n.key}><span class="swatch" style=${{ background: n.color }}></span>${n.label}</th>`)}</tr></thead>
        <tbody>
          ${unit === 'ms' ? row('measured on the device', (n) => ms(n.net.measured)) : null}
          ${row(unit === 'ms' ? 'predicted' : `cost (${unit})`, (n) => (unit === 'ms' ? ms(n.net.cost) : count(n.net.cost)))}
          ${unit === 'ms' ? row('vs target', (n) => (n.net.measured !== null ? pct(n.net.measured / v.target.value - 1) : '–')) : null}
          ${row('test accuracy', (n) => pct(n.net.accuracy))}
          ${v.result?.baseline ? row('vs uniform', (n) => (n.key === 'baseline' ? '–' : `${n.net.accuracy >= v.result!.baseline!.accuracy ? '+' : ''}${((n.net.accuracy - v.result!.baseline!.accuracy) * 100).toFixed(2)} pt`)) : null}
          ${row('MACs', (n) => count(n.net.macs))}
          ${row('params', (n) => count(n.net.params))}
          ${row('width multiplier', (n) => n.net.multiplier.toFixed(3))}
          ${unit === 'ms' ? row('candidates measured (closed loop)', (n) => `${n.net.verify.length}${n.net.verifyStop ? `, ${n.net.verifyStop}` : ''}`) : null}
          ${row('training time', (n) => seconds(n.net.trainSeconds))}
          ${row('trained by', (n) => (n.net.engine ?? '–').split(',')[0])}
        </tbody>
      </table>
    <//>
    ${unit === 'ms' && nets.some((n) => n.net.verify.length > 0)
      ? html`<details>
          <summary>Closed-loop expand: each candidate measured on the device</summary>
          <${Scroll}>
            <table>
              <thead><tr><th>Network</th><th class="num">Aimed at</th><th class="num">Predicted</th><th class="num">Measured (lowest)</th><th>Each measurement</th><th class="num">ω</th></tr></thead>
              <tbody>${nets.flatMap((n) => n.net.verify.map((s) => html`<tr><th scope="row">${n.label}</th><td class="num">${ms(s.aimedAt)}</td><td class="num">${ms(s.predicted)}</td><td class="num">${ms(s.measured)}</td><td>${(s.runs ?? [s.measured]).map((r) => ms(r)).join(', ')}</td><td class="num">${s.multiplier.toFixed(3)}</td></tr>`))}</tbody>
            </table>
          <//>
        </details>`
      : null}
  <//>`;
}

function Widths(props: { view: SearchView }): VNode {
  const chart = useMemo(() => widthsChart(props.view), [props.view]);
  const nets = networksOf(props.view);
  const seed = (layer: string): number | undefined => props.view.progress.groups.find((g) => g.layers.includes(layer))?.channels;
  return html`<${Card} title="Widths per layer: seed and learned" id="widths">
    <${ChartView} name="widths" config=${chart.config} height=${Math.max(200, chart.layers.length * (18 + 8 * nets.length) + 80)} label="channels per layer in the seed and in each found network" facts=${{ layers: chart.layers.length }} />
    <details>
      <summary>As a table</summary>
      <${Scroll}>
        <table class="widths">
          <thead><tr><th>Layer</th><th class="num">Seed</th>${nets.map((n) => html`<th class="num">${n.label}</th>`)}</tr></thead>
          <tbody>${chart.layers.map((l) => html`<tr data-layer=${l}><th scope="row">${l}</th><td class="num">${seed(l) ?? '–'}</td>${nets.map((n) => html`<td class="num">${n.net.structure[l] ?? '–'}</td>`)}</tr>`)}</tbody>
        </table>
      <//>
    </details>
  <//>`;
}

/** Every finished latency search on the same device and runtime, with its baselines. */
function Pareto(props: { view: SearchView }): VNode | null {
  const v = props.view;
  const others = useLoad(async () => {
    const { searches } = await api<SearchesResponse>('/api/searches?state=done&limit=100');
    const same = searches.filter((s) => s.cost === 'latency' && s.deviceId === v.deviceId && s.runtime === v.runtime && s.id !== v.id).slice(0, 40);
    return Promise.all(same.map((s) => api<SearchView>(`/api/searches/${s.id}`)));
  }, [v.id]);
  const chart = useMemo(() => paretoChart([v, ...(others.data ?? [])], v.id), [v, others.data]);
  if (v.cost !== 'latency') return null;
  return html`<${Card} title="Accuracy vs measured latency" id="pareto">
    <${ErrorNote} error=${others.error} />
    <${ChartView} name="pareto" config=${chart.config} height=${320} label="Pareto plot: test accuracy against measured latency of every finished search on this device and runtime and their baselines" facts=${{ points: chart.points.length, searches: 1 + (others.data?.length ?? 0) }} />
    <p class="hint">Every finished latency search on this device and runtime (${1 + (others.data?.length ?? 0)}), each with its baselines; this search's points are outlined. Up and to the left is better; the line is the frontier.</p>
  <//>`;
}

function Downloads(props: { view: SearchView }): VNode {
  const files = useLoad(() => api<ArtifactsResponse>(`/api/searches/${props.view.id}/artifacts`), [props.view.id, props.view.artifacts.length]);
  return html`<${Card} title="Downloads" id="downloads">
    <${ErrorNote} error=${files.error} />
    <ul class="downloads">
      ${(files.data?.artifacts ?? []).map((a) => html`<li><a class="button" href=${a.url} download data-artifact=${a.name}>${a.name}</a> <span class="hint">${a.what}, ${bytes(a.bytes)}</span></li>`)}
    </ul>
  <//>`;
}

function LiveCharts(props: { view: SearchView; steps: readonly LiveStep[] }): VNode {
  const p = props.view.progress;
  const active = ACTIVE.includes(props.view.state);
  const loss = useMemo(() => lossChart(props.view), [props.view]);
  const acc = useMemo(() => accuracyChart(props.view), [props.view]);
  const cost = useMemo(() => costChart(props.view), [props.view]);
  const alive = useMemo(() => aliveChart(props.view, active), [props.view, active]);
  const step = useMemo(() => stepChart(props.steps), [props.steps]);
  const epochs = p.curves.shrink.length + p.curves.final.length + p.curves.baseline.length;
  return html`<div class="grid-charts">
    <${Card} title="Loss">
      <${ChartView} name="loss" config=${loss} label="training and validation loss per epoch" facts=${{ epochs }} />
    <//>
    <${Card} title="Accuracy">
      <${ChartView} name="accuracy" config=${acc} label="validation accuracy per epoch" facts=${{ epochs }} />
    <//>
    <${Card} title=${props.view.target.unit === 'ms' ? 'Predicted latency vs target' : `Cost vs target (${props.view.target.unit})`}>
      <${ChartView} name="cost" config=${cost} label="predicted cost of the alive network after each shrink epoch, and the target" facts=${{ points: cost.data.datasets[0]?.data.length ?? 0 }} />
    <//>
    <${Card} title="Alive channels per group">
      <${ChartView} name="alive" config=${alive.config} height=${Math.max(200, alive.groups * 24 + 80)} label="alive channels of each channel group against the seed's width" facts=${{ groups: alive.groups, epochs: alive.epochs, run: alive.run || 'search' }} />
    <//>
    ${active && step.points > 0
      ? html`<${Card} title=${`Loss per step (${step.phase}, live)`}>
          <${ChartView} name="steps" config=${step.config} height=${200} label="training loss of each step of the running phase" facts=${{ points: step.points }} />
        <//>`
      : null}
  </div>`;
}

export function SearchDetail(props: { id: string; devices: readonly DeviceView[] }): VNode {
  const { view: v, error, steps, log, reload } = useSearchStream(props.id);
  const [actionError, setActionError] = useState<unknown>(null);
  const act = async (method: 'DELETE' | 'POST', path: string): Promise<void> => {
    setActionError(null);
    try {
      await api(path, { method });
    } catch (err) {
      setActionError(err);
    }
    reload();
  };
  if (!v) return html`<div class="page" data-page="search"><p class="crumbs"><a href="#/searches">Searches</a> /</p><${ErrorNote} error=${error} />${error ? null : html`<p>Loading…</p>`}</div>`;
  const device = props.devices.find((d) => d.id === v.deviceId);
  const active = ACTIVE.includes(v.state);
  const p = v.progress;
  return html`<div class="page" data-page="search" data-search=${v.id} data-state=${v.state}>
    <p class="crumbs"><a href="#/searches">Searches</a> /</p>
    <header class="page-head">
      <h1>${v.model.name} <span class="muted">${v.id}</span></h1>
      <div class="actions">
        <${Badge} kind=${STATE_KIND[v.state] ?? 'off'}><span data-search-state>${v.state}</span><//>
        ${active || v.state === 'interrupted' ? html`<button type="button" data-action="cancel" onClick=${() => act('DELETE', `/api/searches/${v.id}`)}>Cancel</button>` : null}
        ${v.resume.available ? html`<button type="button" data-action="resume" onClick=${() => act('POST', `/api/searches/${v.id}/resume`)}>Run again</button>` : null}
      </div>
    </header>
    <dl class="facts wide">
      <dt>Target</dt><dd>${targetText(v.target)}${(v.target.seedCost ?? 0) > 0 ? ` (seed ${v.target.unit === "ms" ? ms(v.target.seedCost) : count(v.target.seedCost)}${Number.isFinite(v.target.minimum) ? `, at least ${v.target.unit === 'ms' ? ms(v.target.minimum) : count(v.target.minimum)}` : ''})` : ''}</dd>
      <dt>Device</dt><dd>${v.deviceId ? html`<a href=${href(['tables'], { device: v.deviceId, runtime: v.runtime ?? '' })}>${device?.name ?? v.deviceId}</a>, ${v.runtime}` : '–'}</dd>
      <dt>Data</dt><dd>${p.dataset ? `${p.dataset.name} (${p.dataset.trainSize} train, ${p.dataset.valSize} val, ${p.dataset.testSize} test)` : v.config.data.dataset}</dd>
      <dt>Training engine</dt><dd>${p.backend ?? '–'}${v.config.options.engine ? ` (asked: ${v.config.options.engine})` : ''}</dd>
      <dt>Options</dt><dd>strength ${v.result?.strength ? `${v.result.strength.strength} (${v.result.strength.source === 'tuned' ? 'chosen on validation accuracy' : 'given'})` : (v.config.options.strength ?? 'chosen by the search')}, ${v.config.options.shrinkEpochs} shrink + ${v.config.options.finalEpochs} final epochs${v.config.options.baseline ? ', with baselines' : ''}, batch ${v.config.options.batchSize}, divisor ${v.config.options.divisor}</dd>
    </dl>
    <${ErrorNote} error=${actionError} />
    ${v.error ? html`<div class="notice error" role="alert" data-code=${v.error.code}><strong>The search failed:</strong> ${v.error.message} <code class="code">${v.error.code}</code></div>` : null}
    ${v.interruption ? html`<${Notice} kind="warn">${v.state}: ${v.interruption.reason}<//>` : null}
    ${v.waiting ? html`<${Notice} kind="info">Waiting: ${v.waiting}<//>` : null}
    <${Progress} name="search" value=${v.state === 'done' ? 1 : active && p.phase === null ? null : p.phase === 'prepare' && p.prepare && p.prepare.total > 0 ? p.prepare.done / p.prepare.total : p.fraction} label=${html`<span data-phase=${p.phase ?? ''}>${p.phase ?? v.state}${p.step && active ? ` · ${p.step.phase} epoch ${p.step.epoch}/${p.step.epochs}, step ${p.step.step}/${p.step.stepsPerEpoch}, loss ${p.step.loss.toFixed(3)}` : ''}${p.message ? ` — ${p.message}` : ''}</span>`} />
    <details class="log" open=${active}>
      <summary>Events (${log.length}, newest first)</summary>
      <ul class="event-log" data-lines=${log.length}>${log.slice(-60).reverse().map((l) => html`<li><time>${new Date(l.at).toLocaleTimeString()}</time> ${l.text}</li>`)}</ul>
    </details>
    <${LiveCharts} view=${v} steps=${steps} />
    ${v.state === 'done' && v.result
      ? html`<div class="result" data-result="done">
          <${Networks} view=${v} />
          <${Widths} view=${v} />
          <${Pareto} view=${v} />
          <${Downloads} view=${v} />
        </div>`
      : null}
  </div>`;
}
