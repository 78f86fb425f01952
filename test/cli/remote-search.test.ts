/**
 * `morphnet search --server URL` as users run it: the real bin against a real server on
 * 127.0.0.1 (in this process), a tiny uploaded model, synthetic data, 1 + 1 epochs. The search
 * runs on the server; the command follows its event stream, prints progress and the summary,
 * downloads the artifacts; refusals exit 2 with the reason; Ctrl-C leaves the search running.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startServer, type RunningServer } from '../../server/app.ts';
import { tinyTopology } from '../train/tiny-model.ts';

const BIN = new URL('../../cli/bin.js', import.meta.url).pathname;
const TOKEN = 'remote-search-test-token';
/** 1 + 1 epochs of 3 steps: a search takes seconds. */
const QUICK = ['--data', 'synthetic:h=12,w=12,c=1,classes=3,noise=0.2', '--train-limit', '96', '--test-limit', '32', '--shrink-epochs', '1', '--final-epochs', '1', '--strength', '20', '--target', '0.5x', '--batch-size', '32', '--divisor', '2', '--backend', 'wasm', '--seed-value', '1'];
const RUN_MS = 120_000;

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs the bin; `onStderr` sees the stderr so far (and may signal the child). Killed after `timeoutMs`. */
function morphnet(args: string[], opts: { timeoutMs?: number; onStderr?: (text: string, child: ReturnType<typeof spawn>) => void } = {}): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      opts.onStderr?.(stderr, child);
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? RUN_MS);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

describe('morphnet search --server', () => {
  let dir: string;
  let server: RunningServer;
  let modelPath: string;

  const searches = async (): Promise<{ id: string; state: string }[]> => ((await (await fetch(`${server.url}/api/searches`)).json()) as { searches: { id: string; state: string }[] }).searches;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'morphnet-remote-search-'));
    server = await startServer({ port: 0, dataDir: join(dir, 'server'), agentToken: TOKEN, localAgent: false, log: () => undefined });
    modelPath = join(dir, 'tiny.json');
    await writeFile(modelPath, JSON.stringify({ format: 'layers-model', modelTopology: tinyTopology([12, 12, 1], 3) }));
  });
  after(async () => {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('runs the search on the server, prints progress and the summary, downloads every artifact', { timeout: RUN_MS + 10_000 }, async () => {
    const out = join(dir, 'out');
    const r = await morphnet(['search', '--server', server.url, modelPath, ...QUICK, '--baseline', '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    // Progress on stderr, as the offline command words it.
    assert.match(r.stderr, /^search s-[0-9a-f]{12} (queued|preparing) on http:\/\/127\.0\.0\.1:\d+( \(.*\))?; target \S+ FLOPs$/m);
    assert.match(r.stderr, /; data synthetic:h=12,w=12,c=1,classes=3.*: \d+ train, \d+ val, 32 test$/m);
    assert.match(r.stderr, /^» round 1: shrinking with λ = /m);
    assert.match(r.stderr, /^ {2}round 1 epoch 1: \d+ channels alive, cost /m);
    assert.match(r.stderr, /^» round 1: alive structure costs .* ω = /m);
    assert.match(r.stderr, /^final epoch 1\/1 loss /m);
    assert.match(r.stderr, /^baseline epoch 1\/1 loss /m);
    assert.match(r.stderr, /^» final test accuracy \d+\.\d\d%$/m);
    // The summary on stdout.
    const [search] = await searches();
    assert.equal(search.state, 'done');
    assert.match(r.stdout, new RegExp(`^search ${search.id} done in [\\d.]+s on ${server.url.replace(/\./g, '\\.')}: tiny, `, 'm'));
    assert.match(r.stdout, /^target: \S+ FLOPs \(50\.0% of the seed\)$/m);
    assert.match(r.stdout, /^network +MACs +params +FLOPs +accuracy/m);
    for (const row of ['seed', 'morphnet', 'uniform baseline']) assert.match(r.stdout, new RegExp(`^${row} `, 'm'));
    assert.match(r.stdout, /^learned widths: .*predictions 3$/m);
    // Every artifact the server lists, byte for byte.
    const listed = ((await (await fetch(`${server.url}/api/searches/${search.id}/artifacts`)).json()) as { artifacts: { name: string }[] }).artifacts.map((a) => a.name);
    assert.deepEqual((await readdir(out)).sort(), [...listed].sort());
    for (const name of ['structure.json', 'report.json', 'model.json', 'weights.bin', 'model.zip', 'model.tflite', 'baseline-structure.json', 'baseline.tflite', 'baseline.zip']) assert.ok(listed.includes(name), name);
    const report = JSON.parse(await readFile(join(out, 'report.json'), 'utf8'));
    assert.deepEqual(JSON.parse(await readFile(join(out, 'structure.json'), 'utf8')), report.learned.structure);
    assert.equal(report.options.seed, 1);
    assert.equal(report.options.shrinkEpochs, 1);
    assert.ok(report.baseline, 'the baseline was trained');
    const served = new Uint8Array(await (await fetch(`${server.url}/api/searches/${search.id}/artifacts/weights.bin`)).arrayBuffer());
    assert.deepEqual(new Uint8Array(await readFile(join(out, 'weights.bin'))), served);
    assert.match(r.stdout, new RegExp(`^wrote ${out.replace(/[.]/g, '\\.')}/structure\\.json, `, 'm'));

    // The same DIR again is refused before anything is sent.
    const again = await morphnet(['search', '--server', server.url, modelPath, ...QUICK, '--out', out]);
    assert.equal(again.code, 2, again.stderr);
    assert.match(again.stderr, /exists and is not empty.*--overwrite.*MORPH_ERR_OUTPUT_EXISTS/);
    assert.equal((await searches()).length, 1);
  });

  it('with --json prints one JSON object per line: created, every event, end, the search', { timeout: RUN_MS + 10_000 }, async () => {
    const r = await morphnet(['search', '--server', server.url, modelPath, ...QUICK, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { type: string; seq?: number | null; data: any });
    assert.equal(lines[0].type, 'created');
    assert.match(lines[0].data.id, /^s-[0-9a-f]{12}$/);
    const types = new Set(lines.map((l) => l.type));
    for (const t of ['state', 'ready', 'groups', 'phase', 'shrink-epoch', 'epoch', 'evaluated', 'export', 'end']) assert.ok(types.has(t), `a ${t} line; got ${[...types].join(', ')}`);
    assert.deepEqual(lines.find((l) => l.type === 'end')?.data, { state: 'done' });
    const last = lines[lines.length - 1];
    assert.equal(last.type, 'search');
    assert.equal(last.data.id, lines[0].data.id);
    assert.equal(last.data.state, 'done');
    assert.equal(last.data.result.baseline, null);
    assert.ok(last.data.result.learned.accuracy >= 0);
  });

  it('refuses an unknown device with the server\'s message, exit 2, nothing created', { timeout: RUN_MS }, async () => {
    const before = (await searches()).length;
    const r = await morphnet(['search', '--server', server.url, modelPath, ...QUICK, '--device', 'no-such-device']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /no device "no-such-device"; GET \/api\/devices lists the known devices.*; devices known on http:\/\/127\.0\.0\.1:\d+: none.*\[MORPH_ERR_NOT_FOUND\]/s);
    assert.equal((await searches()).length, before);
  });

  it('refuses a local dataset path: the server cannot read this machine\'s files', { timeout: RUN_MS }, async () => {
    const before = (await searches()).length;
    const r = await morphnet(['search', '--server', server.url, '--seed', 'mobilenet', '--data', '/some/local/path']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--data "\/some\/local\/path" is a path on this machine, and the server at .* cannot read this machine's files.*\[MORPH_ERR_BAD_ARGUMENT\]/);
    assert.equal((await searches()).length, before);
  });

  it('refuses the server-only flags without --server', { timeout: RUN_MS }, async () => {
    const r = await morphnet(['search', '--device', 'd-1', '--out', join(dir, 'never')]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--device needs --server URL/);
    assert.equal(existsSync(join(dir, 'never')), false);
  });

  it('exits 2 with the reason when the search is cancelled on the server', { timeout: RUN_MS + 10_000 }, async () => {
    const cancels: Promise<Response>[] = [];
    const r = await morphnet(['search', '--server', server.url, modelPath, ...QUICK], {
      onStderr(text) {
        const id = /^search (s-[0-9a-f]{12}) /m.exec(text)?.[1];
        if (id && cancels.length === 0) cancels.push(fetch(`${server.url}/api/searches/${id}`, { method: 'DELETE' }));
      },
    });
    assert.equal(cancels.length, 1, r.stderr);
    assert.equal((await cancels[0]).status, 200);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /search s-[0-9a-f]{12} cancelled: cancelled by DELETE \/api\/searches\/:id; run it again with POST .*\/resume \[MORPH_ERR_JOB_FAILED\]/);
  });

  it('on Ctrl-C stops following, says how to cancel, exits 130; the search keeps running', { timeout: RUN_MS + 10_000 }, async () => {
    let sent = false;
    const r = await morphnet(['search', '--server', server.url, modelPath, ...QUICK], {
      onStderr(text, child) {
        if (!sent && /^search s-[0-9a-f]{12} /m.test(text)) {
          sent = true;
          child.kill('SIGINT');
        }
      },
    });
    assert.equal(r.code, 130, r.stderr);
    const id = /^search (s-[0-9a-f]{12}) /m.exec(r.stderr)?.[1];
    assert.ok(id, r.stderr);
    assert.match(r.stderr, new RegExp(`search ${id} keeps running on ${server.url.replace(/\./g, '\\.')}`));
    assert.match(r.stderr, new RegExp(`curl -X DELETE ${server.url.replace(/\./g, '\\.')}/api/searches/${id}`));
    const view = (await (await fetch(`${server.url}/api/searches/${id}`)).json()) as { state: string };
    assert.notEqual(view.state, 'cancelled');
    // Clean up as the message says, and wait (bounded) until it has ended.
    await fetch(`${server.url}/api/searches/${id}`, { method: 'DELETE' });
    const end = Date.now() + 30_000;
    let state = '';
    while (Date.now() < end) {
      state = ((await (await fetch(`${server.url}/api/searches/${id}`)).json()) as { state: string }).state;
      if (['cancelled', 'done'].includes(state)) break;
      await new Promise((res) => setTimeout(res, 100));
    }
    assert.ok(['cancelled', 'done'].includes(state), state);
  });
});

// An --out directory that is a file is refused like the offline command's (checked before the POST).
describe('morphnet search --server output checks', () => {
  it('refuses an --out that is a file', { timeout: RUN_MS }, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'morphnet-remote-out-'));
    try {
      await mkdir(join(dir, 'x'));
      await writeFile(join(dir, 'x', 'f'), 'x');
      const r = await morphnet(['search', '--server', 'http://127.0.0.1:9', '--seed', 'mobilenet', '--out', join(dir, 'x', 'f')]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /is an existing file, not a directory.*MORPH_ERR_OUTPUT_EXISTS/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
