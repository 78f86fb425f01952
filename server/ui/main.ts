/**
 * The web UI's entry point: the navigation, the hash router and the device list every page shares
 * (polled, so devices that connect or drop show up without a reload).
 */
import type { VNode } from 'preact';
import { html, render } from 'htm/preact';
import { api } from './api.ts';
import { useLoad, useRoute } from './hooks.ts';
import { DEVICE_POLL_MS, DevicesPage } from './pages/devices.ts';
import { ModelsPage } from './pages/models.ts';
import { SearchDetail } from './pages/search-detail.ts';
import { SearchForm } from './pages/search-form.ts';
import { SearchesPage } from './pages/searches.ts';
import { TablesPage } from './pages/tables.ts';
import type { DevicesResponse } from '../contract/index.ts';

declare const MORPHNET_UI_VERSION: string;

const SECTIONS = [
  { path: 'devices', label: 'Devices' },
  { path: 'tables', label: 'Tables' },
  { path: 'models', label: 'Models' },
  { path: 'searches', label: 'Searches' },
] as const;

function App(): VNode {
  const route = useRoute();
  const devices = useLoad(() => api<DevicesResponse>('/api/devices'), [], DEVICE_POLL_MS);
  const list = devices.data?.devices ?? [];
  const section = route.path[0] ?? 'devices';
  let page: VNode;
  if (section === 'tables') page = html`<${TablesPage} route=${route} devices=${list} />`;
  else if (section === 'models') page = html`<${ModelsPage} route=${route} devices=${list} />`;
  else if (section === 'searches' && route.path[1] === 'new') page = html`<${SearchForm} route=${route} devices=${list} />`;
  else if (section === 'searches' && route.path[1]) page = html`<${SearchDetail} key=${route.path[1]} id=${route.path[1]} devices=${list} />`;
  else if (section === 'searches') page = html`<${SearchesPage} devices=${list} />`;
  else page = html`<${DevicesPage} devices=${devices} />`;
  const online = list.filter((d) => d.online).length;
  return html`<div class="shell">
    <nav class="top">
      <a class="brand" href="#/devices">MorphNet Edge</a>
      <ul>
        ${SECTIONS.map((s) => html`<li><a href=${`#/${s.path}`} data-nav=${s.path} aria-current=${section === s.path ? 'page' : undefined}>${s.label}</a></li>`)}
      </ul>
      <span class="status" title="devices online" data-online=${online}>${online}/${list.length} online</span>
    </nav>
    <main>${page}</main>
    <footer class="foot">MorphNet Edge ${MORPHNET_UI_VERSION} · REST API under <code>/api</code> (docs/api.md)</footer>
  </div>`;
}

const root = document.getElementById('app');
if (root) {
  root.textContent = '';
  render(html`<${App} />`, root);
}
