/**
 * The deployment files in deploy/ (no Docker engine runs here, so nothing is built and what can be
 * checked without one is): the Dockerfile's stages, user, volume, health check and start command,
 * and that command run as a plain process (health 200, SIGTERM → exit 0, the health check command
 * answering both ways); the compose file parsed (strict YAML) and matched against the Dockerfile
 * and the CLI; the example environment files shipped without secrets, and the old `change-me`
 * placeholders refused; the systemd units parsed, verified by systemd-analyze where it exists,
 * and both of their ExecStart lines run with the example environment files (secrets filled in);
 * the nginx config's TLS, forwarded headers in every proxied location, WebSocket, SSE and an
 * access log without query strings. Servers bind 127.0.0.1 only.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { MAX_BODY_BYTES } from '../../server/http.ts';
import { startServer } from '../../server/app.ts';
import { LOCK_FILE } from '../../server/data-lock.ts';
import { AGENTS_PATH } from '../../server/hub.ts';
import { agentServerUrl, AGENT_TOKEN_ENV } from '../../cli/commands/agent.ts';
import { COMMANDS } from '../../cli/main.ts';
import { ERROR_CODES, MorphError } from '../../src/errors.ts';
import { parseDocument } from 'yaml';
import { freePort, killIfRunning, runCli, spawnCli, stopChild, until, type Child } from '../helpers/server-child.ts';

const ROOT = resolve(new URL('../../', import.meta.url).pathname);
const DEPLOY = join(ROOT, 'deploy');
const run = promisify(execFile);

// ── Dockerfile ───────────────────────────────────────────────────────────────────────────────

interface Instruction {
  readonly op: string;
  readonly args: string;
  readonly line: number;
}

/** Instructions with continuation lines joined and comments dropped. */
function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  let buf = '';
  let start = 0;
  text.split('\n').forEach((raw, i) => {
    const line = raw.trimEnd();
    if (buf === '' && (line.trim() === '' || line.trim().startsWith('#'))) return;
    if (buf === '') start = i + 1;
    if (line.trim().startsWith('#')) return; // a comment inside a continuation
    if (line.endsWith('\\')) {
      buf += `${line.slice(0, -1)} `;
      return;
    }
    buf += line;
    const m = /^\s*([A-Za-z]+)\s+(.*)$/s.exec(buf);
    assert.ok(m, `Dockerfile line ${start}: not an instruction: ${buf}`);
    out.push({ op: m[1].toUpperCase(), args: m[2].trim(), line: start });
    buf = '';
  });
  assert.equal(buf, '', 'the Dockerfile ends inside a continuation');
  return out;
}

/** The JSON (exec) form of CMD/ENTRYPOINT/HEALTHCHECK CMD: shell form would run through /bin/sh and not get signals. */
function execForm(args: string, what: string): string[] {
  const v = JSON.parse(args) as unknown;
  assert.ok(Array.isArray(v) && v.every((x) => typeof x === 'string'), `${what} must be in exec (JSON array) form`);
  return v as string[];
}

/** Every `--flag` in `args` must be an option of the morphnet command `args[0]`. */
function assertFlagsKnown(args: readonly string[], where: string): void {
  const command = COMMANDS.find((c) => c.name === args[0]);
  assert.ok(command, `${where}: "${args[0]}" is not a morphnet command`);
  for (const a of args.slice(1)) {
    if (!a.startsWith('--')) continue;
    assert.ok(new RegExp(`^\\s*${a.replace(/[-]/g, '\\-')}\\b`, 'm').test(command.usage), `${where}: morphnet ${command.name} has no option ${a}`);
  }
}

function flagValue(args: readonly string[], flag: string): string | undefined {
  const i = args.indexOf(flag);
  return i >= 0 ? args[i + 1] : undefined;
}

/** A node process run like the image runs it (WORKDIR = the repository root). */
function runImageCommand(argv: readonly string[], env: Record<string, string>): Child {
  assert.equal(argv[0], 'node');
  assert.equal(argv[1], 'cli/bin.js');
  return spawnCli(argv.slice(2), env);
}

async function exitCodeOf(argv: readonly string[]): Promise<number | null> {
  assert.equal(argv[0], 'node');
  const child = spawn(process.execPath, argv.slice(1), { cwd: ROOT, stdio: 'ignore' });
  return new Promise((r) => child.once('exit', (code) => r(code)));
}

// ── systemd units ────────────────────────────────────────────────────────────────────────────

type Unit = Map<string, Map<string, string[]>>;

/** Sections of key=value lines (keys may repeat; a trailing backslash continues a line). */
function parseUnit(text: string, name: string): Unit {
  const unit: Unit = new Map();
  let section: Map<string, string[]> | null = null;
  const lines = text.replace(/\\\n/g, ' ').split('\n');
  lines.forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) return;
    const header = /^\[([A-Za-z]+)\]$/.exec(line);
    if (header) {
      assert.ok(!unit.has(header[1]), `${name}: section [${header[1]}] twice`);
      section = new Map();
      unit.set(header[1], section);
      return;
    }
    const kv = /^([A-Za-z][A-Za-z0-9]*)=(.*)$/.exec(line);
    assert.ok(kv && section, `${name} line ${i + 1}: expected Key=value inside a section, got ${line}`);
    section.set(kv[1], [...(section.get(kv[1]) ?? []), kv[2].trim()]);
  });
  return unit;
}

function one(unit: Unit, section: string, key: string): string {
  const v = unit.get(section)?.get(key);
  assert.ok(v && v.length === 1, `[${section}] ${key} must be set once, got ${JSON.stringify(v)}`);
  return v[0];
}

/** KEY=value lines of an environment file (as systemd's EnvironmentFile and compose's .env read them). */
function parseEnvFile(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line);
    assert.ok(m, `not KEY=value: ${line}`);
    out[m[1]] = m[2];
  }
  return out;
}

/** Two fresh, different secrets for the example environment files, which ship empty. */
function secrets(): Record<'MORPHNET_AGENT_TOKEN' | 'MORPHNET_ADMIN_TOKEN', string> {
  return { MORPHNET_AGENT_TOKEN: randomBytes(24).toString('base64url'), MORPHNET_ADMIN_TOKEN: randomBytes(24).toString('base64url') };
}

/** systemd's ${VAR} substitution of an ExecStart (each ${VAR} stays one word), split into words. */
function execStartWords(execStart: string, env: Record<string, string>): string[] {
  return execStart.split(/\s+/).map((w) =>
    w.replace(/\$\{([A-Z_][A-Z0-9_]*)\}/g, (_, k: string) => {
      assert.ok(k in env, `ExecStart uses \${${k}}, which the environment file does not set`);
      return env[k];
    }),
  );
}

// ── the tests ────────────────────────────────────────────────────────────────────────────────

describe('deploy/Dockerfile', () => {
  const children: Child[] = [];
  const dirs: string[] = [];
  after(async () => {
    for (const c of children) killIfRunning(c);
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('is multi-stage: sqlite3 builds in a stage with build tools, a slim non-root runtime with /data as a volume', async () => {
    const ins = parseDockerfile(await readFile(join(DEPLOY, 'Dockerfile'), 'utf8'));
    const froms = ins.filter((i) => i.op === 'FROM');
    assert.ok(froms.length >= 2, 'multi-stage');
    const [build, runtime] = [froms[0], froms[froms.length - 1]];
    const buildName = /\bAS\s+(\S+)$/i.exec(build.args)?.[1];
    assert.ok(buildName, 'the build stage is named');
    assert.match(build.args, /^node:20\b/);
    assert.match(runtime.args, /^node:20-[a-z-]*slim\b/);
    const stage = (from: Instruction): Instruction[] => ins.slice(ins.indexOf(from) + 1, froms.indexOf(from) + 1 < froms.length ? ins.indexOf(froms[froms.indexOf(from) + 1]) : undefined);
    const buildRuns = stage(build).filter((i) => i.op === 'RUN').map((i) => i.args).join('\n');
    for (const tool of ['python3', 'make', 'g++']) assert.ok(buildRuns.includes(tool), `the build stage installs ${tool} for node-gyp`);
    assert.match(buildRuns, /npm ci --omit=dev/);
    assert.match(buildRuns, /require\('sqlite3'\)/, 'the build checks that the native module loads');
    const rt = stage(runtime);
    assert.ok(rt.some((i) => i.op === 'COPY' && i.args.startsWith(`--from=${buildName} `)), 'the runtime copies from the build stage');
    const user = rt.filter((i) => i.op === 'USER').map((i) => i.args);
    assert.equal(user.length, 1);
    assert.ok(!['root', '0', '0:0'].includes(user[0]), 'runs as a non-root user');
    // The sources the image needs exist here, and the ignore file keeps them in the context.
    const copied = stage(build).filter((i) => i.op === 'COPY' && !i.args.startsWith('--')).flatMap((i) => i.args.split(/\s+/).slice(0, -1));
    for (const p of ['package.json', 'package-lock.json', 'tsconfig.json', 'src', 'server', 'device-agent', 'cli']) {
      assert.ok(copied.includes(p), `the build copies ${p}`);
      assert.ok(existsSync(join(ROOT, p)), `${p} exists`);
    }
    const ignore = (await readFile(join(DEPLOY, 'Dockerfile.dockerignore'), 'utf8')).split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
    for (const p of ['**/node_modules', '.git', 'deploy/.env']) assert.ok(ignore.includes(p), `the context leaves out ${p}`);
    for (const p of copied) assert.ok(!ignore.includes(p), `the context keeps ${p}`);

    const volume = execForm(rt.find((i) => i.op === 'VOLUME')!.args, 'VOLUME');
    const entry = execForm(rt.find((i) => i.op === 'ENTRYPOINT')!.args, 'ENTRYPOINT');
    const cmd = execForm(rt.find((i) => i.op === 'CMD')!.args, 'CMD');
    assert.deepEqual(entry, ['node', 'cli/bin.js']);
    assertFlagsKnown(cmd, 'CMD');
    assert.equal(cmd[0], 'serve');
    assert.deepEqual(volume, [flagValue(cmd, '--data-dir')], 'the data directory is the volume');
    assert.equal(flagValue(cmd, '--host'), '0.0.0.0', 'reachable from outside the container');
    const port = flagValue(cmd, '--port');
    assert.equal(rt.find((i) => i.op === 'EXPOSE')?.args, port);
    const health = rt.find((i) => i.op === 'HEALTHCHECK')!;
    const probe = execForm(health.args.replace(/^(--\S+\s+)*CMD\s+/, ''), 'HEALTHCHECK CMD');
    assert.ok(probe.join(' ').includes(`http://127.0.0.1:${port}/api/health`), 'the health check asks /api/health on the served port');
  });

  it("runs its start command as a plain process: /api/health 200, the health check passes, SIGTERM exits 0", { timeout: 120_000 }, async () => {
    const ins = parseDockerfile(await readFile(join(DEPLOY, 'Dockerfile'), 'utf8'));
    const last = (op: string): string => ins.filter((i) => i.op === op).pop()!.args;
    const port = await freePort();
    const dataDir = await mkdtemp(join(tmpdir(), 'morphnet-image-data-'));
    dirs.push(dataDir);
    // The image's command with what a container maps: its volume, its port, and loopback (tests stay on 127.0.0.1).
    const sub = (a: string): string => (a === '/data' ? dataDir : a === '0.0.0.0' ? '127.0.0.1' : a === '8080' ? String(port) : a);
    const argv = [...execForm(last('ENTRYPOINT'), 'ENTRYPOINT'), ...execForm(last('CMD'), 'CMD')].map(sub);
    const probe = execForm(last('HEALTHCHECK').replace(/^(--\S+\s+)*CMD\s+/, ''), 'HEALTHCHECK CMD').map((a) => a.replace(':8080/', `:${port}/`));
    const env = { NODE_ENV: 'production', MORPHNET_AGENT_TOKEN: 'image-agent-token-0123456789', MORPHNET_ADMIN_TOKEN: 'image-admin-token-0123456789abcdef' };
    const server = runImageCommand(argv, env);
    children.push(server);
    const health = await until('/api/health to answer', async () => {
      if (server.child.exitCode !== null) throw new Error(`the server exited:\n${server.lines.join('\n')}`);
      return fetch(`http://127.0.0.1:${port}/api/health`).then((r) => (r.status === 200 ? r.json() : undefined), () => undefined);
    }, 60_000, 200);
    assert.equal(health.ok, true);
    assert.equal(await exitCodeOf(probe), 0, 'the HEALTHCHECK command passes while the server runs');
    assert.ok(existsSync(join(dataDir, 'morphnet.db')) && existsSync(join(dataDir, LOCK_FILE)), 'the database lives in the volume');
    const stopped = await stopChild(server, 'SIGTERM', 30_000);
    assert.deepEqual(stopped, { code: 0, signal: null, timedOut: false }, server.lines.slice(-10).join('\n'));
    assert.ok(server.lines.some((l) => /SIGTERM: shutting down/.test(l)));
    assert.equal(existsSync(join(dataDir, LOCK_FILE)), false);
    assert.equal(await exitCodeOf(probe), 1, 'the HEALTHCHECK command fails once the server is gone');
  });
});

describe('deploy/compose.yaml', () => {
  it("parses strictly and matches the Dockerfile and the CLI: the image's own server command, its built-in agent the host's only device", async () => {
    const text = await readFile(join(DEPLOY, 'compose.yaml'), 'utf8');
    // Strict YAML 1.2 (compose's dialect): any error or warning (duplicate keys, tabs, bad indentation) fails.
    const parsed = parseDocument(text, { uniqueKeys: true, strict: true, prettyErrors: true });
    assert.deepEqual([...parsed.errors, ...parsed.warnings].map((e) => e.message), []);
    const doc = parsed.toJS() as { services: Record<string, any>; volumes: Record<string, unknown> };
    const dockerfile = parseDockerfile(await readFile(join(DEPLOY, 'Dockerfile'), 'utf8'));
    const imageCmd = execForm(dockerfile.filter((i) => i.op === 'CMD').pop()!.args, 'CMD');
    // One service: a second agent container on this host would time ops on the CPU the built-in
    // agent times on, and would not be paused while a search trains (the built-in one is).
    assert.deepEqual(Object.keys(doc.services), ['server'], 'agents for other boards run on those boards');
    const { server } = doc.services as Record<string, any>;
    assert.equal(resolve(DEPLOY, server.build.context), ROOT, 'the build context is the repository root');
    assert.ok(existsSync(join(resolve(DEPLOY, server.build.context), server.build.dockerfile)));
    assert.deepEqual(server.command, imageCmd, "the server runs the image's own command");
    assert.ok(!server.command.includes('--no-local-agent'), 'the built-in local agent makes this host a device');
    assertFlagsKnown(server.command, 'server command');
    assert.equal(typeof server.hostname, 'string', "a fixed hostname keeps the built-in agent's device key across re-creations");
    assert.equal(server.init, true, 'an init as PID 1 forwards signals and reaps children');
    const dataDir = flagValue(server.command, '--data-dir');
    assert.deepEqual(server.volumes, [`${Object.keys(doc.volumes)[0]}:${dataDir}`], 'the data directory is a named volume');
    const port = flagValue(server.command, '--port');
    assert.deepEqual(server.ports, [`127.0.0.1:${port}:${port}`], 'published on loopback only');
    for (const k of [AGENT_TOKEN_ENV, 'MORPHNET_ADMIN_TOKEN']) assert.match(server.environment[k], new RegExp(`^\\$\\{${k}:\\?.+\\}$`), `${k} is required (unset or empty fails)`);
    assert.equal(server.environment.MORPHNET_PUBLIC_URL, '${MORPHNET_PUBLIC_URL:-}', 'the public URL is optional');
    assert.equal(server.restart, 'unless-stopped');
    assert.match(server.stop_grace_period, /^\d+s$/);
    const env = parseEnvFile(await readFile(join(DEPLOY, 'env.example'), 'utf8'));
    assert.deepEqual(Object.keys(env).sort(), ['MORPHNET_ADMIN_TOKEN', AGENT_TOKEN_ENV, 'MORPHNET_PUBLIC_URL']);
    assert.deepEqual(Object.values(env), ['', '', ''], 'no secret ships in the example: left empty, compose refuses to start');
  });
});

describe('example secrets', () => {
  const dirs: string[] = [];
  after(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('ship empty in every example environment file', async () => {
    for (const file of ['env.example', 'systemd/server.env.example', 'systemd/agent.env.example']) {
      const env = parseEnvFile(await readFile(join(DEPLOY, file), 'utf8'));
      for (const k of ['MORPHNET_AGENT_TOKEN', 'MORPHNET_ADMIN_TOKEN']) if (k in env) assert.equal(env[k], '', `${file}: ${k}`);
      assert.ok(AGENT_TOKEN_ENV in env, `${file} names the agent token`);
    }
  });

  it('are refused as the old change-me placeholders, by startServer and by morphnet serve (exit 2, which the unit does not restart)', { timeout: 60_000 }, async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'morphnet-placeholder-'));
    dirs.push(dataDir);
    const placeholder = (what: string) => (err: unknown) => {
      assert.ok(err instanceof MorphError, String(err));
      assert.equal(err.code, 'MORPH_ERR_CONFIG');
      assert.match(err.message, new RegExp(`the ${what} is a placeholder from an example file`));
      return true;
    };
    const real = secrets();
    const base = { port: 0, dataDir, localAgent: false, log: () => undefined };
    await assert.rejects(startServer({ ...base, agentToken: real.MORPHNET_AGENT_TOKEN, adminToken: 'change-me-admin-token-000000000000' }), placeholder('admin token'));
    await assert.rejects(startServer({ ...base, agentToken: 'change-me-agent-token-0000000000', adminToken: real.MORPHNET_ADMIN_TOKEN }), placeholder('agent token'));
    await assert.rejects(startServer({ ...base, agentToken: 'CHANGE_ME_please_0000', adminToken: null }), placeholder('agent token'));
    assert.equal(existsSync(join(dataDir, 'morphnet.db')), false, 'nothing was opened');
    const r = await runCli(['serve', '--port', '0', '--data-dir', dataDir, '--no-local-agent'], { MORPHNET_AGENT_TOKEN: 'change-me-agent-token-0000000000', MORPHNET_ADMIN_TOKEN: 'change-me-admin-token-000000000000' }, 30_000);
    assert.equal(r.code, ERROR_CODES.MORPH_ERR_CONFIG.exit);
    assert.match(r.stderr, /admin token is a placeholder.*\[MORPH_ERR_CONFIG\]/);
  });
});

describe('deploy/systemd', () => {
  const children: Child[] = [];
  const dirs: string[] = [];
  after(async () => {
    for (const c of children) killIfRunning(c);
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  const load = async (name: string): Promise<Unit> => parseUnit(await readFile(join(DEPLOY, 'systemd', name), 'utf8'), name);

  it('units restart on failure, read tokens from an EnvironmentFile, run the CLI as a non-root user', async () => {
    for (const name of ['morphnet-server.service', 'morphnet-agent.service']) {
      const u = await load(name);
      assert.deepEqual([...u.keys()], ['Unit', 'Service', 'Install'], name);
      assert.ok(one(u, 'Unit', 'Description').length > 0);
      assert.match(one(u, 'Unit', 'After'), /network-online\.target/);
      assert.equal(one(u, 'Service', 'Type'), 'simple');
      assert.equal(one(u, 'Service', 'Restart'), 'on-failure');
      assert.equal(one(u, 'Service', 'KillSignal'), 'SIGTERM');
      assert.ok(!['root', '0'].includes(one(u, 'Service', 'User')));
      assert.match(one(u, 'Service', 'EnvironmentFile'), /^\/etc\/morphnet\/\w+\.env$/);
      assert.equal(one(u, 'Install', 'WantedBy'), 'multi-user.target');
      const [node, bin, ...args] = one(u, 'Service', 'ExecStart').split(/\s+/);
      assert.equal(node, '/usr/bin/node');
      const root = one(u, 'Service', 'WorkingDirectory');
      assert.ok(bin.startsWith(`${root}/`) && existsSync(join(ROOT, bin.slice(root.length + 1))), `${bin} is the CLI of the checkout at ${root}`);
      assertFlagsKnown(args, `${name} ExecStart`);
    }
    const server = await load('morphnet-server.service');
    const args = one(server, 'Service', 'ExecStart').split(/\s+/).slice(2);
    assert.equal(flagValue(args, '--data-dir'), `/var/lib/${one(server, 'Service', 'StateDirectory')}`, 'the data directory is the StateDirectory');
    assert.ok(Number(one(server, 'Service', 'TimeoutStopSec')) >= 10, 'time for the graceful shutdown');
    // A refused token exits 2 (MORPH_ERR_UNAUTHORIZED), a refused configuration too
    // (MORPH_ERR_CONFIG, MORPH_ERR_DATA_DIR_IN_USE): restarting would fail the same way.
    const agent = await load('morphnet-agent.service');
    assert.equal(one(agent, 'Service', 'RestartPreventExitStatus'), String(ERROR_CODES.MORPH_ERR_UNAUTHORIZED.exit));
    assert.equal(one(server, 'Service', 'RestartPreventExitStatus'), String(ERROR_CODES.MORPH_ERR_CONFIG.exit));
    assert.equal(ERROR_CODES.MORPH_ERR_DATA_DIR_IN_USE.exit, ERROR_CODES.MORPH_ERR_CONFIG.exit);
  });

  it('pass systemd-analyze verify (where systemd is installed)', async (t) => {
    const which = await run('systemd-analyze', ['--version']).catch(() => null);
    if (!which) return t.skip('systemd-analyze is not installed');
    const dir = await mkdtemp(join(tmpdir(), 'morphnet-units-'));
    dirs.push(dir);
    const files: string[] = [];
    for (const name of ['morphnet-server.service', 'morphnet-agent.service']) {
      // The unit as installed, with node where it is on this machine.
      const text = (await readFile(join(DEPLOY, 'systemd', name), 'utf8')).replaceAll('/usr/bin/node', process.execPath);
      await writeFile(join(dir, name), text);
      files.push(join(dir, name));
    }
    const r = await run('systemd-analyze', ['verify', ...files]).then(
      (x) => ({ code: 0, stderr: x.stderr }),
      (e: { code: number; stderr: string }) => ({ code: e.code, stderr: e.stderr }),
    );
    const ours = r.stderr.split('\n').filter((l) => l.includes('morphnet-'));
    assert.deepEqual(ours, [], 'no warning about our units');
    assert.equal(r.code, 0, r.stderr);
  });

  it('run as plain processes with the example environment files: the agent joins the server; SIGTERM stops both with exit 0', { timeout: 150_000 }, async () => {
    const server = await load('morphnet-server.service');
    const agent = await load('morphnet-agent.service');
    // The examples with their empty secrets filled in, as the README says to.
    const filled = secrets();
    const serverEnv = { ...parseEnvFile(await readFile(join(DEPLOY, 'systemd', 'server.env.example'), 'utf8')), ...filled };
    const agentEnv = { ...parseEnvFile(await readFile(join(DEPLOY, 'systemd', 'agent.env.example'), 'utf8')), [AGENT_TOKEN_ENV]: filled.MORPHNET_AGENT_TOKEN };
    const port = await freePort();
    const dataDir = await mkdtemp(join(tmpdir(), 'morphnet-unit-data-'));
    dirs.push(dataDir);
    const root = one(server, 'Service', 'WorkingDirectory');
    const sub = (w: string): string => (w === String(8080) ? String(port) : w.startsWith('/var/lib/') ? dataDir : w.startsWith(`${root}/`) ? w.slice(root.length + 1) : w);
    const serverArgv = execStartWords(one(server, 'Service', 'ExecStart'), serverEnv).map(sub);
    const s = runImageCommand(['node', ...serverArgv.slice(1)], { ...serverEnv, NODE_ENV: 'production' });
    children.push(s);
    const base = `http://127.0.0.1:${port}`;
    await until('the server to listen', async () => {
      if (s.child.exitCode !== null) throw new Error(`the server exited:\n${s.lines.join('\n')}`);
      return fetch(`${base}/api/health`).then((r) => r.ok, () => false);
    }, 60_000, 200);
    // The board's agent, pointed at this server instead of the example's wss:// address.
    const env = { ...agentEnv, MORPHNET_SERVER: `ws://127.0.0.1:${port}/agents` };
    const agentArgv = execStartWords(one(agent, 'Service', 'ExecStart'), env).map(sub);
    const a = runImageCommand(['node', ...agentArgv.slice(1)], env);
    children.push(a);
    const headers = { authorization: `Bearer ${serverEnv.MORPHNET_ADMIN_TOKEN}` };
    await until('the board agent to join', async () => {
      if (a.child.exitCode !== null) throw new Error(`the agent exited:\n${a.lines.join('\n')}`);
      const r = await fetch(`${base}/api/devices`, { headers }).then((x) => x.json() as Promise<{ devices?: { agents: { name: string }[] }[] }>, () => null);
      return r?.devices?.some((d) => d.agents.some((x) => !x.name.endsWith('(local)')));
    }, 90_000, 250);
    assert.deepEqual(await stopChild(a, 'SIGTERM'), { code: 0, signal: null, timedOut: false }, a.lines.slice(-5).join('\n'));
    assert.deepEqual(await stopChild(s, 'SIGTERM'), { code: 0, signal: null, timedOut: false }, s.lines.slice(-5).join('\n'));
  });
});

/** One nginx block: its header (`server`, `location = /agents`), its own directives, and its child blocks. */
interface NginxBlock {
  readonly header: string;
  readonly directives: string[];
  readonly blocks: NginxBlock[];
}

/** The config's lines (comments dropped, one directive or brace per line, as this file is written) as a tree. */
function parseNginx(body: readonly string[]): NginxBlock {
  const root: NginxBlock = { header: '', directives: [], blocks: [] };
  const stack = [root];
  for (const l of body) {
    if (l.endsWith('{')) {
      const b: NginxBlock = { header: l.slice(0, -1).trim(), directives: [], blocks: [] };
      stack[stack.length - 1].blocks.push(b);
      stack.push(b);
    } else if (l === '}') {
      stack.pop();
      assert.ok(stack.length > 0, 'unbalanced braces');
    } else {
      stack[stack.length - 1].directives.push(l);
    }
  }
  assert.equal(stack.length, 1, 'unbalanced braces');
  return root;
}

describe('deploy/nginx/morphnet.conf', () => {
  it('terminates TLS and forwards HTTP, the agents WebSocket and the searches SSE to the loopback server', async () => {
    const text = await readFile(join(DEPLOY, 'nginx', 'morphnet.conf'), 'utf8');
    const body = text.split('\n').map((l) => l.replace(/#.*$/, '').replace(/\s+/g, ' ').trim()).filter(Boolean);
    for (const l of body) assert.ok(/[;{}]$/.test(l), `a directive must end with ; { or }: ${l}`);
    const conf = parseNginx(body);
    const block = (parent: NginxBlock, test: (b: NginxBlock) => boolean, what: string): NginxBlock => {
      const found = parent.blocks.filter(test);
      assert.equal(found.length, 1, `one ${what}`);
      return found[0];
    };
    const unit = parseUnit(await readFile(join(DEPLOY, 'systemd', 'morphnet-server.service'), 'utf8'), 'server');
    const serveArgs = one(unit, 'Service', 'ExecStart').split(/\s+/);
    const upstream = block(conf, (b) => b.header === 'upstream morphnet', 'upstream');
    assert.ok(upstream.directives.includes(`server ${flagValue(serveArgs, '--host')}:${flagValue(serveArgs, '--port')};`), 'the upstream is the server of the systemd unit');
    const plain = block(conf, (b) => b.header === 'server' && b.directives.includes('listen 80;'), 'port 80 server');
    assert.ok(plain.directives.includes('return 301 https://$host$request_uri;'), 'plain HTTP redirects to HTTPS');
    const tls = block(conf, (b) => b.header === 'server' && b.directives.includes('listen 443 ssl;'), 'TLS server');
    assert.ok(tls.directives.some((l) => /^ssl_certificate \S+;$/.test(l)) && tls.directives.some((l) => /^ssl_certificate_key \S+;$/.test(l)));
    assert.ok(tls.directives.includes('proxy_http_version 1.1;'));
    assert.ok(block(conf, (b) => b.header === 'map $http_upgrade $morphnet_connection', 'map').directives.includes('default upgrade;'));

    const agents = block(tls, (b) => b.header === `location = ${AGENTS_PATH}`, 'agents location').directives;
    assert.ok(agents.includes('proxy_set_header Upgrade $http_upgrade;'));
    assert.ok(agents.includes('proxy_set_header Connection $morphnet_connection;'));
    const seconds = (ds: readonly string[]): number => {
      const m = ds.map((l) => /^proxy_read_timeout (\d+)(s|h);$/.exec(l)).find(Boolean);
      assert.ok(m, 'a proxy_read_timeout');
      return Number(m[1]) * (m[2] === 'h' ? 3600 : 1);
    };
    assert.ok(seconds(agents) > 15 * 2, 'longer than two server pings (15 s)');
    const regexOf = (b: NginxBlock): RegExp | null => (/^location ~ (\S+)$/.exec(b.header) ? new RegExp(/^location ~ (\S+)$/.exec(b.header)![1]) : null);
    const sse = block(tls, (b) => regexOf(b)?.test('/api/searches/s-0123456789ab/events') === true, 'SSE location');
    assert.ok(!regexOf(sse)!.test('/api/searches/s-0123456789ab/artifacts'));
    assert.ok(sse.directives.includes('proxy_buffering off;'));
    assert.ok(seconds(sse.directives) > 15 * 2, 'longer than two SSE heartbeats (15 s)');
    const maxBody = /client_max_body_size (\d+)m;/.exec(text);
    assert.ok(maxBody && Number(maxBody[1]) * 2 ** 20 >= MAX_BODY_BYTES, 'uploads up to the server limit pass');
  });

  it('sends Host and X-Forwarded-For/-Proto/-Host from every proxied location', async () => {
    const text = await readFile(join(DEPLOY, 'nginx', 'morphnet.conf'), 'utf8');
    const conf = parseNginx(text.split('\n').map((l) => l.replace(/#.*$/, '').replace(/\s+/g, ' ').trim()).filter(Boolean));
    const want = ['proxy_set_header Host $http_host;', 'proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;', 'proxy_set_header X-Forwarded-Proto $scheme;', 'proxy_set_header X-Forwarded-Host $http_host;'];
    const setsHeaders = (ds: readonly string[]): string[] => ds.filter((l) => l.startsWith('proxy_set_header '));
    let proxied = 0;
    // nginx inherits proxy_set_header into a block only when the block sets none of its own.
    const walk = (b: NginxBlock, inherited: readonly string[]): void => {
      const own = setsHeaders(b.directives);
      const effective = own.length > 0 ? own : inherited;
      if (b.directives.some((l) => l.startsWith('proxy_pass '))) {
        proxied++;
        for (const h of want) assert.ok(effective.includes(h), `${b.header} does not send "${h}"${own.length > 0 ? ' (it sets proxy_set_header itself, so the server-level ones do not apply)' : ''}`);
      }
      for (const child of b.blocks) walk(child, effective);
    };
    walk(conf, []);
    assert.ok(proxied >= 4, `${proxied} proxied locations`);
  });

  it('keeps query strings (agent tokens, pairing codes) out of its logs', async () => {
    const text = await readFile(join(DEPLOY, 'nginx', 'morphnet.conf'), 'utf8');
    const conf = parseNginx(text.split('\n').map((l) => l.replace(/#.*$/, '').replace(/\s+/g, ' ').trim()).filter(Boolean));
    const format = conf.directives.find((l) => l.startsWith('log_format '));
    assert.ok(format, 'a log_format of its own (the default "combined" logs $request, query included)');
    const name = format.split(' ')[1];
    // $request is the request line with its query; $request_method/_time/_length are harmless.
    const leaks = format.match(/\$(?:request(?![_a-z])|request_uri|args|query_string|arg_\w+|is_args|http_referer)/g);
    assert.equal(leaks, null, `the log format must not log ${leaks?.join(', ')}`);
    assert.ok(format.includes('$uri'), 'it logs the path');
    const servers = conf.blocks.filter((b) => b.header === 'server');
    assert.equal(servers.length, 2);
    for (const srv of servers) {
      const log = srv.directives.find((l) => l.startsWith('access_log '));
      assert.ok(log && (log === 'access_log off;' || log.endsWith(` ${name};`)), `every server logs with ${name} (or not at all): ${log}`);
      for (const loc of srv.blocks) {
        for (const l of loc.directives.filter((d) => d.startsWith('access_log '))) assert.ok(l === 'access_log off;' || l.endsWith(` ${name};`), `${loc.header}: ${l}`);
      }
    }
    // nginx's error log quotes the whole request line of a request that fails upstream.
    const tls = servers.find((b) => b.directives.includes('listen 443 ssl;'))!;
    const page = tls.blocks.find((b) => /^location ~ (\S+)$/.test(b.header) && new RegExp(/^location ~ (\S+)$/.exec(b.header)![1]).test('/agent'));
    assert.ok(page, 'a location of its own for the agent page');
    assert.ok(new RegExp(/^location ~ (\S+)$/.exec(page.header)![1]).test('/agent/'));
    assert.ok(page.directives.some((l) => /^error_log \S+ crit;$/.test(l)), 'the agent page logs only critical errors');
  });
});
