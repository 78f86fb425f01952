/** A small conv net for fast training tests: conv-BN-ReLU ×2 (one depthwise), GAP, softmax. */
import type { ModelConfigJson } from '../../src/graph/keras-json.ts';
import { FunctionalBuilder } from '../../src/seeds/builder.ts';

/** Faster-moving statistics than tfjs's 0.99, so a few dozen steps give usable inference-mode BN. */
const BN = { momentum: 0.9 };

export function tinyTopology(inputShape: [number, number, number] = [12, 12, 1], classes = 3): ModelConfigJson {
  const b = new FunctionalBuilder('tiny');
  let x = b.input('input', inputShape);
  x = b.relu('c1_relu', b.batchNorm('c1_bn', b.conv2d('c1', x, { filters: 8, kernelSize: 3, padding: 'same', useBias: false }), BN));
  x = b.relu('dw_relu', b.batchNorm('dw_bn', b.depthwiseConv2d('dw', x, { kernelSize: 3, strides: 2, padding: 'same', useBias: false }), BN));
  x = b.relu('c2_relu', b.batchNorm('c2_bn', b.conv2d('c2', x, { filters: 16, kernelSize: 1, padding: 'same', useBias: false }), BN));
  x = b.globalAveragePooling2d('gap', x);
  x = b.dense('predictions', x, { units: classes, activation: 'softmax' });
  return b.build([x]);
}

/** Opens the small synthetic dataset the training tests share. */
export const TINY_DATA = 'synthetic:h=12,w=12,c=1,classes=3,train=300,test=60';
