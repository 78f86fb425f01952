/**
 * `Conv2DBackpropFilter` for the wasm backend, which ships without it (so `model.fit` on any
 * model with a Conv2D fails there). Built from the forward `Conv2D` that wasm runs fast (XNNPACK).
 *
 * The filter gradient is dW[i,j,ci,co] = Σ_{n,oh,ow} x[n, oh·sh + i − top, ow·sw + j − left, ci] ·
 * dy[n, oh, ow, co]. Read with the batch as channels, that is a forward convolution of
 * x transposed to [Ci, H, W, N] with dy transposed to [Ho, Wo, N, Co] as the filter, dilated by the
 * stride, over the rows and columns of x that the forward pass touched (zero-padded or cropped).
 */

import * as tf from '@tensorflow/tfjs';
import { runComposite, type KernelArgs } from './composite.ts';
import { convGeometry } from './geometry.ts';
import { padOrCrop } from './spatial.ts';

function conv2dBackpropFilter(args: KernelArgs): tf.TensorInfo {
  const { x, dy } = args.inputs as unknown as { x: tf.TensorInfo; dy: tf.TensorInfo };
  const attrs = args.attrs as unknown as tf.Conv2DBackpropFilterAttrs;
  const info = convGeometry(tf.Conv2DBackpropFilter, x.shape, attrs.filterShape, attrs, false);
  const { strideHeight: sh, strideWidth: sw, filterHeight: fh, filterWidth: fw, outHeight: ho, outWidth: wo } = info;

  return runComposite(args.backend, [x, dy] as const, (xt, dyt) => {
    const window = padOrCrop(
      xt as tf.Tensor4D,
      { start: -info.padInfo.top, length: (ho - 1) * sh + fh },
      { start: -info.padInfo.left, length: (wo - 1) * sw + fw },
    );
    const input = tf.transpose(window, [3, 1, 2, 0]) as tf.Tensor4D; // [Ci, Hw, Ww, N]
    const filter = tf.transpose(dyt, [1, 2, 0, 3]) as tf.Tensor4D; // [Ho, Wo, N, Co]
    const grad = tf.conv2d(input, filter, 1, 'valid', 'NHWC', [sh, sw]); // [Ci, fh, fw, Co]
    return tf.transpose(grad, [1, 2, 0, 3]);
  });
}

export const conv2dBackpropFilterConfig: tf.KernelConfig = {
  kernelName: tf.Conv2DBackpropFilter,
  backendName: 'wasm',
  kernelFunc: conv2dBackpropFilter,
};
