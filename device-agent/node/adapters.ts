/**
 * The Node runtime adapters: `tfjs-wasm`, `tfjs-cpu`, `tfjs-node` (only where
 * `@tensorflow/tfjs-node` installs) and `tflite` (`@tensorflow/tfjs-tflite`, TFLite in wasm).
 *
 * tfjs has one global backend, so a tfjs adapter switches it (`tf.setBackend`) before it prepares
 * an item; the agent prepares and runs one item at a time, so nothing else runs in between. The
 * `tflite` adapter times the interpreter alone (one `infer()` a run, `tfliteInferRunnable`) and
 * switches to `cpu` too: its fallback, `predict`, reads inputs from and writes outputs to tfjs
 * tensors, and on `cpu` those are plain arrays (no copy into another heap).
 * Whoever else uses tfjs in the same process must set its own backend again afterwards.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { MorphError } from '../../src/errors.ts';
import { writeSpecTflite } from '../../src/export/tflite/single-op.ts';
import { specInputs } from '../../src/ops/index.ts';
import type { RuntimeInfo, RuntimeName } from '../../src/protocol/agent-protocol.ts';
import type { Runnable, RuntimeAdapter } from '../runtime.ts';
import { loadTfliteModel, loadTfliteRuntime, type TfliteNodeModel } from './tflite-runtime.ts';
import { boolFlag, concreteShape, firstLine, predictRunnable, tfjsAdapter, tfliteInferRunnable, tfjsVersion, truncate, useBackend } from '../tfjs-common.ts';

/** The runtimes a Node agent can serve, in the order they are probed and reported. */
export const NODE_RUNTIMES = ['tfjs-wasm', 'tfjs-cpu', 'tfjs-node', 'tflite'] as const satisfies readonly RuntimeName[];

/** A runtime that did not load here, and why. */
export interface UnavailableRuntime {
  readonly name: RuntimeName;
  readonly reason: string;
}

export interface AvailableAdapters {
  /** The adapters that loaded, in the order asked for (default `NODE_RUNTIMES`). */
  readonly adapters: RuntimeAdapter[];
  /** The requested (or all Node) runtimes that did not load, with the reason. */
  readonly unavailable: UnavailableRuntime[];
}

const WASM_PACKAGE = '@tensorflow/tfjs-backend-wasm';
const TFJS_NODE_PACKAGE = '@tensorflow/tfjs-node';
const require = createRequire(import.meta.url);

type Loaded<T = undefined> = { ok: true; value: T } | { ok: false; reason: string };

/**
 * Points the wasm backend at its own dist folder (in Node the emscripten loader would look next
 * to the running script) and initialises it. Only the first call before initialisation counts.
 */
async function loadWasm(): Promise<Loaded<{ dir: string; simd: boolean | undefined }>> {
  let dir: string;
  try {
    dir = path.dirname(require.resolve(WASM_PACKAGE));
  } catch {
    return { ok: false, reason: `${WASM_PACKAGE} is not installed` };
  }
  const missing = ['tfjs-backend-wasm.wasm', 'tfjs-backend-wasm-simd.wasm'].filter((f) => !existsSync(path.join(dir, f)));
  if (missing.length > 0) return { ok: false, reason: `${missing.join(', ')} not found in ${dir}; reinstall ${WASM_PACKAGE}` };
  try {
    const wasm = (await import(WASM_PACKAGE)) as unknown as { setWasmPaths(prefix: string): void };
    if (tf.findBackend('wasm') == null) wasm.setWasmPaths(dir + path.sep);
    await useBackend('wasm');
  } catch (err) {
    return { ok: false, reason: `${WASM_PACKAGE} failed to load: ${firstLine(err)}` };
  }
  return { ok: true, value: { dir, simd: await boolFlag('WASM_HAS_SIMD_SUPPORT') } };
}

/** Imported at most once: a native addon cannot be unloaded, and its failure does not change. */
let tfjsNodeLoad: Promise<Loaded<{ version: string }>> | undefined;
function loadTfjsNode(): Promise<Loaded<{ version: string }>> {
  tfjsNodeLoad ??= (async (): Promise<Loaded<{ version: string }>> => {
    // A variable specifier: TypeScript must not need the (optional, usually absent) package.
    const specifier: string = TFJS_NODE_PACKAGE;
    try {
      await import(specifier);
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') return { ok: false, reason: `${TFJS_NODE_PACKAGE} is not installed` };
      return { ok: false, reason: `${TFJS_NODE_PACKAGE} failed to load: ${firstLine(err)}` };
    }
    if (tf.findBackendFactory('tensorflow') == null) {
      return { ok: false, reason: `${TFJS_NODE_PACKAGE} loaded but registered no 'tensorflow' backend with this @tensorflow/tfjs (version mismatch?)` };
    }
    try {
      await useBackend('tensorflow');
    } catch (err) {
      return { ok: false, reason: firstLine(err) };
    }
    let version = 'unknown';
    try {
      version = (require(`${TFJS_NODE_PACKAGE}/package.json`) as { version: string }).version;
    } catch {
      // The version is for the report only.
    }
    return { ok: true, value: { version } };
  })();
  return tfjsNodeLoad;
}

/**
 * Times a loaded `.tflite` by its interpreter alone (`tfliteInferRunnable`: one `infer()` a run),
 * or through `predict` where the interpreter is not reachable: inputs made once, each run reads
 * every output back.
 */
function tfliteRunnable(model: TfliteNodeModel, data: readonly Float32Array[] | null): Runnable {
  const direct = tfliteInferRunnable(model.tfliteModel, data, () => model.dispose());
  if (direct) return direct;
  const inputs = model.inputs.map((input, i) => {
    const shape = concreteShape(input.shape);
    if (shape === null) throw new MorphError('MORPH_ERR_SHAPE', `the .tflite input ${input.name} has shape ${JSON.stringify(input.shape)}; only the batch dimension may be unknown`);
    return data ? tf.tensor(data[i], shape, 'float32') : tf.randomUniform(shape, -1, 1, 'float32');
  });
  return predictRunnable((x) => model.predict(x), inputs, () => model.dispose());
}

function tfliteAdapter(info: RuntimeInfo): RuntimeAdapter {
  const withModel = async (bytes: Uint8Array, data: readonly Float32Array[] | null): Promise<Runnable> => {
    await useBackend('cpu');
    const model = await loadTfliteModel(bytes, { numThreads: 1 });
    try {
      return tfliteRunnable(model, data);
    } catch (err) {
      model.dispose();
      throw err;
    }
  };
  return {
    name: 'tflite',
    info: () => ({ ...info }),
    prepareOp: (spec) => withModel(writeSpecTflite(spec), specInputs(spec)),
    async prepareNetwork(item) {
      if (item.tfliteBase64 === undefined) {
        throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `network "${item.name}": runtime tflite needs tfliteBase64 (the network's .tflite), but the item carries only a Keras topology`);
      }
      const bytes = Buffer.from(item.tfliteBase64, 'base64');
      if (bytes.length === 0) throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `network "${item.name}": tfliteBase64 decodes to no bytes`);
      return withModel(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length), null);
    },
  };
}

async function loadAdapter(name: RuntimeName): Promise<Loaded<RuntimeAdapter>> {
  const tfjs = `@tensorflow/tfjs ${tfjsVersion()}`;
  switch (name) {
    case 'tfjs-wasm': {
      const wasm = await loadWasm();
      if (!wasm.ok) return wasm;
      const note = truncate(`wasm backend (XNNPACK), SIMD ${wasm.value.simd === undefined ? 'unknown' : wasm.value.simd ? 'on' : 'off'}, threads off in Node; wasm files from ${wasm.value.dir}`, 500);
      return { ok: true, value: tfjsAdapter(name, 'wasm', { name, version: tfjs, threads: 1, ...(wasm.value.simd === undefined ? {} : { simd: wasm.value.simd }), note }) };
    }
    case 'tfjs-cpu':
      try {
        await useBackend('cpu');
      } catch (err) {
        return { ok: false, reason: firstLine(err) };
      }
      return { ok: true, value: tfjsAdapter(name, 'cpu', { name, version: tfjs, threads: 1, note: 'pure-JavaScript cpu backend' }) };
    case 'tfjs-node': {
      const node = await loadTfjsNode();
      if (!node.ok) return node;
      return { ok: true, value: tfjsAdapter(name, 'tensorflow', { name, version: `${TFJS_NODE_PACKAGE} ${node.value.version}`, note: 'libtensorflow (native), its own thread pool' }) };
    }
    case 'tflite': {
      try {
        const rt = await loadTfliteRuntime();
        const note = truncate(`TFLite in WebAssembly, non-threaded ${rt.simd ? 'SIMD ' : ''}build from ${rt.wasmDir}; a run is one infer() of the interpreter`, 500);
        return { ok: true, value: tfliteAdapter({ name, version: `@tensorflow/tfjs-tflite ${rt.version}`, threads: 1, simd: rt.simd, note }) };
      } catch (err) {
        return { ok: false, reason: firstLine(err) };
      }
    }
    case 'tfjs-webgl':
      return { ok: false, reason: 'tfjs-webgl runs only in a browser; open the agent page in one' };
  }
}

/**
 * Loads the adapters of `requested` (default: every Node runtime), one after the other (the tfjs
 * wasm backend and the TFLite runtime must not initialise at the same time: the TFLite loader's
 * worker shims would mislead the wasm backend's). Never throws for a runtime that cannot load:
 * it lands in `unavailable` with the reason.
 */
export async function availableAdapters(requested?: readonly RuntimeName[]): Promise<AvailableAdapters> {
  const wanted = requested === undefined ? [...NODE_RUNTIMES] : [...new Set(requested)];
  const adapters: RuntimeAdapter[] = [];
  const unavailable: UnavailableRuntime[] = [];
  for (const name of wanted) {
    const loaded = await loadAdapter(name);
    if (loaded.ok) adapters.push(loaded.value);
    else unavailable.push({ name, reason: loaded.reason });
  }
  return { adapters, unavailable };
}
