/**
 * `DepthwiseConv2dNativeBackpropInput` for the wasm backend, which ships without it (so any
 * DepthwiseConv2D or SeparableConv2D that is not the first layer cannot be trained there).
 *
 * dx[n,h,w,c] = Σ_{i,j,m} dy[n, oh, ow, c·M + m] · f[i, j, c, m] where oh·sh + i − top = h. Spread dy
 * by the stride (zeros between rows and columns), pad it by k − 1 − top before (and as needed
 * after), and this is a stride-1 depthwise convolution with the spatially flipped filter, one
 * output per (c, m); summing the M outputs of each input channel gives dx.
 */

import * as tf from '@tensorflow/tfjs';
import { runComposite, type KernelArgs } from './composite.ts';
import { convGeometry } from './geometry.ts';
import { padOrCrop, spreadByStride } from './spatial.ts';

function depthwiseBackpropInput(args: KernelArgs): tf.TensorInfo {
  const { dy, filter } = args.inputs as unknown as { dy: tf.TensorInfo; filter: tf.TensorInfo };
  const attrs = args.attrs as unknown as tf.DepthwiseConv2dNativeBackpropInputAttrs;
  const info = convGeometry(tf.DepthwiseConv2dNativeBackpropInput, attrs.inputShape, filter.shape, attrs, true);
  const { strideHeight: sh, strideWidth: sw, filterHeight: fh, filterWidth: fw } = info;
  const [n, h, w, c] = attrs.inputShape;
  const m = filter.shape[3];

  return runComposite(args.backend, [dy, filter] as const, (dyt, ft) => {
    const spread = spreadByStride(dyt as tf.Tensor4D, sh, sw);
    const padded = padOrCrop(
      spread,
      { start: info.padInfo.top - (fh - 1), length: h + fh - 1 },
      { start: info.padInfo.left - (fw - 1), length: w + fw - 1 },
    );
    const flipped = tf.reshape(tf.reverse(ft, [0, 1]), [fh, fw, c * m, 1]) as tf.Tensor4D;
    const perOutput = tf.depthwiseConv2d(padded, flipped, 1, 'valid'); // [N, H, W, C·M]
    return m === 1 ? perOutput : tf.sum(tf.reshape(perOutput, [n, h, w, c, m]), 4);
  });
}

export const depthwiseBackpropInputConfig: tf.KernelConfig = {
  kernelName: tf.DepthwiseConv2dNativeBackpropInput,
  backendName: 'wasm',
  kernelFunc: depthwiseBackpropInput,
};
