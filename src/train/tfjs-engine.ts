/**
 * The tfjs implementation of the training interface: the network lives in this process on the
 * active tfjs backend (tfjs-node, wasm or cpu, see backend.ts), trained by `train` (loop.ts).
 */
import { recalibrateBatchNorm } from './bn-recalibrate.ts';
import { describeBackend, type BackendInfo } from './backend.ts';
import type { FitHooks, FitRequest, FitResult, TrainingEngine } from './engine.ts';
import { evaluate } from './evaluate.ts';
import { train } from './loop.ts';
import { buildTfModel, readWeights } from './tf-model.ts';
import { applyProx, gammaVariables, groupGammaValues } from './gamma-tensors.ts';

export function createTfjsEngine(backend: BackendInfo): TrainingEngine {
  const description = `tfjs engine, ${describeBackend(backend)}`;
  return {
    name: 'tfjs',
    description,
    async fit(request: FitRequest, hooks: FitHooks = {}): Promise<FitResult> {
      const model = await buildTfModel(request.modelTopology, request.weights);
      try {
        const prox = request.prox;
        const vars = prox ? gammaVariables(model) : null;
        let coefficients = prox ? Array.from(prox.coefficients) : [];
        const result = await train(model, request.dataset, request.train, {
          onStep: (e) => {
            // The optimizer took the task gradient; λ·R is the proximal step after it.
            if (prox && vars) applyProx(prox.plan, vars, coefficients, prox.lambda, e.lr);
            return hooks.onStep?.(e);
          },
          onEpochEnd: async (e) => {
            const verdict = await hooks.onEpochEnd?.(e);
            if (prox && vars && hooks.onEpochGammas) {
              const next = hooks.onEpochGammas(groupGammaValues(prox.plan, vars), e.epoch);
              if (next) coefficients = Array.from(next);
            }
            return verdict;
          },
        });
        if (request.recalibrate) await recalibrateBatchNorm(model, request.dataset, request.recalibrate);
        const evaluation = request.evaluate ? await evaluate(model, request.dataset, request.evaluate.split, request.evaluate.batchSize) : null;
        return { weights: readWeights(model), train: result, evaluation, engine: description };
      } finally {
        model.dispose();
      }
    },
    async close() {},
  };
}
