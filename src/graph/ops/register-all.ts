/** The registry of every layer class the graph module understands, keyed by Keras class name. */
import { batchNorm } from './batch-norm.ts';
import { conv2d, depthwiseConv2d, separableConv2d } from './conv.ts';
import { dense } from './dense.ts';
import { inputLayer } from './input.ts';
import { concatenate, elementwise } from './merge.ts';
import type { AnyOpDescriptor } from './op.ts';
import { activation, dropout, globalPool2d, pool2d, zeroPadding2d } from './passthrough.ts';
import { flatten, reshape } from './reshape.ts';

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
