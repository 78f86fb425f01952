/**
 * Run tfjs ops inside a kernel function. A kernel receives bare `TensorInfo`s and must return
 * `TensorInfo`s; our gradient kernels are easier to get right written with the ops API
 * (`tf.conv2d`, `tf.pad`, …), which the engine dispatches to kernels the current backend has.
 *
 * Why this is safe: while a kernel runs the engine's `kernelDepth` is above zero, so nothing here
 * is recorded on the gradient tape. Each input is wrapped in a Tensor that shares its data; we
 * raise the backend's reference count first so that disposing the wrapper leaves the caller's
 * data alive. The result is returned as a `Tensor`, which the engine takes as the kernel output
 * as is (it only wraps outputs that are not Tensors yet), so no reference is lost or doubled.
 */

import * as tf from '@tensorflow/tfjs';

/** What the engine passes to a `kernelFunc` (tfjs types the backend loosely as `{}`). */
export type KernelArgs = Parameters<tf.KernelFunc>[0];

export function runComposite<I extends readonly tf.TensorInfo[]>(
  kernelBackend: KernelArgs['backend'],
  inputs: I,
  compute: (...tensors: { [K in keyof I]: tf.Tensor }) => tf.Tensor,
): tf.Tensor {
  const engine = tf.engine();
  const backend = kernelBackend as tf.KernelBackend;
  const wrapped = inputs.map((info) => {
    backend.incRef(info.dataId);
    return engine.makeTensorFromTensorInfo(info, backend);
  });
  try {
    return tf.tidy(() => compute(...(wrapped as unknown as { [K in keyof I]: tf.Tensor })));
  } finally {
    for (const t of wrapped) t.dispose();
  }
}
