/**
 * The `devices` table: one row per physical device (agents on one machine share its device key).
 *
 * Like every module of `server/store/`, a set of functions over a `Tx`: the `Db` itself, or the
 * transaction `db.write` hands its body, so a caller can join several of them in one transaction.
 * Rows go in and come out typed, in camelCase, with their JSON columns parsed.
 */
import type { AgentEnv, RuntimeInfo } from '../../src/protocol/agent-protocol.ts';
import type { Tx } from '../db.ts';

export interface DeviceRecord {
  readonly id: string;
  /** A hash of the device key (the key itself is never stored). */
  readonly keyHash: string;
  readonly name: string;
  readonly platform: string;
  /** The environment the last agent of the device reported. */
  readonly env: AgentEnv;
  /** Every runtime the device's agents have reported: the newest report per runtime. */
  readonly runtimes: readonly RuntimeInfo[];
  readonly agentVersion: string;
  readonly firstSeen: string;
  readonly lastSeen: string;
}

interface DeviceRow {
  id: string;
  key_hash: string;
  name: string;
  platform: string;
  env_json: string;
  runtimes_json: string;
  agent_version: string;
  first_seen: string;
  last_seen: string;
}

function fromRow(r: DeviceRow): DeviceRecord {
  return {
    id: r.id,
    keyHash: r.key_hash,
    name: r.name,
    platform: r.platform,
    env: JSON.parse(r.env_json) as AgentEnv,
    runtimes: JSON.parse(r.runtimes_json) as RuntimeInfo[],
    agentVersion: r.agent_version,
    firstSeen: r.first_seen,
    lastSeen: r.last_seen,
  };
}

export async function findDevice(q: Tx, id: string): Promise<DeviceRecord | undefined> {
  const row = await q.get<DeviceRow>('SELECT * FROM devices WHERE id = ?', [id]);
  return row ? fromRow(row) : undefined;
}

/** Every device, the first seen first. */
export async function listDevices(q: Tx): Promise<DeviceRecord[]> {
  return (await q.all<DeviceRow>('SELECT * FROM devices ORDER BY first_seen')).map(fromRow);
}

/** Inserts the device, or updates all of it but its id, key hash and first sighting. */
export async function upsertDevice(tx: Tx, d: DeviceRecord): Promise<void> {
  await tx.run(
    `INSERT INTO devices (id, key_hash, name, platform, env_json, runtimes_json, agent_version, first_seen, last_seen)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
     ON CONFLICT (id) DO UPDATE SET name = excluded.name, platform = excluded.platform, env_json = excluded.env_json,
       runtimes_json = excluded.runtimes_json, agent_version = excluded.agent_version, last_seen = excluded.last_seen`,
    [d.id, d.keyHash, d.name, d.platform, JSON.stringify(d.env), JSON.stringify(d.runtimes), d.agentVersion, d.firstSeen, d.lastSeen],
  );
}

/** Records that the device was seen at `at` (its last agent disconnected then). */
export async function touchDevice(tx: Tx, id: string, at: string): Promise<void> {
  await tx.run('UPDATE devices SET last_seen = ? WHERE id = ?', [at, id]);
}
