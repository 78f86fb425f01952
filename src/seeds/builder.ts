/**
 * A tiny functional-model builder that writes the same topology JSON as tfjs-layers 4.22
 * `model.toJSON(null, false)` does for a functional model: `class_name: 'Model'`, Keras-2
 * `inbound_nodes` (`[[[name, 0, 0, {}], ...]]`), and every config key tfjs's own `getConfig()`
 * writes for each class, in the same order (initializers spelled out, regularizers and
 * constraints `null`). It is pure: no tfjs import, so the seeds can be built anywhere (CLI, server,
 * browser) and tfjs only ever sees them through `tf.models.modelFromJSON`.
 *
 * Each layer is called once, so a tensor is named by its layer name (node 0, tensor 0).
 */

import { MorphError } from '../errors.ts';
import type { JsonObject, JsonValue, LayerJson, ModelConfigJson, TensorRefJson } from '../graph/keras-json.ts';

/** What tfjs-layers 4.22 writes as `keras_version`. */
export const TFJS_KERAS_VERSION = 'tfjs-layers 4.22.0';
/** What tfjs-layers writes as `backend`. */
export const TFJS_BACKEND = 'tensor_flow.js';

export type Padding = 'same' | 'valid';
export type Pair = number | [number, number];
/** Activations this builder writes; tfjs accepts more, the seeds need only these. */
export type ActivationName = 'linear' | 'relu' | 'relu6' | 'softmax' | 'sigmoid' | 'tanh';

function pair(v: Pair): [number, number] {
  return typeof v === 'number' ? [v, v] : [v[0], v[1]];
}

/** tfjs's default kernel initializer (Glorot normal, spelled as VarianceScaling). */
function glorotNormal(): JsonObject {
  return { class_name: 'VarianceScaling', config: { scale: 1, mode: 'fan_avg', distribution: 'normal', seed: null } };
}

function zeros(): JsonObject {
  return { class_name: 'Zeros', config: {} };
}

function ones(): JsonObject {
  return { class_name: 'Ones', config: {} };
}

/** Batch shape `[null, ...shape]`, dtype float32, not sparse. */
export function inputLayerConfig(name: string, shape: number[]): JsonObject {
  return { batch_input_shape: [null, ...shape], dtype: 'float32', sparse: false, name };
}

export interface Conv2DOptions {
  filters: number;
  /** Default 3. */
  kernelSize?: Pair;
  /** Default 1. */
  strides?: Pair;
  /** Default `'valid'` (as tfjs). */
  padding?: Padding;
  /** Default 1. */
  dilationRate?: Pair;
  /** Default `'linear'`. */
  activation?: ActivationName;
  /** Default true (as tfjs); pass false for a conv followed by batch norm. */
  useBias?: boolean;
}

export function conv2dConfig(name: string, o: Conv2DOptions): JsonObject {
  return {
    filters: o.filters,
    kernel_initializer: glorotNormal(),
    kernel_regularizer: null,
    kernel_constraint: null,
    kernel_size: pair(o.kernelSize ?? 3),
    strides: pair(o.strides ?? 1),
    padding: o.padding ?? 'valid',
    data_format: 'channels_last',
    dilation_rate: pair(o.dilationRate ?? 1),
    activation: o.activation ?? 'linear',
    use_bias: o.useBias ?? true,
    bias_initializer: zeros(),
    bias_regularizer: null,
    activity_regularizer: null,
    bias_constraint: null,
    name,
    trainable: true,
  };
}

export interface DepthwiseConv2DOptions {
  /** Default 3. */
  kernelSize?: Pair;
  /** Default 1. */
  strides?: Pair;
  /** Default `'valid'` (as tfjs). */
  padding?: Padding;
  /** Default 1. */
  dilationRate?: Pair;
  /** Default 1. */
  depthMultiplier?: number;
  /** Default `'linear'`. */
  activation?: ActivationName;
  /** Default true (as tfjs); pass false for a conv followed by batch norm. */
  useBias?: boolean;
}

export function depthwiseConv2dConfig(name: string, o: DepthwiseConv2DOptions = {}): JsonObject {
  return {
    kernel_size: pair(o.kernelSize ?? 3),
    strides: pair(o.strides ?? 1),
    padding: o.padding ?? 'valid',
    data_format: 'channels_last',
    dilation_rate: pair(o.dilationRate ?? 1),
    activation: o.activation ?? 'linear',
    use_bias: o.useBias ?? true,
    bias_initializer: zeros(),
    bias_regularizer: null,
    activity_regularizer: null,
    bias_constraint: null,
    name,
    trainable: true,
    depth_multiplier: o.depthMultiplier ?? 1,
    depthwise_initializer: glorotNormal(),
    depthwise_regularizer: null,
    depthwise_constraint: null,
  };
}

export interface DenseOptions {
  units: number;
  /** Default `'linear'`. */
  activation?: ActivationName;
  /** Default true. */
  useBias?: boolean;
}

export function denseConfig(name: string, o: DenseOptions): JsonObject {
  return {
    units: o.units,
    activation: o.activation ?? 'linear',
    use_bias: o.useBias ?? true,
    kernel_initializer: glorotNormal(),
    bias_initializer: zeros(),
    kernel_regularizer: null,
    bias_regularizer: null,
    activity_regularizer: null,
    kernel_constraint: null,
    bias_constraint: null,
    name,
    trainable: true,
  };
}

export interface BatchNormOptions {
  /** Default 0.99 (as tfjs). */
  momentum?: number;
  /** Default 1e-3 (as tfjs). */
  epsilon?: number;
}

export function batchNormConfig(name: string, o: BatchNormOptions = {}): JsonObject {
  return {
    axis: -1,
    momentum: o.momentum ?? 0.99,
    epsilon: o.epsilon ?? 0.001,
    center: true,
    scale: true,
    beta_initializer: zeros(),
    gamma_initializer: ones(),
    moving_mean_initializer: zeros(),
    moving_variance_initializer: ones(),
    beta_regularizer: null,
    gamma_regularizer: null,
    beta_constraint: null,
    gamma_constraint: null,
    name,
    trainable: true,
  };
}

/** `maxValue` null is a plain ReLU; 6 is ReLU6. */
export function reluConfig(name: string, maxValue: number | null = null): JsonObject {
  return { max_value: maxValue, name, trainable: true };
}

export function activationConfig(name: string, activation: ActivationName): JsonObject {
  return { activation, name, trainable: true };
}

export function addConfig(name: string): JsonObject {
  return { name, trainable: true };
}

export function concatenateConfig(name: string, axis = -1): JsonObject {
  return { axis, name, trainable: true };
}

export interface Pool2DOptions {
  /** Default 2. */
  poolSize?: Pair;
  /** Default: the pool size (as tfjs). */
  strides?: Pair;
  /** Default `'valid'`. */
  padding?: Padding;
}

export function maxPooling2dConfig(name: string, o: Pool2DOptions = {}): JsonObject {
  const poolSize = pair(o.poolSize ?? 2);
  return {
    pool_size: poolSize,
    padding: o.padding ?? 'valid',
    strides: pair(o.strides ?? poolSize),
    data_format: 'channels_last',
    name,
    trainable: true,
  };
}

export function globalAveragePooling2dConfig(name: string): JsonObject {
  return { data_format: 'channels_last', name, trainable: true };
}

export function flattenConfig(name: string): JsonObject {
  return { name, trainable: true };
}

export function dropoutConfig(name: string, rate: number): JsonObject {
  return { rate, noise_shape: null, seed: null, name, trainable: true };
}

/**
 * Collects layers in call order and writes the functional model config. Every method adds one
 * layer, returns its name (the handle of its single output tensor) and throws
 * `MORPH_ERR_BAD_ARGUMENT` on a duplicate name or an input that was not added before.
 */
export class FunctionalBuilder {
  readonly name: string;
  #layers: LayerJson[] = [];
  #names = new Set<string>();
  #inputs: string[] = [];
  readonly #bnDefaults: BatchNormOptions;

  /** @param bnDefaults options every `batchNorm` call starts from (e.g. a faster momentum). */
  constructor(name: string, bnDefaults: BatchNormOptions = {}) {
    this.name = name;
    this.#bnDefaults = bnDefaults;
  }

  /** Adds any layer: `config` must already hold every key tfjs writes for `className`. */
  layer(className: string, config: JsonObject, inputs: string[]): string {
    const name = config['name'];
    if (typeof name !== 'string' || name === '') {
      throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `layer of class ${className} has no name in its config`);
    }
    if (this.#names.has(name)) {
      throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `duplicate layer name "${name}" in model "${this.name}"`, { layer: name });
    }
    for (const inp of inputs) {
      if (!this.#names.has(inp)) {
        throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `layer "${name}" consumes "${inp}", which was not added before it`, { layer: name, input: inp });
      }
    }
    const refs: JsonValue[] = inputs.map((inp) => [inp, 0, 0, {}]);
    this.#names.add(name);
    this.#layers.push({ name, class_name: className, config, inbound_nodes: inputs.length === 0 ? [] : [refs as TensorRefJson[]] });
    return name;
  }

  /** Adds a model input of shape `shape` (no batch dimension). */
  input(name: string, shape: number[]): string {
    this.layer('InputLayer', inputLayerConfig(name, shape), []);
    this.#inputs.push(name);
    return name;
  }

  conv2d(name: string, x: string, o: Conv2DOptions): string {
    return this.layer('Conv2D', conv2dConfig(name, o), [x]);
  }

  depthwiseConv2d(name: string, x: string, o: DepthwiseConv2DOptions = {}): string {
    return this.layer('DepthwiseConv2D', depthwiseConv2dConfig(name, o), [x]);
  }

  dense(name: string, x: string, o: DenseOptions): string {
    return this.layer('Dense', denseConfig(name, o), [x]);
  }

  batchNorm(name: string, x: string, o: BatchNormOptions = {}): string {
    return this.layer('BatchNormalization', batchNormConfig(name, { ...this.#bnDefaults, ...o }), [x]);
  }

  relu(name: string, x: string, maxValue: number | null = null): string {
    return this.layer('ReLU', reluConfig(name, maxValue), [x]);
  }

  activation(name: string, x: string, activation: ActivationName): string {
    return this.layer('Activation', activationConfig(name, activation), [x]);
  }

  add(name: string, xs: string[]): string {
    return this.layer('Add', addConfig(name), xs);
  }

  concatenate(name: string, xs: string[], axis = -1): string {
    return this.layer('Concatenate', concatenateConfig(name, axis), xs);
  }

  maxPooling2d(name: string, x: string, o: Pool2DOptions = {}): string {
    return this.layer('MaxPooling2D', maxPooling2dConfig(name, o), [x]);
  }

  globalAveragePooling2d(name: string, x: string): string {
    return this.layer('GlobalAveragePooling2D', globalAveragePooling2dConfig(name), [x]);
  }

  flatten(name: string, x: string): string {
    return this.layer('Flatten', flattenConfig(name), [x]);
  }

  dropout(name: string, x: string, rate: number): string {
    return this.layer('Dropout', dropoutConfig(name, rate), [x]);
  }

  /** Writes the model config with `outputs` as the model outputs; the builder is not consumed. */
  build(outputs: string[]): ModelConfigJson {
    if (this.#inputs.length === 0) {
      throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `model "${this.name}" has no input`);
    }
    for (const out of outputs) {
      if (!this.#names.has(out)) {
        throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `model "${this.name}" output "${out}" is not a layer`, { output: out });
      }
    }
    return {
      class_name: 'Model',
      config: {
        name: this.name,
        layers: structuredClone(this.#layers),
        input_layers: this.#inputs.map((n): TensorRefJson => [n, 0, 0]),
        output_layers: outputs.map((n): TensorRefJson => [n, 0, 0]),
      },
      keras_version: TFJS_KERAS_VERSION,
      backend: TFJS_BACKEND,
    };
  }
}
