/**
 * Collects the tensors, constant buffers and operators of a one-subgraph float32 TFLite model
 * and serialises them (see `schema.ts`). Used by the single-op and the whole-network writers.
 */
import type { BuiltinOperatorCode, BuiltinOptions, OperatorDef, TensorDef } from './schema.ts';
import { TensorType, writeModel } from './schema.ts';

export class TfliteModelBuilder {
  readonly #tensors: TensorDef[] = [];
  readonly #buffers: (Uint8Array | null)[] = [null];
  readonly #operators: OperatorDef[] = [];
  readonly #codes: { code: BuiltinOperatorCode; version: number }[] = [];
  readonly #names = new Set<string>();
  #inputs: number[] = [];
  #outputs: number[] = [];

  #uniqueName(name: string): string {
    let out = name;
    for (let i = 1; this.#names.has(out); i++) out = `${name}_${i}`;
    this.#names.add(out);
    return out;
  }

  /** An activation tensor (no data); returns its index. */
  addTensor(name: string, shape: readonly number[]): number {
    this.#tensors.push({ name: this.#uniqueName(name), shape: [...shape], type: TensorType.FLOAT32, buffer: 0 });
    return this.#tensors.length - 1;
  }

  /** A float32 constant; returns its tensor index. */
  addConstant(name: string, shape: readonly number[], data: Float32Array): number {
    const n = shape.reduce((a, b) => a * b, 1);
    if (n !== data.length) throw new Error(`internal: constant ${name} has ${data.length} values for shape ${JSON.stringify(shape)}`);
    this.#buffers.push(new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength)));
    this.#tensors.push({ name: this.#uniqueName(name), shape: [...shape], type: TensorType.FLOAT32, buffer: this.#buffers.length - 1 });
    return this.#tensors.length - 1;
  }

  /** An int32 constant (axes, shapes, paddings); returns its tensor index. */
  addInt32Constant(name: string, shape: readonly number[], values: readonly number[]): number {
    const data = Int32Array.from(values);
    this.#buffers.push(new Uint8Array(data.buffer));
    this.#tensors.push({ name: this.#uniqueName(name), shape: [...shape], type: TensorType.INT32, buffer: this.#buffers.length - 1 });
    return this.#tensors.length - 1;
  }

  shapeOf(tensor: number): readonly number[] {
    return this.#tensors[tensor].shape;
  }

  /** Appends an operator (execution order is insertion order). */
  addOperator(code: BuiltinOperatorCode, inputs: readonly number[], outputs: readonly number[], options: BuiltinOptions | null, version = 1): void {
    let index = this.#codes.findIndex((c) => c.code === code && c.version === version);
    if (index < 0) {
      this.#codes.push({ code, version });
      index = this.#codes.length - 1;
    }
    this.#operators.push({ opcodeIndex: index, inputs: [...inputs], outputs: [...outputs], options });
  }

  setInputs(inputs: readonly number[]): void {
    this.#inputs = [...inputs];
  }

  setOutputs(outputs: readonly number[]): void {
    this.#outputs = [...outputs];
  }

  get operatorCount(): number {
    return this.#operators.length;
  }

  toBytes(name: string, description: string): Uint8Array {
    return writeModel({
      description,
      operatorCodes: this.#codes,
      subgraph: { name, tensors: this.#tensors, inputs: this.#inputs, outputs: this.#outputs, operators: this.#operators },
      buffers: this.#buffers,
    });
  }
}

/** HWIO (tfjs conv kernel) → OHWI (TFLite CONV_2D filter). */
export function hwioToOhwi(data: Float32Array, kh: number, kw: number, cin: number, cout: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let h = 0; h < kh; h++) {
    for (let w = 0; w < kw; w++) {
      for (let i = 0; i < cin; i++) {
        const src = ((h * kw + w) * cin + i) * cout;
        for (let o = 0; o < cout; o++) out[((o * kh + h) * kw + w) * cin + i] = data[src + o];
      }
    }
  }
  return out;
}

/** [in, out] (tfjs dense kernel) → [out, in] (TFLite FULLY_CONNECTED weights). */
export function transpose2d(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = data[r * cols + c];
  return out;
}
