/** The registry of every layer class the graph module understands, keyed by Keras class name. */
import { batchNorm } from './batch-norm.ts';
import { conv2d, conv2dTranspose, depthwiseConv2d, separableConv2d } from './conv.ts';
import { dense } from './dense.ts';
import { inputLayer } from './input.ts';
import { concatenate, elementwise } from './merge.ts';
import type { AnyOpDescriptor } from './op.ts';
import { activation, dropout, globalPool2d, pool2d, zeroPadding2d } from './passthrough.ts';
import { flatten, reshape } from './reshape.ts';
import { cropping2d, upSampling2d } from './resample.ts';
import { normalization, rescaling } from './scale.ts';

const ALL: readonly AnyOpDescriptor[] = [
  inputLayer,
  conv2d,
  depthwiseConv2d,
  separableConv2d,
  dense,
  batchNorm,
  activation,
  dropout,
  zeroPadding2d,
  pool2d,
  globalPool2d,
  elementwise,
  concatenate,
  flatten,
  reshape,
  conv2dTranspose,
  upSampling2d,
  cropping2d,
  rescaling,
  normalization,
];

function buildRegistry(descriptors: readonly AnyOpDescriptor[]): ReadonlyMap<string, AnyOpDescriptor> {
  const map = new Map<string, AnyOpDescriptor>();
  for (const d of descriptors) {
    for (const name of d.classNames) {
      if (map.has(name)) throw new Error(`internal: layer class ${name} registered twice`);
      map.set(name, d);
    }
  }
  return map;
}

export const OP_REGISTRY = buildRegistry(ALL);

/** The descriptor for a Keras class, or undefined for a class we treat as an opaque boundary. */
export function opFor(className: string): AnyOpDescriptor | undefined {
  return OP_REGISTRY.get(className);
}

/**
 * The descriptor a parsed layer was read with: none for a layer the parser left opaque (an unknown
 * class, or a known class in a variant we do not model, such as channels_first).
 */
export function descriptorOf(layer: { readonly kind: string; readonly className: string }): AnyOpDescriptor | undefined {
  return layer.kind === 'unknown' ? undefined : OP_REGISTRY.get(layer.className);
}
