/**
 * The OpSpec: one op as it runs at inference, the unit that device agents time and latency
 * tables are keyed by. Batch norm is already folded into the conv/dense before it, and a
 * following ReLU/ReLU6 is fused, as TFLite and the tfjs fused kernels run them.
 *
 * A latency table is keyed by (device, runtime, `signature(spec)`): everything but `cIn`/`cOut`.
 * Its points are (`cIn`, `cOut`) → latency; `specKey(spec)` names one point.
 */
import { MorphError } from '../errors.ts';

export const VALID_OP_KINDS = [
  'conv2d',
  'depthwise',
  'dense',
  'maxpool',
  'avgpool',
  'globalavgpool',
  'add',
  'concat',
  'mul',
  'sigmoid',
  'swish',
  'leaky_relu',
  'transposeconv',
  'upsample_nearest',
  'upsample_bilinear',
] as const;
export type OpKind = (typeof VALID_OP_KINDS)[number];

/** Standalone element-wise activations: one input, same shape out (LeakyReLU with Keras's α = 0.3). */
const ACTIVATION_OP_KINDS: ReadonlySet<OpKind> = new Set(['sigmoid', 'swish', 'leaky_relu']);
/** Kinds that upsample H×W by the factor in `stride`. */
const UPSAMPLE: ReadonlySet<OpKind> = new Set(['upsample_nearest', 'upsample_bilinear']);
/** Kinds whose output has the input's channels. */
const SAME_CHANNELS: ReadonlySet<OpKind> = new Set(['maxpool', 'avgpool', 'globalavgpool', 'add', 'mul', 'sigmoid', 'swish', 'leaky_relu', 'upsample_nearest', 'upsample_bilinear']);
/** Leaky ReLU's negative slope in the timed op (Keras's default; the slope does not change the time). */
export const LEAKY_RELU_ALPHA = 0.3;

export const VALID_FUSED_ACTIVATIONS = ['none', 'relu', 'relu6'] as const;
export type FusedActivation = (typeof VALID_FUSED_ACTIVATIONS)[number];

export const VALID_OP_PADDINGS = ['same', 'valid'] as const;
export type OpPadding = (typeof VALID_OP_PADDINGS)[number];

/** Only float32 for now; int8 tables are a later extension (DESIGN "Not now"). */
export const VALID_OP_DTYPES = ['float32'] as const;
export type OpDtype = (typeof VALID_OP_DTYPES)[number];

/** Kinds whose op slides a window over H×W (kernel, stride, padding, dilation matter). */
const WINDOWED: ReadonlySet<OpKind> = new Set(['conv2d', 'depthwise', 'maxpool', 'avgpool', 'transposeconv']);
/** Kinds that take several inputs (`numInputs` matters). */
const MULTI_INPUT: ReadonlySet<OpKind> = new Set(['add', 'concat', 'mul']);

/** Upper bound on any one size, a guard against specs that would allocate gigabytes. */
export const MAX_SPEC_DIM = 1 << 16;

/**
 * One op at inference. Channel conventions per kind:
 * - `conv2d`: `cIn` → `cOut`, NHWC input `[batch, inH, inW, cIn]`.
 * - `depthwise`: `cOut = cIn · multiplier`.
 * - `dense`: input `[batch, cIn]` (`inH = inW = 1`), output `[batch, cOut]`.
 * - `maxpool`, `avgpool`, `globalavgpool` (TFLite MEAN over H, W; output `[batch, cIn]`): `cOut = cIn`.
 * - `add`: `numInputs` tensors of `[batch, inH, inW, cIn]`; `cOut = cIn`.
 * - `concat` (channel axis): input 0 has `cIn` channels, the other `numInputs − 1` inputs share
 *   `cOut − cIn` channels as evenly as possible (earlier inputs take the remainder); see
 *   `concatParts`. Exact for the usual two-input concat.
 * - `mul`: `[batch, inH, inW, cIn]` times a per-channel gate `[batch, 1, 1, cIn]` (squeeze-and-
 *   excitation); `numInputs` is 2, `cOut = cIn`.
 * - `sigmoid`, `swish`, `leaky_relu`: one `[batch, inH, inW, cIn]` input, element-wise; `cOut = cIn`.
 * - `transposeconv`: `cIn` → `cOut`, output `(in−1)·stride + kernel` cropped as TF crops it
 *   ('same': `in·stride`); kernel `[kh, kw, cOut, cIn]`, dilation 1.
 * - `upsample_nearest`, `upsample_bilinear`: H and W multiplied by `stride` (the size factor).
 * The new kinds take no fused activation (`activation` 'none'), except `transposeconv`.
 */
export interface OpSpec {
  readonly kind: OpKind;
  readonly inH: number;
  readonly inW: number;
  readonly cIn: number;
  readonly cOut: number;
  /** [kh, kw]; [1, 1] for kinds without a window. */
  readonly kernel: readonly [number, number];
  readonly stride: readonly [number, number];
  readonly padding: OpPadding;
  readonly dilation: readonly [number, number];
  readonly activation: FusedActivation;
  /** Number of inputs of `add`/`concat` (≥ 2); 1 for every other kind. */
  readonly numInputs: number;
  readonly batch: number;
  readonly dtype: OpDtype;
}

/** What a caller gives: the kind, size and channels; everything else has a default. */
export interface OpSpecInput {
  kind: OpKind;
  inH?: number;
  inW?: number;
  cIn: number;
  cOut?: number;
  kernel?: number | readonly [number, number];
  stride?: number | readonly [number, number];
  /** Default 'same'. */
  padding?: OpPadding;
  dilation?: number | readonly [number, number];
  /** Default 'none'. */
  activation?: FusedActivation;
  /** Default 2 for add/concat. */
  numInputs?: number;
  /** Default 1. */
  batch?: number;
  /** Default 'float32'. */
  dtype?: OpDtype;
}

function bad(message: string, details: Record<string, unknown> = {}): MorphError {
  return new MorphError('MORPH_ERR_BAD_OP_SPEC', message, details);
}

function pairOf(v: number | readonly [number, number] | undefined, fallback: number, field: string): [number, number] {
  if (v === undefined) return [fallback, fallback];
  if (typeof v === 'number') return [v, v];
  if (!Array.isArray(v) || v.length !== 2) throw bad(`OpSpec.${field} is ${JSON.stringify(v)}; expected a positive integer or a pair of them`, { field });
  return [v[0], v[1]];
}

function checkInt(value: unknown, field: string, min = 1): void {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > MAX_SPEC_DIM) {
    throw bad(`OpSpec.${field} is ${JSON.stringify(value)}; expected an integer from ${min} to ${MAX_SPEC_DIM}`, { field, value });
  }
}

function checkEnum(value: unknown, valid: readonly string[], field: string): void {
  if (typeof value !== 'string' || !valid.includes(value)) {
    throw bad(`OpSpec.${field} is ${JSON.stringify(value)}; expected one of ${valid.map((v) => JSON.stringify(v)).join(', ')}`, { field, value });
  }
}

/** Output length along one axis, as TensorFlow computes it. */
export function windowOut(size: number, kernel: number, stride: number, dilation: number, padding: OpPadding): number {
  if (padding === 'same') return Math.ceil(size / stride);
  return Math.floor((size - ((kernel - 1) * dilation + 1)) / stride) + 1;
}

/**
 * Builds a canonical, validated spec: defaults filled in, and the fields a kind ignores set to
 * their neutral values (kernel/stride/dilation [1, 1], padding 'valid' for windowless kinds,
 * `inH = inW = 1` for dense, `cOut = cIn` for pooling and add; a 1×1 kernel is always 'valid'
 * with dilation 1, which computes the same), so that equal ops get equal signatures.
 * @throws MorphError `MORPH_ERR_BAD_OP_SPEC` naming the field, the value and what is accepted.
 */
export function makeSpec(input: OpSpecInput): OpSpec {
  if (typeof input !== 'object' || input === null) throw bad(`an OpSpec must be an object, got ${JSON.stringify(input)}`);
  checkEnum(input.kind, VALID_OP_KINDS, 'kind');
  const kind = input.kind;
  const windowed = WINDOWED.has(kind);
  const sameChannels = SAME_CHANNELS.has(kind);
  let spec: OpSpec = {
    kind,
    inH: kind === 'dense' ? 1 : (input.inH as number),
    inW: kind === 'dense' ? 1 : (input.inW as number),
    cIn: input.cIn,
    cOut: input.cOut ?? (sameChannels || kind === 'depthwise' ? input.cIn : (undefined as unknown as number)),
    kernel: windowed ? pairOf(input.kernel, 1, 'kernel') : [1, 1],
    stride: windowed || UPSAMPLE.has(kind) ? pairOf(input.stride, UPSAMPLE.has(kind) ? 2 : 1, 'stride') : [1, 1],
    padding: windowed ? (input.padding ?? 'same') : 'valid',
    dilation: kind === 'conv2d' || kind === 'depthwise' ? pairOf(input.dilation, 1, 'dilation') : [1, 1],
    activation: input.activation ?? 'none',
    numInputs: MULTI_INPUT.has(kind) ? (input.numInputs ?? 2) : 1,
    batch: input.batch ?? 1,
    dtype: input.dtype ?? 'float32',
  };
  // A 1×1 kernel pads nothing under 'same' and ignores dilation: one canonical form, one table.
  if (windowed && spec.kernel[0] === 1 && spec.kernel[1] === 1 && typeof spec.inH === 'number') {
    spec = { ...spec, padding: 'valid', dilation: [1, 1] };
  }
  if (kind === 'dense' && ((input.inH ?? 1) !== 1 || (input.inW ?? 1) !== 1)) {
    throw bad(`a dense OpSpec reads a [batch, cIn] vector; inH and inW must be 1 (got ${input.inH}×${input.inW}); use a 1×1 conv2d for a per-position dense`, { field: 'inH' });
  }
  if (!windowed) {
    for (const f of UPSAMPLE.has(kind) ? (['kernel'] as const) : (['kernel', 'stride'] as const)) {
      const v = input[f];
      if (v !== undefined && pairOf(v, 1, f).some((d) => d !== 1)) throw bad(`OpSpec.${f} ${JSON.stringify(v)} has no meaning for kind "${kind}"; leave it out`, { field: f });
    }
  }
  validateSpec(spec);
  return spec;
}

/**
 * Checks a spec (for example one received over the wire) without changing it.
 * @throws MorphError `MORPH_ERR_BAD_OP_SPEC`.
 */
export function validateSpec(spec: OpSpec): void {
  checkEnum(spec.kind, VALID_OP_KINDS, 'kind');
  checkInt(spec.inH, 'inH');
  checkInt(spec.inW, 'inW');
  checkInt(spec.cIn, 'cIn');
  checkInt(spec.cOut, 'cOut');
  checkInt(spec.batch, 'batch');
  checkInt(spec.numInputs, 'numInputs');
  for (const f of ['kernel', 'stride', 'dilation'] as const) {
    const v = spec[f];
    if (!Array.isArray(v) || v.length !== 2) throw bad(`OpSpec.${f} is ${JSON.stringify(v)}; expected a pair of positive integers`, { field: f });
    checkInt(v[0], `${f}[0]`);
    checkInt(v[1], `${f}[1]`);
  }
  checkEnum(spec.padding, VALID_OP_PADDINGS, 'padding');
  checkEnum(spec.activation, VALID_FUSED_ACTIVATIONS, 'activation');
  checkEnum(spec.dtype, VALID_OP_DTYPES, 'dtype');
  const { kind } = spec;
  if (MULTI_INPUT.has(kind) ? spec.numInputs < 2 : spec.numInputs !== 1) {
    throw bad(`OpSpec.numInputs is ${spec.numInputs}; kind "${kind}" takes ${MULTI_INPUT.has(kind) ? 'at least 2' : 'exactly 1'}`, { field: 'numInputs' });
  }
  if (kind === 'mul' && spec.numInputs !== 2) throw bad(`a mul OpSpec multiplies a tensor by one per-channel gate: numInputs must be 2, got ${spec.numInputs}`, { field: 'numInputs' });
  if (SAME_CHANNELS.has(kind) && spec.cOut !== spec.cIn) {
    throw bad(`kind "${kind}" keeps its channels: cOut (${spec.cOut}) must equal cIn (${spec.cIn})`, { field: 'cOut' });
  }
  if (kind === 'depthwise' && spec.cOut % spec.cIn !== 0) {
    throw bad(`a depthwise OpSpec has cOut = cIn · multiplier: cOut ${spec.cOut} is not a multiple of cIn ${spec.cIn}`, { field: 'cOut' });
  }
  if (kind === 'concat' && spec.cOut < spec.cIn + spec.numInputs - 1) {
    throw bad(`a concat OpSpec's cOut (${spec.cOut}) must exceed cIn (${spec.cIn}) by at least one channel per other input (${spec.numInputs - 1})`, { field: 'cOut' });
  }
  if (kind === 'dense' && (spec.inH !== 1 || spec.inW !== 1)) throw bad('a dense OpSpec must have inH = inW = 1', { field: 'inH' });
  if (WINDOWED.has(kind) && kind !== 'transposeconv') {
    const ho = windowOut(spec.inH, spec.kernel[0], spec.stride[0], spec.dilation[0], spec.padding);
    const wo = windowOut(spec.inW, spec.kernel[1], spec.stride[1], spec.dilation[1], spec.padding);
    if (ho <= 0 || wo <= 0) {
      throw bad(
        `a ${spec.kernel[0]}×${spec.kernel[1]} window (dilation ${spec.dilation.join('×')}) with padding "${spec.padding}" does not fit the ${spec.inH}×${spec.inW} input; use padding "same" or a larger input`,
        { field: 'kernel' },
      );
    }
    if ((kind === 'maxpool' || kind === 'avgpool') && (spec.dilation[0] !== 1 || spec.dilation[1] !== 1)) {
      throw bad(`${kind} has no dilation; OpSpec.dilation must be [1, 1], got ${JSON.stringify(spec.dilation)}`, { field: 'dilation' });
    }
  } else if (kind === 'transposeconv') {
    if (spec.dilation[0] !== 1 || spec.dilation[1] !== 1) throw bad(`transposeconv has no dilation; OpSpec.dilation must be [1, 1], got ${JSON.stringify(spec.dilation)}`, { field: 'dilation' });
  } else if (spec.kernel.some((d) => d !== 1) || (!UPSAMPLE.has(kind) && spec.stride.some((d) => d !== 1)) || spec.dilation.some((d) => d !== 1) || spec.padding !== 'valid') {
    throw bad(`kind "${kind}" has no window: kernel${UPSAMPLE.has(kind) ? '' : ', stride'} and dilation must be [1, 1] and padding "valid" (use makeSpec to fill them)`, { field: 'kernel' });
  }
  if ((kind === 'mul' || ACTIVATION_OP_KINDS.has(kind) || UPSAMPLE.has(kind)) && spec.activation !== 'none') {
    throw bad(`kind "${kind}" takes no fused activation; OpSpec.activation must be "none"`, { field: 'activation' });
  }
}

/** The depthwise channel multiplier (1 for other kinds). */
export function depthMultiplier(spec: OpSpec): number {
  return spec.kind === 'depthwise' ? spec.cOut / spec.cIn : 1;
}

/** Channels of each input of a concat spec (see `OpSpec`); `[cIn]` repeated for other kinds. */
export function concatParts(spec: OpSpec): number[] {
  if (spec.kind !== 'concat') return Array.from({ length: spec.numInputs }, () => spec.cIn);
  const others = spec.numInputs - 1;
  const rest = spec.cOut - spec.cIn;
  const base = Math.floor(rest / others);
  const extra = rest % others;
  return [spec.cIn, ...Array.from({ length: others }, (_, i) => base + (i < extra ? 1 : 0))];
}

/** Input shapes, NHWC (dense: `[batch, cIn]`; mul: the tensor, then its `[batch, 1, 1, cIn]` gate). */
export function inputShapes(spec: OpSpec): number[][] {
  if (spec.kind === 'dense') return [[spec.batch, spec.cIn]];
  if (spec.kind === 'mul') return [[spec.batch, spec.inH, spec.inW, spec.cIn], [spec.batch, 1, 1, spec.cIn]];
  return concatParts(spec).map((c) => [spec.batch, spec.inH, spec.inW, c]);
}

/** The output shape, NHWC (dense and globalavgpool: `[batch, cOut]`). */
export function outputShape(spec: OpSpec): number[] {
  if (spec.kind === 'dense' || spec.kind === 'globalavgpool') return [spec.batch, spec.cOut];
  if (UPSAMPLE.has(spec.kind)) return [spec.batch, spec.inH * spec.stride[0], spec.inW * spec.stride[1], spec.cOut];
  if (spec.kind === 'transposeconv') {
    const len = (size: number, k: number, s: number): number => (spec.padding === 'same' ? size * s : size * s + Math.max(k - s, 0));
    return [spec.batch, len(spec.inH, spec.kernel[0], spec.stride[0]), len(spec.inW, spec.kernel[1], spec.stride[1]), spec.cOut];
  }
  if (!WINDOWED.has(spec.kind)) return [spec.batch, spec.inH, spec.inW, spec.cOut];
  const ho = windowOut(spec.inH, spec.kernel[0], spec.stride[0], spec.dilation[0], spec.padding);
  const wo = windowOut(spec.inW, spec.kernel[1], spec.stride[1], spec.dilation[1], spec.padding);
  return [spec.batch, ho, wo, spec.cOut];
}

/**
 * The table key of a spec: every field but `cIn`/`cOut`, in a fixed order, e.g.
 * `conv2d/28x28/k3x3/s1x1/same/d1x1/relu/b1/float32`. Depthwise adds its multiplier (`m1`), add
 * and concat their input count (`n2`), since those stay fixed while the channels vary.
 */
export function signature(spec: OpSpec): string {
  const parts = [
    spec.kind,
    `${spec.inH}x${spec.inW}`,
    `k${spec.kernel[0]}x${spec.kernel[1]}`,
    `s${spec.stride[0]}x${spec.stride[1]}`,
    spec.padding,
    `d${spec.dilation[0]}x${spec.dilation[1]}`,
    spec.activation,
  ];
  if (spec.kind === 'depthwise') parts.push(`m${depthMultiplier(spec)}`);
  if (MULTI_INPUT.has(spec.kind)) parts.push(`n${spec.numInputs}`);
  parts.push(`b${spec.batch}`, spec.dtype);
  return parts.join('/');
}

/** One point of one table: `signature(spec)` then `cIn`x`cOut`, e.g. `…/float32@16x32`. */
export function specKey(spec: OpSpec): string {
  return `${signature(spec)}@${spec.cIn}x${spec.cOut}`;
}

/** The same op with other channel counts (a depthwise spec keeps its multiplier). */
export function withChannels(spec: OpSpec, cIn: number, cOut: number): OpSpec {
  const next: OpSpec = { ...spec, cIn, cOut: spec.kind === 'depthwise' ? cIn * depthMultiplier(spec) : cOut };
  validateSpec(next);
  return next;
}

/** Multiply-accumulates of one run (0 for ops without a weighted sum). */
export function specMacs(spec: OpSpec): number {
  const out = outputShape(spec);
  switch (spec.kind) {
    case 'conv2d':
      return spec.batch * out[1] * out[2] * spec.kernel[0] * spec.kernel[1] * spec.cIn * spec.cOut;
    case 'depthwise':
      return spec.batch * out[1] * out[2] * spec.kernel[0] * spec.kernel[1] * spec.cOut;
    case 'dense':
      return spec.batch * spec.cIn * spec.cOut;
    case 'transposeconv':
      return spec.batch * spec.inH * spec.inW * spec.kernel[0] * spec.kernel[1] * spec.cIn * spec.cOut;
    default:
      return 0;
  }
}

/** Bytes per element of a spec's dtype (float32 only for now). */
const DTYPE_BYTES: Record<OpDtype, number> = { float32: 4 };

/** Weights of one op, elements (bias included; 0 for weightless kinds). */
function specWeightElements(spec: OpSpec): number {
  const [kh, kw] = spec.kernel;
  switch (spec.kind) {
    case 'conv2d':
    case 'transposeconv':
      return kh * kw * spec.cIn * spec.cOut + spec.cOut;
    case 'depthwise':
      return kh * kw * spec.cOut + spec.cOut;
    case 'dense':
      return spec.cIn * spec.cOut + spec.cOut;
    default:
      return 0;
  }
}

/**
 * The memory one run of the op touches, in MB (10⁶ bytes): the activations it reads and writes
 * (every input and the output) and its weights. The calibration's memory terms use them.
 */
export function specBytes(spec: OpSpec): { readonly ioMB: number; readonly weightMB: number } {
  const size = (shape: readonly number[]): number => shape.reduce((a, d) => a * d, 1);
  const bytes = DTYPE_BYTES[spec.dtype];
  const io = inputShapes(spec).reduce((a, s) => a + size(s), 0) + size(outputShape(spec));
  return { ioMB: (io * bytes) / 1e6, weightMB: (specWeightElements(spec) * bytes) / 1e6 };
}
