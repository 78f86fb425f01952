/**
 * The web UI end to end in real headless Chromium (Debian's `chromium`, driven by
 * `playwright-core`) against a real server on 127.0.0.1 and a real agent: the browser agent opened
 * from the Devices page's link joins and shows up online; a model.json is uploaded (a bad one is
 * refused beside the field), its layers are measured on that device and its per-layer breakdown
 * drawn; the search form refuses bad input beside the field; a small latency search is started
 * from the form, followed live to the end, its result opened and an artifact downloaded; the
 * latency tables show heat maps. Every page is saved as a screenshot under test-output/ui/, at
 * desktop and phone sizes (the phone ones must not scroll sideways).
 *
 * Chromium is required, not optional: without /usr/bin/chromium this test fails and says how to
 * install it (`.ci/run` does).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { startServer, type RunningServer } from '../../server/app.ts';
import { FunctionalBuilder } from '../../src/seeds/builder.ts';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];
const TOKEN = 'web-ui-agent-token-9876';
const OUTPUT_DIR = fileURLToPath(new URL('../../test-output/ui/', import.meta.url));
const BIN = fileURLToPath(new URL('../../cli/bin.js', import.meta.url));
const DESKTOP = { width: 1280, height: 900 };
const PHONE = { width: 390, height: 844 };

/**
 * The small model of test/server/latency-search.test.ts: three conv-BN-ReLU blocks on 32×32×3, so
 * half its measured latency is reachable (on smaller nets the per-op overhead dominates) while a
 * search of it with 96 images trains in seconds.
 */
function smallModel(): object {
  const b = new FunctionalBuilder('small_ui');
  let x = b.input('input', [32, 32, 3]);
  x = b.relu('c1_relu', b.batchNorm('c1_bn', b.conv2d('c1', x, { filters: 32, kernelSize: 3, padding: 'same', useBias: false }), { momentum: 0.9 }));
  x = b.relu('c2_relu', b.batchNorm('c2_bn', b.conv2d('c2', x, { filters: 64, kernelSize: 3, strides: 2, padding: 'same', useBias: false }), { momentum: 0.9 }));
  x = b.relu('c3_relu', b.batchNorm('c3_bn', b.conv2d('c3', x, { filters: 64, kernelSize: 3, padding: 'same', useBias: false }), { momentum: 0.9 }));
  x = b.globalAveragePooling2d('gap', x);
  x = b.dense('predictions', x, { units: 3, activation: 'softmax' });
  return { format: 'layers-model', modelTopology: b.build([x]) };
}

async function api(server: RunningServer, path: string): Promise<{ status: number; json: any }> {
  const res = await fetch(`${server.url}${path}`);
  return { status: res.status, json: await res.json() };
}

describe('web UI in headless Chromium', { timeout: 420_000 }, () => {
  let dir: string;
  let server: RunningServer;
  let browser: Browser | undefined;
  let ui: Page;
  const contexts: BrowserContext[] = [];
  /** Console errors, uncaught exceptions and CSP reports of every page, for failure messages. */
  const pageLog: string[] = [];
  let deviceId = '';
  let modelId = '';
  let searchId = '';

  async function newPage(name: string): Promise<Page> {
    assert.ok(browser, 'the browser did not start');
    const context = await browser.newContext({ viewport: DESKTOP, acceptDownloads: true });
    contexts.push(context);
    const page = await context.newPage();
    page.setDefaultTimeout(30_000);
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') pageLog.push(`[${name}] console.${m.type()}: ${m.text()}`);
    });
    page.on('pageerror', (e) => pageLog.push(`[${name}] uncaught: ${e.message}`));
    return page;
  }

  const recentLog = (): string => `page log:\n${pageLog.slice(-20).join('\n') || '(empty)'}`;

  async function shot(name: string, page: Page = ui): Promise<void> {
    // From the top: the navigation bar is sticky and would be drawn where the page was scrolled to.
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: join(OUTPUT_DIR, `${name}.png`), fullPage: true });
  }

  /** A phone-sized screenshot of the page now shown, which must not scroll sideways. */
  async function phoneShot(name: string): Promise<void> {
    await ui.setViewportSize(PHONE);
    await ui.waitForTimeout(300);
    const overflow = await ui.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    await shot(`${name}-phone`);
    await ui.setViewportSize(DESKTOP);
    assert.ok(overflow <= 1, `${name}: the page is ${overflow}px wider than a ${PHONE.width}px phone screen`);
  }

  async function go(hash: string): Promise<void> {
    await ui.evaluate((h) => (location.hash = h), hash);
  }

  before(async () => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(`Chromium is not installed at ${CHROMIUM}: the web UI test needs it. Install it with \`apt-get install -y chromium\` (Debian; .ci/run does this).`);
    }
    await mkdir(OUTPUT_DIR, { recursive: true });
    dir = await mkdtemp(join(tmpdir(), 'morphnet-ui-'));
    server = await startServer({ port: 0, dataDir: dir, agentToken: TOKEN, localAgent: false, log: () => {} });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 60_000 });
    ui = await newPage('ui');
  });

  after(async () => {
    for (const c of contexts) await c.close().catch(() => undefined);
    await browser?.close().catch(() => undefined);
    await server?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('serves the app from the daemon itself, with a strict CSP and nothing from another origin', async () => {
    const page = await fetch(`${server.url}/`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /text\/html/);
    const csp = page.headers.get('content-security-policy') ?? '';
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'self'(;|$)/);
    const html = await page.text();
    assert.match(html, /name="viewport"/);
    assert.doesNotMatch(html, /https?:\/\//, 'the shell loads nothing from another origin');

    const js = await fetch(`${server.url}/ui/app.js`);
    assert.equal(js.status, 200, await js.clone().text().then((t) => t.slice(0, 500)));
    const code = await js.text();
    assert.ok(code.length > 50_000, 'the bundle holds preact, Chart.js and the pages');
    assert.doesNotMatch(code, /\bimport\s*\(?\s*["']https?:/, 'no import from a CDN');
    const again = await fetch(`${server.url}/ui/app.js`, { headers: { 'if-none-match': js.headers.get('etag') ?? '' } });
    assert.equal(again.status, 304);
    const css = await fetch(`${server.url}/ui/app.css`);
    assert.equal(css.status, 200);
    assert.match(css.headers.get('content-type') ?? '', /text\/css/);
    await css.arrayBuffer();
    const info = await api(server, '/ui/agent-info.json');
    assert.deepEqual({ token: info.json.agentToken, loopback: info.json.loopbackOnly }, { token: TOKEN, loopback: true });

    // The views the UI reads besides the documented endpoints.
    assert.deepEqual((await api(server, '/api/seeds')).json.seeds.map((s: { ref: string }) => s.ref), ['seed:mobilenet', 'seed:resnet', 'seed:vgg', 'seed:mobilenetv2', 'seed:wideresnet']);
    assert.ok((await api(server, '/api/datasets')).json.datasets.some((d: { name: string; available: boolean }) => d.name === 'synthetic' && d.available));
    const inspect = await api(server, '/api/models/seed:resnet/inspect');
    assert.equal(inspect.status, 200);
    assert.equal(inspect.json.report.params, 176090);
    assert.ok(inspect.json.report.groups.length > 3);
    const missing = await api(server, '/api/models/m-0000000000000000/inspect');
    assert.equal(missing.status, 404);
    assert.equal(missing.json.error.code, 'MORPH_ERR_NOT_FOUND');
    assert.deepEqual((await api(server, '/api/coverage')).json, { coverage: [] });
  });

  it('Devices: "Add a device" gives a pairing link with its QR code and the agent command; the browser it pairs shows up online', { timeout: 150_000 }, async () => {
    await ui.goto(`${server.url}/#/devices`);
    // With no device yet, the page opens on "Add a device".
    const command = ui.locator('[data-command="agent"]');
    await command.waitFor();
    // The command shows '…' until the agent info has loaded (slower on a busy machine).
    await ui.waitForFunction(() => document.querySelector('[data-command="agent"]')?.textContent !== '…');
    assert.equal(await command.innerText(), `npx morphnet agent --server ${server.url} --token ${TOKEN}`);
    const link = ui.locator('[data-agent-link]');
    const agentUrl = await link.getAttribute('href');
    // A pairing link, not the agent token: the phone never holds the long-lived secret.
    assert.match(agentUrl ?? '', new RegExp(`^${server.url.replace(/\./g, '\\.')}/agent\\?pair=pair-[A-Za-z0-9_-]{22}$`));
    assert.equal((await api(server, '/api/pairings')).json.pairings.length, 1);
    await ui.locator('[data-pairing-state="waiting"]').waitFor();
    assert.equal(await ui.locator('.qr[data-qr="svg"] svg').count(), 1, 'the QR code of the link is drawn');
    assert.match(await ui.locator('#add-device').innerText(), /listens on 127\.0\.0\.1 only/);
    await shot('add-device');

    // A second browser opens the link and becomes a device; the Devices page shows it without a reload.
    const agentPage = await newPage('agent');
    await agentPage.goto(agentUrl!);
    const card = ui.locator('[data-device-id][data-online="true"]');
    await card.waitFor({ timeout: 120_000 }).catch((err: Error) => {
      throw new Error(`${err.message}\n${recentLog()}`);
    });
    deviceId = (await card.getAttribute('data-device-id'))!;
    await card.locator('li[data-runtime="tfjs-wasm"]').waitFor();
    await ui.locator('[data-pairing-state="paired"]').waitFor({ timeout: 10_000 });
    assert.match(await card.innerText(), /browser/);
    assert.match(await ui.locator('[data-page="devices"] .lead').innerText(), /1 device, 1 online/);
    const device = (await api(server, `/api/devices/${deviceId}`)).json;
    assert.equal(device.online, true);
    assert.equal(device.platform, 'browser');
    await shot('devices');
  });

  it('Models: a bad upload is refused beside the field; an upload is inspected, its layers measured and broken down', { timeout: 120_000 }, async () => {
    await go('#/models');
    const file = ui.locator('input[name="model-file"]');
    await file.setInputFiles({ name: 'model.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify({ hello: 'not a model' })) });
    await ui.locator('[data-action="upload"]').click();
    const fieldError = ui.locator('[data-field="body"] [data-error-for="body"]');
    await fieldError.waitFor();
    assert.match(await fieldError.innerText(), /neither "modelTopology" nor "class_name"/);
    assert.equal((await api(server, '/api/models')).json.models.length, 0);

    await file.setInputFiles({ name: 'model.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify(smallModel())) });
    await ui.locator('[data-action="upload"]').click();
    await ui.locator('[data-page="model"] #inspect').waitFor();
    modelId = (await ui.locator('[data-page="model"]').getAttribute('data-model'))!;
    assert.match(modelId, /^m-[0-9a-f]{16}$/);
    assert.equal(await ui.locator('#inspect [data-layers]').getAttribute('data-layers'), '12');
    assert.equal(await ui.locator('#inspect tr[data-group]').count(), 5);

    // Nothing measured on the device yet: the page says so and offers to measure.
    const breakdown = ui.locator('#breakdown');
    await breakdown.locator('[data-missing]').waitFor();
    assert.equal(await ui.locator('#breakdown-device').inputValue(), deviceId);
    assert.equal(await ui.locator('#breakdown-runtime').inputValue(), 'tfjs-wasm');
    await breakdown.locator('[data-action="profile-layers"]').click();
    await breakdown.locator('[data-progress="job"]').waitFor();
    const chart = breakdown.locator('[data-chart="breakdown"]');
    await chart.waitFor({ timeout: 90_000 }).catch((err: Error) => {
      throw new Error(`${err.message}\n${recentLog()}`);
    });
    // Every timed layer (3 convs, the pooling, the dense) has a prediction and its own measurement.
    assert.equal(await chart.getAttribute('data-layers'), '5');
    assert.equal(await chart.getAttribute('data-measured'), '5');
    assert.equal(await breakdown.locator('tr[data-layer]').count(), 5);

    await breakdown.locator('[data-action="measure"]').click();
    const measured = breakdown.locator('[data-network-ms]:not([data-network-ms=""])');
    await measured.waitFor({ timeout: 60_000 });
    const networks = (await api(server, `/api/networks?deviceId=${deviceId}&runtime=tfjs-wasm`)).json.networks;
    assert.equal(networks.length, 1);
    assert.equal(Number(await measured.getAttribute('data-network-ms')).toFixed(6), networks[0].measuredMs.toFixed(6));
    await shot('model');
  });

  it('Searches: the form shows each refusal beside its field and creates nothing', { timeout: 60_000 }, async () => {
    await go(`#/searches/new?model=${modelId}`);
    const form = ui.locator('form.search-form');
    await form.waitFor();
    // The seed's latency measured above is shown beside the target.
    await ui.locator('[data-seed-measured]:not([data-seed-measured=""])').waitFor();
    assert.equal(await ui.locator('select[name="deviceId"]').inputValue(), deviceId);

    await ui.locator('input[name="targetMs"]').fill('0');
    await ui.locator('[data-action="start-search"]').click();
    const targetError = ui.locator('[data-field="targetMs"] [data-error-for="targetMs"]');
    await targetError.waitFor();
    assert.match(await targetError.innerText(), /greater than 0/);
    assert.ok(await ui.locator('[data-field="targetMs"].invalid').count());

    await ui.locator('input[name="targetMs"]').fill('1');
    await ui.locator('select[name="data.dataset"]').selectOption('mnist');
    await ui.locator('[data-action="start-search"]').click();
    const dataError = ui.locator('[data-error-for="data.dataset"]');
    await dataError.waitFor();
    assert.match(await dataError.innerText(), /does not fit the model/);
    assert.equal(await targetError.count(), 0, 'the earlier error is gone');
    await shot('search-form-error');
    assert.equal((await api(server, '/api/searches')).json.searches.length, 0);
  });

  it('Searches: a small latency search started from the form runs live to the end; its result downloads', { timeout: 240_000 }, async () => {
    await ui.locator('select[name="data.dataset"]').selectOption('synthetic:h=32,w=32,c=3,classes=3');
    await ui.locator('input[name="data.trainLimit"]').fill('96');
    await ui.locator('input[name="data.testLimit"]').fill('32');
    await ui.locator('input[name="options.strength"]').fill('30');
    await ui.locator('input[name="options.shrinkEpochs"]').fill('2');
    await ui.locator('input[name="options.finalEpochs"]').fill('1');
    await ui.locator('form.search-form summary', { hasText: 'More options' }).click();
    await ui.locator('input[name="options.batchSize"]').fill('32');
    await ui.locator('input[name="options.divisor"]').fill('8');
    await ui.locator('input[name="options.learningRate"]').fill('0.1');
    await ui.locator('input[name="options.profileGrid"]').fill('3');
    await ui.locator('input[name="options.measureProtocol"]').check();
    // Half the seed's measured latency, from the button beside the target.
    await ui.locator('[data-target-fraction="0.5"]').click();
    const seedMs = Number(await ui.locator('[data-seed-measured]').getAttribute('data-seed-measured'));
    const targetMs = Number(await ui.locator('input[name="targetMs"]').inputValue());
    assert.ok(Math.abs(targetMs / (0.5 * seedMs) - 1) < 0.01, `target ${targetMs} is half the seed's ${seedMs} ms`);
    await shot('search-form');
    await ui.locator('[data-action="start-search"]').click();

    const detail = ui.locator('[data-page="search"][data-search]');
    await detail.waitFor();
    searchId = (await detail.getAttribute('data-search'))!;
    const created = (await api(server, `/api/searches/${searchId}`)).json;
    assert.deepEqual(
      { cost: created.cost, deviceId: created.deviceId, runtime: created.runtime, targetMs: created.config.targetMs, shrink: created.config.options.shrinkEpochs, baseline: created.config.options.baseline, protocol: created.config.options.measureProtocol },
      { cost: 'latency', deviceId, runtime: 'tfjs-wasm', targetMs, shrink: 2, baseline: true, protocol: 'quick' },
    );

    // Watch the page (not the API) until the search ends: the states, the progress bar and the
    // charts it showed on the way.
    const seen = { states: new Set<string>(), fractions: [] as number[], aliveEpochs: new Set<string>(), logLines: 0, stepPoints: 0 };
    let runningShot = false;
    const end = Date.now() + 200_000;
    for (;;) {
      const state = await ui.locator('[data-page="search"]').getAttribute('data-state');
      seen.states.add(state ?? '');
      const v = await ui.locator('[data-progress="search"]').getAttribute('data-value');
      if (v) seen.fractions.push(Number(v));
      seen.aliveEpochs.add((await ui.locator('[data-chart="alive"]').getAttribute('data-epochs')) ?? '');
      seen.logLines = Math.max(seen.logLines, Number(await ui.locator('.event-log').getAttribute('data-lines')));
      // Read without waiting: the live step chart comes and goes with the phases.
      const stepPoints = await ui.locator('[data-chart="steps"]').evaluateAll((els) => els.map((e) => Number(e.getAttribute('data-points'))));
      seen.stepPoints = Math.max(seen.stepPoints, ...stepPoints);
      if (!runningShot && state === 'running' && Number(await ui.locator('[data-chart="alive"]').getAttribute('data-epochs')) >= 1) {
        runningShot = true;
        await shot('search-running');
      }
      if (state === 'done' || state === 'failed' || state === 'cancelled') break;
      if (Date.now() > end) throw new Error(`search ${searchId} still ${state} on the page; seen ${JSON.stringify({ ...seen, states: [...seen.states] })}\n${recentLog()}`);
      await ui.waitForTimeout(250);
    }
    const final = (await api(server, `/api/searches/${searchId}`)).json;
    assert.equal(final.state, 'done', JSON.stringify(final.error ?? final.progress));
    assert.ok(seen.states.has('preparing') || seen.states.has('running'), `the page showed the search under way: ${[...seen.states].join(', ')}`);
    assert.ok(seen.fractions.some((f) => f > 0 && f < 1), `the progress bar moved: ${seen.fractions.join(', ')}`);
    assert.ok(seen.logLines >= 5, 'the events were listed as they came');
    assert.ok(seen.stepPoints > 0, 'training steps were drawn live');
    await ui.locator('[data-result="done"]').waitFor();
    // The alive bars end on the search's own last shrink epoch (the FLOP-MorphNet baseline shrinks after it).
    const alive = ui.locator('[data-chart="alive"]');
    assert.deepEqual([await alive.getAttribute('data-epochs'), await alive.getAttribute('data-run')], ['2', 'search']);
    assert.ok(final.progress.shrink.length >= 2);

    // The result: three networks side by side, widths, the Pareto plot, the files.
    assert.equal(await ui.locator('table.side-by-side').getAttribute('data-networks'), '3');
    assert.deepEqual(await ui.locator('table.side-by-side thead th[data-network]').allInnerTexts(), ['latency-MorphNet', 'uniform multiplier', 'FLOP-MorphNet']);
    const layers = Object.keys(final.result.learned.structure);
    assert.equal(await ui.locator('[data-chart="widths"]').getAttribute('data-layers'), String(layers.length));
    for (const l of layers) {
      assert.equal(await ui.locator(`table.widths tr[data-layer="${l}"] td`).nth(1).textContent(), String(final.result.learned.structure[l]), l);
    }
    await ui.locator('[data-chart="pareto"][data-searches="1"]').waitFor();
    assert.equal(await ui.locator('[data-chart="pareto"]').getAttribute('data-points'), '3');
    await ui.locator('[data-artifact="structure.json"]').waitFor();
    await shot('search-result');

    const [download] = await Promise.all([ui.waitForEvent('download'), ui.locator('[data-artifact="structure.json"]').click()]);
    assert.equal(download.suggestedFilename(), `${searchId}-structure.json`);
    const saved = join(OUTPUT_DIR, download.suggestedFilename());
    await download.saveAs(saved);
    assert.deepEqual(JSON.parse(await readFile(saved, 'utf8')), final.result.learned.structure);
  });

  it('Tables: every measured table as a heat map with its points, and predicted vs measured with the ±10% band', { timeout: 60_000 }, async () => {
    const stored = (await api(server, `/api/tables?deviceId=${deviceId}&runtime=tfjs-wasm`)).json.tables as { signature: string; points: unknown[] }[];
    await go(`#/tables?device=${deviceId}&runtime=tfjs-wasm`);
    await ui.locator(`[data-page="tables"] [data-tables="${stored.length}"]`).waitFor();
    assert.equal(await ui.locator('.table-card').count(), stored.length);
    for (const t of stored) {
      const chart = ui.locator(`.table-card[data-signature="${t.signature}"] [data-chart="table"]`);
      assert.equal(await chart.getAttribute('data-measured'), String(t.points.length), t.signature);
      assert.equal(await chart.getAttribute('data-mode'), t.signature.startsWith('conv2d') || t.signature.startsWith('dense') ? 'grid' : 'tied', t.signature);
    }
    const networks = (await api(server, `/api/networks?deviceId=${deviceId}&runtime=tfjs-wasm`)).json.networks as unknown[];
    assert.ok(networks.length >= 2, 'the seed and the search candidates were measured end to end');
    const scatter = ui.locator('[data-chart="pred-vs-measured"]');
    assert.equal(await scatter.getAttribute('data-points'), String(networks.length));
    assert.match(await ui.locator('#networks p[data-within]').innerText(), /predicted within ±10%/);
    // The calibration's out-of-sample (leave-one-out) figure, as GET /api/tables gives it.
    const calibration = (await api(server, `/api/tables?deviceId=${deviceId}&runtime=tfjs-wasm`)).json.calibration;
    assert.ok(calibration.outOfSample, JSON.stringify(calibration));
    assert.equal(await ui.locator('#networks p[data-out-of-sample]').getAttribute('data-out-of-sample'), String(calibration.outOfSample.withinCount));
    assert.equal(await ui.locator('#networks p[data-out-of-sample]').getAttribute('data-out-of-sample-n'), String(calibration.outOfSample.n));
    await shot('tables');
  });

  it('works behind an admin token: /login, then every call rides on the session cookie', { timeout: 60_000 }, async () => {
    const ADMIN = 'web-ui-admin-token-0123456789';
    const adminDir = await mkdtemp(join(tmpdir(), 'morphnet-ui-admin-'));
    const guarded = await startServer({ port: 0, dataDir: adminDir, agentToken: TOKEN, adminToken: ADMIN, localAgent: false, log: () => {} });
    try {
      const anonymous = await fetch(`${guarded.url}/ui/agent-info.json`, { redirect: 'manual', headers: { accept: 'application/json' } });
      assert.equal(anonymous.status, 401, 'the agent token is not given without the admin token');
      await anonymous.arrayBuffer();
      const page = await newPage('admin-ui');
      await page.goto(`${guarded.url}/#/devices`);
      await page.locator('input[name="token"]').fill(ADMIN);
      await page.locator('input[name="token"]').press('Enter');
      // Back on the UI, logged in: the device list, the pairing link (a POST) and the agent command load.
      await page.locator('[data-page="devices"] .lead[data-count="0"]').waitFor();
      await page.locator('#add-device [data-agent-link]').waitFor();
      assert.match(await page.locator('[data-command="agent"]').innerText(), new RegExp(`--token ${TOKEN}$`));
      await page.context().close();
    } finally {
      await guarded.close();
      await rm(adminDir, { recursive: true, force: true });
    }
  });

  it('Models: the model side by side on two devices (the browser agent and a Node agent), measured and predicted marked, the slowest layers flagged', { timeout: 120_000 }, async () => {
    // A second device: a real Node agent process on this server, tfjs-wasm only.
    const node = spawn(process.execPath, [BIN, 'agent', '--server', server.wsUrl, '--name', 'node-side', '--device-key', 'ui-node-device-0001', '--runtime', 'tfjs-wasm'], {
      env: { ...process.env, MORPHNET_AGENT_TOKEN: TOKEN },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let nodeLog = '';
    node.stdout.on('data', (d) => (nodeLog += d));
    node.stderr.on('data', (d) => (nodeLog += d));
    try {
      let nodeDevice = '';
      for (let i = 0; i < 600 && !nodeDevice; i++) {
        const devices = (await api(server, '/api/devices')).json.devices as { id: string; name: string; online: boolean }[];
        nodeDevice = devices.find((d) => d.name === 'node-side' && d.online)?.id ?? '';
        if (!nodeDevice) await new Promise((r) => setTimeout(r, 100));
      }
      assert.ok(nodeDevice, `the Node agent did not come online:\n${nodeLog}`);
      // The model's layers timed at its own widths on the Node device; not measured end to end there.
      const model = JSON.parse(JSON.stringify(smallModel()));
      const res = await fetch(`${server.url}/api/profile`, { method: 'POST', body: JSON.stringify({ deviceId: nodeDevice, runtime: 'tfjs-wasm', model, grid: { seedOnly: true }, refine: false, measure: { warmupRuns: 1, warmupMs: 0, minSamples: 3, minWindowMs: 0, maxMs: 300 } }) });
      assert.equal(res.status, 202);
      const job = (await res.json()) as { id: string };
      for (let i = 0; i < 600; i++) {
        const j = (await api(server, `/api/jobs/${job.id}`)).json;
        if (j.state === 'done') break;
        assert.ok(j.state !== 'failed' && j.state !== 'cancelled', JSON.stringify(j.error));
        await new Promise((r) => setTimeout(r, 100));
      }

      await go(`#/models/${modelId}`);
      const table = ui.locator('#compare table.compare[data-columns="2"]');
      await table.waitFor({ timeout: 30_000 }).catch(async (err: Error) => {
        throw new Error(`${err.message}\n${await ui.locator('#compare').innerText().catch(() => '')}\n${recentLog()}`);
      });
      const browserCol = table.locator(`thead th[data-device="${deviceId}"][data-runtime="tfjs-wasm"]`);
      const nodeCol = table.locator(`thead th[data-device="${nodeDevice}"][data-runtime="tfjs-wasm"]`);
      assert.equal(await browserCol.count(), 1);
      assert.equal(await nodeCol.count(), 1);
      // The total: measured end to end on the browser (the Models test did), predicted on the Node device.
      const columns = await table.locator('thead th[data-device]').evaluateAll((ths) => ths.map((th) => th.getAttribute('data-device')));
      const totals = table.locator('tr.cmp-total td');
      const sourceOf = async (device: string): Promise<string | null> => totals.nth(columns.indexOf(device)).getAttribute('data-source');
      assert.equal(await sourceOf(deviceId), 'measured');
      assert.equal(await sourceOf(nodeDevice), 'predicted');
      const networks = (await api(server, `/api/networks?deviceId=${deviceId}&runtime=tfjs-wasm`)).json.networks as { modelId: string; measuredMs: number }[];
      const own = networks.filter((n) => n.modelId === modelId).at(-1);
      assert.ok(own);
      assert.equal(Number(await totals.nth(columns.indexOf(deviceId)).getAttribute('data-total')).toFixed(6), own.measuredMs.toFixed(6));
      // Every layer timed at these widths on both devices: all cells measured; three slowest per column.
      const rows = table.locator('tbody tr[data-layer]');
      assert.equal(await rows.count(), 5);
      assert.equal(await table.locator('tbody td[data-source="measured"]').count(), 10);
      for (const i of [0, 1]) {
        const slow = await rows.evaluateAll((trs, col) => trs.filter((tr) => tr.querySelectorAll('td')[col as number]?.getAttribute('data-slow') === 'yes').length, i);
        assert.equal(slow, 3, `column ${i}: the three slowest layers are flagged`);
      }
      const api2 = await fetch(`${server.url}/api/compare`, { method: 'POST', body: JSON.stringify({ model }) });
      const cmp = (await api2.json()) as { columns: { deviceId: string; slowest: string[]; layers: ({ ms: number } | null)[] }[]; layers: string[] };
      for (const col of cmp.columns) {
        const byMs = cmp.layers.map((name, i) => ({ name, ms: col.layers[i]?.ms ?? -1 })).sort((a, b) => b.ms - a.ms);
        assert.deepEqual(col.slowest, byMs.slice(0, 3).map((x) => x.name), `${col.deviceId}: slowest`);
      }
      await shot('model-compare');
    } finally {
      node.kill('SIGTERM');
      await new Promise((r) => (node.exitCode !== null ? r(undefined) : node.once('exit', r)));
    }
  });

  it('lists the searches and fits every page on a phone screen', { timeout: 90_000 }, async () => {
    await go('#/searches');
    await ui.locator(`tr[data-search="${searchId}"][data-state="done"]`).waitFor();
    await shot('searches');
    await phoneShot('searches');
    await go('#/devices');
    await ui.locator('[data-device-id]').first().waitFor();
    await phoneShot('devices');
    await go(`#/models/${modelId}`);
    await ui.locator('#breakdown [data-chart="breakdown"]').waitFor({ timeout: 30_000 });
    await phoneShot('model');
    await go(`#/searches/${searchId}`);
    await ui.locator('[data-result="done"] [data-artifact]').first().waitFor();
    await phoneShot('search-result');
    await go(`#/tables?device=${deviceId}&runtime=tfjs-wasm`);
    await ui.locator('.table-card').first().waitFor();
    await phoneShot('tables');
    await go(`#/searches/new?model=${modelId}`);
    await ui.locator('form.search-form').waitFor();
    await phoneShot('search-form');

    assert.deepEqual(
      pageLog.filter((l) => l.startsWith('[ui]') && /uncaught|Content Security Policy|Refused/.test(l)),
      [],
      'no uncaught error and no CSP violation in the UI',
    );
  });
});
