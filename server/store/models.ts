/**
 * The `models` table (model topologies the jobs and searches refer to, by content id; one row
 * per id, never changed) and `model_uploads` (the facts of the models `POST /api/models` stored).
 * Functions over a `Tx`, as every module of `server/store/` (see devices.ts).
 */
import type { ModelInfo } from '../contract/models.ts';
import type { Tx } from '../db.ts';

export interface ModelRecord {
  /** `m-` + 16 hex digits of the config's hash (server/models.ts `modelIdOf`). */
  readonly id: string;
  readonly name: string;
  /** The model config (Keras JSON) as it was resolved. */
  readonly topology: unknown;
  readonly createdAt: string;
}

interface UploadRow {
  id: string;
  name: string;
  layers: number;
  params: number;
  macs: number;
  input_shape_json: string;
  outputs: number | null;
  uploaded_at: string;
}

function uploadFromRow(r: UploadRow): ModelInfo {
  return { id: r.id, name: r.name, layers: r.layers, params: r.params, macs: r.macs, inputShape: JSON.parse(r.input_shape_json) as (number | null)[], outputs: r.outputs, uploadedAt: r.uploaded_at };
}

/** Stores the model unless its id is stored already (the same id is the same config). Returns whether it inserted. */
export async function insertModel(tx: Tx, m: ModelRecord): Promise<boolean> {
  const r = await tx.run('INSERT OR IGNORE INTO models (id, name, topology_json, created_at) VALUES (?, ?, ?, ?)', [m.id, m.name, JSON.stringify(m.topology), m.createdAt]);
  return r.changes > 0;
}

export async function findModel(q: Tx, id: string): Promise<ModelRecord | undefined> {
  const row = await q.get<{ id: string; name: string; topology_json: string; created_at: string }>('SELECT * FROM models WHERE id = ?', [id]);
  return row ? { id: row.id, name: row.name, topology: JSON.parse(row.topology_json), createdAt: row.created_at } : undefined;
}

/** The model's name alone (its topology is not read). */
export async function modelName(q: Tx, id: string): Promise<string | undefined> {
  return (await q.get<{ name: string }>('SELECT name FROM models WHERE id = ?', [id]))?.name;
}

/** Records an upload's facts (GET /api/models shows them as stored); its topology must be in `models` already (`insertModel`). */
export async function insertUpload(tx: Tx, u: ModelInfo): Promise<void> {
  await tx.run('INSERT INTO model_uploads (id, name, layers, params, macs, input_shape_json, outputs, uploaded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)', [
    u.id,
    u.name,
    u.layers,
    u.params,
    u.macs,
    JSON.stringify(u.inputShape),
    u.outputs,
    u.uploadedAt,
  ]);
}

export async function findUpload(q: Tx, id: string): Promise<ModelInfo | undefined> {
  const row = await q.get<UploadRow>('SELECT * FROM model_uploads WHERE id = ?', [id]);
  return row ? uploadFromRow(row) : undefined;
}

/** The newest uploads first. */
export async function listUploads(q: Tx, limit: number): Promise<ModelInfo[]> {
  return (await q.all<UploadRow>('SELECT * FROM model_uploads ORDER BY uploaded_at DESC, id LIMIT ?', [limit])).map(uploadFromRow);
}

export async function countUploads(q: Tx): Promise<number> {
  return (await q.get<{ n: number }>('SELECT COUNT(*) AS n FROM model_uploads'))?.n ?? 0;
}
