/**
 * An agent that disconnects while the fleet is writing its new lease: its disconnect finds no
 * lease to release yet, so the fleet itself must put the items back (found by the faults test,
 * whose lease stayed out, and its device busy, until the lease expired).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Db, type Tx } from '../../server/db.ts';
import { Fleet, type AgentSession } from '../../server/fleet.ts';
import { resolveModel } from '../../server/models.ts';
import { MIGRATIONS } from '../../server/schema.ts';
import { PROTOCOL_VERSION, type HelloMessage, type ServerMessage } from '../../src/protocol/agent-protocol.ts';
import { seedModel } from '../../src/seeds/index.ts';

function hello(): HelloMessage {
  return {
    v: PROTOCOL_VERSION,
    type: 'hello',
    token: 'unused-by-the-fleet',
    deviceKey: 'lease-race-device-0001',
    name: 'racing agent',
    agentVersion: 'test',
    env: { platform: 'node', os: 'linux', arch: 'x64', cpuModel: 'fake cpu', cores: 2 },
    runtimes: [{ name: 'tfjs-wasm', version: 'fake 1.0' }],
  } as HelloMessage;
}

describe('a lease written while its agent disconnects', () => {
  let dir = '';
  let db: Db | null = null;
  after(async () => {
    await db?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('goes straight back to the queue, and the next agent of the device gets it', async () => {
    dir = await mkdtemp(join(tmpdir(), 'morphnet-lease-race-'));
    const real = await Db.open(join(dir, 'morphnet.db'), MIGRATIONS);
    db = real;
    let first: AgentSession | null = null;
    let raced = 0;
    let fleet: Fleet | null = null;
    // The database as the fleet sees it: the first write that leases items lets the agent
    // disconnect before the fleet goes on.
    const racing = new Proxy(real, {
      get(target, prop) {
        if (prop === 'write') {
          return async <T>(body: (tx: Tx) => Promise<T>): Promise<T> => {
            let leases = false;
            const result = await target.write((tx) =>
              body(new Proxy(tx, {
                get(t, p) {
                  const v = Reflect.get(t, p, t);
                  if (p !== 'run' || typeof v !== 'function') return typeof v === 'function' ? v.bind(t) : v;
                  return (sql: string, params?: unknown[]) => {
                    if (sql.includes("SET state = 'leased'")) leases = true;
                    return v.call(t, sql, params);
                  };
                },
              })),
            );
            if (leases && first && raced === 0) {
              raced++;
              await fleet!.disconnect(first.agentId);
            }
            return result;
          };
        }
        const v = Reflect.get(target, prop, target);
        return typeof v === 'function' ? v.bind(target) : v;
      },
    });
    fleet = new Fleet(racing as Db, { leaseItems: 4 });
    const sentToFirst: ServerMessage[] = [];
    first = await fleet.connect(hello(), { send: (m) => sentToFirst.push(m) });
    const model = resolveModel(seedModel('mobilenet'));
    const job = await fleet.createMeasureJob({ deviceId: first.deviceId, runtime: 'tfjs-wasm', model });

    // Polls `probe`; the 30 s only bound the wait (SQLite writes on a busy machine).
    const until = async (what: string, probe: () => Promise<boolean> | boolean): Promise<void> => {
      const end = Date.now() + 30_000;
      while (!(await probe())) {
        if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 10));
      }
    };
    await until('the race', () => raced === 1);
    await until('the item back in the queue', async () => (await real.get<{ state: string }>('SELECT state FROM job_items WHERE job_id = ?', [job.id]))?.state === 'pending');
    assert.equal(sentToFirst.filter((m) => m.type === 'work').length, 0, 'no work went to the agent that left');

    // The device is not left busy: an agent that comes back is given the item at once.
    const sentToSecond: ServerMessage[] = [];
    await fleet.connect(hello(), { send: (m) => sentToSecond.push(m) });
    await until('work for the agent that came back', () => sentToSecond.some((m) => m.type === 'work'));
    await fleet.close();
  });
});
