/**
 * The web UI: a single-page app (preact + htm, Chart.js) served by the daemon itself, so it works
 * on a LAN with no internet:
 *
 *   GET /                   the page shell (HTML; the app draws everything else)
 *   GET /ui/app.js          `server/ui/main.ts` bundled by esbuild on the first request, kept in memory
 *   GET /ui/app.css         `server/ui/style.css`
 *   GET /ui/agent-info.json what "Add a device" needs for the Node agent's command: the agent token
 *                           (browsers get a pairing link instead, POST /api/pairings)
 *
 * Routing is in the URL fragment (`/#/searches/s-…`), so the server only ever serves `/`.
 * The bundle is built on first use rather than at start-up: most servers (and every test) never
 * open the UI, and a build costs a second or two of CPU.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import express, { type Request, type Response, type Router } from 'express';
import { isLoopbackHost } from './auth.ts';
import { AGENTS_PATH } from './hub.ts';

export const UI_BUNDLE_PATH = '/ui/app.js';
export const UI_STYLE_PATH = '/ui/app.css';
export const UI_AGENT_INFO_PATH = '/ui/agent-info.json';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const UI_DIR = join(ROOT, 'server', 'ui');

export interface UiOptions {
  /** The agent token that "Add a device" puts in the agent command and the browser-agent link. */
  readonly agentToken: string;
  /** The address the server listens on (a loopback one means phones cannot reach it; the UI says so). */
  readonly listenHost: string;
  readonly version: string;
  /** Where build failures go. Default `console.error`. */
  readonly log?: (line: string) => void;
  /** The module to bundle (tests point it elsewhere). Default `server/ui/main.ts`. */
  readonly entry?: string;
}

interface Asset {
  readonly body: Buffer;
  readonly gzipped: Buffer;
  readonly etag: string;
  readonly type: string;
}

function asset(body: Buffer, type: string): Asset {
  return { body, gzipped: gzipSync(body), etag: `W/"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`, type };
}

async function buildBundle(entry: string, version: string): Promise<Asset> {
  const { build } = await import('esbuild');
  const result = await build({
    absWorkingDir: ROOT,
    entryPoints: [entry],
    bundle: true,
    platform: 'browser',
    format: 'esm',
    target: 'es2020',
    minify: true,
    write: false,
    logLevel: 'silent',
    legalComments: 'eof',
    define: { MORPHNET_UI_VERSION: JSON.stringify(version) },
  });
  return asset(Buffer.from(result.outputFiles[0].contents), 'text/javascript; charset=utf-8');
}

function describeBuildError(err: unknown): string {
  const errors = (err as { errors?: { text: string; location?: { file: string; line: number } | null }[] }).errors;
  if (Array.isArray(errors) && errors.length > 0) {
    return errors
      .slice(0, 3)
      .map((e) => `${e.location ? `${e.location.file}:${e.location.line}: ` : ''}${e.text}`)
      .join('; ');
  }
  return err instanceof Error ? err.message : String(err);
}

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<link rel="icon" href="data:,">
<title>MorphNet Edge</title>
<link rel="stylesheet" href="${UI_STYLE_PATH}">
</head>
<body>
<div id="app"><p class="boot">Loading MorphNet Edge… If this line stays, the app's script did not load: reload the page, and see the server's log.</p></div>
<noscript><p>The MorphNet Edge UI needs JavaScript. The REST API under /api works without it (docs/api.md).</p></noscript>
<script type="module" src="${UI_BUNDLE_PATH}"></script>
</body>
</html>
`;

/**
 * Our own script and style only; fetches and the event streams back to this server; QR codes are
 * inline SVG and downloads are plain links. Chart.js draws on canvas and sets element styles
 * through the CSSOM, which `style-src 'self'` allows.
 */
const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self' data: blob:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

function send(req: Request, res: Response, a: Asset): void {
  res.set('Cache-Control', 'no-cache');
  res.set('ETag', a.etag);
  res.vary('Accept-Encoding');
  res.type(a.type);
  // Compared by hand: `req.fresh` also weighs request headers a plain revalidation does not send.
  if ((req.get('if-none-match') ?? '').split(',').some((t) => t.trim() === a.etag)) {
    res.status(304).end();
    return;
  }
  if (req.acceptsEncodings('gzip') === 'gzip') {
    res.set('Content-Encoding', 'gzip');
    res.send(a.gzipped);
  } else {
    res.send(a.body);
  }
}

/** The router of the UI. Mount it on the app root, after `/api`. */
export function uiRouter(options: UiOptions): Router {
  const log = options.log ?? ((line: string) => console.error(line));
  const entry = options.entry ?? join(UI_DIR, 'main.ts');
  const router = express.Router();
  let bundle: Promise<{ ok: true; asset: Asset } | { ok: false; message: string }> | null = null;
  let style: Promise<Asset> | null = null;

  router.use((_req, res, next) => {
    res.set('X-Content-Type-Options', 'nosniff');
    res.set('Referrer-Policy', 'no-referrer');
    next();
  });

  router.get('/', (_req: Request, res: Response) => {
    res.set('Content-Security-Policy', CSP);
    res.set('Cache-Control', 'no-store');
    res.type('html').send(PAGE);
  });

  router.get(UI_BUNDLE_PATH, async (req: Request, res: Response) => {
    bundle ??= buildBundle(entry, options.version).then(
      (a) => ({ ok: true as const, asset: a }),
      (err: unknown) => {
        const message = describeBuildError(err);
        log(`web UI: building ${entry} with esbuild failed: ${message}`);
        return { ok: false as const, message };
      },
    );
    const built = await bundle;
    if (!built.ok) {
      res
        .status(500)
        .type('text/plain')
        .send(`// The web UI could not be built: ${built.message.replace(/\n/g, ' ')}\n// The server log has the details; fix it and restart the server.\n`);
      return;
    }
    send(req, res, built.asset);
  });

  router.get(UI_STYLE_PATH, async (req: Request, res: Response) => {
    style ??= readFile(join(UI_DIR, 'style.css')).then((b) => asset(b, 'text/css; charset=utf-8'));
    send(req, res, await style);
  });

  router.get(UI_AGENT_INFO_PATH, (_req: Request, res: Response) => {
    // The agent token: behind the admin token like the rest of the UI (server/auth.ts guards
    // every path but the login and agent pages); the UI shows it only in the Node agent's command.
    res.set('Cache-Control', 'no-store');
    res.json({
      agentToken: options.agentToken,
      agentsPath: AGENTS_PATH,
      listenHost: options.listenHost,
      loopbackOnly: isLoopbackHost(options.listenHost),
      version: options.version,
    });
  });

  return router;
}
