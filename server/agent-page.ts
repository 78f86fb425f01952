/**
 * The browser agent page: `GET /agent?token=…` turns any phone or laptop browser on the network
 * into a device agent. Everything it needs comes from this server (no CDN, no external fonts), so
 * it works on a LAN without internet:
 *
 *   GET /agent                      the page (small, self-contained HTML + CSS)
 *   GET /agent/agent.js             `device-agent/browser/main.ts` bundled by esbuild on the first
 *                                   request and kept in memory (a failed build answers 500)
 *   GET /agent/assets/tfjs-wasm/F   the tfjs wasm backend's `.wasm` files
 *   GET /agent/assets/tflite/F      the TFLite runtime's emscripten `.js` + `.wasm` files
 *
 * Assets come from a fixed allow-list of file names, resolved once from the installed packages;
 * no path is ever built from the request.
 *
 * Cross-origin isolation: not sent, on purpose. COOP/COEP would give SharedArrayBuffer and so the
 * threaded wasm builds, but only in a secure context (HTTPS or localhost): a phone opening
 * http://192.168.1.10:8080/agent would still get the non-threaded build while a laptop on
 * localhost got threads, and the two would time different things. Without isolation every
 * browser takes the non-threaded path (the agent also forces it), so only those files are served.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Plugin } from 'esbuild';
import express, { type Request, type Response, type Router } from 'express';
import { bundleHandler } from './browser-bundle.ts';

export const AGENT_PAGE_PATH = '/agent';
export const AGENT_BUNDLE_PATH = '/agent/agent.js';

const require = createRequire(import.meta.url);
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const ENTRY = join(ROOT, 'device-agent', 'browser', 'main.ts');

/** The non-threaded files each runtime's loader asks for (plain and SIMD builds). */
const ASSET_FILES = {
  'tfjs-wasm': { pkg: '@tensorflow/tfjs-backend-wasm', dir: 'dist', files: ['tfjs-backend-wasm.wasm', 'tfjs-backend-wasm-simd.wasm'] },
  tflite: { pkg: '@tensorflow/tfjs-tflite', dir: 'wasm', files: ['tflite_web_api_cc.js', 'tflite_web_api_cc.wasm', 'tflite_web_api_cc_simd.js', 'tflite_web_api_cc_simd.wasm'] },
} as const;

const CONTENT_TYPES: Record<string, string> = { '.wasm': 'application/wasm', '.js': 'text/javascript; charset=utf-8' };

export interface AgentPageOptions {
  /** Where build failures go. Default `console.error`. */
  readonly log?: (line: string) => void;
  /** The module to bundle as `/agent/agent.js`. Default `device-agent/browser/main.ts` (tests point it elsewhere). */
  readonly entry?: string;
}

function packageDir(pkg: string): string | null {
  try {
    return dirname(require.resolve(`${pkg}/package.json`));
  } catch {
    return null;
  }
}

/** The `version` of a package (by name) or of a `package.json` (by absolute path). */
function packageVersion(pkgOrPath: string): string {
  try {
    return (require(pkgOrPath.endsWith('package.json') ? pkgOrPath : `${pkgOrPath}/package.json`) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/** Allowed URL name → absolute file, for every asset that exists on disk. */
function assetTable(group: keyof typeof ASSET_FILES): Map<string, string> {
  const spec = ASSET_FILES[group];
  const dir = packageDir(spec.pkg);
  const table = new Map<string, string>();
  if (dir === null) return table;
  for (const file of spec.files) {
    const path = join(dir, spec.dir, file);
    if (existsSync(path)) table.set(file, path);
  }
  return table;
}

// ───────────────────────────── the bundle ─────────────────────────────

/**
 * `@tensorflow/tfjs-tflite`'s `module` entry imports a file its package does not ship
 * (`./tflite_web_api_client`), so the bundle takes its flat ES module build instead.
 */
function tfliteFesmPlugin(): Plugin {
  const tfliteDir = packageDir('@tensorflow/tfjs-tflite');
  return {
    name: 'tfjs-tflite-fesm',
    setup(b) {
      b.onResolve({ filter: /^@tensorflow\/tfjs-tflite$/ }, () => {
        if (tfliteDir === null) return { errors: [{ text: '@tensorflow/tfjs-tflite is not installed; run npm install' }] };
        return { path: join(tfliteDir, 'dist', 'tf-tflite.fesm.js') };
      });
    },
  };
}

// ───────────────────────────── the page ─────────────────────────────

const STYLE = `
:root{color-scheme:light dark;font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;font-size:18px;line-height:1.4}
body{margin:0 auto;max-width:40rem;padding:1rem}
h1{font-size:1.4rem;margin:0 0 .75rem}
h2{font-size:1.05rem;margin:1.25rem 0 .4rem}
section{border:1px solid #8884;border-radius:.5rem;padding:.75rem;margin:.75rem 0}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.3rem .75rem;margin:0}
dt{font-weight:600}dd{margin:0;overflow-wrap:anywhere}
#message{border-radius:.5rem;padding:.9rem;margin:.75rem 0;font-weight:600;background:#fde8e8;color:#7a1010}
#message[data-kind=info]{background:#e8f0fd;color:#103a7a}
#connection[data-state=connected]{color:#16803c;font-weight:700}
#connection[data-state=disconnected],#connection[data-state=stopped]{color:#b45309;font-weight:700}
ul,ol{padding-left:1.2rem;margin:.25rem 0}
li{margin:.3rem 0}.detail{font-size:.85rem;opacity:.8;overflow-wrap:anywhere}
li[data-available=false] strong{opacity:.6}
progress{width:100%;height:1.2rem}
button{font-size:1.05rem;padding:.6rem 1.4rem;border-radius:.4rem;min-height:2.75rem}
input{font-size:1rem;padding:.45rem;width:100%;box-sizing:border-box}
.row{display:flex;gap:.5rem;align-items:center}
#log{font-family:ui-monospace,monospace;font-size:.8rem;max-height:16rem;overflow:auto;list-style:none;padding:0}
section>h2:first-child{margin-top:0}
.hint{font-size:.85rem;opacity:.8}
`;

/** The CSP hash of the inline style: no other inline code runs on the page. */
const STYLE_HASH = `sha256-${createHash('sha256').update(STYLE).digest('base64')}`;

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<link rel="icon" href="data:,">
<title>MorphNet Edge — device agent</title>
<style>${STYLE}</style>
</head>
<body data-connection="idle">
<h1>MorphNet Edge device agent</h1>
<div id="message" role="alert" hidden></div>
<p id="boot" class="hint">Loading the agent… If this line stays, its script did not load: reload the page, and see the server's log.</p>
<section>
<dl>
<dt>Connection</dt><dd id="connection">loading…</dd>
<dt>Device</dt><dd id="device-id">–</dd>
<dt>This browser</dt><dd id="env">–</dd>
</dl>
<h2>Name</h2>
<div class="row"><input id="device-name" maxlength="100" aria-label="Device name" disabled><button id="save-name" type="button" disabled>Save</button></div>
</section>
<section>
<h2>Current lease</h2>
<div id="lease">none</div>
<progress id="lease-progress" value="0" max="1" hidden></progress>
<dl>
<dt>Items done</dt><dd id="items-done">0</dd>
<dt>Items failed</dt><dd id="items-failed">0</dd>
<dt>Last error</dt><dd id="last-error">none</dd>
</dl>
<p><button id="toggle" type="button" data-action="stop" disabled>Stop</button></p>
<p class="hint">Keep this tab open and in front while it measures: browsers slow down background tabs, and a sleeping phone stops.</p>
</section>
<section>
<h2>Runtimes</h2>
<ul id="runtimes"><li>loading…</li></ul>
</section>
<section>
<h2>Log</h2>
<ul id="log"></ul>
</section>
<noscript><p id="noscript">This page needs JavaScript to measure.</p></noscript>
<script type="module" src="${AGENT_BUNDLE_PATH}"></script>
</body>
</html>
`;

/**
 * The page's policy: our own scripts only (the TFLite loader adds a same-origin `<script>`), the
 * WebSocket back to this host, the hashed inline style. `'unsafe-eval'` because the TFLite
 * runtime's emscripten glue (embind) builds its bindings with `new Function`; it also covers wasm
 * compilation. No inline script and no other origin can run.
 */
const CSP = [
  "default-src 'none'",
  "script-src 'self' 'unsafe-eval'",
  "connect-src 'self' ws: wss:",
  `style-src '${STYLE_HASH}'`,
  "img-src 'self' data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

function setCommonHeaders(res: Response): void {
  res.set('X-Content-Type-Options', 'nosniff');
  // The page URL carries the agent token: never send it on as a referrer.
  res.set('Referrer-Policy', 'no-referrer');
}

/**
 * The router of the agent page and its assets. Mount it on the app root.
 * The bundle is built once, on the first request for it, and kept (a failure too: it is logged
 * once and every request answers 500 until the server restarts).
 */
export function agentPageRouter(options: AgentPageOptions = {}): Router {
  const log = options.log ?? ((line: string) => console.error(line));
  const entry = options.entry ?? ENTRY;
  const router = express.Router();
  const assets = { 'tfjs-wasm': assetTable('tfjs-wasm'), tflite: assetTable('tflite') };
  const script = bundleHandler({
    root: ROOT,
    entry,
    define: { MORPHNET_BUILD: JSON.stringify({ agentVersion: packageVersion(join(ROOT, 'package.json')), tfliteVersion: packageVersion('@tensorflow/tfjs-tflite') }) },
    plugins: [tfliteFesmPlugin()],
    label: 'browser agent',
    log,
  });

  router.get(AGENT_PAGE_PATH, (_req: Request, res: Response) => {
    setCommonHeaders(res);
    res.set('Content-Security-Policy', CSP);
    res.set('Cache-Control', 'no-store');
    res.type('html').send(PAGE);
  });

  router.get(AGENT_BUNDLE_PATH, (req: Request, res: Response) => {
    setCommonHeaders(res);
    return script(req, res);
  });

  for (const group of Object.keys(assets) as (keyof typeof assets)[]) {
    router.get(`/agent/assets/${group}/:file`, (req: Request, res: Response) => {
      const path = assets[group].get(String(req.params.file));
      setCommonHeaders(res);
      if (path === undefined) {
        const known = [...assets[group].keys()];
        res
          .status(404)
          .type('text/plain')
          .send(known.length > 0 ? `not an agent asset; ${group} serves ${known.join(', ')}` : `no ${group} assets: ${ASSET_FILES[group].pkg} is not installed here; run npm install`);
        return;
      }
      const type = CONTENT_TYPES[path.slice(path.lastIndexOf('.'))] ?? 'application/octet-stream';
      res.sendFile(path, { headers: { 'Content-Type': type, 'Cache-Control': 'no-cache' }, dotfiles: 'deny' });
    });
  }

  return router;
}
