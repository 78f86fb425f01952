/**
 * The per-op contract. Each supported Keras class is described by one `OpDescriptor`: how to read
 * its config, infer its output shape, which weights it owns and along which axes their channels
 * run, how its channels relate to its inputs' (the channel rule), and what one call costs.
 * `register-all.ts` lists the descriptors; nothing else switches on class names.
 */
import type { JsonObject } from '../keras-json.ts';
import type { LayerKind, Shape } from '../graph.ts';

/**
 * How a layer's output channels relate to its inputs' channels.
 * - `source`: the network input; a new group that never changes width.
 * - `produce`: reads its inputs' channels through weights and makes a new group (conv, dense).
 * - `pass`: output channels are the input's channels (batch norm, activations, pooling).
 * - `repeat`: each input channel becomes `times` output channels (depthwise with a multiplier).
 * - `tie`: element-wise merge; all inputs' channels must stay equal, the output is the same.
 * - `concat`: the output is the concatenation of the inputs' channels.
 * - `flatten`: every spatial position repeats the input channels.
 * - `boundary`: a layer whose channel semantics we do not model; inputs and output keep their width.
 *   With `gate`, the layer maps channel c to channel c but is not 0 at 0 (a sigmoid): it passes
 *   channels when it only gates a Multiply, since a removed channel's product is 0 either way.
 */
export type ChannelRule =
  | { type: 'source' }
  | { type: 'produce' }
  | { type: 'pass' }
  | { type: 'repeat'; times: number }
  | { type: 'tie' }
  | { type: 'concat' }
  | { type: 'flatten' }
  | { type: 'boundary'; reason: string; gate?: boolean };

/**
 * Which channels an axis of a weight indexes: the input's (`in`), the output's (`out`), or the
 * input's repeated by a depthwise multiplier inside a separable conv (`mid`).
 */
export type AxisRole = 'in' | 'out' | 'mid' | null;

/** How fresh channels of a weight are initialised when a layer grows. */
export type WeightInit = 'glorot' | 'zeros' | 'ones';

export interface WeightRole {
  readonly kind: string;
  readonly roles: readonly AxisRole[];
  readonly init: WeightInit;
}

export interface OpContext {
  readonly layer: string;
  readonly className: string;
}

export interface OpDescriptor<A extends object = Record<string, unknown>> {
  readonly classNames: readonly string[];
  readonly kind: LayerKind;
  /** Reads and checks the config; throws a MorphError naming the layer on bad values. */
  parseAttrs(config: JsonObject, ctx: OpContext): A;
  /** Output shape of one call; throws a MorphError naming the layer if the inputs do not fit. */
  outputShape(attrs: A, inputs: readonly Shape[], ctx: OpContext): Shape;
  /** The weights in tfjs order, with the channel role of each axis. Shapes come from `weightShapes`. */
  weightRoles(attrs: A): readonly WeightRole[];
  weightShapes(attrs: A, inputs: readonly Shape[]): readonly (readonly number[])[];
  channelRule(attrs: A, inputs: readonly Shape[]): ChannelRule;
  /** Multiply-accumulates of one call at batch 1 (0 for ops without a weighted sum). */
  macs(attrs: A, inputs: readonly Shape[], output: Shape): number;
  /** The config key that holds this layer's output width, for `produce` layers. */
  readonly widthKey?: string;
  /** For a layer whose config names the width it passes through (Reshape's target_shape): the config at a new width. */
  withWidth?(config: JsonObject, width: number): JsonObject;
}

/** Erases the attribute type so descriptors of different classes fit one registry. */
export type AnyOpDescriptor = OpDescriptor<any>; // eslint-disable-line @typescript-eslint/no-explicit-any
