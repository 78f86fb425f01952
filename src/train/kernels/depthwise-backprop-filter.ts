/**
 * `DepthwiseConv2dNativeBackpropFilter` for the wasm backend, which ships without it (so
 * `model.fit` fails on any model with a DepthwiseConv2D or SeparableConv2D).
 *
 * dW[i,j,c,m] = Σ_{n,oh,ow} x[n, oh·sh + i − top, ow·sw + j − left, c] · dy[n, oh, ow, c·M + m].
 * Channels never mix, so fold the batch into the channels: x as one image [1, Hw, Ww, N·C] and dy
 * as a depthwise filter [Ho, Wo, N·C, M], dilated by the stride, give by one forward depthwise
 * convolution the per-sample gradients [fh, fw, N·C·M]; summing over N gives dW. (A version that
 * took one strided window of x per filter tap was 10–30× slower: wasm's StridedSlice is slow.)
 */

import * as tf from '@tensorflow/tfjs';
import { runComposite, type KernelArgs } from './composite.ts';
import { convGeometry } from './geometry.ts';
import { padOrCrop } from './spatial.ts';

function depthwiseBackpropFilter(args: KernelArgs): tf.TensorInfo {
  const { x, dy } = args.inputs as unknown as { x: tf.TensorInfo; dy: tf.TensorInfo };
  const attrs = args.attrs as unknown as tf.DepthwiseConv2dNativeBackpropFilterAttrs;
  const info = convGeometry(tf.DepthwiseConv2dNativeBackpropFilter, x.shape, attrs.filterShape, attrs, true);
  const { strideHeight: sh, strideWidth: sw, filterHeight: fh, filterWidth: fw, outHeight: ho, outWidth: wo } = info;
  const [n, , , c] = x.shape;
  const m = attrs.filterShape[3];

  return runComposite(args.backend, [x, dy] as const, (xt, dyt) => {
    const window = padOrCrop(
      xt as tf.Tensor4D,
      { start: -info.padInfo.top, length: (ho - 1) * sh + fh },
      { start: -info.padInfo.left, length: (wo - 1) * sw + fw },
    );
    const hw = window.shape[1];
    const ww = window.shape[2];
    // Batch folded into channels: input [1, Hw, Ww, N·C], filter [Ho, Wo, N·C, M].
    const input = tf.reshape(tf.transpose(window, [1, 2, 0, 3]), [1, hw, ww, n * c]) as tf.Tensor4D;
    const filter = tf.reshape(tf.transpose(tf.reshape(dyt, [n, ho, wo, c * m]), [1, 2, 0, 3]), [ho, wo, n * c, m]) as tf.Tensor4D;
    const perSample = tf.depthwiseConv2d(input, filter, 1, 'valid', 'NHWC', [sh, sw]); // [1, fh, fw, N·C·M]
    return tf.sum(tf.reshape(perSample, [fh * fw, n, c * m]), 1).reshape([fh, fw, c, m]);
  });
}

export const depthwiseBackpropFilterConfig: tf.KernelConfig = {
  kernelName: tf.DepthwiseConv2dNativeBackpropFilter,
  backendName: 'wasm',
  kernelFunc: depthwiseBackpropFilter,
};
