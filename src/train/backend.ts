/**
 * Which tfjs backend trains and runs our models, chosen once per process and always reported.
 *
 * `@tensorflow/tfjs-node` is the fastest but is an optional dependency that often cannot install
 * (its install script downloads libtensorflow), so `auto` tries it, then `wasm` (XNNPACK, SIMD;
 * needs our gradient kernels to train), then the pure-JS `cpu` backend (always there, ~100× slower
 * at convolutions). An explicit choice that cannot load is an error, never a silent fallback: a
 * user who asked for tfjs-node should learn that they are not getting it.
 */

import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { MorphError } from '../errors.ts';
import { missingWasmGradKernels, ourWasmGradKernels, registerWasmGradKernels } from './kernels/register-wasm-grads.ts';

export const VALID_BACKENDS = ['auto', 'tfjs-node', 'wasm', 'cpu'] as const;
export type BackendChoice = (typeof VALID_BACKENDS)[number];
/** A backend that actually runs (`auto` resolves to one of these). */
export type BackendName = Exclude<BackendChoice, 'auto'>;

export interface SelectBackendOptions {
  /** Default `auto`. */
  backend?: BackendChoice;
}

export interface BackendFallback {
  backend: BackendName;
  reason: string;
}

export interface BackendInfo {
  name: BackendName;
  /** The name tfjs knows it by (`tensorflow` for tfjs-node). */
  tfjsBackend: string;
  /** wasm only: whether the SIMD build runs; null for other backends. */
  simd: boolean | null;
  /** wasm only: whether the multi-threaded build runs (never in Node); null for other backends. */
  threads: boolean | null;
  tfjsVersion: string;
  /** Gradient kernels that MorphNet Edge registered for this backend (wasm only). */
  registeredGradKernels: string[];
  /** `auto` only: the backends tried before this one, and why each was not used. */
  fellBackFrom?: BackendFallback[];
}

/** What `doctor` shows: every backend's availability, probed without switching the active one. */
export interface BackendReport {
  tfjsVersion: string;
  /** The active tfjs backend, or null if none was chosen yet. */
  active: string | null;
  tfjsNode: { available: boolean; reason?: string };
  wasm: {
    available: boolean;
    reason?: string;
    simd: boolean | null;
    threads: boolean | null;
    /** Where the .wasm binaries are read from. */
    wasmDir: string | null;
    /** Gradient kernels training needs that are not registered (none after `selectBackend`). */
    missingGradKernels: string[];
  };
  cpu: { available: true };
}

const TFJS_NODE_PACKAGE = '@tensorflow/tfjs-node';
const TFJS_NODE_BACKEND = 'tensorflow';
const WASM_PACKAGE = '@tensorflow/tfjs-backend-wasm';
const WASM_FILES = ['tfjs-backend-wasm.wasm', 'tfjs-backend-wasm-simd.wasm'];

type Loaded = { ok: true } | { ok: false; reason: string };

interface WasmModule {
  setWasmPaths(prefixOrFileMap: string, usePlatformFetch?: boolean): void;
}

const require = createRequire(import.meta.url);
let tfjsNodeLoad: Promise<Loaded> | undefined;
let wasmLoad: Promise<Loaded & { dir: string | null }> | undefined;

export async function selectBackend(options: SelectBackendOptions = {}): Promise<BackendInfo> {
  const choice = options.backend ?? 'auto';
  if (!(VALID_BACKENDS as readonly string[]).includes(choice)) {
    throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `unknown backend ${JSON.stringify(choice)}; expected one of ${VALID_BACKENDS.join(', ')}`, {
      backend: choice,
    });
  }
  if (choice !== 'auto') {
    const result = await activate(choice);
    if (!result.ok) {
      throw new MorphError('MORPH_ERR_BACKEND', `backend "${choice}" was requested but cannot be used: ${result.reason}. ${ADVICE[choice]}`, {
        backend: choice,
        reason: result.reason,
      });
    }
    return describeActive(choice);
  }
  const fellBackFrom: BackendFallback[] = [];
  for (const candidate of ['tfjs-node', 'wasm'] as const) {
    const result = await activate(candidate);
    if (result.ok) return describeActive(candidate, fellBackFrom);
    fellBackFrom.push({ backend: candidate, reason: result.reason });
  }
  const cpu = await activate('cpu');
  if (!cpu.ok) {
    throw new MorphError('MORPH_ERR_BACKEND', `no tfjs backend could be initialised; cpu failed: ${cpu.reason}`, { fellBackFrom });
  }
  return describeActive('cpu', fellBackFrom);
}

/**
 * Reports what each backend would do here, without changing the active backend. Loading
 * tfjs-node registers its backend with tfjs, so call `selectBackend` before any tfjs work rather
 * than relying on tfjs's own default choice.
 */
export async function probeBackends(): Promise<BackendReport> {
  const node = await loadTfjsNode();
  const wasm = await loadWasm();
  const flags = wasm.ok ? await wasmFlags() : { simd: null, threads: null };
  return {
    tfjsVersion: tfjsVersion(),
    active: tf.getBackend() ?? null,
    tfjsNode: node.ok ? { available: true } : { available: false, reason: node.reason },
    wasm: {
      available: wasm.ok,
      ...(wasm.ok ? {} : { reason: wasm.reason }),
      ...flags,
      wasmDir: wasm.dir,
      missingGradKernels: missingWasmGradKernels(),
    },
    cpu: { available: true },
  };
}

/** One line for logs and reports: which backend runs, and why not a faster one. */
export function describeBackend(info: BackendInfo): string {
  const parts = [`backend ${info.name}`];
  if (info.name === 'wasm') parts.push(`(SIMD ${onOff(info.simd)}, threads ${onOff(info.threads)})`);
  parts.push(`tfjs ${info.tfjsVersion}`);
  let line = parts.join(' ');
  if (info.fellBackFrom && info.fellBackFrom.length > 0) {
    line += `; not used: ${info.fellBackFrom.map((f) => `${f.backend} (${f.reason})`).join(', ')}`;
  }
  return line;
}

const ADVICE: Record<BackendName, string> = {
  'tfjs-node': `Install it with \`npm install ${TFJS_NODE_PACKAGE}\` (its install script must be allowed and must reach its libtensorflow download), or use --backend wasm (or auto).`,
  wasm: `Reinstall ${WASM_PACKAGE} so that its dist/*.wasm files are present, or use --backend cpu (much slower).`,
  cpu: 'This is a bug in the tfjs installation; reinstall @tensorflow/tfjs.',
};

async function activate(name: BackendName): Promise<Loaded> {
  if (name === 'tfjs-node') {
    const loaded = await loadTfjsNode();
    return loaded.ok ? switchTo(TFJS_NODE_BACKEND) : loaded;
  }
  if (name === 'wasm') {
    const loaded = await loadWasm();
    if (!loaded.ok) return loaded;
    registerWasmGradKernels();
    return switchTo('wasm', loaded.dir);
  }
  return switchTo('cpu');
}

async function switchTo(tfjsName: string, wasmDir?: string | null): Promise<Loaded> {
  try {
    if (await tf.setBackend(tfjsName)) return { ok: true };
    const where = wasmDir ? ` (wasm files read from ${wasmDir})` : '';
    return { ok: false, reason: `tfjs could not initialise backend '${tfjsName}'${where}; tfjs logged the cause above` };
  } catch (err) {
    return { ok: false, reason: firstLine(err) };
  }
}

async function describeActive(name: BackendName, fellBackFrom?: BackendFallback[]): Promise<BackendInfo> {
  const flags = name === 'wasm' ? await wasmFlags() : { simd: null, threads: null };
  return {
    name,
    tfjsBackend: tf.getBackend(),
    ...flags,
    tfjsVersion: tfjsVersion(),
    registeredGradKernels: name === 'wasm' ? ourWasmGradKernels() : [],
    ...(fellBackFrom ? { fellBackFrom } : {}),
  };
}

/** Imported at most once per process: a native addon cannot be unloaded, and failure is stable. */
function loadTfjsNode(): Promise<Loaded> {
  tfjsNodeLoad ??= (async (): Promise<Loaded> => {
    // A variable specifier keeps TypeScript from needing the (optional, usually absent) types.
    const specifier: string = TFJS_NODE_PACKAGE;
    try {
      await import(specifier);
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') {
        return { ok: false, reason: `${TFJS_NODE_PACKAGE} is not installed` };
      }
      return { ok: false, reason: `${TFJS_NODE_PACKAGE} failed to load: ${firstLine(err)}` };
    }
    if (tf.findBackendFactory(TFJS_NODE_BACKEND) == null) {
      return { ok: false, reason: `${TFJS_NODE_PACKAGE} loaded but registered no '${TFJS_NODE_BACKEND}' backend with this @tensorflow/tfjs (version mismatch?)` };
    }
    return { ok: true };
  })();
  return tfjsNodeLoad;
}

/**
 * Imports the wasm backend and points it at its own dist folder. In Node the emscripten loader
 * would otherwise look for the .wasm files next to the running script, not the package.
 */
function loadWasm(): Promise<Loaded & { dir: string | null }> {
  wasmLoad ??= (async () => {
    let dir: string;
    try {
      dir = path.dirname(require.resolve(WASM_PACKAGE));
    } catch {
      return { ok: false as const, reason: `${WASM_PACKAGE} is not installed`, dir: null };
    }
    const missing = WASM_FILES.filter((file) => !fs.existsSync(path.join(dir, file)));
    if (missing.length > 0) {
      return { ok: false as const, reason: `${missing.join(', ')} not found in ${dir}`, dir };
    }
    try {
      const wasm = (await import(WASM_PACKAGE)) as unknown as WasmModule;
      // Only effective before the backend first initialises; harmless afterwards.
      if (tf.findBackend('wasm') == null) wasm.setWasmPaths(dir + path.sep);
    } catch (err) {
      return { ok: false as const, reason: `${WASM_PACKAGE} failed to load: ${firstLine(err)}`, dir };
    }
    return { ok: true as const, dir };
  })();
  return wasmLoad;
}

/** The flags exist once the wasm package is imported; they test the runtime, not the backend. */
async function wasmFlags(): Promise<{ simd: boolean | null; threads: boolean | null }> {
  return {
    simd: await readBoolFlag('WASM_HAS_SIMD_SUPPORT'),
    threads: await readBoolFlag('WASM_HAS_MULTITHREAD_SUPPORT'),
  };
}

async function readBoolFlag(name: string): Promise<boolean | null> {
  try {
    return Boolean(await tf.env().getAsync(name));
  } catch {
    return null;
  }
}

function tfjsVersion(): string {
  return tf.version.tfjs ?? tf.version_core;
}

function onOff(flag: boolean | null): string {
  return flag === null ? 'unknown' : flag ? 'on' : 'off';
}

function firstLine(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.split('\n')[0] ?? message;
}

/** The backend already active (selected before), or `auto`'s choice when none is. */
export async function activeOrAutoBackend(): Promise<BackendInfo> {
  const active = tf.getBackend();
  const name: BackendChoice = active === TFJS_NODE_BACKEND ? 'tfjs-node' : active === 'wasm' || active === 'cpu' ? active : 'auto';
  return selectBackend({ backend: name });
}
