/**
 * A one-op `.tflite` for an OpSpec, with the same random weights as `buildTfjsOp` (same seed), so
 * an agent can time the op in the TFLite runtime and a test can compare both outputs.
 */
import type { OpSpec } from '../../ops/op-spec.ts';
import { depthMultiplier, inputShapes, LEAKY_RELU_ALPHA, outputShape, signature, validateSpec } from '../../ops/op-spec.ts';
import { specWeights } from '../../ops/spec-weights.ts';
import { hwioToOhwi, TfliteModelBuilder, transpose2d } from './model-builder.ts';
import { BuiltinOperator } from './schema.ts';

export interface SingleOpOptions {
  /** Seed of the random weights (default 1, as `buildTfjsOp`). */
  readonly seed?: number;
}

/**
 * Writes the `.tflite` flatbuffer of one spec: inputs `x0…`, output `y`.
 * @throws MorphError `MORPH_ERR_BAD_OP_SPEC` for an invalid spec.
 */
export function writeSpecTflite(spec: OpSpec, options: SingleOpOptions = {}): Uint8Array {
  validateSpec(spec);
  const m = new TfliteModelBuilder();
  const inputs = inputShapes(spec).map((s, i) => m.addTensor(`x${i}`, s));
  const y = m.addTensor('y', outputShape(spec));
  const w = specWeights(spec, options.seed ?? 1);
  const [kh, kw] = spec.kernel;
  const act = spec.activation;
  const window = { padding: spec.padding, strideW: spec.stride[1], strideH: spec.stride[0] };
  const dilated = spec.dilation[0] !== 1 || spec.dilation[1] !== 1;
  switch (spec.kind) {
    case 'conv2d': {
      const filter = m.addConstant('filter', [spec.cOut, kh, kw, spec.cIn], hwioToOhwi(w!.filter, kh, kw, spec.cIn, spec.cOut));
      const bias = m.addConstant('bias', [spec.cOut], w!.bias);
      m.addOperator(BuiltinOperator.CONV_2D, [inputs[0], filter, bias], [y], {
        type: 'Conv2DOptions', ...window, activation: act, dilationW: spec.dilation[1], dilationH: spec.dilation[0],
      });
      break;
    }
    case 'depthwise': {
      // [kh, kw, cIn, m] and [1, kh, kw, cIn·m] are the same bytes.
      const filter = m.addConstant('filter', [1, kh, kw, spec.cOut], w!.filter);
      const bias = m.addConstant('bias', [spec.cOut], w!.bias);
      m.addOperator(
        BuiltinOperator.DEPTHWISE_CONV_2D,
        [inputs[0], filter, bias],
        [y],
        { type: 'DepthwiseConv2DOptions', ...window, depthMultiplier: depthMultiplier(spec), activation: act, dilationW: spec.dilation[1], dilationH: spec.dilation[0] },
        dilated ? 2 : 1,
      );
      break;
    }
    case 'dense': {
      const weights = m.addConstant('weights', [spec.cOut, spec.cIn], transpose2d(w!.filter, spec.cIn, spec.cOut));
      const bias = m.addConstant('bias', [spec.cOut], w!.bias);
      m.addOperator(BuiltinOperator.FULLY_CONNECTED, [inputs[0], weights, bias], [y], { type: 'FullyConnectedOptions', activation: act });
      break;
    }
    case 'maxpool':
    case 'avgpool':
      m.addOperator(spec.kind === 'maxpool' ? BuiltinOperator.MAX_POOL_2D : BuiltinOperator.AVERAGE_POOL_2D, [inputs[0]], [y], {
        type: 'Pool2DOptions', ...window, filterW: kw, filterH: kh, activation: act,
      });
      break;
    case 'globalavgpool': {
      const axes = m.addInt32Constant('axes', [2], [1, 2]);
      if (act === 'none') {
        m.addOperator(BuiltinOperator.MEAN, [inputs[0], axes], [y], { type: 'ReducerOptions', keepDims: false });
      } else {
        // MEAN has no fused activation.
        const mean = m.addTensor('mean', outputShape(spec));
        m.addOperator(BuiltinOperator.MEAN, [inputs[0], axes], [mean], { type: 'ReducerOptions', keepDims: false });
        m.addOperator(act === 'relu' ? BuiltinOperator.RELU : BuiltinOperator.RELU6, [mean], [y], null);
      }
      break;
    }
    case 'add': {
      // ADD takes two operands; more inputs chain, with the activation on the last one.
      let acc = inputs[0];
      for (let i = 1; i < inputs.length; i++) {
        const last = i === inputs.length - 1;
        const out = last ? y : m.addTensor(`sum${i}`, outputShape(spec));
        m.addOperator(BuiltinOperator.ADD, [acc, inputs[i]], [out], { type: 'AddOptions', activation: last ? act : 'none' });
        acc = out;
      }
      break;
    }
    case 'concat':
      // This TFLite build refuses a fused activation on float CONCATENATION: RELU/RELU6 follow it.
      if (act === 'none') {
        m.addOperator(BuiltinOperator.CONCATENATION, inputs, [y], { type: 'ConcatenationOptions', axis: 3, activation: 'none' });
      } else {
        const joined = m.addTensor('joined', outputShape(spec));
        m.addOperator(BuiltinOperator.CONCATENATION, inputs, [joined], { type: 'ConcatenationOptions', axis: 3, activation: 'none' });
        m.addOperator(act === 'relu' ? BuiltinOperator.RELU : BuiltinOperator.RELU6, [joined], [y], null);
      }
      break;
    case 'mul':
      m.addOperator(BuiltinOperator.MUL, inputs, [y], { type: 'MulOptions', activation: 'none' });
      break;
    case 'sigmoid':
      m.addOperator(BuiltinOperator.LOGISTIC, [inputs[0]], [y], null);
      break;
    case 'swish': {
      // TFLite has no SWISH builtin: converters emit LOGISTIC then MUL, as here.
      const gate = m.addTensor('gate', outputShape(spec));
      m.addOperator(BuiltinOperator.LOGISTIC, [inputs[0]], [gate], null);
      m.addOperator(BuiltinOperator.MUL, [inputs[0], gate], [y], { type: 'MulOptions', activation: 'none' });
      break;
    }
    case 'leaky_relu':
      m.addOperator(BuiltinOperator.LEAKY_RELU, [inputs[0]], [y], { type: 'LeakyReluOptions', alpha: LEAKY_RELU_ALPHA });
      break;
    case 'transposeconv': {
      // As the network writer does: TRANSPOSE_CONV 'valid' to (in−1)·s + k, SLICE to TF's window, ADD the bias (with the fused activation).
      const [, oh, ow] = outputShape(spec);
      const full = [spec.batch, (spec.inH - 1) * spec.stride[0] + kh, (spec.inW - 1) * spec.stride[1] + kw, spec.cOut];
      const top = spec.padding === 'same' ? Math.floor(Math.max(full[1] - oh, 0) / 2) : 0;
      const left = spec.padding === 'same' ? Math.floor(Math.max(full[2] - ow, 0) / 2) : 0;
      const ohwi = new Float32Array(w!.filter.length);
      for (let a = 0; a < kh; a++) for (let b = 0; b < kw; b++) for (let o = 0; o < spec.cOut; o++) for (let i = 0; i < spec.cIn; i++) {
        ohwi[((o * kh + a) * kw + b) * spec.cIn + i] = w!.filter[((a * kw + b) * spec.cOut + o) * spec.cIn + i];
      }
      const filter = m.addConstant('filter', [spec.cOut, kh, kw, spec.cIn], ohwi);
      const shapeT = m.addInt32Constant('output_shape', [4], full);
      const wide = m.addTensor('full', full);
      m.addOperator(BuiltinOperator.TRANSPOSE_CONV, [shapeT, filter, inputs[0]], [wide], { type: 'TransposeConvOptions', padding: 'valid', strideW: spec.stride[1], strideH: spec.stride[0] });
      let t = wide;
      if (full[1] !== oh || full[2] !== ow) {
        t = m.addTensor('cropped', outputShape(spec));
        m.addOperator(BuiltinOperator.SLICE, [wide, m.addInt32Constant('begin', [4], [0, top, left, 0]), m.addInt32Constant('size', [4], outputShape(spec))], [t], { type: 'SliceOptions' });
      }
      m.addOperator(BuiltinOperator.ADD, [t, m.addConstant('bias', [spec.cOut], w!.bias)], [y], { type: 'AddOptions', activation: act });
      break;
    }
    case 'upsample_nearest':
    case 'upsample_bilinear': {
      const [, oh, ow] = outputShape(spec);
      const size = m.addInt32Constant('size', [2], [oh, ow]);
      if (spec.kind === 'upsample_nearest') m.addOperator(BuiltinOperator.RESIZE_NEAREST_NEIGHBOR, [inputs[0], size], [y], { type: 'ResizeNearestNeighborOptions', alignCorners: false, halfPixelCenters: false });
      else m.addOperator(BuiltinOperator.RESIZE_BILINEAR, [inputs[0], size], [y], { type: 'ResizeBilinearOptions', alignCorners: false, halfPixelCenters: false });
      break;
    }
  }
  m.setInputs(inputs);
  m.setOutputs([y]);
  return m.toBytes('main', `morphnet-edge single op ${signature(spec)}@${spec.cIn}x${spec.cOut}`);
}
