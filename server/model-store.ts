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
import type { ModelFacts, ModelInfo } from './contract/models.ts';
import { countUploads, findUpload, insertModel, insertUpload, listUploads } from './store/models.ts';

/** Most models `POST /api/models` keeps. */
export const MAX_MODEL_UPLOADS = 1000;

/** The shape of the graph's first input and the width of its first output (batch dimension dropped). */
export function modelShapes(graph: Graph): { inputShape: (number | null)[]; outputs: number | null } {
  const shapeOf = (layer: string): readonly (number | null)[] | undefined => graph.layers.find((l) => l.name === layer)?.calls[0]?.outputShape;
  const input = shapeOf(graph.inputs[0].layer) ?? [];
  const output = shapeOf(graph.outputs[0].layer) ?? [];
  return { inputShape: input.slice(1), outputs: output.length > 0 ? (output[output.length - 1] ?? null) : null };
}

/** What the API lists of a model: its size, cost and shapes. */
export function modelFacts(model: ResolvedModel): ModelFacts {
  const cost = networkCost(model.graph);
  const shapes = modelShapes(model.graph);
  return { id: model.id, name: model.name, layers: model.graph.layers.length, params: cost.params, macs: cost.macs, inputShape: shapes.inputShape, outputs: shapes.outputs };
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
    const facts = modelFacts(model);
    const now = new Date().toISOString();
    const created = await this.#db.write(async (tx) => {
      if (await findUpload(tx, model.id)) return false;
      const n = await countUploads(tx);
      if (n >= MAX_MODEL_UPLOADS) throw new MorphError('MORPH_ERR_QUOTA', `the server already stores ${n} uploaded models (the limit); reuse one by its modelId`, { limit: MAX_MODEL_UPLOADS });
      await insertModel(tx, { id: model.id, name: model.name, topology: model.modelConfig, createdAt: now });
      await insertUpload(tx, { ...facts, uploadedAt: now });
      return true;
    });
    return { model: (await this.get(model.id))!, created };
  }

  async get(id: string): Promise<ModelInfo | undefined> {
    return findUpload(this.#db, id);
  }

  async list(limit = 100): Promise<ModelInfo[]> {
    return listUploads(this.#db, limit);
  }
}
