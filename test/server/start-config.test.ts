/**
 * Start-up configuration (server/start-config.ts): the public URL (`serve --public-url`,
 * `startServer({ publicUrl })`, MORPHNET_PUBLIC_URL) makes pairing links and the session cookie
 * right behind a proxy whose forwarded headers are not believed; bad values are refused before
 * anything starts. A real server on 127.0.0.1, real fetch.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { startServer, type RunningServer } from '../../server/app.ts';
import { publicOrigin, refusePlaceholderSecret } from '../../server/start-config.ts';
import { MorphError } from '../../src/errors.ts';
import { startServeChild, stopChild } from '../helpers/server-child.ts';

const AGENT_TOKEN = 'start-config-agent-token-01';
const ADMIN_TOKEN = 'start-config-admin-token-0123456789';
const dirs: string[] = [];
const servers: RunningServer[] = [];

after(async () => {
  for (const s of servers) await s.close();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function serve(options: Parameters<typeof startServer>[0] = {}): Promise<RunningServer> {
  const dir = await mkdtemp(join(tmpdir(), 'morphnet-start-config-'));
  dirs.push(dir);
  const s = await startServer({ port: 0, dataDir: dir, agentToken: AGENT_TOKEN, adminToken: ADMIN_TOKEN, localAgent: false, log: () => undefined, ...options });
  servers.push(s);
  return s;
}

const auth = { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' };

async function pairingUrl(s: RunningServer, headers: Record<string, string> = {}): Promise<string> {
  const res = await fetch(`${s.url}/api/pairings`, { method: 'POST', headers: { ...auth, ...headers }, body: '{}' });
  assert.equal(res.status, 201);
  return ((await res.json()) as { url: string }).url;
}

async function loginCookie(s: RunningServer, headers: Record<string, string> = {}): Promise<string> {
  const res = await fetch(`${s.url}/login`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ token: ADMIN_TOKEN }) });
  assert.equal(res.status, 200);
  const cookie = res.headers.get('set-cookie');
  assert.ok(cookie !== null && cookie.startsWith('morphnet_session='), String(cookie));
  return cookie;
}

function configError(pattern: RegExp): (err: unknown) => boolean {
  return (err: unknown) => {
    assert.ok(err instanceof MorphError, String(err));
    assert.equal(err.code, 'MORPH_ERR_CONFIG');
    assert.match(err.message, pattern);
    return true;
  };
}

describe('publicOrigin', () => {
  it('keeps the origin of an http(s) URL and treats empty as none', () => {
    assert.equal(publicOrigin('https://morphnet.example.org', '--public-url'), 'https://morphnet.example.org');
    assert.equal(publicOrigin(' https://Morphnet.Example.org:8443/ ', '--public-url'), 'https://morphnet.example.org:8443');
    assert.equal(publicOrigin('http://10.0.0.5:8080', '--public-url'), 'http://10.0.0.5:8080');
    assert.equal(publicOrigin('', 'MORPHNET_PUBLIC_URL'), null);
    assert.equal(publicOrigin(undefined, 'MORPHNET_PUBLIC_URL'), null);
    assert.equal(publicOrigin(null, '--public-url'), null);
  });

  it('refuses what links cannot start with, naming every problem', () => {
    assert.throws(() => publicOrigin('morphnet.example.org', '--public-url'), configError(/^--public-url "morphnet\.example\.org" is not a URL; give the address clients use/));
    assert.throws(() => publicOrigin('ftp://x.org', '--public-url'), configError(/its scheme is ftp, not https or http/));
    assert.throws(() => publicOrigin('https://u:p@x.org/morphnet?a=1', 'MORPHNET_PUBLIC_URL'), configError(/^MORPHNET_PUBLIC_URL .* is refused: it holds credentials; it has the path \/morphnet \(the server cannot live under a path prefix\); it has a query or fragment; give only the scheme and host/));
  });

  it('refusePlaceholderSecret refuses change-me values only', () => {
    assert.throws(() => refusePlaceholderSecret('change-me-admin-token-000000000000', 'admin token', 'MORPHNET_ADMIN_TOKEN'), configError(/the admin token is a placeholder from an example file \("change-me…"\), not a secret; set MORPHNET_ADMIN_TOKEN to a long random value/));
    assert.throws(() => refusePlaceholderSecret(' ChangeMe123456789012', 'agent token', 'MORPHNET_AGENT_TOKEN'), configError(/agent token/));
    refusePlaceholderSecret('please-change-me-not-a-prefix', 'agent token', 'MORPHNET_AGENT_TOKEN');
  });
});

describe('startServer({ publicUrl })', () => {
  it("without it, links follow the request's Host and the cookie lacks Secure over plain http", async () => {
    const s = await serve({ publicUrl: null });
    assert.equal(s.publicUrl, null);
    assert.match(await pairingUrl(s), new RegExp(`^http://127\\.0\\.0\\.1:${s.port}/agent\\?pair=pair-`));
    assert.doesNotMatch(await loginCookie(s), /;\s*Secure/i);
  });

  it('with an https one, pairing links start with it and the session cookie is always Secure', async () => {
    const s = await serve({ publicUrl: 'https://morphnet.example.org/' });
    assert.equal(s.publicUrl, 'https://morphnet.example.org');
    const url = await pairingUrl(s);
    assert.match(url, /^https:\/\/morphnet\.example\.org\/agent\?pair=pair-[A-Za-z0-9_-]{22}$/);
    // Whatever the request says.
    assert.match(await pairingUrl(s, { 'x-forwarded-proto': 'http', 'x-forwarded-host': 'evil.example' }), /^https:\/\/morphnet\.example\.org\/agent\?pair=/);
    assert.match(await loginCookie(s), /;\s*Secure/i);
  });

  it('defaults to MORPHNET_PUBLIC_URL; null ignores it', async (t) => {
    const before = process.env.MORPHNET_PUBLIC_URL;
    t.after(() => (before === undefined ? delete process.env.MORPHNET_PUBLIC_URL : (process.env.MORPHNET_PUBLIC_URL = before)));
    process.env.MORPHNET_PUBLIC_URL = 'https://env.example.org';
    assert.equal((await serve()).publicUrl, 'https://env.example.org');
    assert.equal((await serve({ publicUrl: null })).publicUrl, null);
    process.env.MORPHNET_PUBLIC_URL = 'https://env.example.org/sub';
    const dir = await mkdtemp(join(tmpdir(), 'morphnet-start-config-'));
    dirs.push(dir);
    await assert.rejects(startServer({ port: 0, dataDir: join(dir, 'data'), agentToken: AGENT_TOKEN, localAgent: false, log: () => undefined }), configError(/^MORPHNET_PUBLIC_URL "https:\/\/env\.example\.org\/sub" is refused/));
    assert.equal(existsSync(join(dir, 'data')), false, 'refused before the data directory is created');
  });

  it('morphnet serve --public-url reports it and prints public links', { timeout: 60_000 }, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'morphnet-start-config-'));
    dirs.push(dir);
    const child = await startServeChild({ dataDir: dir, token: AGENT_TOKEN, extra: ['--no-local-agent', '--public-url', 'https://morphnet.example.org'], env: { MORPHNET_ADMIN_TOKEN: ADMIN_TOKEN } });
    try {
      assert.equal((child.facts as { publicUrl?: string }).publicUrl, 'https://morphnet.example.org');
      const res = await fetch(`${child.url}/api/pairings`, { method: 'POST', headers: auth, body: '{}' });
      assert.match(((await res.json()) as { url: string }).url, /^https:\/\/morphnet\.example\.org\/agent\?pair=/);
    } finally {
      assert.equal((await stopChild(child, 'SIGTERM')).code, 0);
    }
  });
});
