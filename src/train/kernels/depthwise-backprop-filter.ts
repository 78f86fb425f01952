/**
 * `DepthwiseConv2dNativeBackpropFilter` for the wasm backend, which ships without it (so
 * `model.fit` fails on any model with a DepthwiseConv2D or SeparableConv2D).
 *
 * dW[i,j,c,m] = Σ_{n,oh,ow} x[n, oh·sh + i − top, ow·sw + j − left, c] · dy[n, oh, ow, c·M + m].
 * Channels never mix, so this is not a convolution that sums over anything but positions; per
 * filter tap (i, j) it is one strided window of x times dy, summed over batch and positions.
 * Filters are small (k×k taps), so k² elementwise products + reductions stay cheap and exact.
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
  const positions = n * ho * wo;

  return runComposite(args.backend, [x, dy] as const, (xt, dyt) => {
    const window = padOrCrop(
      xt as tf.Tensor4D,
      { start: -info.padInfo.top, length: (ho - 1) * sh + fh },
      { start: -info.padInfo.left, length: (wo - 1) * sw + fw },
    );
    const dyFlat = tf.reshape(dyt, [positions, c, m]);
    const taps: tf.Tensor[] = [];
    for (let i = 0; i < fh; i++) {
      for (let j = 0; j < fw; j++) {
        const tap = tf.stridedSlice(
          window,
          [0, i, j, 0],
          [n, i + (ho - 1) * sh + 1, j + (wo - 1) * sw + 1, c],
          [1, sh, sw, 1],
        );
        // [P, C, 1] · [P, C, M] summed over positions → [C, M]; sum over the outer axis of a
        // [P, C·M] matrix is done as a matmul with a row of ones, which wasm runs without the
        // transpose its Sum kernel needs for a non-innermost axis.
        const product = tf.mul(tf.reshape(tap, [positions, c, 1]), dyFlat);
        taps.push(tf.matMul(tf.ones([1, positions]), tf.reshape(product, [positions, c * m])));
      }
    }
    return tf.reshape(tf.concat(taps, 0), [fh, fw, c, m]);
  });
}

export const depthwiseBackpropFilterConfig: tf.KernelConfig = {
  kernelName: tf.DepthwiseConv2dNativeBackpropFilter,
  backendName: 'wasm',
  kernelFunc: depthwiseBackpropFilter,
};
