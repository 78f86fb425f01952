/**
 * `morphnet serve`: the daemon. Runs until SIGINT/SIGTERM, then shuts down gracefully (leases
 * released, agents told, database checkpointed).
 */
import { torchOptions } from '../torch-env.ts';
import { startTorchEngine } from '../../src/train/torch/torch-engine.ts';
import { readFile } from 'node:fs/promises';
import type { RunningServer } from '../../server/app.ts';
import type { MeasureJobView } from '../../server/contract/index.ts';
import { MorphError } from '../../src/errors.ts';
import { human } from '../format.ts';
import { isSeedName, VALID_SEEDS } from '../../src/seeds/index.ts';
import { parseFlags, numberFlag, type Command } from '../args.ts';

/** Waits for the local agent, then profiles and measures `seed` on it, logging progress. */
async function profileLocal(server: RunningServer, seed: string, log: (line: string) => void): Promise<void> {
  const { resolveModel } = await import('../../server/models.ts');
  try {
    let device;
    for (let i = 0; i < 600 && !device; i++) {
      device = (await server.fleet.devices()).find((d) => d.online && d.agents.some((a) => a.name.endsWith('(local)')));
      if (!device) await new Promise((r) => setTimeout(r, 200));
    }
    if (!device) return log(`--profile-seed: the local agent did not come online; profile ${seed} later with "morphnet profile"`);
    const model = resolveModel(seed);
    const runtime = 'tfjs-wasm';
    const profile = await server.fleet.createProfileJob({ deviceId: device.id, runtime, model });
    log(`profiling ${seed} on ${device.name} (${runtime}): job ${profile.id}, ${profile.progress.total} op timings (GET /api/jobs/${profile.id})`);
    const wait = async (id: string): Promise<string> => {
      let last = -1;
      for (;;) {
        const j = await server.fleet.job(id);
        if (!j) return 'gone';
        if (j.progress.done !== last && j.progress.done % 25 === 0) log(`  job ${id}: ${j.progress.done}/${j.progress.total}`);
        last = j.progress.done;
        if (['done', 'failed', 'cancelled'].includes(j.state)) return j.state;
        await new Promise((r) => setTimeout(r, 1000));
      }
    };
    if ((await wait(profile.id)) !== 'done') return log(`profile job ${profile.id} did not finish; GET /api/jobs/${profile.id} says why`);
    const measure = await server.fleet.createMeasureJob({ deviceId: device.id, runtime, model });
    if ((await wait(measure.id)) !== 'done') return log(`measure job ${measure.id} did not finish; GET /api/jobs/${measure.id} says why`);
    const m = ((await server.fleet.job(measure.id)) as MeasureJobView | undefined)?.result;
    log(`${seed} on ${device.name} (${runtime}): measured ${m?.medianMs.toFixed(2)} ms end to end; try: npx morphnet profile --server ${server.url} --device ${device.id} --seed ${seed}`);
  } catch (err) {
    // The server may be shutting down; nothing to clean up.
    log(`--profile-seed stopped: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/**
 * Waits for the local agent, then starts a latency-targeted search of `seed` on it through the
 * server's own API (the main job of `npm start`) and logs its phases and the result.
 */
/** Training images of the `npm start` search, per engine: sized so that it finishes in about 15 minutes here. */
export const DEMO_TRAIN_IMAGES = { torch: 20_000, tfjs: 5_000 } as const;

interface DemoNetwork {
  readonly accuracy: number;
  readonly measured: number | null;
  readonly macs: number;
  readonly verifyStop: string | null;
}
interface DemoResult {
  readonly target?: { readonly value: number };
  readonly learned?: DemoNetwork;
  readonly baseline?: DemoNetwork | null;
  readonly flopSearch?: DemoNetwork | null;
}

/** The end of the default job: the three networks at the target, and what the search gained. */
export function demoSummary(r: DemoResult | undefined): string[] {
  if (!r?.learned) return ['  result: (none)'];
  const target = r.target?.value ?? 0;
  const rows = [
    ['latency-MorphNet', r.learned],
    ['uniform multiplier', r.baseline],
    ['FLOP-MorphNet', r.flopSearch],
  ].filter((x): x is [string, DemoNetwork] => x[1] !== null && x[1] !== undefined);
  const lines = [`  result at ${target.toFixed(3)} ms (the target, measured on this device):`, '    network             accuracy  measured ms  vs target  MACs'];
  for (const [name, n] of rows) {
    const off = n.measured !== null && target > 0 ? `${((n.measured / target - 1) * 100).toFixed(1).padStart(5)}%` : '    -';
    lines.push(`    ${name.padEnd(18)}  ${`${(n.accuracy * 100).toFixed(2)}%`.padStart(8)}  ${(n.measured?.toFixed(3) ?? '-').padStart(11)}  ${off.padStart(9)}  ${human(n.macs)}${n.verifyStop ? ` (${n.verifyStop})` : ''}`);
  }
  if (r.baseline) lines.push(`  latency-MorphNet − uniform: ${((r.learned.accuracy - r.baseline.accuracy) * 100 >= 0 ? '+' : '')}${((r.learned.accuracy - r.baseline.accuracy) * 100).toFixed(2)} pt`);
  return lines;
}

async function searchLocal(server: RunningServer, seed: string, log: (line: string) => void, stopping: AbortSignal): Promise<void> {
  try {
    let device;
    for (let i = 0; i < 600 && !device; i++) {
      device = (await server.fleet.devices()).find((d) => d.online && d.agents.some((a) => a.name.endsWith('(local)')));
      if (!device) await new Promise((r) => setTimeout(r, 200));
    }
    if (!device) return log('--search-seed: the local agent did not come online; start a search later with POST /api/searches');
    // The data size that finishes in about 10 minutes (docs/benchmarks.md, "npm start"): the torch
    // engine trains ~15× faster than tfjs-wasm, so it affords three times the images.
    const torch = await startTorchEngine(torchOptions()).then(
      async (e) => {
        await e.close();
        return true;
      },
      () => false,
    );
    const trainLimit = torch ? DEMO_TRAIN_IMAGES.torch : DEMO_TRAIN_IMAGES.tfjs;
    const body = {
      seed,
      data: { dataset: 'fashion-mnist', trainLimit },
      cost: 'latency',
      deviceId: device.id,
      runtime: 'tfjs-wasm',
      target: { fraction: 0.5 },
      // 50% is our choice, not the user's: where it is below what any width reaches on this host, move it.
      clampTarget: true,
      options: { shrinkEpochs: 2, finalEpochs: 3, baseline: true },
    };
    const auth: Record<string, string> = server.adminToken !== null ? { authorization: `Bearer ${server.adminToken}` } : {};
    const res = await fetch(`${server.url}/api/searches`, { method: 'POST', headers: { 'content-type': 'application/json', ...auth }, body: JSON.stringify(body) });
    const created = (await res.json()) as { id?: string; error?: { message: string } };
    if (!res.ok || !created.id) return log(`--search-seed: the search was refused: ${created.error?.message ?? res.status}`);
    log(`search ${created.id}: ${seed} on ${device.name} (tfjs-wasm), Fashion-MNIST (${trainLimit / 1000}k images, trained with ${torch ? 'PyTorch' : 'tfjs: install python3-torch for a ~15× faster engine'}), target 50% of the seed's measured latency, with both baselines`);
    log(`  follow it: curl -N ${server.url}/api/searches/${created.id}/events  (or GET /api/searches/${created.id})`);
    let last = '';
    for (;;) {
      const view = (await (await fetch(`${server.url}/api/searches/${created.id}`, { headers: auth })).json()) as { state: string; progress?: { phase?: string }; error?: { message: string }; result?: DemoResult };
      const line = `${view.state}${view.progress?.phase ? ` (${view.progress.phase})` : ''}`;
      if (line !== last) log(`  search ${created.id}: ${line}`);
      last = line;
      if (view.state === 'done') {
        for (const line of demoSummary(view.result)) log(line);
        return log(`  artifacts: GET /api/searches/${created.id}/artifacts, or the search page at ${server.url}/`);
      }
      if (['failed', 'cancelled', 'interrupted'].includes(view.state)) return log(`  search ${created.id} ${view.state}: ${view.error?.message ?? ''}`);
      await new Promise((r) => setTimeout(r, 5000));
    }
  } catch (err) {
    // A shutdown ends the following quietly: the search's own state says where it stopped.
    if (stopping.aborted) return;
    log(`--search-seed stopped following: ${err instanceof Error ? err.message : String(err)}`);
  }
}

const USAGE = `Usage: morphnet serve [--host 127.0.0.1] [--port 8080] [--data-dir ./data] [--admin-token-file FILE] [--public-url URL] [--no-local-agent]

Starts the MorphNet Edge server: the REST API under /api (docs/api.md), the WebSocket hub for
device agents at /agents, and the SQLite store of devices, latency tables and jobs in the data
directory. A built-in local agent registers this host as a device and times ops on it.

Agents authenticate with the agent token: MORPHNET_AGENT_TOKEN if set, else the token in
DATA_DIR/agent-token, created and printed on first start.

The API and UI need the admin token when one is set (MORPHNET_ADMIN_TOKEN, or the contents of
--admin-token-file): "Authorization: Bearer <token>", or log in at /login. A --host beyond
loopback (127.0.0.0/8, ::1, localhost) refuses to start without one. See docs/security.md.

Options:
  --host HOST            interface to listen on (default 127.0.0.1)
  --port N               TCP port (default 8080; 0 picks a free one)
  --data-dir DIR         where the database and the token live (default ./data)
  --admin-token-file F   read the admin token from file F (instead of MORPHNET_ADMIN_TOKEN;
                         there is no flag taking the token itself: argv shows in ps)
  --public-url URL       the address clients use through a proxy (https://morphnet.example.org;
                         default MORPHNET_PUBLIC_URL): pairing links start with it, and when
                         it is https the login cookie is always Secure. Without it they follow
                         the request, and X-Forwarded-Proto/-Host only from a proxy on this
                         machine (a proxy in another container would get http:// links)
  --no-local-agent       do not start the built-in agent for this host
  --local-runtime R      runtime the local agent serves (repeatable; default all it can)
  --profile-seed NAME    once the local agent is up, fill its tfjs-wasm table for a built-in
                         seed (mobilenet, resnet, vgg, mobilenetv2, wideresnet) and measure it end to end
  --search-seed NAME     once the local agent is up, run a latency-targeted search of a seed on
                         it: Fashion-MNIST (10k images), 50% of the seed's measured tfjs-wasm
                         latency, with both baselines (npm start does this for mobilenet)
  --json                 print the start-up facts as one JSON line
  -h, --help             this text`;

export const serveCommand: Command = {
  name: 'serve',
  summary: 'run the server: REST API, agent hub, latency tables (SQLite)',
  usage: USAGE,
  async run(argv, io) {
    const { values } = parseFlags('serve', argv, {
      host: { type: 'string' },
      port: { type: 'string' },
      'data-dir': { type: 'string' },
      'admin-token-file': { type: 'string' },
      'public-url': { type: 'string' },
      'no-local-agent': { type: 'boolean' },
      'local-runtime': { type: 'string', multiple: true },
      'profile-seed': { type: 'string' },
      'search-seed': { type: 'string' },
      json: { type: 'boolean' },
    });
    const profileSeed = values['profile-seed'];
    if (profileSeed !== undefined && !isSeedName(profileSeed)) {
      throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `morphnet serve: --profile-seed ${JSON.stringify(profileSeed)} is not one of ${VALID_SEEDS.join(', ')}`);
    }
    if (profileSeed !== undefined && values['no-local-agent']) {
      throw new MorphError('MORPH_ERR_BAD_ARGUMENT', 'morphnet serve: --profile-seed profiles on the built-in local agent; drop --no-local-agent');
    }
    const searchSeed = values['search-seed'];
    if (searchSeed !== undefined && !isSeedName(searchSeed)) {
      throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `morphnet serve: --search-seed ${JSON.stringify(searchSeed)} is not one of ${VALID_SEEDS.join(', ')}`);
    }
    if (searchSeed !== undefined && values['no-local-agent']) {
      throw new MorphError('MORPH_ERR_BAD_ARGUMENT', 'morphnet serve: --search-seed searches on the built-in local agent; drop --no-local-agent');
    }
    const port = numberFlag('serve', 'port', values.port, (n) => Number.isInteger(n) && n >= 0 && n <= 65535, 'a port number from 0 to 65535') ?? 8080;
    const adminTokenFile = values['admin-token-file'];
    let adminToken: string | undefined;
    if (typeof adminTokenFile === 'string') {
      try {
        adminToken = (await readFile(adminTokenFile, 'utf8')).trim();
      } catch (err) {
        throw new MorphError('MORPH_ERR_CONFIG', `morphnet serve: cannot read --admin-token-file ${adminTokenFile}: ${(err as Error).message}`);
      }
      if (adminToken === '') throw new MorphError('MORPH_ERR_CONFIG', `morphnet serve: --admin-token-file ${adminTokenFile} is empty; write a secret of 16+ characters into it`);
    }
    const { startServer } = await import('../../server/app.ts');
    const log = values.json ? (line: string) => io.err(line) : (line: string) => io.out(line);
    const server = await startServer({
      host: typeof values.host === 'string' ? values.host : undefined,
      port,
      dataDir: typeof values['data-dir'] === 'string' ? values['data-dir'] : undefined,
      adminToken,
      publicUrl: typeof values['public-url'] === 'string' ? values['public-url'] : undefined,
      localAgent: !values['no-local-agent'],
      localAgentRuntimes: (values['local-runtime'] as unknown as string[] | undefined) ?? undefined,
      searches: { torch: torchOptions() },
      log,
    });
    const facts = {
      url: server.url,
      agents: server.wsUrl,
      dataDir: server.dataDir,
      tokenSource: server.tokenSource,
      adminToken: server.adminTokenSource === null ? 'none' : server.adminTokenSource === 'env' ? 'MORPHNET_ADMIN_TOKEN' : 'file',
      publicUrl: server.publicUrl,
      localAgent: server.localAgent !== null,
      recoveredItems: server.recoveredItems,
    };
    // Behind a proxy, the links to hand out are the public ones.
    const publicBase = server.publicUrl ?? server.url;
    const agentsUrl = server.publicUrl === null ? server.wsUrl : `${server.publicUrl.replace(/^http/, 'ws')}/agents`;
    if (values.json) {
      io.out(JSON.stringify({ event: 'listening', ...facts, agentToken: server.tokenSource === 'file-created' ? server.agentToken : undefined }));
    } else {
      io.out(`MorphNet Edge listening on ${server.url} (data in ${server.dataDir})`);
      if (server.publicUrl !== null) io.out(`  public address (links, cookies): ${server.publicUrl}`);
      io.out(`  agents connect to ${agentsUrl}`);
      if (server.tokenSource === 'file-created') io.out(`  agent token (new, saved in ${server.dataDir}/agent-token): ${server.agentToken}`);
      else io.out(`  agent token: from ${server.tokenSource === 'env' ? 'MORPHNET_AGENT_TOKEN' : `${server.dataDir}/agent-token`}`);
      io.out(
        server.adminToken === null
          ? '  admin token: none (API and UI open to this machine only)'
          : `  admin token: from ${server.adminTokenSource === 'env' ? 'MORPHNET_ADMIN_TOKEN' : '--admin-token-file'}; log in at ${server.url}/login or send "Authorization: Bearer <token>"`,
      );
      io.out(`  run an agent: npx morphnet agent --server ${agentsUrl} --token <token>`);
      io.out(`  browser agent (open on a phone or laptop): ${publicBase}/agent?token=${server.tokenSource === 'file-created' ? server.agentToken : '<token>'}`);
      io.out(`  or a pairing link that expires (no token on the phone): POST ${publicBase}/api/pairings`);
      if (server.recoveredItems > 0) io.out(`  ${server.recoveredItems} item(s) leased before the last stop went back to the queue`);
      io.out(server.localAgent ? '  built-in local agent: starting' : '  built-in local agent: off (--no-local-agent)');
    }
    if (typeof profileSeed === 'string') void profileLocal(server, profileSeed, log);
    const stopping = new AbortController();
    if (typeof searchSeed === 'string') void searchLocal(server, searchSeed, log, stopping.signal);
    // Exit 0 after a clean shutdown (systemd and Docker then do not restart it), 1 if it failed.
    // A second signal is not caught: it ends the process at once.
    return new Promise<number>((resolve) => {
      const stop = (signal: string): void => {
        process.off('SIGINT', onInt);
        process.off('SIGTERM', onTerm);
        log(`${signal}: shutting down`);
        stopping.abort();
        void server.close().then(
          () => resolve(0),
          (err: unknown) => {
            io.err(`shutdown: ${err instanceof Error ? err.message : String(err)}`);
            resolve(1);
          },
        );
      };
      const onInt = (): void => stop('SIGINT');
      const onTerm = (): void => stop('SIGTERM');
      process.on('SIGINT', onInt);
      process.on('SIGTERM', onTerm);
    });
  },
};
