/** Searches: every search with its state and progress, updated live; the way to a new one. */
import type { VNode } from 'preact';
import { html } from 'htm/preact';
import { api } from '../api.ts';
import { Badge, ErrorNote, Scroll } from '../components.ts';
import { ago, count, ms, pct } from '../format.ts';
import { href, useLoad } from '../hooks.ts';
import type { DeviceView, SearchesResponse } from '../../contract/index.ts';

export const STATE_KIND: Record<string, string> = { queued: 'wait', preparing: 'run', running: 'run', done: 'ok', failed: 'bad', cancelled: 'off', interrupted: 'warn' };

export function targetText(t: { value: number; unit: string }): string {
  if (t.unit === 'ms') return t.value > 0 ? ms(t.value) : 'after profiling';
  return `${count(t.value)} ${t.unit}`;
}

export function SearchesPage(props: { devices: readonly DeviceView[] }): VNode {
  const list = useLoad(() => api<SearchesResponse>('/api/searches?limit=200'), [], 3000);
  const searches = list.data?.searches ?? [];
  const deviceName = (id: string | null): string => (id === null ? '–' : (props.devices.find((d) => d.id === id)?.name ?? id));
  return html`<div class="page" data-page="searches">
    <header class="page-head">
      <h1>Searches</h1>
      <div class="actions"><a class="button primary" href="#/searches/new" data-action="new-search">New search</a></div>
    </header>
    <${ErrorNote} error=${list.error} />
    ${list.data && searches.length === 0 ? html`<p class="lead">No search yet. Start one with a model, a device and a target latency.</p>` : null}
    ${searches.length > 0
      ? html`<${Scroll}>
          <table class="searches">
            <thead><tr><th>Search</th><th>Model</th><th>State</th><th>Device, runtime</th><th class="num">Target</th><th>Progress</th><th class="num">Accuracy</th><th>Created</th></tr></thead>
            <tbody>
              ${searches.map(
                (s) => html`<tr key=${s.id} data-search=${s.id} data-state=${s.state}>
                  <th scope="row"><a href=${href(['searches', s.id])}>${s.id}</a></th>
                  <td>${s.model.name}</td>
                  <td><${Badge} kind=${STATE_KIND[s.state] ?? 'off'}>${s.state}<//></td>
                  <td>${s.cost === 'latency' ? `${deviceName(s.deviceId)}, ${s.runtime}` : `${s.cost} search`}</td>
                  <td class="num">${targetText(s.target)}</td>
                  <td class="progress-cell"><progress max="1" value=${s.progress.fraction}></progress> <span class="hint">${s.progress.phase ?? ''}</span></td>
                  <td class="num">${pct(s.progress.accuracy.final)}${s.progress.accuracy.baseline !== null ? html`<div class="hint">uniform ${pct(s.progress.accuracy.baseline)}</div>` : null}</td>
                  <td>${ago(s.createdAt)}</td>
                </tr>`,
              )}
            </tbody>
          </table>
        <//>`
      : null}
  </div>`;
}
