/** One OpSpec of every kind and option the builders must agree on. */
import type { OpSpecInput } from '../../src/ops/op-spec.ts';

export const CASES: OpSpecInput[] = [
  { kind: 'conv2d', inH: 9, inW: 9, cIn: 3, cOut: 8, kernel: 3, stride: 1, padding: 'same' },
  { kind: 'conv2d', inH: 9, inW: 9, cIn: 4, cOut: 6, kernel: 3, stride: 2, padding: 'same', activation: 'relu' },
  { kind: 'conv2d', inH: 10, inW: 8, cIn: 5, cOut: 7, kernel: [3, 1], stride: 2, padding: 'valid', activation: 'relu6' },
  { kind: 'conv2d', inH: 8, inW: 8, cIn: 4, cOut: 4, kernel: 3, dilation: 2, padding: 'same', activation: 'relu' },
  { kind: 'conv2d', inH: 7, inW: 7, cIn: 16, cOut: 24, kernel: 1, padding: 'valid', batch: 2 },
  { kind: 'depthwise', inH: 9, inW: 9, cIn: 8, kernel: 3, stride: 1, padding: 'same', activation: 'relu' },
  { kind: 'depthwise', inH: 9, inW: 9, cIn: 6, cOut: 12, kernel: 3, stride: 2, padding: 'valid', activation: 'relu6' },
  { kind: 'depthwise', inH: 8, inW: 8, cIn: 4, kernel: 3, stride: 2, padding: 'same' },
  { kind: 'dense', cIn: 40, cOut: 10 },
  { kind: 'dense', cIn: 17, cOut: 9, activation: 'relu' },
  { kind: 'dense', cIn: 8, cOut: 5, activation: 'relu6', batch: 3 },
  { kind: 'maxpool', inH: 8, inW: 8, cIn: 5, kernel: 2, stride: 2, padding: 'valid' },
  { kind: 'maxpool', inH: 9, inW: 9, cIn: 3, kernel: 3, stride: 2, padding: 'same', activation: 'relu' },
  { kind: 'avgpool', inH: 8, inW: 8, cIn: 4, kernel: 2, stride: 2, padding: 'valid' },
  { kind: 'avgpool', inH: 7, inW: 7, cIn: 3, kernel: 3, stride: 1, padding: 'same', activation: 'relu6' },
  { kind: 'globalavgpool', inH: 7, inW: 7, cIn: 16 },
  { kind: 'globalavgpool', inH: 4, inW: 5, cIn: 6, activation: 'relu' },
  { kind: 'add', inH: 6, inW: 6, cIn: 8 },
  { kind: 'add', inH: 6, inW: 6, cIn: 8, activation: 'relu' },
  { kind: 'add', inH: 5, inW: 5, cIn: 3, numInputs: 3, activation: 'relu6' },
  { kind: 'concat', inH: 6, inW: 6, cIn: 4, cOut: 10 },
  { kind: 'concat', inH: 5, inW: 5, cIn: 3, cOut: 8, numInputs: 3, activation: 'relu' },
];
