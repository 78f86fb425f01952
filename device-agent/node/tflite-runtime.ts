/**
 * The TFLite runtime (`@tensorflow/tfjs-tflite`, TFLite compiled to WebAssembly) inside Node: the
 * Node agent's `tflite` runtime (adapters.ts), and what tests run exported `.tflite` files on.
 *
 * The package is built for browsers and web workers: its loader takes the worker path when
 * `window` is undefined, fetches `tflite_web_api_cc*.js` with `importScripts`, resolves it
 * against `self.location`, and picks the threaded build when `SharedArrayBuffer` can be posted
 * over a `MessageChannel` (which Node allows, but the threaded build needs real web workers).
 * Its emscripten glue has no Node branch, so it also reads the `.wasm` with `fetch`. So, before
 * the package is first imported (it starts loading the wasm at import time), we install:
 *
 * - `self = globalThis`, with `self.location` pointing at the package's `wasm/` folder (where the
 *   `.js`/`.wasm` files live; `dist/` only holds the JS client), so relative loads land there;
 * - `importScripts(url)`: reads a `file:` URL and runs it with `vm.runInThisContext`, so that its
 *   top-level `var tflite_web_api_ModuleFactory` becomes a global as in a worker;
 * - `fetch`: `file:` URLs are served from disk (`.wasm` as `application/wasm`, which
 *   `WebAssembly.instantiateStreaming` needs); everything else goes to Node's own `fetch`;
 * - `SharedArrayBuffer` hidden while the package probes its features, so it chooses the
 *   non-threaded SIMD build (`tflite_web_api_cc_simd.js`); it is put back afterwards.
 *
 * `importScripts` is removed again once the wasm module is loaded: emscripten builds (the tfjs
 * wasm backend's too) take it as a sign of running in a worker.
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import vm from 'node:vm';
import * as tf from '@tensorflow/tfjs';
import { writeSpecTflite } from '../../src/export/tflite/single-op.ts';
import { MorphError } from '../../src/errors.ts';
import { makeSpec } from '../../src/ops/op-spec.ts';

type TfliteModule = typeof import('@tensorflow/tfjs-tflite');

export interface TfliteRuntimeInfo {
  /** `@tensorflow/tfjs-tflite` version. */
  readonly version: string;
  /** Folder the `.wasm` files were loaded from. */
  readonly wasmDir: string;
  readonly simd: boolean;
  /** Always false in Node: the threaded build needs web workers. */
  readonly threads: boolean;
}

interface Runtime {
  readonly module: TfliteModule;
  readonly info: TfliteRuntimeInfo;
}

let runtime: Promise<Runtime> | null = null;

const CONTENT_TYPES: Record<string, string> = { '.wasm': 'application/wasm', '.js': 'application/javascript' };

function packageDir(): string {
  const require = createRequire(import.meta.url);
  return dirname(require.resolve('@tensorflow/tfjs-tflite/package.json'));
}

function isFileUrl(url: unknown): url is string | URL {
  return (typeof url === 'string' && url.startsWith('file:')) || (url instanceof URL && url.protocol === 'file:');
}

function installShims(wasmDir: string): () => void {
  const g = globalThis as Record<string, unknown>;
  const dirUrl = pathToFileURL(`${wasmDir}/`).href;
  if (g.self === undefined) g.self = globalThis;
  if (g.location === undefined) g.location = { href: dirUrl, origin: 'file://', protocol: 'file:' };

  const originalFetch = globalThis.fetch;
  if (!(originalFetch as { morphnetFileFetch?: boolean }).morphnetFileFetch) {
    const fileFetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
      const url = input instanceof Request ? input.url : input;
      if (!isFileUrl(url)) return originalFetch(input, init);
      const path = fileURLToPath(url);
      try {
        const bytes = await readFile(path);
        const type = CONTENT_TYPES[path.slice(path.lastIndexOf('.'))] ?? 'application/octet-stream';
        return new Response(bytes, { status: 200, headers: { 'content-type': type } });
      } catch {
        return new Response(null, { status: 404, statusText: `cannot read ${path}` });
      }
    };
    (fileFetch as { morphnetFileFetch?: boolean }).morphnetFileFetch = true;
    globalThis.fetch = fileFetch as typeof fetch;
  }

  g.importScripts = (...urls: string[]): void => {
    for (const url of urls) {
      if (!isFileUrl(url)) throw new Error(`importScripts shim: only file: URLs are supported, got ${url}`);
      const path = fileURLToPath(url);
      // Synchronous on purpose: importScripts is synchronous in a worker, and the caller relies on
      // the script's globals existing when it returns.
      const code = readFileSync(path, 'utf8');
      vm.runInThisContext(code, { filename: path });
    }
  };

  const sab = Object.getOwnPropertyDescriptor(globalThis, 'SharedArrayBuffer');
  delete g.SharedArrayBuffer;
  return () => {
    delete g.importScripts;
    if (sab) Object.defineProperty(globalThis, 'SharedArrayBuffer', sab);
  };
}

async function loadRuntime(): Promise<Runtime> {
  const pkg = packageDir();
  const wasmDir = join(pkg, 'wasm');
  const restore = installShims(wasmDir);
  try {
    const module = (await import('@tensorflow/tfjs-tflite')) as TfliteModule;
    const features = await module.getWasmFeatures();
    // Loading a tiny model waits for the wasm module (whose load began at import) while the
    // shims are still up; later loads reuse it.
    const probe = writeSpecTflite(makeSpec({ kind: 'add', inH: 1, inW: 1, cIn: 1 }));
    const model = await module.loadTFLiteModel(probe.slice().buffer, { numThreads: 1, enableProfiling: false });
    disposeRunner(model);
    const version = (JSON.parse(await readFile(join(pkg, 'package.json'), 'utf8')) as { version: string }).version;
    return { module, info: { version, wasmDir, simd: features.simd, threads: false } };
  } catch (err) {
    throw new MorphError('MORPH_ERR_BACKEND', `the TFLite runtime (@tensorflow/tfjs-tflite) cannot be loaded in Node: ${err instanceof Error ? err.message : String(err)}`);
  } finally {
    restore();
  }
}

/**
 * Loads the TFLite wasm runtime once per process (later calls share it).
 * @throws MorphError `MORPH_ERR_BACKEND` when the package or its wasm cannot be loaded.
 */
export async function loadTfliteRuntime(): Promise<TfliteRuntimeInfo> {
  runtime ??= loadRuntime();
  try {
    return (await runtime).info;
  } catch (err) {
    runtime = null;
    throw err;
  }
}

export interface TfliteTensorInfo {
  readonly name: string;
  readonly shape: readonly number[];
  readonly dtype: string;
}

/** A `.tflite` model loaded into the Node TFLite runtime. */
export interface TfliteNodeModel {
  readonly inputs: readonly TfliteTensorInfo[];
  readonly outputs: readonly TfliteTensorInfo[];
  /**
   * Runs one inference; `inputs` in the model's input order, each a float32 array of the input's
   * size. Returns copies of the outputs in output order.
   */
  run(inputs: readonly Float32Array[]): Float32Array[];
  /** Runs one inference on tensors (for timing; the caller disposes the returned tensors). */
  predict(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor | tf.Tensor[];
  /** The package's `TFLiteModel`, for timing by its interpreter alone (`tfliteInferRunnable`). */
  readonly tfliteModel: unknown;
  dispose(): void;
}

export interface TfliteLoadOptions {
  /** Interpreter threads; only 1 is possible in Node (no workers). Default 1. */
  readonly numThreads?: number;
}

/**
 * Loads a `.tflite` flatbuffer into the Node TFLite runtime.
 * @throws MorphError `MORPH_ERR_BACKEND` when the runtime cannot load, `MORPH_ERR_BAD_ARGUMENT`
 *   when the interpreter rejects the model (the message carries the runtime's own words).
 */
export async function loadTfliteModel(model: ArrayBuffer | Uint8Array, options: TfliteLoadOptions = {}): Promise<TfliteNodeModel> {
  await loadTfliteRuntime();
  const { module } = await runtime!;
  const buffer = model instanceof Uint8Array ? (model.buffer.slice(model.byteOffset, model.byteOffset + model.byteLength) as ArrayBuffer) : model;
  let loaded: Awaited<ReturnType<TfliteModule['loadTFLiteModel']>>;
  try {
    loaded = await module.loadTFLiteModel(buffer, { numThreads: options.numThreads ?? 1, enableProfiling: false });
  } catch (err) {
    throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `the TFLite runtime rejected the model: ${err instanceof Error ? err.message : String(err)}`);
  }
  const infos = (list: readonly tf.ModelTensorInfo[]): TfliteTensorInfo[] =>
    list.map((t) => ({ name: t.name, shape: (t.shape ?? []).map(Number), dtype: String(t.dtype) }));
  const inputs = infos(loaded.inputs);
  const outputs = infos(loaded.outputs);
  let disposed = false;
  const predict = (x: tf.Tensor | tf.Tensor[]): tf.Tensor | tf.Tensor[] => {
    if (disposed) throw new MorphError('MORPH_ERR_BAD_ARGUMENT', 'this TFLite model was disposed');
    const out = loaded.predict(x);
    if (out instanceof tf.Tensor || Array.isArray(out)) return out;
    return outputs.map((o) => (out as tf.NamedTensorMap)[o.name]);
  };
  return {
    inputs,
    outputs,
    run(arrays) {
      if (arrays.length !== inputs.length) {
        throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `the model has ${inputs.length} inputs, ${arrays.length} were given`);
      }
      const tensors = arrays.map((a, i) => tf.tensor(a, [...inputs[i].shape], 'float32'));
      try {
        const out = predict(tensors.length === 1 ? tensors[0] : tensors);
        const list = Array.isArray(out) ? out : [out];
        const data = list.map((t) => Float32Array.from(t.dataSync() as Float32Array));
        list.forEach((t) => t.dispose());
        return data;
      } finally {
        tensors.forEach((t) => t.dispose());
      }
    },
    predict,
    tfliteModel: loaded,
    dispose() {
      // The runner frees its interpreter on cleanUp; TFLiteModel keeps it private.
      if (disposed) return;
      disposed = true;
      disposeRunner(loaded);
    },
  };
}

/** `TFLiteModel` keeps its runner private; the runner frees the interpreter's memory on cleanUp. */
function disposeRunner(model: unknown): void {
  const runner = (model as { modelRunner?: { cleanUp?: () => void } }).modelRunner;
  runner?.cleanUp?.();
}
