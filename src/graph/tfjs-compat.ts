/**
 * Layers Keras writes that TensorFlow.js cannot load, rewritten as layers it can, with the same
 * outputs: so that every model we write (`resize`, `prune`, a search's networks) loads with
 * `tf.loadLayersModel`. Normalization and a per-channel Rescaling are a per-channel affine map,
 * which a 1×1 DepthwiseConv2D with bias computes exactly; a Flatten of an already flat tensor is
 * a Reshape to the same shape; a global pooling with keepdims (which tfjs ignores) is a pooling
 * window over the whole map; SeparableConv2D drops the `kernel_*` fields tfjs refuses. A
 * Conv2DTranspose with output_padding (which tfjs ignores) is refused.
 */
import type { GraphLayer } from './graph.ts';
import { channelsOf } from './graph.ts';
import { isJsonObject, type JsonObject, type JsonValue } from './keras-json.ts';
import type { RescalingAttrs } from './layers/scale.ts';
import type { Conv2DTransposeAttrs } from './layers/conv.ts';
import type { GlobalPoolAttrs } from './layers/passthrough.ts';
import { MorphError } from '../errors.ts';
import type { NamedWeight } from './rebuild.ts';
import { tfjsKnowsLayer } from './tfjs-probe.ts';

/** Keras 3 class names of initializers and regularizers that tfjs registers under another name. */
const TFJS_CLASS: Readonly<Record<string, string>> = { OrthogonalInitializer: 'Orthogonal', IdentityInitializer: 'Identity', L1: 'L1L2', L2: 'L1L2' };

/**
 * A layer config in the tfjs/Keras 2 spelling: Keras 3 writes fields tfjs cannot read (module,
 * registered_name, build_config, DTypePolicy objects, batch_shape) and renamed classes.
 */
export function toTfjsConfig(v: JsonValue): JsonValue {
  if (Array.isArray(v)) return v.map(toTfjsConfig);
  if (!isJsonObject(v)) return v;
  if (v.class_name === 'DTypePolicy' && isJsonObject(v.config)) return (v.config.name as JsonValue) ?? 'float32';
  if (typeof v.class_name === 'string' && TFJS_CLASS[v.class_name] && isJsonObject(v.config)) {
    const config = v.class_name === 'L1' ? { l1: v.config.l1 ?? 0.01, l2: 0 } : v.class_name === 'L2' ? { l1: 0, l2: v.config.l2 ?? 0.01 } : toTfjsConfig(v.config);
    return { class_name: TFJS_CLASS[v.class_name], config };
  }
  const out: JsonObject = {};
  for (const [k, x] of Object.entries(v)) {
    if (k === 'module' || k === 'registered_name' || k === 'build_config') continue;
    out[k === 'batch_shape' ? 'batch_input_shape' : k] = toTfjsConfig(x);
  }
  return out;
}

export interface TfjsLayer {
  readonly className: string;
  readonly config: JsonObject;
  readonly weights: readonly NamedWeight[];
}

/** Keras Normalization divides by max(sqrt(variance), epsilon) with this epsilon. */
const KERAS_EPSILON = 1e-7;

function perChannel(v: number | number[], c: number): Float32Array {
  return Float32Array.from({ length: c }, (_, i) => (typeof v === 'number' ? v : v.length === 1 ? v[0] : v[i]));
}

/** A 1×1 DepthwiseConv2D computing x·scale + offset per channel. */
function affine(layer: GraphLayer, config: JsonObject, scale: Float32Array, offset: Float32Array): TfjsLayer {
  const c = scale.length;
  return {
    className: 'DepthwiseConv2D',
    config: {
      name: config.name ?? layer.name,
      trainable: false,
      dtype: 'float32',
      kernel_size: [1, 1],
      strides: [1, 1],
      padding: 'valid',
      data_format: 'channels_last',
      dilation_rate: [1, 1],
      depth_multiplier: 1,
      activation: 'linear',
      use_bias: true,
    },
    weights: [
      { name: `${layer.name}/depthwise_kernel`, shape: [1, 1, c, 1], data: scale },
      { name: `${layer.name}/bias`, shape: [c], data: offset },
    ],
  };
}

/** The layer as tfjs loads it: itself, or an equivalent rewrite (see the module comment). `width`: its output channels in the new network. */
export function tfjsForm(layer: GraphLayer, config: JsonObject, weights: readonly NamedWeight[], width: number): TfjsLayer {
  const same: TfjsLayer = { className: layer.className, config, weights };
  if (layer.kind === 'normalize') {
    const c = channelsOf(layer.calls[0].outputShape);
    const mean = weights.find((w) => w.name.endsWith('/mean'))?.data ?? new Float32Array(c);
    const variance = weights.find((w) => w.name.endsWith('/variance'))?.data ?? new Float32Array(c).fill(1);
    const scale = Float32Array.from(variance, (v) => 1 / Math.max(Math.sqrt(v), KERAS_EPSILON));
    return affine(layer, config, scale, Float32Array.from(mean, (m, i) => -m * scale[i]));
  }
  if (layer.kind === 'rescale') {
    const a = layer.attrs as unknown as RescalingAttrs;
    if (typeof a.scale === 'number' && typeof a.offset === 'number') return same;
    const c = channelsOf(layer.calls[0].outputShape);
    return affine(layer, config, perChannel(a.scale, c), perChannel(a.offset, c));
  }
  if (layer.kind === 'flatten' && layer.calls[0].inputShapes[0].length === 2) {
    return { className: 'Reshape', config: { name: config.name ?? layer.name, trainable: config.trainable ?? true, dtype: 'float32', target_shape: [width] }, weights };
  }
  if (layer.kind === 'unknown' && !Array.isArray(config.output_shape) && !tfjsKnowsLayer(layer.className)) {
    // A class only Keras knows (a Lambda) whose shape came from Keras 3's records: state it, so
    // the file we write can be read back.
    return { ...same, config: { ...config, output_shape: layer.calls[0].outputShape.slice(1) as JsonValue[] } };
  }
  if (layer.kind === 'globalpool' && (layer.attrs as unknown as GlobalPoolAttrs).keepdims) {
    // tfjs ignores keepdims: a pooling window over the whole map gives the same [N, 1, 1, C].
    const [, h, w] = layer.calls[0].inputShapes[0] as number[];
    const max = (layer.attrs as unknown as GlobalPoolAttrs).mode === 'max';
    return { className: max ? 'MaxPooling2D' : 'AveragePooling2D', config: { name: config.name ?? layer.name, trainable: config.trainable ?? true, dtype: 'float32', pool_size: [h, w], strides: [h, w], padding: 'valid', data_format: 'channels_last' }, weights };
  }
  if (layer.kind === 'conv2dtranspose' && (layer.attrs as unknown as Conv2DTransposeAttrs).outputPadding !== null) {
    throw new MorphError('MORPH_ERR_EXPORT', `layer "${layer.name}" (Conv2DTranspose) has output_padding, which tfjs ignores when it loads a model: the model written would compute other shapes. Remove output_padding (crop or pad after the layer instead)`, { layer: layer.name });
  }
  if (layer.kind === 'separable') {
    const { kernel_initializer: _i, kernel_regularizer: _r, kernel_constraint: _c, ...rest } = config;
    return { ...same, config: rest };
  }
  return same;
}
