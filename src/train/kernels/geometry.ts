/**
 * The geometry of the forward convolution whose gradient a kernel computes, and the one place
 * that rejects attributes our gradient kernels do not implement (tfjs itself refuses dilated
 * convolution gradients and NCHW on wasm, so these never arise from `model.fit`).
 */

import * as tf from '@tensorflow/tfjs';
import { MorphError } from '../../errors.ts';

type Pad = 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;

export interface ConvAttrs {
  strides: [number, number] | number;
  dilations?: [number, number] | number;
  pad: Pad;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  dataFormat?: 'NHWC' | 'NCHW';
}

export function convGeometry(
  kernelName: string,
  inputShape: readonly number[],
  filterShape: readonly number[],
  attrs: ConvAttrs,
  depthwise: boolean,
): tf.backend_util.Conv2DInfo {
  if (attrs.dataFormat !== undefined && attrs.dataFormat !== 'NHWC') {
    throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `${kernelName} on wasm supports dataFormat 'NHWC' only, got '${attrs.dataFormat}'`);
  }
  const dilations = attrs.dilations ?? 1;
  if (!tf.backend_util.tupleValuesAreOne(dilations)) {
    throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `${kernelName} on wasm supports dilations 1 only, got ${JSON.stringify(dilations)}`);
  }
  if (inputShape.length !== 4 || filterShape.length !== 4) {
    throw new MorphError('MORPH_ERR_SHAPE', `${kernelName} needs rank-4 input and filter, got ${JSON.stringify(inputShape)} and ${JSON.stringify(filterShape)}`);
  }
  return tf.backend_util.computeConv2DInfo(
    inputShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    attrs.strides,
    1,
    attrs.pad,
    attrs.dimRoundingMode,
    depthwise,
    'channelsLast',
  );
}
