/**
 * The browser device agent: the script of the page the server serves at `/agent?token=…`
 * (`server/agent-page.ts`; esbuild bundles this file). It loads the runtimes this browser can run
 * (`./adapters.ts`), says hello to the server's `/agents` WebSocket with the token from the page
 * URL, and runs the protocol loop of `../core.ts` until the user presses Stop or the server
 * refuses the token. The page shows the connection, the device, the runtimes (and why the others
 * are unavailable), the lease being measured and its progress, the totals and the last error.
 *
 * The token (or pairing code) is read from the address once, then moved to sessionStorage and
 * taken out of the address bar (`linkSecret`). The device key is random and kept in localStorage,
 * so a phone that reopens the link is the same
 * device (and fills the same latency tables). `crypto.getRandomValues` makes it: unlike
 * `crypto.randomUUID` it also works on plain http (a phone on the LAN is not a secure context).
 */
import type { RuntimeName } from '../../src/protocol/agent-protocol.ts';
import { DeviceAgent, socketFromWebSocket, type AgentEvent, type AgentExit, type AgentStatus } from '../core.ts';
import type { RuntimeAdapter } from '../runtime.ts';
import { BROWSER_RUNTIMES, browserAdapters, type UnavailableRuntime } from './adapters.ts';
import type { AgentEnv } from '../../src/protocol/agent-protocol.ts';

/** Set by the server's esbuild `define`; absent when bundled otherwise. */
declare const MORPHNET_BUILD: { readonly agentVersion: string; readonly tfliteVersion: string } | undefined;

const KEY_STORAGE = 'morphnet.deviceKey';
const NAME_STORAGE = 'morphnet.deviceName';
/** This tab's agent token or pairing code (sessionStorage), so that a reload finds it after the address lost it. */
const LINK_STORAGE = 'morphnet.link';
const LOG_LINES = 30;
const WHERE_THE_LINK_IS = 'Open the agent link the web UI or the server gives: a pairing link (http://SERVER:PORT/agent?pair=CODE, from the UI’s “Add a device” or POST /api/pairings), or http://SERVER:PORT/agent?token=TOKEN with the current agent token (MORPHNET_AGENT_TOKEN, or the agent-token file in the server’s data directory).';

const build = typeof MORPHNET_BUILD === 'object' && MORPHNET_BUILD !== null ? MORPHNET_BUILD : { agentVersion: 'unknown', tfliteVersion: 'unknown' };

// ───────────────────────────── page elements ─────────────────────────────

function el<T extends HTMLElement = HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (!found) throw new Error(`the agent page lacks #${id}; the page and agent.js come from different server versions (reload)`);
  return found as T;
}

const view = {
  message: el('message'),
  connection: el('connection'),
  deviceId: el('device-id'),
  name: el<HTMLInputElement>('device-name'),
  saveName: el<HTMLButtonElement>('save-name'),
  env: el('env'),
  runtimes: el<HTMLUListElement>('runtimes'),
  lease: el('lease'),
  progress: el<HTMLProgressElement>('lease-progress'),
  done: el('items-done'),
  failed: el('items-failed'),
  lastError: el('last-error'),
  toggle: el<HTMLButtonElement>('toggle'),
  log: el<HTMLUListElement>('log'),
};

/** A banner above everything; `kind` lands in `data-kind` (tests and styles key on it). */
function showMessage(kind: 'no-token' | 'unauthorized' | 'bad-hello' | 'no-runtime' | 'error' | 'info', text: string): void {
  view.message.textContent = text;
  view.message.dataset.kind = kind;
  view.message.hidden = false;
}

function hideMessage(): void {
  view.message.hidden = true;
  delete view.message.dataset.kind;
}

function log(line: string): void {
  const item = document.createElement('li');
  item.textContent = `${new Date().toLocaleTimeString()}  ${line}`;
  view.log.prepend(item);
  while (view.log.children.length > LOG_LINES) view.log.lastElementChild?.remove();
}

// ───────────────────────────── identity ─────────────────────────────

/** localStorage, or null where it is blocked (private modes, storage disabled). */
function storage(): Storage | null {
  try {
    const s = globalThis.localStorage;
    s.getItem(KEY_STORAGE);
    return s;
  } catch {
    return null;
  }
}

interface LinkSecret {
  /** The agent token, or a pairing code (`pair-…`). */
  readonly token: string;
  readonly paired: boolean;
}

/**
 * The agent token or pairing code this tab was opened with. It is read from the address
 * (`?pair=` or `?token=`) once, kept in sessionStorage (this tab only, for reloads), and removed
 * from the address bar and the tab's session history with `history.replaceState`, so that it is
 * not in a bookmark, a shared URL or a screenshot. (The browser's global history may still list
 * the address as first visited: prefer pairing links, which expire.) Where sessionStorage is
 * blocked the address keeps it, or a reload would lose it.
 */
function linkSecret(): LinkSecret | null {
  let session: Storage | null;
  try {
    session = globalThis.sessionStorage;
    session.getItem(LINK_STORAGE);
  } catch {
    session = null;
  }
  const url = new URL(location.href);
  const pair = url.searchParams.get('pair');
  const token = url.searchParams.get('token');
  if (pair || token) {
    const found: LinkSecret = pair ? { token: pair, paired: true } : { token: token as string, paired: false };
    try {
      if (session) {
        session.setItem(LINK_STORAGE, JSON.stringify(found));
        url.searchParams.delete('pair');
        url.searchParams.delete('token');
        history.replaceState(history.state, '', `${url.pathname}${url.search}${url.hash}`);
      }
    } catch {
      // Storage full or refused: the address keeps the secret.
    }
    return found;
  }
  try {
    const stored = JSON.parse(session?.getItem(LINK_STORAGE) ?? 'null') as Partial<LinkSecret> | null;
    if (stored && typeof stored.token === 'string' && stored.token !== '' && typeof stored.paired === 'boolean') return { token: stored.token, paired: stored.paired };
  } catch {
    // Not ours: ignored.
  }
  return null;
}

function randomKey(): string {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return `b-${[...bytes].map((b) => b.toString(16).padStart(2, '0')).join('')}`;
}

function deviceKey(): { key: string; persistent: boolean } {
  const s = storage();
  const stored = s?.getItem(KEY_STORAGE);
  if (stored && /^[A-Za-z0-9_-]{8,128}$/.test(stored)) return { key: stored, persistent: true };
  const key = randomKey();
  try {
    s?.setItem(KEY_STORAGE, key);
  } catch {
    // Quota or policy: this visit still works, the next one is a new device.
  }
  return { key, persistent: s !== null && s.getItem(KEY_STORAGE) === key };
}

interface UaData {
  readonly platform?: string;
  readonly mobile?: boolean;
  readonly brands?: readonly { brand: string; version: string }[];
  getHighEntropyValues?(hints: string[]): Promise<Record<string, unknown>>;
}

function uaData(): UaData | undefined {
  return (navigator as Navigator & { userAgentData?: UaData }).userAgentData;
}

function osFromUa(ua: string): { os: string; release?: string } {
  const m = (re: RegExp): string | undefined => re.exec(ua)?.[1];
  if (/Android/.test(ua)) return { os: 'Android', release: m(/Android ([\d.]+)/) };
  if (/iPhone|iPad|iPod/.test(ua)) return { os: 'iOS', release: m(/OS ([\d_]+) like Mac/)?.replace(/_/g, '.') };
  if (/CrOS/.test(ua)) return { os: 'ChromeOS' };
  if (/Mac OS X/.test(ua)) return { os: 'macOS', release: m(/Mac OS X ([\d_.]+)/)?.replace(/_/g, '.') };
  if (/Windows/.test(ua)) return { os: 'Windows', release: m(/Windows NT ([\d.]+)/) };
  if (/Linux/.test(ua)) return { os: 'Linux' };
  return { os: 'unknown' };
}

function archFromUa(ua: string): string {
  if (/aarch64|arm64/i.test(ua)) return 'arm64';
  if (/x86_64|x64|Win64|WOW64|amd64/i.test(ua)) return 'x86_64';
  if (/armv\d|armv8l/i.test(ua)) return 'arm';
  if (/i[3-6]86/.test(ua)) return 'x86';
  return 'unknown';
}

function browserFromUa(ua: string): string {
  const m = (re: RegExp): string | undefined => re.exec(ua)?.[1];
  const v = (name: string, re: RegExp): string => `${name}${m(re) ? ` ${m(re)!.split('.')[0]}` : ''}`;
  if (/Edg\//.test(ua)) return v('Edge', /Edg\/([\d.]+)/);
  if (/Firefox\//.test(ua)) return v('Firefox', /Firefox\/([\d.]+)/);
  if (/(Chrome|Chromium|CriOS)\//.test(ua)) return v('Chrome', /(?:Chrome|Chromium|CriOS)\/([\d.]+)/);
  if (/Safari\//.test(ua)) return v('Safari', /Version\/([\d.]+)/);
  return 'Browser';
}

function clip(text: string, max: number): string {
  return text.length <= max ? text : text.slice(0, max);
}

/** What the browser tells about the device; the high-entropy hints only where it gives them. */
async function browserEnv(): Promise<{ env: AgentEnv; model: string | undefined }> {
  const ua = navigator.userAgent ?? '';
  const parsed = osFromUa(ua);
  let os = parsed.os;
  let release = parsed.release;
  let arch = archFromUa(ua);
  let model: string | undefined;
  const data = uaData();
  if (data?.platform) os = data.platform;
  try {
    const high = await data?.getHighEntropyValues?.(['architecture', 'bitness', 'platformVersion', 'model']);
    if (high) {
      const a = typeof high.architecture === 'string' ? high.architecture : '';
      const bits = typeof high.bitness === 'string' ? high.bitness : '';
      if (a === 'x86') arch = bits === '64' ? 'x86_64' : 'x86';
      else if (a === 'arm') arch = bits === '64' ? 'arm64' : 'arm';
      if (typeof high.platformVersion === 'string' && high.platformVersion !== '') release = high.platformVersion;
      if (typeof high.model === 'string' && high.model !== '') model = high.model;
    }
  } catch {
    // Optional hints; the user agent string already gave the rest.
  }
  const cores = Math.min(4096, Math.max(1, Math.floor(navigator.hardwareConcurrency || 1)));
  const gb = (navigator as Navigator & { deviceMemory?: number }).deviceMemory;
  const env: AgentEnv = {
    platform: 'browser',
    os: clip(os || 'unknown', 100),
    ...(release ? { osRelease: clip(release, 100) } : {}),
    arch: clip(arch, 50),
    cpuModel: 'unknown (browser)',
    cores,
    ...(typeof gb === 'number' && gb > 0 ? { memoryMb: Math.max(1, Math.round(gb * 1024)) } : {}),
    ...(ua ? { userAgent: clip(ua, 500) } : {}),
  };
  return { env, model };
}

function defaultName(env: AgentEnv, model: string | undefined): string {
  return clip(`${browserFromUa(env.userAgent ?? '')} on ${model ? `${model} (${env.os})` : env.os}`, 100);
}

function savedName(): string | null {
  const name = storage()?.getItem(NAME_STORAGE)?.trim();
  return name ? clip(name, 100) : null;
}

// ───────────────────────────── rendering ─────────────────────────────

const CONNECTION_TEXT: Record<AgentStatus['connection'], string> = {
  idle: 'not started',
  connecting: 'connecting…',
  connected: 'connected',
  disconnected: 'disconnected',
  stopped: 'stopped',
};

function renderStatus(s: AgentStatus): void {
  document.body.dataset.connection = s.connection;
  view.connection.textContent =
    s.connection === 'disconnected' && s.retryInMs !== null ? `disconnected, retrying in ${Math.ceil(s.retryInMs / 1000)} s` : CONNECTION_TEXT[s.connection];
  view.connection.dataset.state = s.connection;
  view.deviceId.textContent = s.deviceId ?? '–';
  if (s.lease) {
    const handled = s.lease.done + s.lease.failed;
    view.lease.textContent = `job ${s.lease.jobId} on ${s.lease.runtime}: ${handled}/${s.lease.total} items${s.lease.failed > 0 ? ` (${s.lease.failed} failed)` : ''}${s.queuedLeases > 0 ? `, ${s.queuedLeases} more queued` : ''}`;
    view.progress.max = s.lease.total;
    view.progress.value = handled;
    view.progress.hidden = false;
  } else {
    view.lease.textContent = s.queuedLeases > 0 ? `${s.queuedLeases} queued` : 'none';
    view.progress.hidden = true;
  }
  view.done.textContent = String(s.itemsDone);
  view.failed.textContent = String(s.itemsFailed);
  view.lastError.textContent = s.lastError ?? 'none';
}

function renderRuntimes(adapters: readonly RuntimeAdapter[], unavailable: readonly UnavailableRuntime[]): void {
  view.runtimes.replaceChildren();
  const byName = new Map<RuntimeName, { ok: boolean; text: string }>();
  for (const a of adapters) {
    const i = a.info();
    byName.set(a.name, { ok: true, text: `${i.version}${i.note ? ` — ${i.note}` : ''}` });
  }
  for (const u of unavailable) byName.set(u.name, { ok: false, text: `unavailable: ${u.reason}` });
  for (const name of BROWSER_RUNTIMES) {
    const r = byName.get(name);
    if (!r) continue;
    const item = document.createElement('li');
    item.dataset.runtime = name;
    item.dataset.available = String(r.ok);
    const title = document.createElement('strong');
    title.textContent = `${r.ok ? '✓' : '✗'} ${name}`;
    const detail = document.createElement('div');
    detail.className = 'detail';
    detail.textContent = r.text;
    item.append(title, detail);
    view.runtimes.append(item);
  }
}

function describe(e: AgentEvent): string | null {
  switch (e.type) {
    case 'connecting':
      return e.attempt > 1 ? `connecting (attempt ${e.attempt})` : 'connecting';
    case 'welcome':
      return `connected as device ${e.deviceId} (server ${e.serverVersion})`;
    case 'disconnected':
      return `disconnected (close ${e.code}${e.reason ? `: ${e.reason}` : ''})`;
    case 'lease-start':
      return `lease of job ${e.jobId} on ${e.runtime}: ${e.items} item${e.items === 1 ? '' : 's'}`;
    case 'item-failed':
      return `item ${e.itemId} failed: ${e.code}: ${e.message}`;
    case 'lease-end':
      return `lease ${e.cancelled ? 'stopped' : 'done'}: ${e.done} measured, ${e.failed} failed in ${(e.ms / 1000).toFixed(1)} s`;
    case 'cancel':
      return `lease cancelled by the server: ${e.reason}`;
    case 'server-error':
      return `the server refused a message: ${e.code}: ${e.message}`;
    case 'invalid-message':
      return `ignored an invalid server message: ${e.message}`;
    case 'item-done':
    case 'exit':
      return null;
  }
}

// ───────────────────────────── running ─────────────────────────────

interface Session {
  /** The agent token, or a pairing code (`pair-…`), which the hello carries in the same field. */
  readonly token: string;
  readonly paired: boolean;
  readonly url: string;
  readonly key: string;
  readonly env: AgentEnv;
  readonly adapters: RuntimeAdapter[];
  name: string;
  agent: DeviceAgent | null;
  wakeLock: WakeLockLike | null;
}

/** The Screen Wake Lock API's sentinel (not in every DOM typing yet). */
interface WakeLockLike {
  readonly released: boolean;
  release(): Promise<void>;
}

/** Keeps a phone's screen on while measuring (sleep would suspend the page); best effort. */
async function holdWakeLock(session: Session): Promise<void> {
  const wl = (navigator as Navigator & { wakeLock?: { request(type: 'screen'): Promise<WakeLockLike> } }).wakeLock;
  // The browser releases the lock whenever the page is hidden; ask again when it is back.
  if (!wl || (session.wakeLock && !session.wakeLock.released)) return;
  try {
    session.wakeLock = await wl.request('screen');
  } catch {
    // Not a secure context, or the page is hidden; measuring works without it.
  }
}

function releaseWakeLock(session: Session): void {
  const lock = session.wakeLock;
  session.wakeLock = null;
  void lock?.release().catch(() => undefined);
}

function onExit(session: Session, agent: DeviceAgent, exit: AgentExit): void {
  if (session.agent !== agent) return;
  session.agent = null;
  releaseWakeLock(session);
  view.toggle.textContent = 'Start';
  view.toggle.dataset.action = 'start';
  if (exit.reason === 'unauthorized' && session.paired) {
    showMessage('unauthorized', `The server refused this pairing link (${exit.message}). Pairing links work once, for one device, and expire: ask for a new one in the web UI (“Add a device”) or with POST /api/pairings.`);
  } else if (exit.reason === 'unauthorized') {
    showMessage('unauthorized', `The server refused this link’s agent token. ${WHERE_THE_LINK_IS}`);
  } else if (exit.reason === 'bad-hello') {
    showMessage('bad-hello', `The server refused this agent: ${exit.message}. Reload the page; if it persists, the page and the server are from different versions.`);
  } else if (exit.reason === 'connect-failed') {
    showMessage('error', exit.message);
  }
  log(exit.reason === 'stopped' ? 'stopped' : `ended: ${exit.message}`);
}

function start(session: Session): void {
  if (session.agent) return;
  hideMessage();
  let agent: DeviceAgent;
  try {
    agent = new DeviceAgent({
      url: session.url,
      connect: (u) => socketFromWebSocket(new WebSocket(u)),
      identity: { token: session.token, deviceKey: session.key, name: session.name, agentVersion: build.agentVersion, env: session.env },
      adapters: session.adapters,
      onStatus: renderStatus,
      onEvent: (e) => {
        const line = describe(e);
        if (line !== null) log(line);
      },
      logger: { info: (m) => log(m), warn: (m) => log(`warning: ${m}`) },
    });
  } catch (err) {
    showMessage('error', `The agent cannot start: ${err instanceof Error ? err.message : String(err)}`);
    return;
  }
  session.agent = agent;
  view.toggle.textContent = 'Stop';
  view.toggle.dataset.action = 'stop';
  void holdWakeLock(session);
  void agent.start().then((exit) => onExit(session, agent, exit));
}

function stop(session: Session): Promise<unknown> {
  return session.agent?.stop() ?? Promise.resolve();
}

function wireControls(session: Session): void {
  view.toggle.disabled = false;
  view.toggle.addEventListener('click', () => {
    if (session.agent) void stop(session);
    else start(session);
  });
  view.name.value = session.name;
  view.name.disabled = false;
  view.saveName.disabled = false;
  view.saveName.addEventListener('click', () => {
    const name = clip(view.name.value.trim(), 100);
    if (name === '') {
      view.name.value = session.name;
      return;
    }
    session.name = name;
    try {
      storage()?.setItem(NAME_STORAGE, name);
    } catch {
      // Kept for this visit only.
    }
    log(`device name set to "${name}"`);
    // The name travels in the hello: reconnect to send it.
    if (session.agent) {
      const running = session.agent;
      void running.stop().then(() => start(session));
    }
  });
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible' && session.agent) void holdWakeLock(session);
  });
  // Closing the tab: say goodbye, so the server re-leases at once instead of after a timeout.
  window.addEventListener('pagehide', () => void stop(session));
}

async function main(): Promise<void> {
  document.getElementById('boot')?.remove();
  const link = linkSecret();
  if (!link) {
    showMessage('no-token', `This page needs the agent token. ${WHERE_THE_LINK_IS}`);
    view.toggle.hidden = true;
    renderStatus({ connection: 'stopped', activity: 'idle', deviceId: null, agentId: null, lease: null, queuedLeases: 0, itemsDone: 0, itemsFailed: 0, leasesDone: 0, reconnects: 0, retryInMs: null, lastError: null });
    return;
  }
  const { key, persistent } = deviceKey();
  const { env, model } = await browserEnv();
  view.env.textContent = `${env.os}${env.osRelease ? ` ${env.osRelease}` : ''}, ${env.arch}, ${env.cores} cores${env.memoryMb ? `, ~${Math.round(env.memoryMb / 1024)} GB` : ''}; key ${key.slice(0, 10)}…${persistent ? '' : ' (not saved: storage is blocked, so a reload is a new device)'}`;
  view.connection.textContent = 'loading runtimes…';
  const { adapters, unavailable } = await browserAdapters(BROWSER_RUNTIMES, { tfliteVersion: build.tfliteVersion });
  renderRuntimes(adapters, unavailable);
  for (const u of unavailable) log(`${u.name} unavailable: ${u.reason}`);
  if (adapters.length === 0) {
    showMessage('no-runtime', 'No runtime loads in this browser, so it cannot measure anything. The runtimes list says why.');
    view.toggle.hidden = true;
    view.connection.textContent = 'not started';
    return;
  }
  const session: Session = {
    token: link.token,
    paired: link.paired,
    url: `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/agents`,
    key,
    env,
    adapters,
    name: savedName() ?? defaultName(env, model),
    agent: null,
    wakeLock: null,
  };
  wireControls(session);
  start(session);
}

main().catch((err: unknown) => {
  showMessage('error', `The agent page failed: ${err instanceof Error ? err.message : String(err)}`);
});
