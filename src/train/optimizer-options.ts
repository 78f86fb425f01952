/**
 * The optimizer options every training engine takes, their defaults and their checks (no tfjs
 * here: the torch engine and the server's HTTP thread read them too).
 */
import { MorphError } from '../errors.ts';

export const VALID_OPTIMIZERS = ['adam', 'sgd'] as const;
export type OptimizerKind = (typeof VALID_OPTIMIZERS)[number];

export interface OptimizerOptions {
  /** Default `adam`. */
  kind?: OptimizerKind;
  /** Base learning rate (the schedule scales it). Default 1e-3 for adam, 0.05 for sgd. */
  lr?: number;
  /** sgd only: momentum coefficient in [0, 1). Default 0.9; 0 gives plain SGD. */
  momentum?: number;
  /**
   * L2 penalty `weightDecay/2 · Σ w²` on conv and dense kernels, added to the loss (not on biases
   * nor batch-norm parameters, whose gammas the MorphNet regularizer must be free to shrink).
   * Default 0.
   */
  weightDecay?: number;
}

/** Options with every default filled in; this is what checkpoints record. */
export interface ResolvedOptimizerOptions {
  readonly kind: OptimizerKind;
  readonly lr: number;
  readonly momentum: number;
  readonly weightDecay: number;
}

export const DEFAULT_LR: Readonly<Record<OptimizerKind, number>> = { adam: 1e-3, sgd: 0.05 };
export const DEFAULT_MOMENTUM = 0.9;

function positive(name: string, v: number): boolean {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
    throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `optimizer ${name} must be a positive finite number, got ${JSON.stringify(v)}`);
  }
  return true;
}

/** Fills in defaults and checks every field; throws MORPH_ERR_BAD_ARGUMENT naming the bad one. */
export function resolveOptimizerOptions(o: OptimizerOptions = {}): ResolvedOptimizerOptions {
  const kind = o.kind ?? 'adam';
  if (!(VALID_OPTIMIZERS as readonly string[]).includes(kind)) {
    throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `unknown optimizer ${JSON.stringify(kind)}; expected one of ${VALID_OPTIMIZERS.join(', ')}`);
  }
  const lr = o.lr ?? DEFAULT_LR[kind];
  positive('lr', lr);
  const momentum = o.momentum ?? DEFAULT_MOMENTUM;
  if (typeof momentum !== 'number' || !(momentum >= 0 && momentum < 1)) {
    throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `optimizer momentum must be in [0, 1), got ${JSON.stringify(momentum)}`);
  }
  const weightDecay = o.weightDecay ?? 0;
  if (typeof weightDecay !== 'number' || !Number.isFinite(weightDecay) || weightDecay < 0) {
    throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `optimizer weightDecay must be a non-negative finite number, got ${JSON.stringify(weightDecay)}`);
  }
  return { kind, lr, momentum: kind === 'sgd' ? momentum : 0, weightDecay };
}

