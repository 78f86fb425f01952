/**
 * Who may use the HTTP side of the daemon (docs/security.md).
 *
 * - With an **admin token** (required when the server listens beyond loopback), every request
 *   needs it, except the open paths: `/login`, `/logout`, the browser agent page `/agent` and its
 *   assets (a phone has no admin token; its WebSocket needs the agent token or a pairing code)
 *   and `/api/health` (which then says only `{ok, version}`). The token comes as
 *   `Authorization: Bearer <token>`, or once through the `/login` form, which sets a session
 *   cookie (random id, HttpOnly, SameSite=Strict, 12 h); a session is looked at first, and an
 *   `Authorization` header of another scheme (Basic, …) is ignored. Wrong bearer tokens count per
 *   address (`FailureLimiter`): past the limit, wrong ones get 429 instead of 401 until the window
 *   ends. The right token is always accepted (the address may be a shared proxy's).
 * - Without one (loopback only), requests must name a loopback Host (`localhost`, `127.0.0.1`,
 *   `[::1]`): a web page cannot reach the API by rebinding its own DNS name to 127.0.0.1.
 * - Either way, a write (not GET/HEAD/OPTIONS) that a browser marks as cross-origin (`Origin`,
 *   `Sec-Fetch-Site`) is refused unless it carries the bearer token: other sites cannot drive
 *   the API through the user's browser.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { parse as parseCookie } from 'cookie';
import express, { type CookieOptions, type NextFunction, type Request, type RequestHandler, type Response, type Router } from 'express';
import type { ErrorCode } from '../src/errors.ts';
import { loginBodySchema, type ErrorBody, type LoginResponse } from './contract/access.ts';
import { apiErrorHandler, declaredLengthLimit, errorBody, isApiPath } from './http.ts';
import type { FailureLimiter } from './rate-limit.ts';

export const SESSION_COOKIE = 'morphnet_session';
export const LOGIN_PATH = '/login';
export const LOGOUT_PATH = '/logout';
/** Shortest admin token accepted. */
export const MIN_ADMIN_TOKEN_LENGTH = 16;
/** Default session lifetime, ms. */
export const SESSION_TTL_MS = 12 * 3600_000;

/** Compares two secrets in constant time whatever their lengths (both are hashed first). */
export function sameSecret(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb);
}

const IPV4_LOOPBACK = /^127(?:\.\d{1,3}){3}$/;

/** Whether a listen address stays on this machine: `localhost`, 127.0.0.0/8, `::1`. */
export function isLoopbackHost(host: string): boolean {
  const h = host.trim().toLowerCase().replace(/^\[(.*)\]$/, '$1');
  if (h === 'localhost') return true;
  if (IPV4_LOOPBACK.test(h)) return true;
  if (h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
  const mapped = /^::ffff:(.+)$/.exec(h);
  return mapped !== null && IPV4_LOOPBACK.test(mapped[1]);
}

/**
 * Whether a name in a `Host` header means this machine to a browser: a loopback address,
 * `localhost` or a `*.localhost` name (browsers resolve those to loopback themselves, so a page
 * cannot rebind them).
 */
function isLoopbackName(name: string): boolean {
  return isLoopbackHost(name) || name.trim().toLowerCase().endsWith('.localhost');
}

/** The host name of a `Host` header value (`[::1]:8080` → `::1`, `a.b:80` → `a.b`). */
function hostnameOf(hostHeader: string): string {
  const v = hostHeader.trim();
  if (v.startsWith('[')) return v.slice(1, v.indexOf(']') > 0 ? v.indexOf(']') : undefined);
  const colon = v.lastIndexOf(':');
  return colon >= 0 && v.indexOf(':') === colon ? v.slice(0, colon) : v;
}

/** The first value of a request header (the first of a comma-separated list too). */
function firstHeader(req: IncomingMessage, name: string): string | undefined {
  const raw = req.headers[name];
  const v = Array.isArray(raw) ? raw[0] : raw;
  return v === undefined ? undefined : v.split(',')[0].trim() || undefined;
}

/** Whether the TCP peer is this machine (a local reverse proxy, the local agent, a local CLI). */
export function peerIsLoopback(req: IncomingMessage): boolean {
  const a = req.socket.remoteAddress;
  return a !== undefined && isLoopbackHost(a);
}

/**
 * The host the client asked for: `X-Forwarded-Host` when a proxy on this machine set it,
 * else `Host`. Forwarded headers from any other peer are ignored (anyone can send them).
 */
export function effectiveHost(req: IncomingMessage): string | undefined {
  const forwarded = peerIsLoopback(req) ? firstHeader(req, 'x-forwarded-host') : undefined;
  return forwarded ?? req.headers.host;
}

/** Whether the client reached us over TLS: directly, or through a proxy on this machine that says so. */
export function requestIsHttps(req: IncomingMessage): boolean {
  if ((req.socket as { encrypted?: boolean }).encrypted) return true;
  return peerIsLoopback(req) && firstHeader(req, 'x-forwarded-proto')?.toLowerCase() === 'https';
}

const HOST_HEADER = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::\d{1,5})?$/;

/** `http(s)://host[:port]` as the client sees this server, or `fallback` when the Host is odd. */
export function requestOrigin(req: IncomingMessage, fallback: string): string {
  const host = effectiveHost(req);
  if (host === undefined || !HOST_HEADER.test(host)) return fallback;
  return `${requestIsHttps(req) ? 'https' : 'http'}://${host}`;
}

/** Whether an `Origin` header value names another host than the one the client asked for. */
function originDiffers(origin: string, req: IncomingMessage): boolean {
  try {
    return new URL(origin).host.toLowerCase() !== (effectiveHost(req) ?? '').toLowerCase();
  } catch {
    return true; // "null" (sandboxed frames, file://) or garbage
  }
}

/** Whether a browser says this request comes from another origin (or site). */
function crossOrigin(req: Request): boolean {
  const site = req.get('sec-fetch-site');
  if (site === 'cross-site' || site === 'same-site') return true;
  const origin = req.get('origin');
  return origin !== undefined && originDiffers(origin, req);
}

/**
 * Whether a WebSocket upgrade comes from a page of another origin. Browsers send `Origin` on
 * every WebSocket handshake and enforce no same-origin rule there, so any site the user visits
 * could otherwise open ws://127.0.0.1:PORT/agents; the server's own agent page is same-origin,
 * and Node agents send no `Origin` at all.
 */
export function upgradeFromOtherOrigin(req: IncomingMessage): boolean {
  const origin = req.headers.origin;
  return origin !== undefined && originDiffers(origin, req);
}

/**
 * Why a WebSocket upgrade is refused, or null to let it through: a page of another origin, or,
 * on a server without an admin token, a `Host` that is not this machine. The second is the HTTP
 * guard's DNS-rebinding rule: a rebinding page is same-origin with itself, so the Origin check
 * alone lets it through.
 */
export function upgradeRefusal(req: IncomingMessage, hasAdminToken: boolean): string | null {
  if (upgradeFromOtherOrigin(req)) {
    return 'a WebSocket from a page of another origin is refused; open this server\'s own agent page (/agent), or connect without an Origin header (Node agents)';
  }
  if (hasAdminToken) return null;
  const host = req.headers.host;
  if (host !== undefined && !isLoopbackName(hostnameOf(host))) {
    return `this server has no admin token, so it answers only connections for localhost, 127.0.0.1 or [::1], not ${JSON.stringify(host.slice(0, 100))}; to serve other names set MORPHNET_ADMIN_TOKEN (docs/security.md)`;
  }
  const forwarded = peerIsLoopback(req) ? firstHeader(req, 'x-forwarded-host') : undefined;
  if (forwarded !== undefined && !isLoopbackName(hostnameOf(forwarded))) {
    return 'a proxy forwards connections for another host name to a server without an admin token; set MORPHNET_ADMIN_TOKEN before exposing it (docs/security.md)';
  }
  return null;
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** Paths anyone may reach even when an admin token is set. */
function isOpenPath(path: string): boolean {
  return path === LOGIN_PATH || path === LOGOUT_PATH || path === '/api/health' || path === '/agent' || path === '/agent/' || /^\/agent\/(?:agent\.js|assets\/[^/]+\/[^/]+)$/.test(path);
}

/** A same-site path to return to after logging in; anything else becomes `/`. */
function safeNext(next: unknown): string {
  // eslint-disable-next-line no-control-regex
  if (typeof next !== 'string' || next.length > 2048 || !next.startsWith('/') || next.startsWith('//') || /[\\\u0000-\u001f]/.test(next)) return '/';
  return next;
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const LOGIN_STYLE = `
:root{color-scheme:light dark;font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;font-size:18px;line-height:1.4}
body{margin:0 auto;max-width:26rem;padding:2rem 1rem}
h1{font-size:1.4rem}
label{display:block;font-weight:600;margin:.75rem 0 .3rem}
input{font-size:1rem;padding:.5rem;width:100%;box-sizing:border-box}
button{font-size:1.05rem;padding:.6rem 1.4rem;margin-top:1rem;border-radius:.4rem}
#message{border-radius:.5rem;padding:.75rem;background:#fde8e8;color:#7a1010;font-weight:600}
.hint{font-size:.85rem;opacity:.8}
`;
const LOGIN_CSP = [
  "default-src 'none'",
  `style-src 'sha256-${createHash('sha256').update(LOGIN_STYLE).digest('base64')}'`,
  "form-action 'self'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
].join('; ');

function loginPage(next: string, message: string | null): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<link rel="icon" href="data:,">
<title>MorphNet Edge — log in</title>
<style>${LOGIN_STYLE}</style>
</head>
<body>
<h1>MorphNet Edge</h1>
<p>This server needs its admin token.</p>
${message === null ? '' : `<p id="message" role="alert">${escapeHtml(message)}</p>\n`}<form method="post" action="${LOGIN_PATH}">
<label for="token">Admin token</label>
<input id="token" name="token" type="password" autocomplete="current-password" maxlength="1024" required autofocus>
<input type="hidden" name="next" value="${escapeHtml(next)}">
<button type="submit">Log in</button>
</form>
<p class="hint">The token is the server's MORPHNET_ADMIN_TOKEN (or the contents of its --admin-token-file). Browsers that become device agents do not need it: they open a pairing link.</p>
</body>
</html>
`;
}

export interface AdminAuthOptions {
  /** The admin token; null: none (the server then answers loopback Host names only). */
  readonly token: string | null;
  /** Counts wrong tokens per client address. */
  readonly limiter: FailureLimiter;
  /** Session cookie lifetime, ms. Default SESSION_TTL_MS (12 h). */
  readonly sessionTtlMs?: number;
  /** Sessions kept at most; the oldest is dropped. Default 1000. */
  readonly maxSessions?: number;
  /** The clock, ms. Default Date.now. */
  readonly now?: () => number;
  /** Where 5xx errors of `/login` go. Default: nowhere. */
  readonly log?: (line: string) => void;
  /** Mark the session cookie `Secure` on every request (the server's public URL is https). Default false: only over TLS. */
  readonly secureCookies?: boolean;
}

/** A session id: 32 random bytes, base64url. */
const SESSION_ID = /^[A-Za-z0-9_-]{43}$/;

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');

type Refusal = { status: number; code: ErrorCode; message: string; retryAfterS?: number };

export class AdminAuth {
  readonly #token: string | null;
  readonly #limiter: FailureLimiter;
  readonly #ttlMs: number;
  readonly #maxSessions: number;
  readonly #now: () => number;
  readonly #log: (line: string) => void;
  readonly #secureCookies: boolean;
  /** sha256(session id) → expiry, ms. Only hashes are kept, so a memory dump gives no cookie. */
  readonly #sessions = new Map<string, number>();

  constructor(options: AdminAuthOptions) {
    this.#token = options.token;
    this.#limiter = options.limiter;
    this.#ttlMs = options.sessionTtlMs ?? SESSION_TTL_MS;
    this.#maxSessions = options.maxSessions ?? 1000;
    this.#now = options.now ?? Date.now;
    this.#log = options.log ?? (() => undefined);
    this.#secureCookies = options.secureCookies ?? false;
  }

  get required(): boolean {
    return this.#token !== null;
  }

  #newSession(): { id: string; expiresAt: number } {
    const id = randomBytes(32).toString('base64url');
    const expiresAt = this.#now() + this.#ttlMs;
    if (this.#sessions.size >= this.#maxSessions) {
      for (const [k, exp] of this.#sessions) if (exp <= this.#now()) this.#sessions.delete(k);
      if (this.#sessions.size >= this.#maxSessions) this.#sessions.delete(this.#sessions.keys().next().value as string);
    }
    this.#sessions.set(sha256(id), expiresAt);
    return { id, expiresAt };
  }

  /**
   * The key of the request's session: the first `morphnet_session` cookie that names a live
   * session, or null. Every cookie of that name is tried: a browser sends several when they were
   * set for other paths or by a sibling `*.localhost` site, in an order the server cannot rely on.
   */
  #sessionOf(req: Request): string | null {
    const header = req.headers.cookie;
    if (typeof header !== 'string') return null;
    // `parse` keeps only the first cookie of a name, so each pair is parsed alone (a pair never holds ';').
    for (const pair of header.split(';')) {
      const id = parseCookie(pair)[SESSION_COOKIE];
      if (id === undefined || !SESSION_ID.test(id)) continue;
      const key = sha256(id);
      const exp = this.#sessions.get(key);
      if (exp === undefined) continue;
      if (exp <= this.#now()) {
        this.#sessions.delete(key);
        continue;
      }
      return key;
    }
    return null;
  }

  #cookieOptions(req: Request): CookieOptions {
    return { path: '/', httpOnly: true, sameSite: 'strict', secure: this.#secureCookies || requestIsHttps(req) };
  }

  /**
   * The bearer token of the request: a string ('' when the header is malformed), or null when
   * there is no `Authorization` header or it names another scheme. Other schemes are not ours to
   * judge (a proxy's own Basic auth may pass through), so they count as no token at all.
   */
  #bearer(req: Request): string | null {
    const h = req.get('authorization');
    if (h === undefined || !/^bearer(?: |$)/i.test(h)) return null;
    const m = /^Bearer[ ]+([\x21-\x7e]{1,1024})[ ]*$/i.exec(h);
    return m ? m[1] : '';
  }

  /**
   * Checks a token against the admin token; null when it is right. A wrong one counts against the
   * client's address and is answered 401, or 429 once the address is over its limit; the right
   * one is accepted whatever the count.
   */
  #checkToken(req: Request, token: string): Refusal | null {
    if (sameSecret(token, this.#token as string)) return null;
    const limited = this.#limiter.refuse(req.socket.remoteAddress ?? 'unknown');
    if (limited) return { status: 429, ...limited };
    return { status: 401, code: 'MORPH_ERR_UNAUTHORIZED', message: 'wrong admin token; send the server\'s MORPHNET_ADMIN_TOKEN as "Authorization: Bearer <token>", or log in at /login' };
  }

  #refuse(req: Request, res: Response, r: Refusal): void {
    if (r.retryAfterS !== undefined) res.set('Retry-After', String(r.retryAfterS));
    if (r.status === 401) res.set('WWW-Authenticate', 'Bearer realm="morphnet"');
    res.set('Cache-Control', 'no-store');
    // JSON for the API, and for a JSON login (docs/api.md promises `{error}` to both).
    if (isApiPath(req.path) || (req.path === LOGIN_PATH && typeof req.is('application/json') === 'string')) {
      res.status(r.status).json({ error: { code: r.code, message: r.message } } satisfies ErrorBody);
    } else if (r.status === 401 && (req.method === 'GET' || req.method === 'HEAD') && req.accepts(['html', 'json', 'text']) === 'html') {
      res.redirect(303, `${LOGIN_PATH}?next=${encodeURIComponent(safeNext(req.originalUrl))}`);
    } else {
      res.status(r.status).type('text/plain').send(`${r.message} [${r.code}]\n`);
    }
  }

  /**
   * The middleware that admits or refuses every HTTP request (mount it first). Sets
   * `res.locals.admin`: true when the request carries the admin token or a session (or no token
   * is configured), false on an open path reached without one.
   */
  guard(): RequestHandler {
    return (req: Request, res: Response, next: NextFunction) => {
      const unsafe = !SAFE_METHODS.has(req.method);
      if (this.#token === null) {
        const host = req.get('host');
        if (host !== undefined && !isLoopbackName(hostnameOf(host))) {
          return this.#refuse(req, res, {
            status: 403,
            code: 'MORPH_ERR_FORBIDDEN',
            message: `this server has no admin token, so it answers only requests for localhost, 127.0.0.1 or [::1], not ${JSON.stringify(host.slice(0, 100))}; to serve other names set MORPHNET_ADMIN_TOKEN (docs/security.md)`,
          });
        }
        const forwarded = peerIsLoopback(req) ? firstHeader(req, 'x-forwarded-host') : undefined;
        if (forwarded !== undefined && !isLoopbackName(hostnameOf(forwarded))) {
          return this.#refuse(req, res, {
            status: 403,
            code: 'MORPH_ERR_FORBIDDEN',
            message: 'a proxy forwards requests for another host name to a server without an admin token; set MORPHNET_ADMIN_TOKEN before exposing it (docs/security.md)',
          });
        }
        if (unsafe && crossOrigin(req)) return this.#refuse(req, res, { status: 403, code: 'MORPH_ERR_FORBIDDEN', message: 'cross-origin writes are refused; call the API from its own origin or a non-browser client' });
        res.locals.admin = true;
        return next();
      }
      const bearer = this.#bearer(req);
      const bearerRight = bearer !== null && sameSecret(bearer, this.#token);
      // A session first: a stray or wrong Authorization header beside it neither counts nor hides it.
      if (!bearerRight && this.#sessionOf(req) !== null) {
        if (unsafe && crossOrigin(req)) {
          return this.#refuse(req, res, { status: 403, code: 'MORPH_ERR_FORBIDDEN', message: 'a cross-origin write carrying the session cookie is refused; use the UI of this server, or send the token as a bearer' });
        }
        res.locals.admin = true;
        return next();
      }
      if (bearer !== null) {
        // The right bearer may write cross-origin: a foreign page cannot know it.
        const refused = bearerRight ? null : this.#checkToken(req, bearer);
        if (refused) return this.#refuse(req, res, refused);
        res.locals.admin = true;
        return next();
      }
      if (isOpenPath(req.path)) {
        res.locals.admin = false;
        return next();
      }
      this.#refuse(req, res, {
        status: 401,
        code: 'MORPH_ERR_UNAUTHORIZED',
        message: 'this server needs its admin token: send "Authorization: Bearer <MORPHNET_ADMIN_TOKEN>", or log in at /login for a session cookie',
      });
    };
  }

  /** `GET /login` (the form), `POST /login` (form or JSON `{token}`), `POST /logout`. */
  router(): Router {
    const r = express.Router();
    const small = [declaredLengthLimit(4096), express.urlencoded({ extended: false, limit: 4096, parameterLimit: 10 }), express.json({ limit: 4096 })];

    r.get(LOGIN_PATH, (req, res) => {
      const next = safeNext(req.query.next);
      if (this.#token === null || this.#sessionOf(req) !== null) return res.redirect(303, next);
      this.#sendPage(res, 200, next, null);
    });

    r.post(LOGIN_PATH, ...small, (req, res) => {
      const json = typeof req.is('application/json') === 'string';
      const fail = (r: Refusal): void => {
        if (r.retryAfterS !== undefined) res.set('Retry-After', String(r.retryAfterS));
        if (json) res.status(r.status).set('Cache-Control', 'no-store').json({ error: { code: r.code, message: r.message } } satisfies ErrorBody);
        else this.#sendPage(res, r.status, safeNext((req.body as { next?: unknown } | undefined)?.next), r.message);
      };
      if (this.#token === null) return fail({ status: 404, code: 'MORPH_ERR_NOT_FOUND', message: 'this server has no admin token, so there is nothing to log in to' });
      const parsed = loginBodySchema.safeParse(req.body);
      if (!parsed.success) return fail({ status: 400, code: 'MORPH_ERR_BAD_ARGUMENT', message: 'send the admin token as the form field "token" (or JSON {"token": "…"})' });
      const refused = this.#checkToken(req, parsed.data.token);
      if (refused) return fail(refused);
      const session = this.#newSession();
      res.cookie(SESSION_COOKIE, session.id, { ...this.#cookieOptions(req), maxAge: this.#ttlMs });
      res.set('Cache-Control', 'no-store');
      if (json) res.json({ ok: true, expiresAt: new Date(session.expiresAt).toISOString() } satisfies LoginResponse);
      else res.redirect(303, safeNext(parsed.data.next));
    });

    r.post(LOGOUT_PATH, (req, res) => {
      const key = this.#sessionOf(req);
      if (key !== null) this.#sessions.delete(key);
      res.clearCookie(SESSION_COOKIE, this.#cookieOptions(req));
      res.redirect(303, LOGIN_PATH);
    });

    // Bodies the small parsers refuse (too large, not JSON, bad encoding): JSON `{error}` for a
    // JSON request, like the API's; the login page with the reason for a form.
    const jsonError = apiErrorHandler(this.#log);
    r.use((err: unknown, req: Request, res: Response, next: NextFunction) => {
      if (req.path !== LOGIN_PATH && req.path !== LOGOUT_PATH) return next(err);
      if (typeof req.is('application/json') === 'string') {
        jsonError(err, req, res, next);
        return;
      }
      const { status, body } = errorBody(err);
      if (status >= 500) return next(err);
      this.#sendPage(res, status, '/', `the login request was refused: ${body.error.message}`);
    });
    return r;
  }

  #sendPage(res: Response, status: number, next: string, message: string | null): void {
    res.set('Content-Security-Policy', LOGIN_CSP);
    res.set('Cache-Control', 'no-store');
    res.set('Referrer-Policy', 'no-referrer');
    res.set('X-Content-Type-Options', 'nosniff');
    res.status(status).type('html').send(loginPage(next, message));
  }
}
