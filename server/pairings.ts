/**
 * Pairing links: how a browser becomes a device agent without ever holding a long-lived secret.
 *
 * An admin asks for a pairing (`POST /api/pairings`, or the UI's "Add a device") and opens the
 * link it returns, `/agent?pair=CODE`, on the phone. The page says hello with the code in place
 * of the agent token. The first device that does so before the code expires (default 15 min)
 * owns it: that device may reconnect with it for as long as the server runs (until the pairing
 * is revoked), and no other device can use it. An expired, revoked or unknown code is refused
 * with close 4401 and a message that says to ask for a new link.
 *
 * Pairings live in memory: a restart forgets them (paired browsers then need a new link), and
 * only hashes of the codes are kept.
 */
import { createHash, randomBytes } from 'node:crypto';
import express, { type Router } from 'express';
import { MorphError } from '../src/errors.ts';
import { requestOrigin } from './auth.ts';
import { pairingBodySchema, type PairingCreated, type PairingsResponse, type PairingState, type PairingView } from './contract/access.ts';
import { deviceIdOf } from './fleet.ts';
import { apiErrorHandler, jsonBody, noQuery, parse, route } from './http.ts';

/** A pairing code: `pair-` + 128 random bits (base64url). */
export const PAIRING_CODE_PATTERN = /^pair-[A-Za-z0-9_-]{22}$/;
/** Default lifetime of an unused pairing code, ms. */
export const PAIRING_TTL_MS = 15 * 60_000;
/** Default number of pairings kept (waiting, paired and recently expired). */
export const MAX_PAIRINGS = 200;

export type Redemption = { ok: true; pairingId: string } | { ok: false; reason: 'unknown' | 'expired' | 'other-device'; message: string };

interface Pairing {
  readonly id: string;
  readonly codeHash: string;
  readonly createdAt: number;
  readonly expiresAt: number;
  keyHash: string | null;
  deviceId: string | null;
  pairedAt: number | null;
}

export interface PairingsOptions {
  /** Lifetime of a new code, ms. Default PAIRING_TTL_MS (15 min). */
  readonly ttlMs?: number;
  /** Pairings kept at most. Default MAX_PAIRINGS. */
  readonly maxPairings?: number;
  /** The clock, ms. Default Date.now. */
  readonly now?: () => number;
}

const hash = (s: string): string => createHash('sha256').update(s).digest('hex');
const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

export class Pairings {
  readonly #ttlMs: number;
  readonly #max: number;
  readonly #now: () => number;
  /** codeHash → pairing. */
  readonly #byCode = new Map<string, Pairing>();
  readonly #revokeListeners: ((id: string) => void)[] = [];

  constructor(options: PairingsOptions = {}) {
    this.#ttlMs = options.ttlMs ?? PAIRING_TTL_MS;
    this.#max = options.maxPairings ?? MAX_PAIRINGS;
    this.#now = options.now ?? Date.now;
  }

  get ttlMs(): number {
    return this.#ttlMs;
  }

  /**
   * Forgets unused codes that expired more than `graceMs` ago (kept until then so that a late
   * phone is told "expired" rather than "unknown"); the default grace is one lifetime.
   */
  #prune(graceMs = this.#ttlMs): void {
    const now = this.#now();
    for (const [k, p] of this.#byCode) if (p.keyHash === null && p.expiresAt + graceMs <= now) this.#byCode.delete(k);
  }

  /**
   * A new pairing code, valid for `ttlMs` (default the store's). When the store is full, unused
   * expired codes are dropped at once, without their grace.
   * @throws MorphError MORPH_ERR_QUOTA when `maxPairings` pairings are kept still.
   */
  create(ttlMs = this.#ttlMs): { id: string; code: string; expiresAt: number } {
    this.#prune(this.#byCode.size >= this.#max ? 0 : this.#ttlMs);
    if (this.#byCode.size >= this.#max) {
      throw new MorphError('MORPH_ERR_QUOTA', `${this.#byCode.size} pairings are kept already (the limit); revoke some with DELETE /api/pairings/:id or wait for unused ones to expire`, { limit: this.#max });
    }
    const code = `pair-${randomBytes(16).toString('base64url')}`;
    const now = this.#now();
    const p: Pairing = { id: `p-${randomBytes(6).toString('hex')}`, codeHash: hash(code), createdAt: now, expiresAt: now + ttlMs, keyHash: null, deviceId: null, pairedAt: null };
    this.#byCode.set(p.codeHash, p);
    return { id: p.id, code, expiresAt: p.expiresAt };
  }

  /**
   * Checks a code an agent presents with its device key. The first device to present a live
   * code owns it; that device may present it again at any time after.
   */
  redeem(code: string, deviceKey: string): Redemption {
    const p = PAIRING_CODE_PATTERN.test(code) ? this.#byCode.get(hash(code)) : undefined;
    const again = 'ask for a new pairing link (web UI: Add a device; or POST /api/pairings)';
    if (!p) return { ok: false, reason: 'unknown', message: `this pairing code is not known to the server (revoked, or the server restarted); ${again}` };
    const keyHash = hash(`pairing-key:${deviceKey}`);
    if (p.keyHash !== null) {
      return p.keyHash === keyHash ? { ok: true, pairingId: p.id } : { ok: false, reason: 'other-device', message: `this pairing link was already used by another device; ${again}` };
    }
    if (p.expiresAt <= this.#now()) return { ok: false, reason: 'expired', message: `this pairing link expired at ${iso(p.expiresAt)}; ${again}` };
    p.keyHash = keyHash;
    p.deviceId = deviceIdOf(deviceKey);
    p.pairedAt = this.#now();
    return { ok: true, pairingId: p.id };
  }

  #view(p: Pairing): PairingView {
    const state: PairingState = p.keyHash !== null ? 'paired' : p.expiresAt <= this.#now() ? 'expired' : 'waiting';
    return { id: p.id, state, createdAt: iso(p.createdAt) as string, expiresAt: iso(p.expiresAt) as string, deviceId: p.deviceId, pairedAt: iso(p.pairedAt) };
  }

  /** Every pairing kept, newest first; codes are never shown again. */
  list(): PairingView[] {
    this.#prune();
    return [...this.#byCode.values()].reverse().map((p) => this.#view(p));
  }

  /** Forgets a pairing; agents connected with it are disconnected (see `onRevoke`). */
  revoke(id: string): PairingView | undefined {
    for (const [k, p] of this.#byCode) {
      if (p.id !== id) continue;
      this.#byCode.delete(k);
      for (const fn of this.#revokeListeners) fn(id);
      return this.#view(p);
    }
    return undefined;
  }

  onRevoke(fn: (id: string) => void): void {
    this.#revokeListeners.push(fn);
  }
}

export interface PairingApiContext {
  readonly pairings: Pairings;
  /** The server's own URL, for links when the request's Host is unusable. */
  readonly fallbackOrigin: () => string;
  /** The server's public origin (`serve --public-url`); when set, links use it whatever the request says. */
  readonly publicOrigin?: string | null;
}

/** `POST /api/pairings`, `GET /api/pairings`, `DELETE /api/pairings/:id` (admin; mount under /api). */
export function pairingRouter(ctx: PairingApiContext, log: (line: string) => void): Router {
  const r = express.Router();

  r.post(
    '/pairings',
    noQuery,
    jsonBody(16 * 1024),
    route(async (req, res) => {
      const body = parse(pairingBodySchema, req.body ?? {}, 'pairing request');
      const ttlMs = body.expiresInS !== undefined ? body.expiresInS * 1000 : ctx.pairings.ttlMs;
      const p = ctx.pairings.create(ttlMs);
      const path = `/agent?pair=${p.code}`;
      // The code itself never goes to the log.
      log(`pairing ${p.id} created; its link works until ${new Date(p.expiresAt).toISOString()}`);
      res
        .status(201)
        .set('Cache-Control', 'no-store')
        .json({
          id: p.id,
          code: p.code,
          path,
          url: `${ctx.publicOrigin ?? requestOrigin(req, ctx.fallbackOrigin())}${path}`,
          expiresAt: new Date(p.expiresAt).toISOString(),
          expiresInS: Math.round(ttlMs / 1000),
        } satisfies PairingCreated);
    }),
  );

  r.get(
    '/pairings',
    noQuery,
    route(async (_req, res) => {
      res.json({ pairings: ctx.pairings.list() } satisfies PairingsResponse);
    }),
  );

  r.delete(
    '/pairings/:id',
    noQuery,
    route(async (req, res) => {
      const view = ctx.pairings.revoke(String(req.params.id));
      if (!view) throw new MorphError('MORPH_ERR_NOT_FOUND', `no pairing ${JSON.stringify(String(req.params.id).slice(0, 80))}; GET /api/pairings lists them`);
      log(`pairing ${view.id} revoked`);
      res.json({ ...view, revoked: true });
    }),
  );

  r.use(apiErrorHandler(log));
  return r;
}
