/** Rows the store tests insert: a device, a model and an op spec, each valid as the schema wants them. */
import { makeSpec, type OpSpec } from '../../../src/ops/op-spec.ts';
import type { Tx } from '../../../server/db.ts';
import { upsertDevice, type DeviceRecord } from '../../../server/store/devices.ts';
import { insertModel, type ModelRecord } from '../../../server/store/models.ts';

export function deviceRecord(id: string, more: Partial<DeviceRecord> = {}): DeviceRecord {
  return {
    id,
    keyHash: `hash-of-${id}`,
    name: `device ${id}`,
    platform: 'node',
    env: { platform: 'node', os: 'linux', arch: 'x64', cpuModel: 'fake cpu', cores: 2 },
    runtimes: [{ name: 'tfjs-wasm', version: 'fake 1.0', threads: 1, simd: true }],
    agentVersion: 'test',
    firstSeen: '2026-01-01T00:00:00.000Z',
    lastSeen: '2026-01-01T00:00:00.000Z',
    ...more,
  };
}

export function modelRecord(id: string, name = `model ${id}`): ModelRecord {
  return { id, name, topology: { class_name: 'Sequential', config: { name, layers: [] } }, createdAt: '2026-01-01T00:00:00.000Z' };
}

export function conv(cIn: number, cOut: number): OpSpec {
  return makeSpec({ kind: 'conv2d', inH: 14, inW: 14, cIn, cOut, kernel: 3 });
}

/** A device and a model, the rows most tables refer to. */
export async function seedRefs(tx: Tx, deviceId = 'd-1', modelId = 'm-1'): Promise<void> {
  await upsertDevice(tx, deviceRecord(deviceId));
  await insertModel(tx, modelRecord(modelId));
}
