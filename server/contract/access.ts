/**
 * The REST contract of what every call shares and of access (docs/api.md, docs/security.md): the
 * error body, the admin login, pairing links for browser agents, and the agent facts the UI's
 * "Add a device" shows. See index.ts.
 */
import { z } from 'zod';

/** Every failure under `/api` (and the JSON login's): the status is the code's (src/errors.ts). */
export interface ErrorBody {
  readonly error: {
    readonly code: string;
    readonly message: string;
    /** e.g. `field` (the request field concerned), `issues` (a schema's, by path), `limit`. */
    readonly details?: Readonly<Record<string, unknown>>;
  };
}

// ── login ─────────────────────────────────────────────────────────────────────────────────

/** `POST /login` (a form or JSON): the admin token, and where to go after. */
export const loginBodySchema = z.object({ token: z.string().min(1).max(1024), next: z.string().max(2048).optional() }).strict();

/** `POST /login` with a JSON body: the session cookie is set. */
export interface LoginResponse {
  readonly ok: true;
  readonly expiresAt: string;
}

// ── pairings ──────────────────────────────────────────────────────────────────────────────

export type PairingState = 'waiting' | 'paired' | 'expired';

/** Each of `GET /api/pairings` (the code itself is never listed). */
export interface PairingView {
  readonly id: string;
  readonly state: PairingState;
  readonly createdAt: string;
  /** Until when the code can pair a device (a paired device keeps using it after). */
  readonly expiresAt: string;
  readonly deviceId: string | null;
  readonly pairedAt: string | null;
}

/** `POST /api/pairings` (201): the one time the code and its link are shown. */
export interface PairingCreated {
  readonly id: string;
  readonly code: string;
  readonly path: string;
  readonly url: string;
  readonly expiresAt: string;
  readonly expiresInS: number;
}

export interface PairingsResponse {
  readonly pairings: readonly PairingView[];
}

export const pairingBodySchema = z.object({ expiresInS: z.number().int().min(60).max(86_400) }).partial().strict();

// ── the UI ────────────────────────────────────────────────────────────────────────────────

/** `GET /ui/agent-info.json`: what the Node agent's command line needs. */
export interface AgentInfo {
  readonly agentToken: string;
  readonly agentsPath: string;
  readonly listenHost: string;
  readonly loopbackOnly: boolean;
  readonly version: string;
}
