/**
 * A browser script bundled by esbuild on its first request and kept in memory (gzipped once,
 * with an ETag), shared by the web UI (`server/ui/serve.ts`) and the browser agent page
 * (`server/agent-page.ts`). Bundling on demand keeps `npm start` free of a build step; a failed
 * build is logged once and answered with a script that says why.
 */
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import type { Plugin } from 'esbuild';
import type { Request, Response } from 'express';

/** A file served from memory. */
export interface Asset {
  readonly body: Buffer;
  /** The same, gzipped once (the agent bundle: 2.1 MB → 0.43 MB; phones on Wi-Fi load it faster). */
  readonly gzipped: Buffer;
  readonly etag: string;
  readonly type: string;
}

export function asset(body: Buffer, type: string): Asset {
  return { body, gzipped: gzipSync(body), etag: `W/"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`, type };
}

export interface BundleOptions {
  /** The repository root (esbuild's working directory). */
  readonly root: string;
  readonly entry: string;
  /** Compile-time constants, already JSON. */
  readonly define: Record<string, string>;
  readonly plugins?: Plugin[];
  /** What the bundle is, for the log line and the failure script: `web UI`, `browser agent`. */
  readonly label: string;
  readonly log: (line: string) => void;
}

type Built = { readonly ok: true; readonly asset: Asset } | { readonly ok: false; readonly message: string };

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

/**
 * Sends an asset: revalidated on each load (no-cache + ETag, so a phone never keeps a script
 * older than the server), gzipped where the client accepts it.
 */
export function sendAsset(req: Request, res: Response, a: Asset): void {
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

/** An express handler that bundles `entry` on its first request and serves the result from then on. */
export function bundleHandler(o: BundleOptions): (req: Request, res: Response) => Promise<void> {
  let built: Promise<Built> | null = null;
  const build = async (): Promise<Asset> => {
    const esbuild = await import('esbuild');
    const result = await esbuild.build({
      absWorkingDir: o.root,
      entryPoints: [o.entry],
      bundle: true,
      platform: 'browser',
      format: 'esm',
      target: 'es2020',
      minify: true,
      write: false,
      logLevel: 'silent',
      legalComments: 'eof',
      define: o.define,
      plugins: o.plugins ?? [],
    });
    return asset(Buffer.from(result.outputFiles[0].contents), 'text/javascript; charset=utf-8');
  };
  return async (req, res) => {
    built ??= build().then(
      (a): Built => ({ ok: true, asset: a }),
      (err: unknown): Built => {
        const message = describeBuildError(err);
        o.log(`${o.label}: building ${o.entry} with esbuild failed: ${message}`);
        return { ok: false, message };
      },
    );
    const b = await built;
    if (!b.ok) {
      res
        .status(500)
        .type('text/plain')
        .send(`// The ${o.label} could not be built: ${b.message.replace(/\n/g, ' ')}\n// The server log has the details; fix it and restart the server.\n`);
      return;
    }
    sendAsset(req, res, b.asset);
  };
}
