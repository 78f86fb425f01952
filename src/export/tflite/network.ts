/**
 * A whole network as one float32 `.tflite`: batch norms folded into the conv/dense before them,
 * ReLU/ReLU6 fused (see `src/ops/fusion.ts`), Dropout removed, Flatten/Reshape → RESHAPE,
 * Softmax/sigmoid/tanh/LeakyReLU/hard_swish → their own ops, swish → LOGISTIC + MUL, a batch norm
 * that cannot fold, Rescaling and Normalization → MUL + ADD, Conv2DTranspose → TRANSPOSE_CONV
 * (+ SLICE for TF's padding, + ADD for the bias), UpSampling2D → RESIZE_*, Cropping2D → SLICE. Batch 1.
 */
import { MorphError } from '../../errors.ts';
import type { Graph, GraphLayer, TensorRef } from '../../graph/graph.ts';
import { channelsOf, formatRef } from '../../graph/graph.ts';
import type { BatchNormAttrs } from '../../graph/layers/batch-norm.ts';
import type { Conv2DAttrs, Conv2DTransposeAttrs, DepthwiseAttrs, SeparableAttrs } from '../../graph/layers/conv.ts';
import type { DenseAttrs } from '../../graph/layers/dense.ts';
import type { ConcatAttrs } from '../../graph/layers/merge.ts';
import type { ActivationAttrs, GlobalPoolAttrs, PoolAttrs, ZeroPadAttrs } from '../../graph/layers/passthrough.ts';
import type { CroppingAttrs, UpSamplingAttrs } from '../../graph/layers/resample.ts';
import type { RescalingAttrs } from '../../graph/layers/scale.ts';
import type { WeightMap, WeightTensor } from '../../graph/weights.ts';
import { activationName, planFusion, type Fusion } from '../../ops/fusion.ts';
import type { FusedActivation } from '../../ops/op-spec.ts';
import { hwioToOhwi, TfliteModelBuilder, transpose2d } from './model-builder.ts';
import { BuiltinOperator, type ActivationName, type BuiltinOptions } from './schema.ts';

export interface NetworkTfliteOptions {
  /** Written into Model.description. */
  readonly description?: string;
}

export interface NetworkTfliteResult {
  readonly bytes: Uint8Array;
  /** Operators written. */
  readonly operators: number;
  /** Batch norms folded into a preceding conv/dense. */
  readonly foldedBatchNorms: number;
  /** Activation layers fused into a preceding op. */
  readonly fusedActivations: number;
}

function unsupported(layer: GraphLayer, why: string): MorphError {
  return new MorphError('MORPH_ERR_EXPORT', `layer "${layer.name}" (${layer.className}): ${why}; the .tflite writer supports Conv2D (groups 1), Conv2DTranspose, DepthwiseConv2D, SeparableConv2D, Dense, BatchNormalization, ReLU/ReLU6/LeakyReLU/ELU/softmax/sigmoid/tanh/swish/hard_swish activations, pooling, global pooling, UpSampling2D, Cropping2D, ZeroPadding2D, Rescaling, Normalization, Add, Subtract, Multiply, Average, Maximum, Minimum (with broadcasting), Concatenate, Flatten, Reshape and Dropout`, { layer: layer.name });
}

/** Per-channel affine of a batch norm: y = x·scale + shift. */
function bnAffine(layer: GraphLayer, w: ReadonlyMap<string, WeightTensor>): { scale: Float32Array; shift: Float32Array } {
  const a = layer.attrs as unknown as BatchNormAttrs;
  const mean = w.get('moving_mean')!.data;
  const variance = w.get('moving_variance')!.data;
  const gamma = a.scale ? w.get('gamma')!.data : null;
  const beta = a.center ? w.get('beta')!.data : null;
  const n = mean.length;
  const scale = new Float32Array(n);
  const shift = new Float32Array(n);
  for (let c = 0; c < n; c++) {
    // In float64, then rounded once: keeps the folded weights within float32 rounding of tfjs.
    const s = (gamma ? gamma[c] : 1) / Math.sqrt(variance[c] + a.epsilon);
    scale[c] = s;
    shift[c] = (beta ? beta[c] : 0) - mean[c] * s;
  }
  return { scale, shift };
}

/**
 * Folds a batch norm into a kernel whose output channel is the fastest-moving axis (HWIO conv,
 * [kh,kw,c,m] depthwise, [in,out] dense) and into its bias.
 */
function foldInto(kernel: Float32Array, bias: Float32Array | null, outChannels: number, bn: { scale: Float32Array; shift: Float32Array } | null): { kernel: Float32Array; bias: Float32Array } {
  const k = Float32Array.from(kernel);
  const b = bias ? Float32Array.from(bias) : new Float32Array(outChannels);
  if (!bn) return { kernel: k, bias: b };
  for (let i = 0; i < k.length; i++) k[i] *= bn.scale[i % outChannels];
  for (let c = 0; c < outChannels; c++) b[c] = b[c] * bn.scale[c] + bn.shift[c];
  return { kernel: k, bias: b };
}

/**
 * Writes `graph` with `weights` as a float32 `.tflite` (batch 1).
 * @throws MorphError `MORPH_ERR_EXPORT` naming the first layer the writer cannot express,
 *   `MORPH_ERR_WEIGHTS_MISMATCH` when a layer's weights are missing.
 */
export function writeNetworkTflite(graph: Graph, weights: WeightMap, options: NetworkTfliteOptions = {}): NetworkTfliteResult {
  const m = new TfliteModelBuilder();
  const plan = planFusion(graph);
  const tensors = new Map<string, number>();
  let folded = 0;
  let fusedActs = 0;

  const weightsOf = (layer: GraphLayer): ReadonlyMap<string, WeightTensor> => {
    const w = weights.get(layer.name);
    for (const spec of layer.weights) {
      if (!w?.get(spec.kind)) {
        throw new MorphError('MORPH_ERR_WEIGHTS_MISMATCH', `layer "${layer.name}" needs weight "${spec.kind}", which the weights lack`, { layer: layer.name, weight: spec.kind });
      }
    }
    return w ?? new Map();
  };
  const tensorOf = (ref: TensorRef): number => {
    const t = tensors.get(formatRef(ref));
    if (t === undefined) throw new Error(`internal: tensor ${formatRef(ref)} used before it was written`);
    return t;
  };
  const batch1 = (shape: readonly (number | null)[]): number[] => shape.map((d, i) => (i === 0 ? 1 : (d as number)));
  const lookup = (name: string): GraphLayer => graph.layers.find((l) => l.name === name)!;

  /** A standalone activation op (or two) from `src` to a new tensor named `name`. */
  const activationOp = (layer: GraphLayer, act: string, src: number, name: string, shape: readonly number[], maxValue: number | null = null, alpha: number | null = null): number => {
    const a = act.toLowerCase();
    if (a === 'linear') return src;
    const out = m.addTensor(name, shape);
    if (a === 'relu' && maxValue === null) m.addOperator(BuiltinOperator.RELU, [src], [out], null);
    else if ((a === 'relu' && maxValue === 6) || a === 'relu6') m.addOperator(BuiltinOperator.RELU6, [src], [out], null);
    // TFLite's SOFTMAX normalises the last axis at any rank, as Keras's default does.
    else if (a === 'softmax') m.addOperator(BuiltinOperator.SOFTMAX, [src], [out], { type: 'SoftmaxOptions', beta: 1 });
    else if (a === 'sigmoid') m.addOperator(BuiltinOperator.LOGISTIC, [src], [out], null);
    else if (a === 'tanh') m.addOperator(BuiltinOperator.TANH, [src], [out], null);
    else if (a === 'leakyrelu') m.addOperator(BuiltinOperator.LEAKY_RELU, [src], [out], { type: 'LeakyReluOptions', alpha: alpha ?? 0.3 });
    else if (a === 'hard_swish') m.addOperator(BuiltinOperator.HARD_SWISH, [src], [out], { type: 'HardSwishOptions' });
    else if (a === 'elu' && (alpha ?? 1) === 1) m.addOperator(BuiltinOperator.ELU, [src], [out], null);
    else if (a === 'swish' || a === 'silu') {
      // x·sigmoid(x): TFLite has no SWISH builtin; converters emit the same pair.
      const gate = m.addTensor(`${name}/sigmoid`, shape);
      m.addOperator(BuiltinOperator.LOGISTIC, [src], [gate], null);
      m.addOperator(BuiltinOperator.MUL, [src, gate], [out], { type: 'MulOptions', activation: 'none' });
    } else throw unsupported(layer, `activation ${JSON.stringify(act)}${maxValue !== null ? ` with max_value ${maxValue}` : ''}`);
    return out;
  };

  /** y = x·scale + shift per channel (or with scalars), skipping a ×1 or a +0. */
  const affineOp = (name: string, src: number, shape: readonly number[], scale: Float32Array, shift: Float32Array): number => {
    let t = src;
    if (scale.some((v) => v !== 1)) {
      const scaled = m.addTensor(shift.some((v) => v !== 0) ? `${name}/scaled` : name, shape);
      m.addOperator(BuiltinOperator.MUL, [t, m.addConstant(`${name}/scale`, [scale.length], scale)], [scaled], { type: 'MulOptions', activation: 'none' });
      t = scaled;
    }
    if (shift.some((v) => v !== 0) || t === src) {
      const shifted = m.addTensor(name, shape);
      m.addOperator(BuiltinOperator.ADD, [t, m.addConstant(`${name}/shift`, [shift.length], shift)], [shifted], { type: 'AddOptions', activation: 'none' });
      t = shifted;
    }
    return t;
  };

  for (const input of graph.inputs) {
    const shape = batch1(lookup(input.layer).calls[input.nodeIndex].outputShape);
    tensors.set(formatRef(input), m.addTensor(input.layer, shape));
  }

  for (const layer of graph.layers) {
    if (layer.kind === 'input' || plan.absorbed.has(layer.name)) continue;
    const fusion: Fusion | undefined = plan.fusions.get(layer.name);
    layer.calls.forEach((call, ci) => {
      const self: TensorRef = { layer: layer.name, nodeIndex: ci, tensorIndex: 0 };
      const outRef = fusion && ci === 0 ? fusion.output : self;
      const act: FusedActivation = fusion?.activation ?? 'none';
      const outShape = batch1(fusion && ci === 0 ? lookup(fusion.output.layer).calls[0].outputShape : call.outputShape);
      const ins = call.inputs.map(tensorOf);
      const name = outRef.layer;
      const bn = fusion?.batchNorm ? bnAffine(lookup(fusion.batchNorm), weightsOf(lookup(fusion.batchNorm))) : null;
      if (bn) folded++;
      if (fusion?.activationLayer) fusedActs++;
      let out: number;
      /** Own activation that TFLite cannot fuse (softmax …) runs after the op. */
      const ownAct = String((layer.attrs as { activation?: string }).activation ?? 'linear');
      const needsTail = activationName(ownAct) === null;
      const tail = (t: number): number => (needsTail ? activationOp(layer, ownAct, t, name, outShape) : t);
      const fusedOwn = needsTail ? 'none' : act;
      /** The op's own output: named after the layer, or `layer/linear` when an activation follows. */
      const opName = needsTail ? `${name}/linear` : name;
      const window = (a: { padding: 'same' | 'valid'; strides: [number, number] }): { padding: 'same' | 'valid'; strideW: number; strideH: number } => ({ padding: a.padding, strideW: a.strides[1], strideH: a.strides[0] });

      switch (layer.kind) {
        case 'conv2d': {
          const a = layer.attrs as unknown as Conv2DAttrs;
          if (a.groups !== 1) throw unsupported(layer, `grouped convolution (groups=${a.groups})`);
          const w = weightsOf(layer);
          const [kh, kw] = a.kernelSize;
          const cin = channelsOf(call.inputShapes[0]);
          const f = foldInto(w.get('kernel')!.data, a.useBias ? w.get('bias')!.data : null, a.filters, bn);
          const filter = m.addConstant(`${layer.name}/filter`, [a.filters, kh, kw, cin], hwioToOhwi(f.kernel, kh, kw, cin, a.filters));
          const bias = m.addConstant(`${layer.name}/bias`, [a.filters], f.bias);
          out = m.addTensor(opName, outShape);
          m.addOperator(BuiltinOperator.CONV_2D, [ins[0], filter, bias], [out], { type: 'Conv2DOptions', ...window(a), activation: fusedOwn, dilationW: a.dilationRate[1], dilationH: a.dilationRate[0] });
          out = tail(out);
          break;
        }
        case 'depthwise':
        case 'separable': {
          const a = layer.attrs as unknown as DepthwiseAttrs & Partial<SeparableAttrs>;
          const w = weightsOf(layer);
          const [kh, kw] = a.kernelSize;
          const cin = channelsOf(call.inputShapes[0]);
          const mid = cin * a.depthMultiplier;
          const separable = layer.kind === 'separable';
          const dwBias = separable ? null : a.useBias ? w.get('bias')!.data : null;
          const f = foldInto(w.get('depthwise_kernel')!.data, dwBias, mid, separable ? null : bn);
          const filter = m.addConstant(`${layer.name}/depthwise_filter`, [1, kh, kw, mid], f.kernel);
          const bias = m.addConstant(`${layer.name}/depthwise_bias`, [mid], f.bias);
          const dilated = a.dilationRate[0] !== 1 || a.dilationRate[1] !== 1;
          const dwShape = separable ? [1, outShape[1], outShape[2], mid] : outShape;
          let dwOut = m.addTensor(separable ? `${layer.name}/depthwise` : opName, dwShape);
          m.addOperator(
            BuiltinOperator.DEPTHWISE_CONV_2D,
            [ins[0], filter, bias],
            [dwOut],
            { type: 'DepthwiseConv2DOptions', ...window(a), depthMultiplier: a.depthMultiplier, activation: separable ? 'none' : fusedOwn, dilationW: a.dilationRate[1], dilationH: a.dilationRate[0] },
            dilated ? 2 : 1,
          );
          if (separable) {
            const filters = a.filters as number;
            const p = foldInto(w.get('pointwise_kernel')!.data, a.useBias ? w.get('bias')!.data : null, filters, bn);
            const pw = m.addConstant(`${layer.name}/pointwise_filter`, [filters, 1, 1, mid], hwioToOhwi(p.kernel, 1, 1, mid, filters));
            const pb = m.addConstant(`${layer.name}/pointwise_bias`, [filters], p.bias);
            const pwOut = m.addTensor(opName, outShape);
            m.addOperator(BuiltinOperator.CONV_2D, [dwOut, pw, pb], [pwOut], { type: 'Conv2DOptions', padding: 'valid', strideW: 1, strideH: 1, activation: fusedOwn, dilationW: 1, dilationH: 1 });
            dwOut = pwOut;
          }
          out = tail(dwOut);
          break;
        }
        case 'dense': {
          const a = layer.attrs as unknown as DenseAttrs;
          const inShape = call.inputShapes[0];
          if (inShape.length !== 2) throw unsupported(layer, `a Dense over a rank-${inShape.length} input (applied per position)`);
          const w = weightsOf(layer);
          const cin = channelsOf(inShape);
          const f = foldInto(w.get('kernel')!.data, a.useBias ? w.get('bias')!.data : null, a.units, bn);
          const weightsT = m.addConstant(`${layer.name}/weights`, [a.units, cin], transpose2d(f.kernel, cin, a.units));
          const bias = m.addConstant(`${layer.name}/bias`, [a.units], f.bias);
          out = m.addTensor(opName, outShape);
          m.addOperator(BuiltinOperator.FULLY_CONNECTED, [ins[0], weightsT, bias], [out], { type: 'FullyConnectedOptions', activation: fusedOwn });
          out = tail(out);
          break;
        }
        case 'batchnorm': {
          const { scale, shift } = bnAffine(layer, weightsOf(layer));
          const c = scale.length;
          const mul = m.addTensor(`${name}/scaled`, outShape);
          m.addOperator(BuiltinOperator.MUL, [ins[0], m.addConstant(`${name}/scale`, [c], scale)], [mul], { type: 'MulOptions', activation: 'none' });
          out = m.addTensor(name, outShape);
          m.addOperator(BuiltinOperator.ADD, [mul, m.addConstant(`${name}/shift`, [c], shift)], [out], { type: 'AddOptions', activation: 'none' });
          break;
        }
        case 'activation': {
          const a = layer.attrs as unknown as ActivationAttrs;
          out = activationOp(layer, a.activation, ins[0], name, outShape, a.maxValue, a.alpha);
          break;
        }
        case 'conv2dtranspose': {
          const a = layer.attrs as unknown as Conv2DTransposeAttrs;
          const w = weightsOf(layer);
          const [kh, kw] = a.kernelSize;
          const [, h, wIn] = call.inputShapes[0] as number[];
          const cin = channelsOf(call.inputShapes[0]);
          // TRANSPOSE_CONV 'valid' to the full (in−1)·s + k output, then the window TF keeps: exact
          // for 'same', 'valid' and output_padding alike.
          const full = [1, (h - 1) * a.strides[0] + kh, (wIn - 1) * a.strides[1] + kw, a.filters];
          const crop = [0, 1].map((i) => {
            const total = full[i + 1] - (outShape[i + 1] as number);
            return a.padding === 'same' ? Math.floor(Math.max(total, 0) / 2) : 0;
          });
          if (outShape[1] + crop[0] > full[1] || outShape[2] + crop[1] > full[2]) throw unsupported(layer, `an output_padding that grows the output past (in-1)*stride + kernel`);
          // Keras [kh, kw, out, in] → TFLite [out, kh, kw, in].
          const kernel = w.get('kernel')!.data;
          const ohwi = new Float32Array(kernel.length);
          for (let y = 0; y < kh; y++) for (let x = 0; x < kw; x++) for (let o = 0; o < a.filters; o++) for (let i = 0; i < cin; i++) {
            ohwi[((o * kh + y) * kw + x) * cin + i] = kernel[((y * kw + x) * a.filters + o) * cin + i];
          }
          const filter = m.addConstant(`${layer.name}/filter`, [a.filters, kh, kw, cin], ohwi);
          const shapeT = m.addInt32Constant(`${layer.name}/output_shape`, [4], full);
          let t = m.addTensor(`${name}/full`, full);
          m.addOperator(BuiltinOperator.TRANSPOSE_CONV, [shapeT, filter, ins[0]], [t], { type: 'TransposeConvOptions', padding: 'valid', strideW: a.strides[1], strideH: a.strides[0] });
          if (crop[0] !== 0 || crop[1] !== 0 || full[1] !== outShape[1] || full[2] !== outShape[2]) {
            const cropped = m.addTensor(`${name}/cropped`, outShape);
            const begin = m.addInt32Constant(`${name}/begin`, [4], [0, crop[0], crop[1], 0]);
            const size = m.addInt32Constant(`${name}/size`, [4], outShape);
            m.addOperator(BuiltinOperator.SLICE, [t, begin, size], [cropped], { type: 'SliceOptions' });
            t = cropped;
          }
          const bias = a.useBias ? w.get('bias')!.data : new Float32Array(a.filters);
          // Conv2DTranspose is not in the fusion plan: no batch norm or activation layer is absorbed.
          const biased = bias.some((v) => v !== 0) ? affineOp(ownAct === 'linear' ? name : `${name}/biased`, t, outShape, new Float32Array(a.filters).fill(1), bias) : t;
          out = activationOp(layer, ownAct, biased, name, outShape);
          break;
        }
        case 'upsample': {
          const a = layer.attrs as unknown as UpSamplingAttrs;
          const size = m.addInt32Constant(`${name}/size`, [2], [outShape[1], outShape[2]]);
          out = m.addTensor(name, outShape);
          // tfjs's UpSampling2D resizes with alignCorners = halfPixelCenters = false.
          if (a.interpolation === 'nearest') m.addOperator(BuiltinOperator.RESIZE_NEAREST_NEIGHBOR, [ins[0], size], [out], { type: 'ResizeNearestNeighborOptions', alignCorners: false, halfPixelCenters: false });
          else m.addOperator(BuiltinOperator.RESIZE_BILINEAR, [ins[0], size], [out], { type: 'ResizeBilinearOptions', alignCorners: false, halfPixelCenters: false });
          break;
        }
        case 'crop': {
          const a = layer.attrs as unknown as CroppingAttrs;
          const begin = m.addInt32Constant(`${name}/begin`, [4], [0, a.cropping[0][0], a.cropping[1][0], 0]);
          const size = m.addInt32Constant(`${name}/size`, [4], outShape);
          out = m.addTensor(name, outShape);
          m.addOperator(BuiltinOperator.SLICE, [ins[0], begin, size], [out], { type: 'SliceOptions' });
          break;
        }
        case 'rescale': {
          const a = layer.attrs as unknown as RescalingAttrs;
          const vec = (v: number | number[]): Float32Array => Float32Array.from(typeof v === 'number' ? [v] : v);
          out = affineOp(name, ins[0], outShape, vec(a.scale), vec(a.offset));
          break;
        }
        case 'normalize': {
          const w = weightsOf(layer);
          const scale = Float32Array.from(w.get('variance')!.data, (v) => 1 / Math.max(Math.sqrt(v), 1e-7));
          out = affineOp(name, ins[0], outShape, scale, Float32Array.from(w.get('mean')!.data, (mu, i) => -mu * scale[i]));
          break;
        }
        case 'dropout':
          out = ins[0];
          break;
        case 'zeropad': {
          const a = layer.attrs as unknown as ZeroPadAttrs;
          const pads = m.addInt32Constant(`${name}/paddings`, [4, 2], [0, 0, a.padding[0][0], a.padding[0][1], a.padding[1][0], a.padding[1][1], 0, 0]);
          out = m.addTensor(name, outShape);
          m.addOperator(BuiltinOperator.PAD, [ins[0], pads], [out], { type: 'PadOptions' });
          break;
        }
        case 'pool': {
          const a = layer.attrs as unknown as PoolAttrs;
          out = m.addTensor(name, outShape);
          m.addOperator(a.mode === 'max' ? BuiltinOperator.MAX_POOL_2D : BuiltinOperator.AVERAGE_POOL_2D, [ins[0]], [out], {
            type: 'Pool2DOptions', ...window({ padding: a.padding, strides: a.strides }), filterW: a.poolSize[1], filterH: a.poolSize[0], activation: act,
          });
          break;
        }
        case 'globalpool': {
          const a = layer.attrs as unknown as GlobalPoolAttrs;
          const axes = m.addInt32Constant(`${name}/axes`, [2], [1, 2]);
          const reduced = m.addTensor(act === 'none' ? name : `${name}/reduced`, batch1(call.outputShape));
          m.addOperator(a.mode === 'max' ? BuiltinOperator.REDUCE_MAX : BuiltinOperator.MEAN, [ins[0], axes], [reduced], { type: 'ReducerOptions', keepDims: a.keepdims });
          out = act === 'none' ? reduced : activationOp(layer, act, reduced, name, outShape);
          break;
        }
        case 'elementwise': {
          // ADD/MUL/SUB/MAXIMUM/MINIMUM broadcast as Keras does ([1,1,1,C] × [1,H,W,C]).
          const cls = layer.className;
          const average = cls === 'Average';
          const op = cls === 'Add' || average ? BuiltinOperator.ADD : cls === 'Multiply' ? BuiltinOperator.MUL : cls === 'Subtract' ? BuiltinOperator.SUB : cls === 'Maximum' ? BuiltinOperator.MAXIMUM : cls === 'Minimum' ? BuiltinOperator.MINIMUM : null;
          if (op === null) throw unsupported(layer, `${cls} merge`);
          const options = (activation: ActivationName): BuiltinOptions =>
            op === BuiltinOperator.ADD ? { type: 'AddOptions', activation } : op === BuiltinOperator.MUL ? { type: 'MulOptions', activation } : op === BuiltinOperator.SUB ? { type: 'SubOptions', activation } : { type: 'MaximumMinimumOptions' };
          const fusable = op === BuiltinOperator.ADD || op === BuiltinOperator.MUL || op === BuiltinOperator.SUB;
          let acc = ins[0];
          for (let i = 1; i < ins.length; i++) {
            const last = i === ins.length - 1 && !average;
            const t = m.addTensor(last && (fusable || act === 'none') ? name : `${name}/partial${i}`, outShape);
            m.addOperator(op, [acc, ins[i]], [t], options(last && fusable ? act : 'none'));
            acc = t;
          }
          if (average) {
            const t = m.addTensor(name, outShape);
            m.addOperator(BuiltinOperator.MUL, [acc, m.addConstant(`${name}/inverse_count`, [1], Float32Array.of(1 / ins.length))], [t], { type: 'MulOptions', activation: act });
            acc = t;
          } else if (!fusable && act !== 'none') {
            acc = activationOp(layer, act, acc, name, outShape);
          }
          out = acc;
          break;
        }
        case 'concat': {
          const a = layer.attrs as unknown as ConcatAttrs;
          const rank = call.inputShapes[0].length;
          // This TFLite build refuses a fused activation on float CONCATENATION: it runs after.
          const joined = m.addTensor(act === 'none' ? name : `${name}/joined`, outShape);
          m.addOperator(BuiltinOperator.CONCATENATION, ins, [joined], { type: 'ConcatenationOptions', axis: a.axis < 0 ? rank + a.axis : a.axis, activation: 'none' });
          out = act === 'none' ? joined : activationOp(layer, act, joined, name, outShape);
          break;
        }
        case 'flatten':
        case 'reshape': {
          // Keras flattens NHWC row-major, which is TFLite's layout: a reshape, no transpose.
          const shape = batch1(call.outputShape);
          const target = m.addInt32Constant(`${name}/shape`, [shape.length], shape);
          out = m.addTensor(name, shape);
          m.addOperator(BuiltinOperator.RESHAPE, [ins[0], target], [out], { type: 'ReshapeOptions', newShape: shape });
          break;
        }
        default:
          throw unsupported(layer, 'this layer class');
      }
      tensors.set(formatRef(outRef), out);
      if (outRef !== self) tensors.set(formatRef(self), out);
    });
  }

  m.setInputs(graph.inputs.map(tensorOf));
  m.setOutputs(graph.outputs.map(tensorOf));
  const bytes = m.toBytes(graph.name, options.description ?? `morphnet-edge export of ${graph.name} (float32, batch norms folded)`);
  return { bytes, operators: m.operatorCount, foldedBatchNorms: folded, fusedActivations: fusedActs };
}
