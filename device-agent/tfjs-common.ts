/**
 * What the Node and the browser agents share to time on tfjs: switching the backend, building a
 * runnable op (as tfjs-layers runs it) or network, reading outputs back. Browser-safe.
 */
import * as tf from '@tensorflow/tfjs';
import { MorphError } from '../src/errors.ts';
import { specInputs } from '../src/ops/spec-weights.ts';
import type { OpSpec } from '../src/ops/op-spec.ts';
import { buildLayersOp } from '../src/ops/tfjs-layers-op.ts';
import type { NetworkPayload, RuntimeInfo, RuntimeName } from '../src/protocol/agent-protocol.ts';
import type { Runnable, RuntimeAdapter } from './runtime.ts';

export function firstLine(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.split('\n')[0] ?? message;
}

export function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

export function tfjsVersion(): string {
  return tf.version.tfjs ?? tf.version_core;
}

export async function useBackend(name: string): Promise<void> {
  if (tf.getBackend() === name) return;
  let ok = false;
  try {
    ok = await tf.setBackend(name);
  } catch (err) {
    throw new MorphError('MORPH_ERR_BACKEND', `tfjs backend '${name}' cannot be set: ${firstLine(err)}`);
  }
  if (!ok) throw new MorphError('MORPH_ERR_BACKEND', `tfjs backend '${name}' failed to initialise`);
}

export async function boolFlag(name: string): Promise<boolean | undefined> {
  try {
    return Boolean(await tf.env().getAsync(name));
  } catch {
    return undefined;
  }
}

/** A tensor shape with the batch (and any unknown) dimension set to 1; null if a later one is unknown. */
export function concreteShape(shape: readonly (number | null)[]): number[] | null {
  const out: number[] = [];
  for (let i = 0; i < shape.length; i++) {
    const d = shape[i];
    if (d == null || d <= 0) {
      if (i > 0) return null;
      out.push(1);
    } else out.push(d);
  }
  return out;
}

/** Reads every output back (as a real inference would) and frees it. */
export function readBack(out: tf.Tensor | tf.Tensor[] | tf.NamedTensorMap): void {
  const list = out instanceof tf.Tensor ? [out] : Array.isArray(out) ? out : Object.values(out);
  for (const t of list) {
    t.dataSync();
    t.dispose();
  }
}

export function disposeOnce(free: () => void): () => void {
  let done = false;
  return () => {
    if (done) return;
    done = true;
    free();
  };
}

/**
 * Backends whose kernels have run when the call returns (wasm, the JavaScript cpu backend,
 * libtensorflow): an op's output need not be read to time it. A GPU backend (webgl) queues its
 * work, and only a read waits for it.
 */
const SYNCHRONOUS_BACKENDS: ReadonlySet<string> = new Set(['wasm', 'cpu', 'tensorflow']);

/** An adapter for one tfjs backend: ops via `buildLayersOp` (as tfjs-layers runs them), networks via `modelFromJSON`. */
export function tfjsAdapter(name: RuntimeName, backend: string, info: RuntimeInfo): RuntimeAdapter {
  // Inside a network no op's output is read: only the network's own. Reading a large output on
  // every run of an op alone copied it into a new JavaScript array, and the garbage collector
  // then ran while the op was timed: on Node tfjs-wasm a 124×124×48 conv read 11 ms that
  // runs in 4 ms (docs/benchmarks.md). A network's outputs are still read (`predictRunnable`).
  const readOps = !SYNCHRONOUS_BACKENDS.has(backend);
  return {
    name,
    info: () => ({ ...info }),
    async prepareOp(spec: OpSpec): Promise<Runnable> {
      await useBackend(backend);
      const op = buildLayersOp(spec);
      const inputs = specInputs(spec).map((data, i) => tf.tensor(data, [...op.inputShapes[i]], 'float32'));
      return {
        run() {
          const y = op.run(inputs);
          if (readOps) y.dataSync();
          y.dispose();
        },
        dispose: disposeOnce(() => {
          op.dispose();
          inputs.forEach((t) => t.dispose());
        }),
      };
    },
    async prepareNetwork(item: NetworkPayload): Promise<Runnable> {
      if (item.modelTopology === undefined) {
        throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `network "${item.name}": runtime ${name} needs modelTopology (a Keras model config), but the item carries only a .tflite`);
      }
      await useBackend(backend);
      let model: tf.LayersModel;
      try {
        // A deep copy: tfjs converts the config in place. Weights stay random; the time is the same.
        const modelTopology = JSON.parse(JSON.stringify(item.modelTopology)) as tf.io.ModelJSON['modelTopology'];
        model = await tf.models.modelFromJSON({ modelTopology } as tf.io.ModelJSON);
      } catch (err) {
        throw new MorphError('MORPH_ERR_BAD_TOPOLOGY', `network "${item.name}": tfjs cannot build the model: ${firstLine(err)}`);
      }
      const inputs: tf.Tensor[] = [];
      for (const input of model.inputs) {
        const shape = concreteShape(input.shape);
        if (shape === null) {
          inputs.forEach((t) => t.dispose());
          model.dispose();
          throw new MorphError('MORPH_ERR_SHAPE', `network "${item.name}": input ${input.name} has shape ${JSON.stringify(input.shape)}; only the batch dimension may be unknown`);
        }
        inputs.push(tf.randomUniform(shape, -1, 1, 'float32'));
      }
      return predictRunnable((x) => model.predict(x), inputs, () => model.dispose());
    },
  };
}

/**
 * A runnable that calls `predict` on fixed `inputs` and reads every output back; `dispose` frees
 * the inputs, then the model (`free`). Shared by tfjs networks and TFLite models on both agents.
 */
export function predictRunnable(predict: (x: tf.Tensor | tf.Tensor[]) => tf.Tensor | tf.Tensor[] | tf.NamedTensorMap, inputs: readonly tf.Tensor[], free: () => void): Runnable {
  return {
    run() {
      readBack(predict(inputs.length === 1 ? inputs[0] : [...inputs]));
    },
    dispose: disposeOnce(() => {
      inputs.forEach((t) => t.dispose());
      free();
    }),
  };
}

/** The part of `@tensorflow/tfjs-tflite`'s interpreter wrapper (`TFLiteWebModelRunner`) a timed run needs. */
interface TfliteRunnerLike {
  getInputs(): readonly { readonly dataType: string; data(): ArrayLike<number> & { set(values: ArrayLike<number>): void; readonly length: number } }[];
  infer(): boolean;
}

function tfliteRunnerOf(model: unknown): TfliteRunnerLike | null {
  const runner = (model as { modelRunner?: Partial<TfliteRunnerLike> } | null)?.modelRunner;
  return runner && typeof runner.infer === 'function' && typeof runner.getInputs === 'function' ? (runner as TfliteRunnerLike) : null;
}

/**
 * A run of a loaded `TFLiteModel` by its interpreter alone: `data` (or random values in [−1, 1))
 * written into the interpreter's input buffers once, and a run is one `infer()`; `free` on
 * dispose. Null where the model keeps no reachable runner (the caller falls back to `predict`).
 * Why not `predict`: it asks the runtime for its tensor descriptors on every call and copies every
 * output into a new tfjs tensor. Over the millions of runs of a profile job (an op of a few µs is
 * looped a thousand times a sample) Chromium's TFLite module aborted after ~25 networks' ops, and
 * the copies made an op alone cost what it does not inside a network, where no op's output leaves
 * the interpreter (docs/benchmarks.md, "On a quiet machine").
 * @throws MorphError for an input that is not float32 or not the size `data` gives.
 */
export function tfliteInferRunnable(model: unknown, data: readonly Float32Array[] | null, free: () => void): Runnable | null {
  const runner = tfliteRunnerOf(model);
  if (!runner) return null;
  runner.getInputs().forEach((info, i) => {
    if (info.dataType !== 'float32') throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `the .tflite input ${i} is ${info.dataType}; only float32 inputs are timed`);
    const buffer = info.data();
    const values = data ? data[i] : Float32Array.from({ length: buffer.length }, () => Math.random() * 2 - 1);
    if (values === undefined || values.length !== buffer.length) throw new MorphError('MORPH_ERR_SHAPE', `the .tflite input ${i} holds ${buffer.length} values, the item gives ${values?.length ?? 0}`);
    buffer.set(values);
  });
  return {
    run() {
      if (!runner.infer()) throw new MorphError('MORPH_ERR_MEASUREMENT', 'tflite: the interpreter failed to run the model');
    },
    dispose: disposeOnce(free),
  };
}
