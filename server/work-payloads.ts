/**
 * What an agent is sent to time for one job item (protocol v3 `work` items): an op with the
 * reference op it is timed against, or a stored network (with its reference network) as the
 * agent's runtime runs it: the inference topology for tfjs runtimes, a `.tflite` file for tflite.
 * The `.tflite` files are written once per model and kept for the last 16 models.
 */
import { inferenceTopology } from '../src/export/inference-topology.ts';
import { MorphError } from '../src/errors.ts';
import type { OpSpec } from '../src/ops/op-spec.ts';
import type { NetworkPayload, RuntimeName, WorkItem } from '../src/protocol/agent-protocol.ts';
import type { Db } from './db.ts';
import { networkTflite, resolveModel } from './models.ts';
import type { ItemRecord, JobRecord } from './store/jobs.ts';
import { findModel } from './store/models.ts';

/** `.tflite` files kept (base64), by model id. */
const MAX_CACHED_TFLITE = 16;

export class WorkPayloads {
  readonly #db: Db;
  readonly #tflite = new Map<string, Promise<string>>();

  constructor(db: Db) {
    this.#db = db;
  }

  /**
   * The work item of `row` (an item of `job`).
   * @throws MorphError MORPH_ERR_NOT_FOUND when the job's model is gone, and whatever writing its `.tflite` throws.
   */
  async workItem(row: ItemRecord, job: JobRecord): Promise<WorkItem> {
    const { referenceModelId, referenceOp } = job.options;
    if (row.kind === 'op') return { itemId: row.id, kind: 'op', spec: row.spec as OpSpec, ...(referenceOp ? { reference: referenceOp } : {}) };
    const reference = referenceModelId === undefined ? undefined : await this.#network(referenceModelId, job.runtime);
    return { itemId: row.id, kind: 'network', ...(await this.#network(job.modelId, job.runtime)), ...(reference ? { reference } : {}) };
  }

  /** A stored model as an agent of `runtime` times it. */
  async #network(modelId: string, runtime: RuntimeName): Promise<NetworkPayload> {
    const model = await findModel(this.#db, modelId);
    if (!model) throw new MorphError('MORPH_ERR_NOT_FOUND', `model ${modelId} is no longer stored`);
    const resolved = resolveModel(model.topology);
    if (runtime !== 'tflite') {
      // The network as it runs at inference (batch norms folded, activations fused): the ops the table holds.
      const { modelConfig } = inferenceTopology(resolved.graph, resolved.modelConfig);
      return { name: model.name, modelTopology: modelConfig as unknown as Record<string, unknown> };
    }
    let bytes = this.#tflite.get(modelId);
    if (!bytes) {
      bytes = networkTflite(resolved).then((b) => Buffer.from(b).toString('base64'));
      this.#tflite.set(modelId, bytes);
      bytes.catch(() => this.#tflite.delete(modelId));
      if (this.#tflite.size > MAX_CACHED_TFLITE) this.#tflite.delete(this.#tflite.keys().next().value as string);
    }
    return { name: model.name, tfliteBase64: await bytes };
  }
}
