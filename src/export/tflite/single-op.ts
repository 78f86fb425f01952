/**
 * A one-op `.tflite` for an OpSpec, with the same random weights as `buildTfjsOp` (same seed), so
 * an agent can time the op in the TFLite runtime and a test can compare both outputs.
 */
import type { OpSpec } from '../../ops/op-spec.ts';
import { depthMultiplier, inputShapes, outputShape, signature, validateSpec } from '../../ops/op-spec.ts';
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
  }
  m.setInputs(inputs);
  m.setOutputs([y]);
  return m.toBytes('main', `morphnet-edge single op ${signature(spec)}@${spec.cIn}x${spec.cOut}`);
}
