/**
 * The part of the TFLite flatbuffer schema (tensorflow/lite/schema/schema.fbs, `file_identifier
 * "TFL3"`, schema version 3) that the writer needs, as hand-written table builders over the
 * `flatbuffers` package. Field numbers are the declaration order in schema.fbs; a union field
 * takes two slots (its `_type` byte, then the table offset).
 */
import * as flatbuffers from 'flatbuffers';

export const TFLITE_SCHEMA_VERSION = 3;
export const TFLITE_FILE_IDENTIFIER = 'TFL3';

/** `enum TensorType : byte`. */
export const TensorType = { FLOAT32: 0, INT32: 2 } as const;
export type TensorTypeCode = (typeof TensorType)[keyof typeof TensorType];

/** `enum BuiltinOperator : int32` (the codes this writer emits). */
export const BuiltinOperator = {
  ADD: 0,
  AVERAGE_POOL_2D: 1,
  CONCATENATION: 2,
  CONV_2D: 3,
  DEPTHWISE_CONV_2D: 4,
  FULLY_CONNECTED: 9,
  LOGISTIC: 14,
  MAX_POOL_2D: 17,
  MUL: 18,
  RELU: 19,
  RELU6: 21,
  RESHAPE: 22,
  SOFTMAX: 25,
  TANH: 28,
  RESIZE_BILINEAR: 23,
  PAD: 34,
  MEAN: 40,
  SUB: 41,
  MAXIMUM: 55,
  MINIMUM: 57,
  SLICE: 65,
  TRANSPOSE_CONV: 67,
  REDUCE_MAX: 82,
  RESIZE_NEAREST_NEIGHBOR: 97,
  LEAKY_RELU: 98,
  ELU: 111,
  HARD_SWISH: 117,
} as const;
export type BuiltinOperatorCode = (typeof BuiltinOperator)[keyof typeof BuiltinOperator];

/** `union BuiltinOptions`: the 1-based position of each options table in the union. */
export const BuiltinOptionsType = {
  NONE: 0,
  Conv2DOptions: 1,
  DepthwiseConv2DOptions: 2,
  Pool2DOptions: 5,
  ResizeBilinearOptions: 15,
  FullyConnectedOptions: 8,
  SoftmaxOptions: 9,
  ConcatenationOptions: 10,
  AddOptions: 11,
  ReshapeOptions: 17,
  MulOptions: 21,
  PadOptions: 22,
  ReducerOptions: 27,
  SubOptions: 28,
  MaximumMinimumOptions: 39,
  SliceOptions: 48,
  TransposeConvOptions: 49,
  ResizeNearestNeighborOptions: 74,
  LeakyReluOptions: 75,
  HardSwishOptions: 91,
} as const;
export type BuiltinOptionsTypeCode = (typeof BuiltinOptionsType)[keyof typeof BuiltinOptionsType];

/** `enum Padding : byte { SAME, VALID }`. */
export const PaddingCode = { same: 0, valid: 1 } as const;
/** `enum ActivationFunctionType : byte`. */
export const ActivationCode = { none: 0, relu: 1, relu6: 3 } as const;
export type ActivationName = keyof typeof ActivationCode;

/** One options table, described as data so the model builder can write it late. */
export type BuiltinOptions =
  | { type: 'Conv2DOptions'; padding: 'same' | 'valid'; strideW: number; strideH: number; activation: ActivationName; dilationW: number; dilationH: number }
  | {
      type: 'DepthwiseConv2DOptions';
      padding: 'same' | 'valid';
      strideW: number;
      strideH: number;
      depthMultiplier: number;
      activation: ActivationName;
      dilationW: number;
      dilationH: number;
    }
  | { type: 'Pool2DOptions'; padding: 'same' | 'valid'; strideW: number; strideH: number; filterW: number; filterH: number; activation: ActivationName }
  | { type: 'FullyConnectedOptions'; activation: ActivationName }
  | { type: 'SoftmaxOptions'; beta: number }
  | { type: 'ConcatenationOptions'; axis: number; activation: ActivationName }
  | { type: 'AddOptions'; activation: ActivationName }
  | { type: 'MulOptions'; activation: ActivationName }
  | { type: 'ReshapeOptions'; newShape: readonly number[] }
  | { type: 'PadOptions' }
  | { type: 'ReducerOptions'; keepDims: boolean }
  | { type: 'SubOptions'; activation: ActivationName }
  | { type: 'MaximumMinimumOptions' }
  | { type: 'SliceOptions' }
  | { type: 'TransposeConvOptions'; padding: 'same' | 'valid'; strideW: number; strideH: number }
  | { type: 'ResizeBilinearOptions'; alignCorners: boolean; halfPixelCenters: boolean }
  | { type: 'ResizeNearestNeighborOptions'; alignCorners: boolean; halfPixelCenters: boolean }
  | { type: 'LeakyReluOptions'; alpha: number }
  | { type: 'HardSwishOptions' };

function int32Vector(b: flatbuffers.Builder, values: readonly number[]): flatbuffers.Offset {
  b.startVector(4, values.length, 4);
  for (let i = values.length - 1; i >= 0; i--) b.addInt32(values[i]);
  return b.endVector();
}

function offsetVector(b: flatbuffers.Builder, offsets: readonly flatbuffers.Offset[]): flatbuffers.Offset {
  b.startVector(4, offsets.length, 4);
  for (let i = offsets.length - 1; i >= 0; i--) b.addOffset(offsets[i]);
  return b.endVector();
}

/** Writes an options table; returns its union type code and offset. */
export function writeOptions(b: flatbuffers.Builder, o: BuiltinOptions): { type: BuiltinOptionsTypeCode; offset: flatbuffers.Offset } {
  const type = BuiltinOptionsType[o.type];
  switch (o.type) {
    case 'Conv2DOptions':
      b.startObject(6);
      b.addFieldInt8(0, PaddingCode[o.padding], 0);
      b.addFieldInt32(1, o.strideW, 0);
      b.addFieldInt32(2, o.strideH, 0);
      b.addFieldInt8(3, ActivationCode[o.activation], 0);
      b.addFieldInt32(4, o.dilationW, 1);
      b.addFieldInt32(5, o.dilationH, 1);
      break;
    case 'DepthwiseConv2DOptions':
      b.startObject(7);
      b.addFieldInt8(0, PaddingCode[o.padding], 0);
      b.addFieldInt32(1, o.strideW, 0);
      b.addFieldInt32(2, o.strideH, 0);
      b.addFieldInt32(3, o.depthMultiplier, 0);
      b.addFieldInt8(4, ActivationCode[o.activation], 0);
      b.addFieldInt32(5, o.dilationW, 1);
      b.addFieldInt32(6, o.dilationH, 1);
      break;
    case 'Pool2DOptions':
      b.startObject(6);
      b.addFieldInt8(0, PaddingCode[o.padding], 0);
      b.addFieldInt32(1, o.strideW, 0);
      b.addFieldInt32(2, o.strideH, 0);
      b.addFieldInt32(3, o.filterW, 0);
      b.addFieldInt32(4, o.filterH, 0);
      b.addFieldInt8(5, ActivationCode[o.activation], 0);
      break;
    case 'FullyConnectedOptions':
      // fused_activation_function, weights_format (DEFAULT), keep_num_dims (false).
      b.startObject(3);
      b.addFieldInt8(0, ActivationCode[o.activation], 0);
      break;
    case 'SoftmaxOptions':
      b.startObject(1);
      b.addFieldFloat32(0, o.beta, 0);
      break;
    case 'ConcatenationOptions':
      b.startObject(2);
      b.addFieldInt32(0, o.axis, 0);
      b.addFieldInt8(1, ActivationCode[o.activation], 0);
      break;
    case 'AddOptions':
    case 'MulOptions':
      b.startObject(1);
      b.addFieldInt8(0, ActivationCode[o.activation], 0);
      break;
    case 'ReshapeOptions': {
      const shape = int32Vector(b, o.newShape);
      b.startObject(1);
      b.addFieldOffset(0, shape, 0);
      break;
    }
    case 'PadOptions':
      b.startObject(0);
      break;
    case 'ReducerOptions':
      b.startObject(1);
      b.addFieldInt8(0, o.keepDims ? 1 : 0, 0);
      break;
    case 'SubOptions':
      b.startObject(1);
      b.addFieldInt8(0, ActivationCode[o.activation], 0);
      break;
    case 'MaximumMinimumOptions':
    case 'SliceOptions':
    case 'HardSwishOptions':
      b.startObject(0);
      break;
    case 'TransposeConvOptions':
      // padding, stride_w, stride_h (version 1: no fused activation, no bias input).
      b.startObject(3);
      b.addFieldInt8(0, PaddingCode[o.padding], 0);
      b.addFieldInt32(1, o.strideW, 0);
      b.addFieldInt32(2, o.strideH, 0);
      break;
    case 'ResizeBilinearOptions':
      // new_height and new_width (deprecated) take slots 0 and 1.
      b.startObject(4);
      b.addFieldInt8(2, o.alignCorners ? 1 : 0, 0);
      b.addFieldInt8(3, o.halfPixelCenters ? 1 : 0, 0);
      break;
    case 'ResizeNearestNeighborOptions':
      b.startObject(2);
      b.addFieldInt8(0, o.alignCorners ? 1 : 0, 0);
      b.addFieldInt8(1, o.halfPixelCenters ? 1 : 0, 0);
      break;
    case 'LeakyReluOptions':
      b.startObject(1);
      b.addFieldFloat32(0, o.alpha, 0);
      break;
  }
  return { type, offset: b.endObject() };
}

/** `table Buffer { data:[ubyte] (force_align: 16); }`; empty data writes no vector. */
export function writeBuffer(b: flatbuffers.Builder, data: Uint8Array | null): flatbuffers.Offset {
  let vec = 0;
  if (data && data.byteLength > 0) {
    if (data.byteLength % 4 !== 0) throw new Error('internal: constant buffers hold 4-byte elements');
    b.startVector(1, data.byteLength, 16);
    // Written back to front as little-endian int32 words: the vector grows downwards.
    const words = new DataView(data.buffer, data.byteOffset, data.byteLength);
    for (let i = data.byteLength - 4; i >= 0; i -= 4) b.addInt32(words.getInt32(i, true));
    vec = b.endVector();
  }
  b.startObject(1);
  if (vec) b.addFieldOffset(0, vec, 0);
  return b.endObject();
}

export interface TensorDef {
  readonly name: string;
  readonly shape: readonly number[];
  readonly type: TensorTypeCode;
  /** Index into Model.buffers; 0 (the empty sentinel) for activations. */
  readonly buffer: number;
}

/** `table Tensor { shape:[int]; type:TensorType; buffer:uint; name:string; ... }`. */
export function writeTensor(b: flatbuffers.Builder, t: TensorDef): flatbuffers.Offset {
  const shape = int32Vector(b, t.shape);
  const name = b.createString(t.name);
  b.startObject(4);
  b.addFieldOffset(0, shape, 0);
  b.addFieldInt8(1, t.type, 0);
  b.addFieldInt32(2, t.buffer, 0);
  b.addFieldOffset(3, name, 0);
  return b.endObject();
}

/**
 * `table OperatorCode { deprecated_builtin_code:byte; custom_code:string; version:int = 1;
 * builtin_code:BuiltinOperator; }`. Readers take the larger of the two codes, so both are set;
 * the deprecated byte caps at 127 (PLACEHOLDER_FOR_GREATER_OP_CODES).
 */
export function writeOperatorCode(b: flatbuffers.Builder, code: BuiltinOperatorCode, version: number): flatbuffers.Offset {
  b.startObject(4);
  b.addFieldInt8(0, Math.min(code, 127), 0);
  b.addFieldInt32(2, version, 1);
  b.addFieldInt32(3, code, 0);
  return b.endObject();
}

export interface OperatorDef {
  readonly opcodeIndex: number;
  readonly inputs: readonly number[];
  readonly outputs: readonly number[];
  readonly options: BuiltinOptions | null;
}

/** `table Operator { opcode_index:uint; inputs:[int]; outputs:[int]; builtin_options:BuiltinOptions; ... }`. */
export function writeOperator(b: flatbuffers.Builder, op: OperatorDef): flatbuffers.Offset {
  const inputs = int32Vector(b, op.inputs);
  const outputs = int32Vector(b, op.outputs);
  const options = op.options ? writeOptions(b, op.options) : null;
  b.startObject(5);
  b.addFieldInt32(0, op.opcodeIndex, 0);
  b.addFieldOffset(1, inputs, 0);
  b.addFieldOffset(2, outputs, 0);
  if (options) {
    b.addFieldInt8(3, options.type, 0);
    b.addFieldOffset(4, options.offset, 0);
  }
  return b.endObject();
}

export interface SubGraphDef {
  readonly name: string;
  readonly tensors: readonly TensorDef[];
  readonly inputs: readonly number[];
  readonly outputs: readonly number[];
  readonly operators: readonly OperatorDef[];
}

/** `table SubGraph { tensors; inputs; outputs; operators; name; }`. */
export function writeSubGraph(b: flatbuffers.Builder, g: SubGraphDef): flatbuffers.Offset {
  const tensors = offsetVector(b, g.tensors.map((t) => writeTensor(b, t)));
  const inputs = int32Vector(b, g.inputs);
  const outputs = int32Vector(b, g.outputs);
  const operators = offsetVector(b, g.operators.map((o) => writeOperator(b, o)));
  const name = b.createString(g.name);
  b.startObject(5);
  b.addFieldOffset(0, tensors, 0);
  b.addFieldOffset(1, inputs, 0);
  b.addFieldOffset(2, outputs, 0);
  b.addFieldOffset(3, operators, 0);
  b.addFieldOffset(4, name, 0);
  return b.endObject();
}

export interface ModelDef {
  readonly description: string;
  readonly operatorCodes: readonly { code: BuiltinOperatorCode; version: number }[];
  readonly subgraph: SubGraphDef;
  /** Buffer 0 must be the empty sentinel. */
  readonly buffers: readonly (Uint8Array | null)[];
}

/** `table Model { version:uint; operator_codes; subgraphs; description; buffers; }`, finished with "TFL3". */
export function writeModel(m: ModelDef): Uint8Array {
  const bytes = m.buffers.reduce((s, d) => s + (d?.byteLength ?? 0), 0);
  const b = new flatbuffers.Builder(bytes + 64 * 1024);
  // Large constant buffers first, so the small tables stay near each other at the front.
  const buffers = offsetVector(b, m.buffers.map((d) => writeBuffer(b, d)));
  const codes = offsetVector(b, m.operatorCodes.map((c) => writeOperatorCode(b, c.code, c.version)));
  const subgraphs = offsetVector(b, [writeSubGraph(b, m.subgraph)]);
  const description = b.createString(m.description);
  b.startObject(5);
  b.addFieldInt32(0, TFLITE_SCHEMA_VERSION, 0);
  b.addFieldOffset(1, codes, 0);
  b.addFieldOffset(2, subgraphs, 0);
  b.addFieldOffset(3, description, 0);
  b.addFieldOffset(4, buffers, 0);
  const root = b.endObject();
  b.finish(root, TFLITE_FILE_IDENTIFIER);
  return b.asUint8Array();
}
