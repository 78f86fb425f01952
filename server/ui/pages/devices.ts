/**
 * Devices: every device with its runtimes, environment, online state, last seen and how much of
 * its latency tables is measured; "Add a device" gives the agent command and the browser-agent
 * link with a QR code. Polls GET /api/devices every 3 s, so agents appear and drop live.
 */
import type { VNode } from 'preact';
import { html } from 'htm/preact';
import { useEffect, useState } from 'preact/hooks';
import QRCode from 'qrcode';
import { api } from '../api.ts';
import { Badge, Card, ErrorNote, Notice } from '../components.ts';
import { ago, count } from '../format.ts';
import { href, useLoad, type Loaded } from '../hooks.ts';
import type { AgentEnv, AgentInfo, CoverageResponse, CoverageRow, DeviceView, PairingCreated, PairingsResponse, RuntimeInfo } from '../../contract/index.ts';

/** What the agent command needs (served by server/ui/serve.ts). */
const UI_AGENT_INFO = '/ui/agent-info.json';

export const DEVICE_POLL_MS = 3000;

function envText(env: AgentEnv, platform: string): string {
  if (platform === 'browser') {
    const ua = env.userAgent ?? '';
    const browser = /(Chrome|Chromium|Firefox|Safari|Edg)\/[\d.]+/.exec(ua)?.[0] ?? 'a browser';
    return [browser, env.os, env.arch, env.cores ? `${env.cores} logical cores` : null].filter(Boolean).join(' · ');
  }
  return [
    env.hostname,
    [env.os, env.osRelease].filter(Boolean).join(' '),
    env.arch,
    env.cpuModel ? `${env.cpuModel}${env.cores ? ` × ${env.cores}` : ''}` : null,
    env.memoryMb ? `${(env.memoryMb / 1024).toFixed(1)} GiB` : null,
    env.nodeVersion ? `node ${env.nodeVersion}` : null,
  ]
    .filter(Boolean)
    .join(' · ');
}

function RuntimeRow(props: { device: DeviceView; runtime: RuntimeInfo; coverage: CoverageRow | undefined }): VNode {
  const r = props.runtime;
  const c = props.coverage;
  const facts = [r.version, r.simd === undefined ? null : r.simd ? 'SIMD' : 'no SIMD', r.threads ? `${r.threads} thread${r.threads > 1 ? 's' : ''}` : null].filter(Boolean).join(', ');
  return html`<li class="runtime" data-runtime=${r.name}>
    <div class="runtime-head">
      <a href=${href(['tables'], { device: props.device.id, runtime: r.name })}><strong>${r.name}</strong></a>
      <span class="coverage" data-coverage=${c ? `${c.signatures}/${c.points}/${c.networks}` : ''}>${c ? `${c.usable}/${c.signatures} tables, ${count(c.points)} points, ${c.networks} network${c.networks === 1 ? '' : 's'}${c.lastMeasuredAt ? `, last ${ago(c.lastMeasuredAt)}` : ''}` : '…'}</span>
    </div>
    <div class="hint">${facts}${r.note ? ` — ${r.note}` : ''}</div>
  </li>`;
}

function DeviceCard(props: { device: DeviceView; coverage: readonly CoverageRow[] }): VNode {
  const d = props.device;
  const runtimes = d.runtimes;
  const agents = d.agents;
  return html`<article class="card device" data-device-id=${d.id} data-online=${String(d.online)}>
    <header class="card-head">
      <h2>${d.name}</h2>
      <div class="actions">
        ${d.online ? html`<${Badge} kind="ok">online<//>` : html`<${Badge} kind="off">offline<//>`}
        ${d.busy ? html`<${Badge} kind="run">measuring<//>` : null}
      </div>
    </header>
    <dl class="facts">
      <dt>Id</dt><dd><code>${d.id}</code></dd>
      <dt>Platform</dt><dd>${d.platform}, agent ${d.agentVersion}</dd>
      <dt>Environment</dt><dd>${envText(d.env, d.platform)}</dd>
      <dt>Last seen</dt><dd data-last-seen=${d.lastSeen}>${d.online ? 'now' : ago(d.lastSeen)}</dd>
      <dt>Agents</dt><dd>${agents.length === 0 ? 'none connected' : agents.map((a) => `${a.name} (${a.itemsDone} item${a.itemsDone === 1 ? '' : 's'} done${a.busy ? ', busy' : ''})`).join('; ')}</dd>
    </dl>
    <h3 class="sub">Runtimes and table coverage</h3>
    <ul class="runtimes">${runtimes.map((r) => html`<${RuntimeRow} key=${r.name} device=${d} runtime=${r} coverage=${props.coverage.find((c) => c.deviceId === d.id && c.runtime === r.name)} />`)}</ul>
  </article>`;
}

function until(iso: string, now: number): string {
  const s = Math.round((Date.parse(iso) - now) / 1000);
  if (s <= 0) return 'expired';
  return s >= 90 ? `${Math.round(s / 60)} min` : `${s} s`;
}

/**
 * "Add a device": the Node agent's command line (with the agent token), and for a phone or laptop
 * browser a pairing link (POST /api/pairings: one device, expires unused after 15 min) with its
 * QR code, so the long-lived agent token never lands on a phone.
 */
function AddDevice(props: { devices: readonly DeviceView[] }): VNode {
  const info = useLoad(() => api<AgentInfo>(UI_AGENT_INFO), []);
  const [pairing, setPairing] = useState<PairingCreated | null>(null);
  const [pairError, setPairError] = useState<unknown>(null);
  const [qr, setQr] = useState<string>('');
  const [now, setNow] = useState(Date.now());
  const pairings = useLoad(() => api<PairingsResponse>('/api/pairings'), [pairing?.id], 3000);
  const newLink = async (): Promise<void> => {
    setPairError(null);
    try {
      setPairing(await api<PairingCreated>('/api/pairings', { body: {} }));
    } catch (err) {
      setPairError(err);
    }
  };
  useEffect(() => {
    void newLink();
    const t = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(t);
  }, []);
  useEffect(() => {
    if (!pairing) return;
    QRCode.toString(pairing.url, { type: 'svg', margin: 1, errorCorrectionLevel: 'M' }).then(setQr, () => setQr(''));
  }, [pairing?.url]);
  const revoke = async (id: string): Promise<void> => {
    try {
      await api(`/api/pairings/${id}`, { method: 'DELETE' });
    } catch (err) {
      setPairError(err);
    }
    pairings.reload();
  };
  const a = info.data;
  const command = a ? `npx morphnet agent --server ${location.origin} --token ${a.agentToken}` : '…';
  const loopbackPage = /^(127\.|localhost$|\[::1\]$)/.test(location.hostname);
  const mine = pairings.data?.pairings.find((p) => p.id === pairing?.id);
  const deviceName = (id: string | null): string => (id === null ? '' : (props.devices.find((d) => d.id === id)?.name ?? id));
  return html`<${Card} title="Add a device" id="add-device">
    <h3 class="sub">A phone or a laptop: open this link in its browser</h3>
    <p>The page becomes a device that measures with tfjs (wasm, WebGL) and TFLite in the browser. The link pairs one device and expires unused after a while; keep the page's tab in front while it measures.</p>
    <${ErrorNote} error=${pairError} what="Pairing link" />
    ${pairing
      ? html`<div class="pair">
          <div class="qr" role="img" aria-label="QR code of the pairing link" data-qr=${qr ? 'svg' : ''} dangerouslySetInnerHTML=${{ __html: qr }}></div>
          <div>
            <a class="agent-link" href=${pairing.url} target="_blank" rel="noopener noreferrer" data-agent-link>${pairing.url}</a>
            <p class="hint" data-pairing-state=${mine?.state ?? 'waiting'}>
              ${mine?.state === 'paired' ? `Paired: ${deviceName(mine.deviceId)} joined ${ago(mine.pairedAt, now)}.` : mine?.state === 'expired' ? 'This link expired unused.' : `Waiting for a device; the link expires in ${until(pairing.expiresAt, now)}.`}
            </p>
            <button type="button" class="small" data-action="new-pairing" onClick=${newLink}>New link</button>
            ${a && (loopbackPage || a.loopbackOnly)
              ? html`<${Notice} kind="warn">${a.loopbackOnly ? html`The server listens on ${a.listenHost} only, so other machines cannot reach it: restart it with <code>morphnet serve --host 0.0.0.0</code> (with an admin token, docs/security.md) and open this page by the machine's LAN address to get a link a phone can open.` : html`This page is open on a loopback address: open it by the machine's LAN address to get a link a phone can open.`}<//>`
              : null}
          </div>
        </div>`
      : html`<p>…</p>`}
    <h3 class="sub">A board or a laptop with this project installed (Node.js 20): run an agent</h3>
    <pre class="command" data-command="agent">${command}</pre>
    <p class="hint">The command carries the agent token: run it only on machines you trust. The agent reconnects by itself.</p>
    <${ErrorNote} error=${info.error} />
    ${(pairings.data?.pairings.length ?? 0) > 0
      ? html`<details>
          <summary>Pairing links (${pairings.data!.pairings.length})</summary>
          <ul class="pairings">${pairings.data!.pairings.map(
            (p) => html`<li data-pairing=${p.id}><code>${p.id}</code> ${p.state}${p.deviceId ? `: ${deviceName(p.deviceId)}` : ''}${p.state === 'waiting' ? `, expires in ${until(p.expiresAt, now)}` : ''}
              ${p.state !== 'expired' ? html` <button type="button" class="small" onClick=${() => revoke(p.id)}>Revoke</button>` : null}</li>`,
          )}</ul>
        </details>`
      : null}
  <//>`;
}

export function DevicesPage(props: { devices: Loaded<{ devices: DeviceView[] }> }): VNode {
  const devices = props.devices;
  const list = devices.data?.devices ?? [];
  // Coverage costs more (it reads the tables): reload it when the device set changes, or every 15 s.
  const key = list.map((d) => `${d.id}:${d.online}:${d.agents.reduce((s, a) => s + a.itemsDone, 0)}`).join(',');
  const coverage = useLoad(() => api<CoverageResponse>('/api/coverage'), [key], 15_000);
  // Open by itself while there is no device, and it stays open once a device joins (its pairing shows "paired").
  const [adding, setAdding] = useState<boolean | null>(null);
  useEffect(() => {
    if (adding === null && devices.data) setAdding(devices.data.devices.length === 0);
  }, [adding, devices.data]);
  const online = list.filter((d) => d.online).length;
  return html`<div class="page" data-page="devices">
    <header class="page-head">
      <h1>Devices</h1>
      <div class="actions"><button type="button" class="primary" data-action="add-device" onClick=${() => setAdding(!adding)} aria-expanded=${Boolean(adding)}>${adding ? 'Hide' : 'Add a device'}</button></div>
    </header>
    <p class="lead" data-count=${list.length}>${list.length === 0 ? 'No device has connected yet.' : `${list.length} device${list.length === 1 ? '' : 's'}, ${online} online.`} Updated every ${DEVICE_POLL_MS / 1000} s.</p>
    ${adding ? html`<${AddDevice} devices=${list} />` : null}
    <${ErrorNote} error=${devices.error} what="Devices" />
    <div class="grid-cards">${list.map((d) => html`<${DeviceCard} key=${d.id} device=${d} coverage=${coverage.data?.coverage ?? []} />`)}</div>
  </div>`;
}
