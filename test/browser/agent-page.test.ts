/**
 * The browser agent page in real headless Chromium (Debian's `chromium`, driven by
 * `playwright-core`) against a real server on 127.0.0.1: a wrong token is refused and creates no
 * device, a missing token says what to open, and with the right token the page becomes a device
 * that serves tfjs-wasm, tflite (and tfjs-webgl where SwiftShader gives WebGL), profiles a tiny
 * model's ops and measures the whole network on each, with positive timings stored.
 *
 * Chromium is required, not optional: without /usr/bin/chromium this test fails and says how to
 * install it (`.ci/run` does).
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import express from 'express';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { agentPageRouter } from '../../server/agent-page.ts';
import { startServer, type RunningServer } from '../../server/app.ts';
import { tinyTopology } from '../train/tiny-model.ts';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];
const TOKEN = 'browser-agent-token-4321';
/**
 * Quick protocol options, with a few ms of warm-up rather than a single run: the protocol sizes its
 * timing loop from the later half of the warm-up runs, which with one run is the first, compiling
 * one (≥ 1 ms); the loop is then 1 run, and on the browser's 0.1 ms clock (the page is not
 * cross-origin isolated) a 20 µs op times as 0 ms, which the protocol refuses (the item fails and
 * is retried). 5 ms of warm-up gives an estimate from hundreds of runs, even on a busy machine.
 */
const QUICK = { warmupRuns: 2, warmupMs: 5, minSamples: 3, minWindowMs: 0, maxMs: 1000 };
const OUTPUT_DIR = fileURLToPath(new URL('../../test-output/', import.meta.url));

async function api(server: RunningServer, method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(`${server.url}${path}`, { method, headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: res.status, json: await res.json() };
}

async function until<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs: number, detail?: () => string): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail ? `\n${detail()}` : ''}`);
    await new Promise((r) => setTimeout(r, 150));
  }
}

function jobDone(server: RunningServer, id: string): () => Promise<any> {
  return () => api(server, 'GET', `/api/jobs/${id}`).then((r) => (['done', 'failed', 'cancelled'].includes(r.json.state) ? r.json : undefined));
}

describe('browser agent page in headless Chromium', { timeout: 300_000 }, () => {
  let dir: string;
  let server: RunningServer;
  let browser: Browser | undefined;
  const contexts: BrowserContext[] = [];
  /** Console errors and uncaught exceptions of every page, for failure messages. */
  const pageLog: string[] = [];

  async function openPage(path: string): Promise<Page> {
    assert.ok(browser, 'the browser did not start');
    const context = await browser.newContext();
    contexts.push(context);
    const page = await context.newPage();
    page.setDefaultTimeout(60_000);
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') pageLog.push(`[${path}] console.${m.type()}: ${m.text()}`);
    });
    page.on('pageerror', (e) => pageLog.push(`[${path}] uncaught: ${e.message}`));
    await page.goto(`${server.url}${path}`, { timeout: 30_000 });
    return page;
  }

  const recentLog = (): string => `page log:\n${pageLog.slice(-20).join('\n') || '(empty)'}`;

  before(async () => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(`Chromium is not installed at ${CHROMIUM}: the browser agent test needs it. Install it with \`apt-get install -y chromium\` (Debian; .ci/run does this).`);
    }
    dir = await mkdtemp(join(tmpdir(), 'morphnet-browser-'));
    server = await startServer({ port: 0, dataDir: dir, agentToken: TOKEN, localAgent: false, log: () => {} });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 60_000 });
  });

  after(async () => {
    for (const c of contexts) await c.close().catch(() => undefined);
    await browser?.close().catch(() => undefined);
    await server?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('serves the page, the bundle and only allow-listed wasm assets', { timeout: 120_000 }, async () => {
    const page = await fetch(`${server.url}/agent?token=x`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /text\/html/);
    assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'none'/);
    const html = await page.text();
    assert.match(html, /name="viewport"/);
    assert.doesNotMatch(html, /https?:\/\//, 'the page must not load anything from another origin');

    const js = await fetch(`${server.url}/agent/agent.js`);
    assert.equal(js.status, 200, await js.clone().text().then((t) => t.slice(0, 500)));
    assert.match(js.headers.get('content-type') ?? '', /javascript/);
    assert.ok((await js.arrayBuffer()).byteLength > 100_000);

    for (const path of ['/agent/assets/tfjs-wasm/tfjs-backend-wasm-simd.wasm', '/agent/assets/tflite/tflite_web_api_cc_simd.wasm']) {
      const res = await fetch(`${server.url}${path}`);
      assert.equal(res.status, 200, path);
      assert.equal(res.headers.get('content-type'), 'application/wasm', path);
      assert.deepEqual([...new Uint8Array(await res.arrayBuffer()).subarray(0, 4)], [0, 0x61, 0x73, 0x6d], `${path} is not wasm`);
    }
    for (const path of ['/agent/assets/tflite/..%2Fpackage.json', '/agent/assets/tflite/%2E%2E%2Fdist%2Findex.js', '/agent/assets/tfjs-wasm/index.js', '/agent/assets/tflite/tflite_web_api_cc_simd_threaded.js']) {
      const res = await fetch(`${server.url}${path}`);
      assert.equal(res.status, 404, path);
      await res.arrayBuffer();
    }
  });

  it('answers 500 with the reason, and logs it once, when the bundle cannot be built', { timeout: 60_000 }, async () => {
    const lines: string[] = [];
    const app = express().use(agentPageRouter({ entry: join(dir, 'no-such-agent.ts'), log: (l) => lines.push(l) }));
    const http = await new Promise<import('node:http').Server>((resolve) => {
      const s = app.listen(0, '127.0.0.1', () => resolve(s));
    });
    try {
      const base = `http://127.0.0.1:${(http.address() as import('node:net').AddressInfo).port}`;
      for (let i = 0; i < 2; i++) {
        const res = await fetch(`${base}/agent/agent.js`);
        assert.equal(res.status, 500);
        assert.match(await res.text(), /could not be built: .*no-such-agent\.ts/);
      }
      assert.equal(lines.length, 1);
      assert.match(lines[0], /esbuild failed/);
    } finally {
      await new Promise((r) => http.close(r));
    }
  });

  it('says what to open when the link has no token', { timeout: 60_000 }, async () => {
    const page = await openPage('/agent');
    const message = page.locator('#message[data-kind="no-token"]');
    await message.waitFor({ state: 'visible', timeout: 30_000 });
    assert.match(await message.innerText(), /agent link/);
    assert.equal((await api(server, 'GET', '/api/devices')).json.devices.length, 0);
  });

  it('shows the unauthorized message for a wrong token and creates no device', { timeout: 90_000 }, async () => {
    const page = await openPage('/agent?token=not-the-right-token');
    const message = page.locator('#message[data-kind="unauthorized"]');
    await message.waitFor({ state: 'visible', timeout: 60_000 }).catch((err: Error) => {
      throw new Error(`${err.message}\n${recentLog()}`);
    });
    assert.match(await message.innerText(), /refused/);
    assert.equal(await page.locator('#toggle').innerText(), 'Start');
    assert.equal((await api(server, 'GET', '/api/devices')).json.devices.length, 0);
    await page.context().close();
  });

  it('joins as a browser device, profiles and measures a tiny model on each runtime', { timeout: 240_000 }, async () => {
    const page = await openPage(`/agent?token=${TOKEN}`);
    const device = await until(
      'a browser device online with tfjs-wasm and tflite',
      async () => {
        const { json } = await api(server, 'GET', '/api/devices');
        return json.devices.find((d: any) => d.platform === 'browser' && d.online && ['tfjs-wasm', 'tflite'].every((r) => d.runtimes.some((x: any) => x.name === r)));
      },
      90_000,
      recentLog,
    );
    assert.equal(device.env.platform, 'browser');
    assert.equal(device.env.cpuModel, 'unknown (browser)');
    assert.ok(device.env.cores >= 1);
    const runtimes: string[] = device.runtimes.map((r: { name: string }) => r.name);
    const webgl = device.runtimes.find((r: { name: string }) => r.name === 'tfjs-webgl');
    await page.locator('body[data-connection="connected"]').waitFor({ timeout: 30_000 });
    assert.equal(await page.locator('#device-id').innerText(), device.id);
    // The token left the address bar (it is kept in sessionStorage for reloads, below).
    assert.equal(new URL(page.url()).search, '', `the address still holds the token: ${page.url()}`);
    assert.equal(new URL(page.url()).pathname, '/agent');
    for (const name of runtimes) assert.equal(await page.locator(`#runtimes li[data-runtime="${name}"]`).getAttribute('data-available'), 'true', name);

    const model = tinyTopology();
    const timings: Record<string, { ops: number; opMedianMs: number[]; networkMs: number }> = {};
    // webgl runs on SwiftShader (a CPU) here: slow but real, so it is measured too when present.
    for (const runtime of ['tfjs-wasm', 'tflite', ...(webgl ? ['tfjs-webgl'] : [])]) {
      const profile = await api(server, 'POST', '/api/profile', { deviceId: device.id, runtime, model, grid: { maxPerAxis: 2 }, refine: false, measure: QUICK });
      assert.equal(profile.status, 202, JSON.stringify(profile.json));
      const pjob = await until(`the ${runtime} profile job`, jobDone(server, profile.json.id), 120_000, recentLog);
      assert.equal(pjob.state, 'done', `${runtime} profile: ${JSON.stringify(pjob.error ?? pjob.progress)}\n${recentLog()}`);
      assert.ok(pjob.progress.total > 0);
      assert.equal(pjob.progress.done, pjob.progress.total);

      const tables = (await api(server, 'GET', `/api/tables?deviceId=${device.id}&runtime=${runtime}`)).json.tables as { points: { medianMs: number }[] }[];
      const points = tables.flatMap((t) => t.points);
      assert.equal(points.length, pjob.progress.total, runtime);
      assert.ok(points.every((p) => Number.isFinite(p.medianMs) && p.medianMs > 0), `${runtime}: every stored timing is positive`);

      const measured = await api(server, 'POST', '/api/measure', { deviceId: device.id, runtime, model, measure: QUICK });
      assert.equal(measured.status, 202, JSON.stringify(measured.json));
      const mjob = await until(`the ${runtime} measure job`, jobDone(server, measured.json.id), 60_000, recentLog);
      assert.equal(mjob.state, 'done', `${runtime} measure: ${JSON.stringify(mjob.error ?? mjob.progress)}\n${recentLog()}`);
      assert.ok(mjob.result.medianMs > 0);
      // Interleaved with a reference (the closed loop's measurement): the browser agent sends the ratio.
      const paired = await api(server, 'POST', '/api/measure', { deviceId: device.id, runtime, model, reference: model, measure: QUICK });
      const pairedJob = await until(`the ${runtime} paired measure job`, jobDone(server, paired.json.id), 60_000, recentLog);
      assert.equal(pairedJob.state, 'done', `${runtime} paired measure: ${JSON.stringify(pairedJob.error ?? pairedJob.progress)}\n${recentLog()}`);
      assert.ok(pairedJob.result.reference && pairedJob.result.reference.ratio > 0 && pairedJob.result.reference.rounds >= 1, JSON.stringify(pairedJob.result));
      timings[runtime] = { ops: points.length, opMedianMs: points.map((p) => Number(p.medianMs.toFixed(4))), networkMs: mjob.result.medianMs };
    }

    // The page shows what it did.
    await until('the page to count the items', async () => Number(await page.locator('#items-done').innerText()) > 0, 10_000);
    assert.equal(await page.locator('#items-failed').innerText(), '0', `items failed on the page; last error: ${await page.locator('#last-error').innerText()}\n${await page.locator('#log').innerText()}`);
    await mkdir(OUTPUT_DIR, { recursive: true });
    await page.screenshot({ path: join(OUTPUT_DIR, 'agent-page.png'), fullPage: true });
    await page.setViewportSize({ width: 390, height: 844 });
    await page.screenshot({ path: join(OUTPUT_DIR, 'agent-page-phone.png'), fullPage: true });
    console.log(JSON.stringify({ device: device.name, runtimes: device.runtimes, timings }));

    // Stop takes the device offline; Start and a reload come back as the same device (the key is
    // kept in localStorage, the token in sessionStorage), with no second device created.
    const online = async (want: boolean): Promise<boolean> => (await api(server, 'GET', `/api/devices/${device.id}`)).json.online === want;
    await page.locator('#toggle').click();
    await page.locator('body[data-connection="stopped"]').waitFor({ timeout: 15_000 });
    await until('the device to go offline after Stop', () => online(false), 15_000);
    assert.equal(await page.locator('#toggle').innerText(), 'Start');
    await page.locator('#toggle').click();
    await page.locator('body[data-connection="connected"]').waitFor({ timeout: 30_000 });
    await until('the device to come back after Start', () => online(true), 15_000);
    await page.reload();
    await page.locator('body[data-connection="connected"]').waitFor({ timeout: 60_000 });
    assert.equal(await page.locator('#device-id').innerText(), device.id);
    assert.equal(new URL(page.url()).search, '', 'a reload finds the token without the address');
    const devices = (await api(server, 'GET', '/api/devices')).json.devices as { id: string }[];
    assert.deepEqual(devices.map((d) => d.id), [device.id]);

    assert.deepEqual(
      pageLog.filter((l) => /uncaught|Content Security Policy/.test(l)),
      [],
      'no uncaught error and no CSP violation on the page',
    );
  });
});
