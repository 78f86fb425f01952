/**
 * Wire types of the files users give us: a TensorFlow.js `model.json` (`format: layers-model`) and a
 * bare Keras model config. They mirror the on-disk JSON (snake_case, `class_name` + `config`), and
 * are kept apart from the IR in `graph.ts`: only `parse.ts` reads them, only `serialize.ts` writes
 * them. Layer *names* are data and are never case-converted.
 */

/** Any JSON value as it comes from the file, before validation. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

/** `[batch, H, W, C]` or `[batch, units]`; `null` where the size is not fixed (the batch). */
export type ShapeJson = (number | null)[];

/**
 * Keras 2 / tfjs tensor reference inside `inbound_nodes`: `[layerName, nodeIndex, tensorIndex, kwargs]`.
 * The kwargs element is optional in older files.
 */
export type TensorRefJson = [string, number, number, JsonObject?] | [string, number, number];

/** Keras 2 / tfjs: one call of a layer is a list of tensor references. */
export type Keras2NodeJson = TensorRefJson[];

/** Keras 3: a symbolic tensor in a call's `args`, pointing back at its producer via `keras_history`. */
export interface Keras3TensorJson {
  class_name: '__keras_tensor__';
  config: { shape?: ShapeJson; dtype?: string; keras_history: [string, number, number] };
}

/** Keras 3: one call of a layer; `args` holds tensors, or lists of tensors for merge layers. */
export interface Keras3NodeJson {
  args: JsonValue[];
  kwargs?: JsonObject;
}

export interface LayerJson {
  class_name: string;
  /** Functional models name each layer at top level as well as in `config.name`. */
  name?: string;
  config: JsonObject;
  inbound_nodes?: (Keras2NodeJson | Keras3NodeJson)[];
  /** Keras 3 writes a `module` and `registered_name` beside every class. */
  module?: string | null;
  registered_name?: string | null;
}

export interface FunctionalConfigJson {
  name?: string;
  layers: LayerJson[];
  input_layers: TensorRefJson[] | TensorRefJson;
  output_layers: TensorRefJson[] | TensorRefJson;
  trainable?: boolean;
}

/** tfjs writes `{name, layers}`; old Keras wrote the layer list directly. */
export type SequentialConfigJson = { name?: string; layers: LayerJson[] } | LayerJson[];

export interface ModelConfigJson {
  class_name: 'Sequential' | 'Functional' | 'Model' | string;
  config: FunctionalConfigJson | SequentialConfigJson;
  keras_version?: string;
  backend?: string;
  module?: string | null;
}

/** One weight in a `weightsManifest` group. */
export interface WeightSpecJson {
  name: string;
  shape: number[];
  dtype: 'float32' | 'int32' | 'bool' | string;
  /** tfjs quantized weights carry this; we refuse them with a clear error rather than misread them. */
  quantization?: JsonObject;
}

export interface WeightsGroupJson {
  paths: string[];
  weights: WeightSpecJson[];
}

/** A tfjs `model.json`. `modelTopology` is either the model config or Keras's `{model_config, training_config}`. */
export interface TfjsModelJson {
  format?: 'layers-model' | string;
  generatedBy?: string;
  convertedBy?: string | null;
  modelTopology: ModelConfigJson | { model_config: ModelConfigJson; training_config?: JsonObject; keras_version?: string; backend?: string };
  weightsManifest?: WeightsGroupJson[];
  trainingConfig?: JsonObject;
  userDefinedMetadata?: JsonObject;
}

export function isJsonObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
