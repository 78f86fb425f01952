/**
 * Models uploaded through `POST /api/models`, stored by content hash: the topology goes to the
 * `models` table that jobs and searches share (one row per id), and the upload's facts (layers,
 * params, MACs, shapes) to `model_uploads`. Uploading the same model twice gives the same id.
 */
import { MorphError } from '../src/errors.ts';
import { networkCost } from '../src/cost/counts.ts';
import type { Graph } from '../src/graph/graph.ts';
import type { Db } from './db.ts';
import type { ResolvedModel } from './models.ts';

/** Most models `POST /api/models` keeps. */
export const MAX_MODEL_UPLOADS = 1000;

export interface ModelInfo {
  readonly id: string;
  readonly name: string;
  readonly layers: number;
  readonly params: number;
  readonly macs: number;
  /** Input shape without the batch dimension, e.g. [28, 28, 1]. */
  readonly inputShape: readonly (number | null)[];
  /** Units of the (first) output, e.g. the number of classes. */
  readonly outputs: number | null;
  readonly uploadedAt: string;
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

/** The shape of the graph's first input and the width of its first output (batch dimension dropped). */
export function modelShapes(graph: Graph): { inputShape: (number | null)[]; outputs: number | null } {
  const shapeOf = (layer: string): readonly (number | null)[] | undefined => graph.layers.find((l) => l.name === layer)?.calls[0]?.outputShape;
  const input = shapeOf(graph.inputs[0].layer) ?? [];
  const output = shapeOf(graph.outputs[0].layer) ?? [];
  return { inputShape: input.slice(1), outputs: output.length > 0 ? (output[output.length - 1] ?? null) : null };
}

function info(r: UploadRow): ModelInfo {
  return { id: r.id, name: r.name, layers: r.layers, params: r.params, macs: r.macs, inputShape: JSON.parse(r.input_shape_json), outputs: r.outputs, uploadedAt: r.uploaded_at };
}

export class ModelStore {
  readonly #db: Db;

  constructor(db: Db) {
    this.#db = db;
  }

  /**
   * Stores an uploaded model (a no-op when its id is stored already).
   * @throws MorphError MORPH_ERR_QUOTA when MAX_MODEL_UPLOADS models are stored.
   */
  async put(model: ResolvedModel): Promise<{ model: ModelInfo; created: boolean }> {
    const cost = networkCost(model.graph);
    const shapes = modelShapes(model.graph);
    const now = new Date().toISOString();
    const created = await this.#db.write(async (tx) => {
      if (await tx.get('SELECT id FROM model_uploads WHERE id = ?', [model.id])) return false;
      const n = (await tx.get<{ n: number }>('SELECT COUNT(*) AS n FROM model_uploads'))?.n ?? 0;
      if (n >= MAX_MODEL_UPLOADS) throw new MorphError('MORPH_ERR_QUOTA', `the server already stores ${n} uploaded models (the limit); reuse one by its modelId`, { limit: MAX_MODEL_UPLOADS });
      await tx.run('INSERT OR IGNORE INTO models (id, name, topology_json, created_at) VALUES (?, ?, ?, ?)', [model.id, model.name, JSON.stringify(model.modelConfig), now]);
      await tx.run('INSERT INTO model_uploads (id, name, layers, params, macs, input_shape_json, outputs, uploaded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)', [
        model.id,
        model.name,
        model.graph.layers.length,
        cost.params,
        cost.macs,
        JSON.stringify(shapes.inputShape),
        shapes.outputs,
        now,
      ]);
      return true;
    });
    return { model: (await this.get(model.id))!, created };
  }

  async get(id: string): Promise<ModelInfo | undefined> {
    const row = await this.#db.get<UploadRow>('SELECT * FROM model_uploads WHERE id = ?', [id]);
    return row ? info(row) : undefined;
  }

  async list(limit = 100): Promise<ModelInfo[]> {
    return (await this.#db.all<UploadRow>('SELECT * FROM model_uploads ORDER BY uploaded_at DESC, id LIMIT ?', [limit])).map(info);
  }
}
