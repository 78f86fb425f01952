/**
 * A whole network as one float32 `.tflite`: batch norms folded into the conv/dense before them,
 * ReLU/ReLU6 fused (see `src/ops/fusion.ts`), Dropout removed, Flatten/Reshape → RESHAPE,
 * Softmax/sigmoid/tanh → their own ops, a batch norm that cannot fold → MUL + ADD. Batch 1.
 */
import { MorphError } from '../../errors.ts';
import type { Graph, GraphLayer, TensorRef } from '../../graph/graph.ts';
import { channelsOf, formatRef } from '../../graph/graph.ts';
import type { BatchNormAttrs } from '../../graph/ops/batch-norm.ts';
import type { Conv2DAttrs, DepthwiseAttrs, SeparableAttrs } from '../../graph/ops/conv.ts';
import type { DenseAttrs } from '../../graph/ops/dense.ts';
import type { ConcatAttrs } from '../../graph/ops/merge.ts';
import type { ActivationAttrs, GlobalPoolAttrs, PoolAttrs, ZeroPadAttrs } from '../../graph/ops/passthrough.ts';
import type { WeightMap, WeightTensor } from '../../graph/weights.ts';
import { activationName, planFusion, type Fusion } from '../../ops/fusion.ts';
import type { FusedActivation } from '../../ops/op-spec.ts';
import { hwioToOhwi, TfliteModelBuilder, transpose2d } from './model-builder.ts';
import { BuiltinOperator } from './schema.ts';

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
  return new MorphError('MORPH_ERR_EXPORT', `layer "${layer.name}" (${layer.className}): ${why}; the .tflite writer supports Conv2D (groups 1), DepthwiseConv2D, SeparableConv2D, Dense, BatchNormalization, ReLU/ReLU6/softmax/sigmoid/tanh activations, pooling, global pooling, Add, Multiply, Concatenate, ZeroPadding2D, Flatten, Reshape and Dropout`, { layer: layer.name });
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

  /** A standalone activation op from `src` to a new tensor named `name`. */
  const activationOp = (layer: GraphLayer, act: string, src: number, name: string, shape: readonly number[], maxValue: number | null = null): number => {
    if (act === 'linear') return src;
    const out = m.addTensor(name, shape);
    if (act === 'relu' && maxValue === null) m.addOperator(BuiltinOperator.RELU, [src], [out], null);
    else if ((act === 'relu' && maxValue === 6) || act === 'relu6') m.addOperator(BuiltinOperator.RELU6, [src], [out], null);
    else if (act === 'softmax') {
      if (shape.length !== 2) throw unsupported(layer, `softmax over a rank-${shape.length} tensor`);
      m.addOperator(BuiltinOperator.SOFTMAX, [src], [out], { type: 'SoftmaxOptions', beta: 1 });
    } else if (act === 'sigmoid') m.addOperator(BuiltinOperator.LOGISTIC, [src], [out], null);
    else if (act === 'tanh') m.addOperator(BuiltinOperator.TANH, [src], [out], null);
    else throw unsupported(layer, `activation ${JSON.stringify(act)}${maxValue !== null ? ` with max_value ${maxValue}` : ''}`);
    return out;
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
          out = activationOp(layer, a.activation, ins[0], name, outShape, a.maxValue);
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
          const op = layer.className === 'Add' ? BuiltinOperator.ADD : layer.className === 'Multiply' ? BuiltinOperator.MUL : null;
          if (op === null) throw unsupported(layer, `${layer.className} merge`);
          let acc = ins[0];
          for (let i = 1; i < ins.length; i++) {
            const last = i === ins.length - 1;
            const t = m.addTensor(last ? name : `${name}/partial${i}`, outShape);
            m.addOperator(op, [acc, ins[i]], [t], { type: op === BuiltinOperator.ADD ? 'AddOptions' : 'MulOptions', activation: last ? act : 'none' });
            acc = t;
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
