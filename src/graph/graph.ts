/**
 * The model IR: layers, the calls that connect them, and the inferred shape of every tensor.
 * Built by `parse.ts` from the wire JSON; read by channel analysis, cost counting and surgery.
 * The IR is immutable by convention: surgery builds a new wire JSON rather than editing a Graph.
 */
import type { LayerJson } from './keras-json.ts';

/** NHWC (`[batch, H, W, C]`) or `[batch, units]`; `null` where a size is not fixed (the batch). */
export type Shape = readonly (number | null)[];

/**
 * A tensor produced by one call of a layer. Invariant (checked by the parser): `layer` names a
 * layer of the graph, `nodeIndex` < that layer's `calls.length`, and `tensorIndex` is 0, since
 * every layer we understand has exactly one output.
 */
export interface TensorRef {
  readonly layer: string;
  readonly nodeIndex: number;
  readonly tensorIndex: number;
}

/** One application of a layer to its inputs (a Keras "inbound node"). */
export interface LayerCall {
  readonly inputs: readonly TensorRef[];
  readonly inputShapes: readonly Shape[];
  readonly outputShape: Shape;
}

/** The kinds of layer the graph module understands; `unknown` is any other class. */
export const VALID_LAYER_KINDS = [
  'input',
  'conv2d',
  'depthwise',
  'separable',
  'dense',
  'batchnorm',
  'activation',
  'dropout',
  'zeropad',
  'pool',
  'globalpool',
  'elementwise',
  'concat',
  'flatten',
  'reshape',
  'conv2dtranspose',
  'upsample',
  'crop',
  'rescale',
  'normalize',
  'unknown',
] as const;
export type LayerKind = (typeof VALID_LAYER_KINDS)[number];

/** A weight a layer owns, in the order tfjs stores them (`kernel`, `bias`, `gamma`, ...). */
export interface WeightSpec {
  /** The suffix after `layerName/` in a weightsManifest, e.g. `kernel`, `depthwise_kernel`. */
  readonly kind: string;
  readonly shape: readonly number[];
}

export interface GraphLayer {
  readonly name: string;
  readonly className: string;
  readonly kind: LayerKind;
  /** Typed, camelCase attributes of the layer (see `ops/*.ts`); `{}` for unknown classes. */
  readonly attrs: Readonly<Record<string, unknown>>;
  readonly calls: readonly LayerCall[];
  /** The weights this layer owns, derived from its attributes and input shape (empty if unknown). */
  readonly weights: readonly WeightSpec[];
  /** The layer exactly as it came from the file, kept so that surgery can write it back faithfully. */
  readonly raw: LayerJson;
  /** The nested models this layer came from, outermost first (empty for a top-level layer). */
  readonly scope: readonly string[];
}

export type ModelClass = 'Sequential' | 'Functional' | 'Model';

export interface Graph {
  readonly name: string;
  readonly modelClass: ModelClass;
  /**
   * Layers in the topological order of their first calls: a layer's first call comes after the
   * producers of its inputs. A shared layer's later calls may consume layers listed after it.
   */
  readonly layers: readonly GraphLayer[];
  readonly inputs: readonly TensorRef[];
  readonly outputs: readonly TensorRef[];
  /** Non-fatal findings (unknown layer classes and how they were treated). */
  readonly warnings: readonly string[];
  /** True when a Sequential model had no InputLayer and the parser made one (named in `inputs`). */
  readonly syntheticInput: boolean;
  /** Nested models inlined into this graph (`outer/inner` paths); empty for a flat file. */
  readonly inlinedModels: readonly string[];
}

export function layerByName(graph: Graph, name: string): GraphLayer | undefined {
  return graph.layers.find((l) => l.name === name);
}

export function formatRef(ref: TensorRef): string {
  return `${ref.layer}[${ref.nodeIndex}][${ref.tensorIndex}]`;
}

/** The channel (last) dimension of a shape, which every layer we understand keeps last (NHWC). */
export function channelsOf(shape: Shape): number {
  const c = shape[shape.length - 1];
  if (typeof c !== 'number') throw new Error(`internal: shape ${JSON.stringify(shape)} has no fixed channel dimension`);
  return c;
}
