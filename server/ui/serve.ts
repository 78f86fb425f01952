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
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import express, { type Request, type Response, type Router } from 'express';
import { isLoopbackHost } from '../auth.ts';
import { asset, bundleHandler, sendAsset, type Asset } from '../browser-bundle.ts';
import type { AgentInfo } from '../contract/access.ts';
import { AGENTS_PATH } from '../hub.ts';

export const UI_BUNDLE_PATH = '/ui/app.js';
export const UI_STYLE_PATH = '/ui/app.css';
export const UI_AGENT_INFO_PATH = '/ui/agent-info.json';

const UI_DIR = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(UI_DIR, '..', '..');

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

/** The router of the UI. Mount it on the app root, after `/api`. */
export function uiRouter(options: UiOptions): Router {
  const log = options.log ?? ((line: string) => console.error(line));
  const entry = options.entry ?? join(UI_DIR, 'main.ts');
  const router = express.Router();
  const script = bundleHandler({ root: ROOT, entry, define: { MORPHNET_UI_VERSION: JSON.stringify(options.version) }, label: 'web UI', log });
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

  router.get(UI_BUNDLE_PATH, script);

  router.get(UI_STYLE_PATH, async (req: Request, res: Response) => {
    style ??= readFile(join(UI_DIR, 'style.css')).then((b) => asset(b, 'text/css; charset=utf-8'));
    sendAsset(req, res, await style);
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
    } satisfies AgentInfo);
  });

  return router;
}
