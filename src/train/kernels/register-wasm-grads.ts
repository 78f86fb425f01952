/**
 * Registers, for the `wasm` backend, the gradient kernels tfjs-backend-wasm 4.22 lacks, so that
 * `model.fit` works there for Conv2D, DepthwiseConv2D and SeparableConv2D. Idempotent, and it
 * leaves alone any kernel the backend already has (a later tfjs release may ship its own).
 * Registering does not need the backend to be initialised: the registry is keyed by name.
 */

import * as tf from '@tensorflow/tfjs';
import { conv2dBackpropFilterConfig } from './conv2d-backprop-filter.ts';
import { depthwiseBackpropFilterConfig } from './depthwise-backprop-filter.ts';
import { depthwiseBackpropInputConfig } from './depthwise-backprop-input.ts';
import { fusedBatchNormGradConfig, registerFusedBatchNormGrad } from './fused-batch-norm-grad.ts';
import { activeWasmFastPaths, registerWasmFastPaths } from './wasm-fast-paths.ts';

export const WASM_GRAD_KERNELS: readonly tf.KernelConfig[] = [
  conv2dBackpropFilterConfig,
  depthwiseBackpropFilterConfig,
  depthwiseBackpropInputConfig,
];

export interface WasmGradRegistration {
  /** Kernels this call registered. */
  registered: string[];
  /** Kernels that were already there (ours from an earlier call, or the backend's own). */
  alreadyPresent: string[];
}

export function registerWasmGradKernels(): WasmGradRegistration {
  const result: WasmGradRegistration = { registered: [], alreadyPresent: [] };
  // Not a wasm kernel but a faster gradient for every backend; see fused-batch-norm-grad.ts.
  registerFusedBatchNormGrad();
  registerWasmFastPaths();
  for (const config of WASM_GRAD_KERNELS) {
    if (tf.getKernel(config.kernelName, config.backendName) !== undefined) {
      result.alreadyPresent.push(config.kernelName);
    } else {
      tf.registerKernel(config);
      result.registered.push(config.kernelName);
    }
  }
  return result;
}

/**
 * Names of the kernels that run our implementation on wasm right now: the missing gradient
 * kernels, the fast paths (`wasm-fast-paths.ts`) and the leaner batch-norm gradient.
 */
export function ourWasmGradKernels(): string[] {
  const grads = WASM_GRAD_KERNELS.filter((config) => tf.getKernel(config.kernelName, 'wasm')?.kernelFunc === config.kernelFunc).map(
    (config) => config.kernelName,
  );
  const fast = activeWasmFastPaths().map((name) => `${name} (fast path)`);
  const bn = tf.getGradient('FusedBatchNorm')?.gradFunc === fusedBatchNormGradConfig.gradFunc ? ['FusedBatchNorm gradient'] : [];
  return [...grads, ...fast, ...bn];
}

/** Gradient kernels that training on wasm needs and that no one has registered yet. */
export function missingWasmGradKernels(): string[] {
  return WASM_GRAD_KERNELS.filter((config) => tf.getKernel(config.kernelName, 'wasm') === undefined).map(
    (config) => config.kernelName,
  );
}
