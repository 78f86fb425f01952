/**
 * Which training engine runs a search: `torch` (a PyTorch worker, 11–17× faster than tfjs-wasm
 * on these machines, docs/benchmarks.md), `tfjs` (in process, tfjs-node → wasm → cpu), or `auto`: torch when a Python that
 * imports torch is found, else tfjs, and tfjs for any network with a layer the torch worker does
 * not build (with a message naming the layer). An explicit `torch` that cannot start, or cannot
 * build a network, is an error, never a silent fallback.
 */
import { MorphError } from '../errors.ts';
import { selectBackend, type BackendChoice } from './backend.ts';
import type { EngineChoice, EngineReport, FitHooks, FitRequest, FitResult, TrainingEngine } from './engine.ts';
import { createTfjsEngine } from './tfjs-engine.ts';
import { startTorchEngine, torchReport, type TorchEngineOptions } from './torch/torch-engine.ts';

export interface SelectEngineOptions {
  /** Default `auto`. */
  readonly engine?: EngineChoice;
  /** The tfjs backend when tfjs trains. Default `auto`. */
  readonly backend?: BackendChoice;
  readonly torch?: TorchEngineOptions;
  /** Told when `auto` falls back to tfjs (at start, or for one network). */
  readonly onNotice?: (message: string) => void;
}

export interface SelectedEngine {
  readonly engine: TrainingEngine;
  readonly report: EngineReport;
}

async function tfjsEngine(backend: BackendChoice | undefined): Promise<TrainingEngine> {
  return createTfjsEngine(await selectBackend({ backend: backend ?? 'auto' }));
}

/**
 * Starts the chosen engine. @throws MorphError `MORPH_ERR_BAD_ARGUMENT` for an unknown choice,
 * `MORPH_ERR_ENGINE` when `torch` cannot start, `MORPH_ERR_BACKEND` when the tfjs backend cannot load.
 */
export async function selectEngine(o: SelectEngineOptions = {}): Promise<SelectedEngine> {
  const choice = o.engine ?? 'auto';
  if (choice === 'tfjs') {
    const engine = await tfjsEngine(o.backend);
    return { engine, report: { choice, name: 'tfjs', description: engine.description } };
  }
  if (choice === 'torch') {
    const engine = await startTorchEngine(o.torch);
    return { engine, report: torchReport(engine, choice) };
  }
  if (choice !== 'auto') throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `unknown training engine ${JSON.stringify(choice)}; expected one of auto, torch, tfjs`);
  let torch;
  try {
    torch = await startTorchEngine(o.torch);
  } catch (err) {
    if (!(err instanceof MorphError) || err.code !== 'MORPH_ERR_ENGINE') throw err;
    const reason = err.message.split('\n')[0];
    o.onNotice?.(`engine auto: training with tfjs, torch is not available (${reason})`);
    const engine = await tfjsEngine(o.backend);
    return { engine, report: { choice, name: 'tfjs', description: engine.description, fellBack: reason } };
  }
  return { engine: withTfjsFallback(torch, o), report: torchReport(torch, choice) };
}

/** torch, with tfjs for the networks it cannot build. */
function withTfjsFallback(torch: TrainingEngine, o: SelectEngineOptions): TrainingEngine {
  let tfjs: Promise<TrainingEngine> | null = null;
  return {
    name: torch.name,
    description: torch.description,
    async fit(request: FitRequest, hooks?: FitHooks): Promise<FitResult> {
      try {
        return await torch.fit(request, hooks);
      } catch (err) {
        if (!(err instanceof MorphError) || err.details.workerCode !== 'unsupported-layer') throw err;
        o.onNotice?.(`engine auto: training this network with tfjs: ${err.message.replace(/; use --engine tfjs.*$/, '')}`);
        tfjs ??= tfjsEngine(o.backend);
        return (await tfjs).fit(request, hooks);
      }
    },
    async close() {
      await torch.close();
      if (tfjs) await (await tfjs).close();
    },
  };
}
