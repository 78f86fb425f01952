/**
 * The browser runtime adapters: `tfjs-wasm` (@tensorflow/tfjs-backend-wasm), `tfjs-webgl`
 * (tfjs's WebGL backend) and `tflite` (@tensorflow/tfjs-tflite, TFLite compiled to wasm). They
 * mirror the Node adapters (`../node/adapters.ts`): fixed random weights and inputs per item.
 * A tfjs run reads its output back (`dataSync`), which for WebGL is the honest end-to-end time
 * (queueing the shaders alone would say nothing); a `tflite` run is one `infer()` of the
 * interpreter (`tfliteInferRunnable` in ../tfjs-common.ts).
 *
 * tfjs has one global backend, so a tfjs adapter switches it before it prepares an item; the agent
 * prepares and runs one item at a time. `tflite` switches to `cpu` (its fallback path, `predict`,
 * reads inputs from and writes outputs to tfjs tensors, and on `cpu` those are plain arrays).
 *
 * The wasm files come from our own server (no CDN): the page works on a LAN without internet.
 * Both wasm runtimes are kept on their non-threaded builds. Threaded wasm needs
 * SharedArrayBuffer, which browsers give only to cross-origin-isolated pages, and isolation needs
 * a secure context (HTTPS or localhost), which a phone opening http://192.168.x.y:8080 is not; so
 * the server serves only the non-threaded files and every browser measures the same way.
 *
 * `@tensorflow/tfjs-tflite` starts loading its runtime from the page's own folder as soon as it is
 * imported, before `setWasmPath` can be called: that first request (`/tflite_web_api_cc_simd.js`)
 * 404s and is ignored; the load for our path is a separate one and is the one used.
 *
 * No Node imports here: esbuild bundles this file for the browser.
 */
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import * as tflite from '@tensorflow/tfjs-tflite';
import { MorphError } from '../../src/errors.ts';
import { writeSpecTflite } from '../../src/export/tflite/single-op.ts';
import { makeSpec } from '../../src/ops/op-spec.ts';
import { specInputs } from '../../src/ops/spec-weights.ts';
import type { RuntimeName } from '../../src/protocol/agent-protocol.ts';
import type { Runnable, RuntimeAdapter } from '../runtime.ts';
import { boolFlag, concreteShape, firstLine, predictRunnable, tfjsAdapter, tfliteInferRunnable, tfjsVersion, truncate, useBackend } from '../tfjs-common.ts';

/** The runtimes a browser agent can serve, in the order they are probed and reported. */
export const BROWSER_RUNTIMES = ['tfjs-wasm', 'tfjs-webgl', 'tflite'] as const satisfies readonly RuntimeName[];

/** A runtime that did not load in this browser, and why. */
export interface UnavailableRuntime {
  readonly name: RuntimeName;
  readonly reason: string;
}

export interface BrowserAdapterOptions {
  /** URL prefix of the tfjs wasm backend's `.wasm` files, ending in `/`. Default `/agent/assets/tfjs-wasm/`. */
  readonly tfjsWasmPath?: string;
  /** URL prefix of the TFLite runtime's `.js`/`.wasm` files, ending in `/`. Default `/agent/assets/tflite/`. */
  readonly tfliteWasmPath?: string;
  /** `@tensorflow/tfjs-tflite` version, for the report (the package does not export it). Default 'unknown'. */
  readonly tfliteVersion?: string;
  /** Longest time one runtime may take to initialise, ms. Default 30 000. */
  readonly initTimeoutMs?: number;
}

export interface BrowserAdapters {
  readonly adapters: RuntimeAdapter[];
  readonly unavailable: UnavailableRuntime[];
}

export const DEFAULT_TFJS_WASM_PATH = '/agent/assets/tfjs-wasm/';
export const DEFAULT_TFLITE_WASM_PATH = '/agent/assets/tflite/';
const DEFAULT_INIT_TIMEOUT_MS = 30_000;

// ───────────────────────────── tfjs-wasm ─────────────────────────────

async function loadWasm(path: string): Promise<RuntimeAdapter> {
  if (typeof WebAssembly !== 'object') throw new Error('this browser has no WebAssembly');
  // Only the first call before the backend initialises counts; the threaded file is not served.
  if (tf.findBackend('wasm') == null) {
    tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
    setWasmPaths(path);
  }
  await useBackend('wasm');
  const simd = await boolFlag('WASM_HAS_SIMD_SUPPORT');
  const name = 'tfjs-wasm';
  const note = truncate(`wasm backend (XNNPACK), SIMD ${simd === undefined ? 'unknown' : simd ? 'on' : 'off'}, non-threaded build (the page is not cross-origin isolated); wasm files from ${path}`, 500);
  return tfjsAdapter(name, 'wasm', { name, version: `@tensorflow/tfjs ${tfjsVersion()}`, threads: 1, ...(simd === undefined ? {} : { simd }), note });
}

// ───────────────────────────── tfjs-webgl ─────────────────────────────

/** The GPU the WebGL context renders on ("ANGLE (Google, Vulkan 1.3.0 (SwiftShader Device …))" in headless Chromium). */
function webglRenderer(gl: WebGLRenderingContext | WebGL2RenderingContext | undefined): string {
  if (!gl) return 'unknown renderer';
  try {
    const ext = gl.getExtension('WEBGL_debug_renderer_info');
    const renderer = ext ? gl.getParameter(ext.UNMASKED_RENDERER_WEBGL) : gl.getParameter(gl.RENDERER);
    const vendor = ext ? gl.getParameter(ext.UNMASKED_VENDOR_WEBGL) : gl.getParameter(gl.VENDOR);
    return `${String(vendor)} / ${String(renderer)}`;
  } catch (err) {
    return `unknown renderer (${firstLine(err)})`;
  }
}

async function loadWebgl(): Promise<RuntimeAdapter> {
  await useBackend('webgl');
  const backend = tf.backend() as unknown as { gpgpu?: { gl?: WebGLRenderingContext | WebGL2RenderingContext } };
  const version = tf.env().getNumber('WEBGL_VERSION');
  const renderer = webglRenderer(backend.gpgpu?.gl);
  const name = 'tfjs-webgl';
  const note = truncate(`WebGL ${version}, renderer: ${renderer}; each run reads the output back (dataSync)`, 500);
  return tfjsAdapter(name, 'webgl', { name, version: `@tensorflow/tfjs ${tfjsVersion()}`, note });
}

// ───────────────────────────── tflite ─────────────────────────────

interface TfliteModelLike {
  readonly inputs: readonly tf.ModelTensorInfo[];
  predict(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor | tf.Tensor[] | tf.NamedTensorMap;
}

/** `TFLiteModel` keeps its runner private; the runner frees the interpreter's memory on cleanUp. */
function disposeRunner(model: unknown): void {
  const runner = (model as { modelRunner?: { cleanUp?: () => void } }).modelRunner;
  runner?.cleanUp?.();
}

async function loadTfliteModel(bytes: Uint8Array): Promise<TfliteModelLike> {
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  try {
    return await tflite.loadTFLiteModel(buffer, { numThreads: 1, enableProfiling: false });
  } catch (err) {
    throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `the TFLite runtime rejected the model: ${firstLine(err)}`);
  }
}

/**
 * Times a loaded `.tflite` by its interpreter alone (`tfliteInferRunnable`), or through `predict`
 * where the interpreter is not reachable: inputs made once, each run reads every output back.
 */
function tfliteRunnable(model: TfliteModelLike, data: readonly Float32Array[] | null): Runnable {
  let direct: Runnable | null;
  try {
    direct = tfliteInferRunnable(model, data, () => disposeRunner(model));
  } catch (err) {
    disposeRunner(model);
    throw err;
  }
  if (direct) return direct;
  const inputs: tf.Tensor[] = [];
  try {
    model.inputs.forEach((input, i) => {
      const shape = concreteShape(input.shape ?? []);
      if (shape === null) throw new MorphError('MORPH_ERR_SHAPE', `the .tflite input ${input.name} has shape ${JSON.stringify(input.shape)}; only the batch dimension may be unknown`);
      inputs.push(data ? tf.tensor(data[i], shape, 'float32') : tf.randomUniform(shape, -1, 1, 'float32'));
    });
  } catch (err) {
    inputs.forEach((t) => t.dispose());
    disposeRunner(model);
    throw err;
  }
  return predictRunnable((x) => model.predict(x), inputs, () => disposeRunner(model));
}

function base64Bytes(text: string): Uint8Array {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/**
 * Loads the TFLite runtime on its non-threaded build. The package probes threads by posting a
 * SharedArrayBuffer; a browser that still exposes one without isolation (old desktop Chrome) is
 * shown none while the runtime loads, so that it asks for a file the server has.
 */
async function loadTflite(path: string, version: string): Promise<RuntimeAdapter> {
  if (typeof WebAssembly !== 'object') throw new Error('this browser has no WebAssembly');
  const g = globalThis as Record<string, unknown>;
  const sab = Object.getOwnPropertyDescriptor(globalThis, 'SharedArrayBuffer');
  let simd = false;
  try {
    if (sab?.configurable) delete g.SharedArrayBuffer;
    tflite.setWasmPath(path);
    simd = (await tflite.getWasmFeatures()).simd;
    await useBackend('cpu');
    // Loading a tiny model waits for the wasm module, so a missing file fails here, not in a lease.
    const probe = await loadTfliteModel(writeSpecTflite(makeSpec({ kind: 'add', inH: 1, inW: 1, cIn: 1 })));
    disposeRunner(probe);
  } finally {
    if (sab?.configurable && !('SharedArrayBuffer' in globalThis)) Object.defineProperty(globalThis, 'SharedArrayBuffer', sab);
  }
  const withModel = async (bytes: Uint8Array, data: readonly Float32Array[] | null): Promise<Runnable> => {
    await useBackend('cpu');
    return tfliteRunnable(await loadTfliteModel(bytes), data);
  };
  const note = truncate(`TFLite in WebAssembly (XNNPACK), non-threaded ${simd ? "SIMD " : ""}build from ${path}; inputs written into the interpreter once, a run is one infer()`, 500);
  return {
    name: 'tflite',
    info: () => ({ name: 'tflite', version: `@tensorflow/tfjs-tflite ${version}`, threads: 1, simd, note }),
    prepareOp: (spec) => withModel(writeSpecTflite(spec), specInputs(spec)),
    async prepareNetwork(item) {
      if (item.tfliteBase64 === undefined) {
        throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `network "${item.name}": runtime tflite needs tfliteBase64 (the network's .tflite), but the item carries only a Keras topology`);
      }
      let bytes: Uint8Array;
      try {
        bytes = base64Bytes(item.tfliteBase64);
      } catch (err) {
        throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `network "${item.name}": tfliteBase64 is not base64: ${firstLine(err)}`);
      }
      if (bytes.length === 0) throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `network "${item.name}": tfliteBase64 decodes to no bytes`);
      return withModel(bytes, null);
    },
  };
}

// ───────────────────────────── loading ─────────────────────────────

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not initialise within ${Math.round(ms / 1000)} s`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function loadAdapter(name: RuntimeName, o: Required<BrowserAdapterOptions>): Promise<RuntimeAdapter> {
  switch (name) {
    case 'tfjs-wasm':
      return loadWasm(o.tfjsWasmPath);
    case 'tfjs-webgl':
      return loadWebgl();
    case 'tflite':
      return loadTflite(o.tfliteWasmPath, o.tfliteVersion);
    case 'tfjs-cpu':
    case 'tfjs-node':
      return Promise.reject(new Error(`${name} is served by the Node agent (morphnet agent), not the browser page`));
  }
}

/**
 * Loads the adapters of `requested` (default: every browser runtime), one after the other (two
 * wasm runtimes must not initialise at once: the TFLite loader hides SharedArrayBuffer while it
 * probes). Never throws for a runtime that cannot load: it lands in `unavailable` with the
 * reason. Leaves tfjs on the `cpu` backend.
 */
export async function browserAdapters(requested: readonly RuntimeName[] = BROWSER_RUNTIMES, options: BrowserAdapterOptions = {}): Promise<BrowserAdapters> {
  const o: Required<BrowserAdapterOptions> = {
    tfjsWasmPath: options.tfjsWasmPath ?? DEFAULT_TFJS_WASM_PATH,
    tfliteWasmPath: options.tfliteWasmPath ?? DEFAULT_TFLITE_WASM_PATH,
    tfliteVersion: options.tfliteVersion ?? 'unknown',
    initTimeoutMs: options.initTimeoutMs ?? DEFAULT_INIT_TIMEOUT_MS,
  };
  const adapters: RuntimeAdapter[] = [];
  const unavailable: UnavailableRuntime[] = [];
  for (const name of [...new Set(requested)]) {
    try {
      adapters.push(await withTimeout(loadAdapter(name, o), o.initTimeoutMs, name));
    } catch (err) {
      unavailable.push({ name, reason: truncate(firstLine(err), 300) });
    }
  }
  try {
    await useBackend('cpu');
  } catch {
    // cpu always registers; nothing to report if it does not.
  }
  return { adapters, unavailable };
}
