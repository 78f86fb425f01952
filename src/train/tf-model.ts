/**
 * The bridge between our model IR (topology JSON + named float32 weights) and a live tfjs
 * `LayersModel`. Training runs on tfjs; everything else (surgery, export, checkpoints) works on
 * plain `WeightMap`s, so weights cross this bridge by name — `layer/kind`, the name tfjs itself
 * matches on load — never by position, which would silently scramble a model whose layer order
 * differs from the one the weights were read from.
 */
import * as tf from '@tensorflow/tfjs';
import { MorphError } from '../errors.ts';
import type { ModelConfigJson } from '../graph/keras-json.ts';
import type { NamedWeight } from '../graph/rebuild.ts';
import { weightsByName, type WeightMap } from '../graph/weights.ts';

/** One variable of a live model with the layer and kind it belongs to. */
interface ModelVariable {
  readonly layer: string;
  readonly kind: string;
  readonly variable: tf.LayerVariable;
}

/**
 * The kind of a layer's weight (`kernel`, `gamma`, `moving_mean`, …). tfjs names a variable
 * `<scopes>/<layer>/<kind>` in `originalName` (`name` may carry a `_1` suffix that makes it
 * unique in the process), so the kind is what follows the layer's own name.
 */
function kindOf(layerName: string, v: tf.LayerVariable): string {
  const original = v.originalName;
  const marker = `${layerName}/`;
  const at = original.lastIndexOf(marker);
  if (at >= 0 && (at === 0 || original[at - 1] === '/')) return original.slice(at + marker.length);
  return original.slice(original.lastIndexOf('/') + 1);
}

function modelVariables(model: tf.LayersModel): ModelVariable[] {
  const out: ModelVariable[] = [];
  for (const layer of model.layers) {
    for (const variable of layer.weights) out.push({ layer: layer.name, kind: kindOf(layer.name, variable), variable });
  }
  return out;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/**
 * Sets every weight of `model` (trainable or not, batch-norm moving statistics included) from
 * `weights`, all or nothing: every mismatch is collected first, so a bad set changes nothing.
 * @param source names the weights' origin in the error message (a file, a checkpoint).
 * @throws MorphError `MORPH_ERR_WEIGHTS_MISMATCH` listing the weights the model needs and that are
 *   missing, the ones that belong to no variable of the model, and shape or size disagreements.
 */
export function assignWeights(model: tf.LayersModel, weights: WeightMap | readonly NamedWeight[], source = 'weights'): void {
  const given = weightsByName(weights);
  const vars = modelVariables(model);
  const missing: string[] = [];
  const wrong: string[] = [];
  const used = new Set<string>();
  for (const v of vars) {
    const name = `${v.layer}/${v.kind}`;
    const t = given.get(name);
    if (!t) {
      missing.push(name);
      continue;
    }
    used.add(name);
    if (!sameShape(t.shape, v.variable.shape as number[]) || t.data.length !== (v.variable.shape as number[]).reduce((a, b) => a * b, 1)) {
      wrong.push(`${name} is ${JSON.stringify(t.shape)} (${t.data.length} values) but the model has ${JSON.stringify(v.variable.shape)}`);
    }
  }
  const extra = [...given.keys()].filter((n) => !used.has(n));
  if (missing.length > 0 || extra.length > 0 || wrong.length > 0) {
    const parts = [
      missing.length > 0 ? `missing ${missing.join(', ')}` : '',
      extra.length > 0 ? `not in the model: ${extra.join(', ')}` : '',
      wrong.length > 0 ? `wrong shape: ${wrong.join('; ')}` : '',
    ].filter((p) => p !== '');
    throw new MorphError('MORPH_ERR_WEIGHTS_MISMATCH', `${source} do not fit the model "${model.name}": ${parts.join('; ')}`, { missing, extra, wrongShape: wrong });
  }
  for (const v of vars) {
    const t = given.get(`${v.layer}/${v.kind}`)!;
    const value = tf.tensor(t.data, [...t.shape], v.variable.dtype);
    v.variable.write(value);
    value.dispose();
  }
}

/**
 * A live tfjs model from our topology JSON, with `weights` set by name, or tfjs's own
 * initialisation where `weights` is null.
 * @throws MorphError `MORPH_ERR_BAD_TOPOLOGY` when tfjs cannot build the topology,
 *   `MORPH_ERR_WEIGHTS_MISMATCH` (see `assignWeights`) when the weights do not fit it.
 */
export async function buildTfModel(modelTopology: ModelConfigJson, weights: WeightMap | readonly NamedWeight[] | null): Promise<tf.LayersModel> {
  let model: tf.LayersModel;
  try {
    // A deep copy: tfjs converts the config in place in some versions.
    model = await tf.models.modelFromJSON({ modelTopology: JSON.parse(JSON.stringify(modelTopology)) as tf.io.ModelJSON['modelTopology'] } as tf.io.ModelJSON);
  } catch (err) {
    throw new MorphError('MORPH_ERR_BAD_TOPOLOGY', `tfjs cannot build the model: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (weights !== null) {
    try {
      assignWeights(model, weights);
    } catch (err) {
      model.dispose();
      throw err;
    }
  }
  return model;
}

/**
 * Copies every weight of `model` out of tfjs (batch-norm moving statistics included), keyed by
 * layer name, then kind (`kernel`, `gamma`, `moving_mean`, …). The arrays are copies: they stay
 * valid after the model is disposed and do not change as it trains.
 */
export function readWeights(model: tf.LayersModel): WeightMap {
  const out: WeightMap = new Map();
  for (const v of modelVariables(model)) {
    if (!out.has(v.layer)) out.set(v.layer, new Map());
    const value = v.variable.read();
    const data = Float32Array.from(value.dataSync() as Float32Array | Int32Array);
    out.get(v.layer)!.set(v.kind, { shape: [...(value.shape as number[])], data });
  }
  return out;
}

/** The same weights in tfjs's own order, as `NamedWeight`s (for `writeTfjsModel` and checkpoints). */
export function namedWeights(model: tf.LayersModel): NamedWeight[] {
  const out: NamedWeight[] = [];
  for (const [layer, kinds] of readWeights(model)) for (const [kind, t] of kinds) out.push({ name: `${layer}/${kind}`, shape: t.shape, data: t.data });
  return out;
}
