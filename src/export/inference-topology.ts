/**
 * The model as it runs at inference, as a Keras topology tfjs can build: batch norms folded into
 * the conv/dense before them and ReLU/ReLU6 fused into them, by the same plan as the OpSpecs and
 * the `.tflite` writer (`src/ops/fusion.ts`). A tfjs runtime then times the same ops the latency
 * table holds, so that Σ ops and the end-to-end time describe one network.
 *
 * Only the topology changes (weights are not carried: a timing does not depend on their values).
 * Pooling, Add and Concatenate have no activation attribute in Keras, so a ReLU after them stays
 * a layer of its own. Keras 3 configs (`args`/`keras_history` nodes) are returned unchanged.
 */
import type { Graph } from '../graph/graph.ts';
import type { FunctionalConfigJson, JsonObject, Keras2NodeJson, LayerJson, ModelConfigJson, TensorRefJson } from '../graph/keras-json.ts';
import { planFusion } from '../ops/fusion.ts';

const CONFIG_ACTIVATION = new Set(['conv2d', 'depthwise', 'separable', 'dense']);

export interface InferenceTopology {
  readonly modelConfig: ModelConfigJson;
  /** Layers removed (folded batch norms, fused activations). */
  readonly removed: readonly string[];
}

function layerName(l: LayerJson): string {
  return String(l.name ?? l.config.name);
}

export function inferenceTopology(graph: Graph, modelConfig: ModelConfigJson): InferenceTopology {
  const plan = planFusion(graph);
  const kindOf = new Map(graph.layers.map((l) => [l.name, l.kind]));
  const remove = new Map<string, string>(); // removed layer → the layer that now produces its output
  const patch = new Map<string, JsonObject>();
  for (const [name, f] of plan.fusions) {
    if (!CONFIG_ACTIVATION.has(kindOf.get(name) ?? '')) continue;
    const changes: JsonObject = {};
    if (f.batchNorm) {
      remove.set(f.batchNorm, name);
      changes.use_bias = true;
    }
    if (f.activationLayer) {
      remove.set(f.activationLayer, name);
      changes.activation = f.activation;
    }
    if (Object.keys(changes).length > 0) patch.set(name, changes);
  }
  const isSequential = Array.isArray(modelConfig.config) || !('input_layers' in modelConfig.config);
  const layers = Array.isArray(modelConfig.config) ? modelConfig.config : modelConfig.config.layers;
  const keras3 = layers.some((l) => (l.inbound_nodes ?? []).some((n) => !Array.isArray(n)));
  if (remove.size === 0 || keras3) return { modelConfig, removed: [] };

  const producer = (name: string): string => {
    let n = name;
    while (remove.has(n)) n = remove.get(n) as string;
    return n;
  };
  const rewire = (ref: TensorRefJson): TensorRefJson => (remove.has(ref[0]) ? ([producer(ref[0]), 0, 0, ...ref.slice(3)] as TensorRefJson) : ref);
  const out: LayerJson[] = [];
  for (const l of layers) {
    const name = layerName(l);
    if (remove.has(name)) continue;
    const copy: LayerJson = JSON.parse(JSON.stringify(l)) as LayerJson;
    const changes = patch.get(name);
    if (changes) copy.config = { ...copy.config, ...changes };
    if (copy.inbound_nodes) copy.inbound_nodes = (copy.inbound_nodes as Keras2NodeJson[]).map((node) => node.map(rewire));
    out.push(copy);
  }
  let config: ModelConfigJson['config'];
  if (isSequential) {
    config = Array.isArray(modelConfig.config) ? out : { ...modelConfig.config, layers: out };
  } else {
    const f = modelConfig.config as FunctionalConfigJson;
    const refs = (x: TensorRefJson[] | TensorRefJson): TensorRefJson[] | TensorRefJson => (typeof x[0] === 'string' ? rewire(x as TensorRefJson) : (x as TensorRefJson[]).map(rewire));
    config = { ...f, layers: out, output_layers: refs(f.output_layers) };
  }
  return { modelConfig: { ...modelConfig, config }, removed: [...remove.keys()] };
}
