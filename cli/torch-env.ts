/**
 * The torch engine's settings from the environment, read at the edge (the library never reads
 * process.env): MORPHNET_PYTHON names the interpreter (then only it is tried), MORPHNET_TORCH_THREADS
 * the thread count, MORPHNET_TORCH_DEVICE the device (auto, cpu, cuda).
 */
import type { TorchEngineOptions } from '../src/train/torch/torch-engine.ts';

export function torchOptions(env: NodeJS.ProcessEnv = process.env): TorchEngineOptions {
  const threads = Number(env.MORPHNET_TORCH_THREADS);
  return {
    ...(env.MORPHNET_PYTHON ? { pythons: [env.MORPHNET_PYTHON] } : {}),
    ...(Number.isInteger(threads) && threads > 0 ? { threads } : {}),
    ...(env.MORPHNET_TORCH_DEVICE ? { device: env.MORPHNET_TORCH_DEVICE } : {}),
  };
}
