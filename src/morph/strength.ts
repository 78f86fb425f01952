/**
 * Choosing the regularizer's strength: one procedure, the same for every search, that sees only
 * the training and validation data (never the test set).
 *
 * The paper sweeps λ; the reference implementation suggests trying a few orders of magnitude
 * around 1 / (the seed's cost), which is what `λ = k / seed cost` normalises to k ≈ 1–100. For each
 * candidate k (a factor-4 grid, `STRENGTH_CANDIDATES`):
 *
 * 1. shrink the seed from the same starting weights for a short run (`shortSteps`: a third of an
 *    epoch, at least 20 steps), with the search's own threshold and cost model, and λ scaled by
 *    (the real shrink's steps / the short run's) (`trialStrength`): the proximal step shrinks each
 *    γ by lr·λ·w_g per step, so the short run then applies the same total pressure as the real
 *    shrink will. Unscaled, a trial saw a ninth of it (a third of an epoch against three epochs):
 *    on MobileNetV2 k = 5 and 20 left every channel alive and tied, and the k = 80 that won
 *    cut the real run's stem to 3 of 32 channels;
 * 2. expand the alive structure to the target (the cost model's prediction; no device time);
 * 3. train that network from scratch for the same short run and measure it on the validation split.
 *
 * The k whose network does best on validation wins (ties: the first, i.e. the weaker). A strength
 * given by the user (`--strength`, `options.strength`) skips all of this.
 */
/** Candidate k of λ = k / seed cost: a factor 4 apart, around the old fixed default 20. */
export const STRENGTH_CANDIDATES: readonly number[] = [5, 20, 80];

/** Steps of each short run: a third of an epoch, at least 20 (never more than an epoch). */
export function shortSteps(stepsPerEpoch: number): number {
  return Math.min(stepsPerEpoch, Math.max(20, Math.ceil(stepsPerEpoch / 3)));
}

/** λ of a short trial that applies the pressure of `fullSteps` steps at `lambda` in `trialSteps`. */
export function trialStrength(lambda: number, fullSteps: number, trialSteps: number): number {
  return trialSteps > 0 && fullSteps > trialSteps ? lambda * (fullSteps / trialSteps) : lambda;
}

/** What one candidate gave. */
export interface StrengthTrial {
  readonly strength: number;
  readonly lambda: number;
  /** Alive channels per group after the short shrink. */
  readonly alive: readonly number[];
  /** The expanded network's width multiplier and predicted cost. */
  readonly multiplier: number;
  readonly cost: number;
  /** Validation accuracy after the short training; null when the target was unreachable from it. */
  readonly valAccuracy: number | null;
  readonly valLoss: number | null;
}

export interface StrengthChoice {
  readonly strength: number;
  /** 'tuned' by the procedure above, or 'given' by the user. */
  readonly source: 'tuned' | 'given';
  readonly trials: readonly StrengthTrial[];
  /** Steps of each short run. */
  readonly steps: number | null;
}

/** The trial that wins: best validation accuracy, then lower loss, then the first. */
export function pickStrength(trials: readonly StrengthTrial[]): StrengthTrial {
  const scored = trials.filter((t) => t.valAccuracy !== null);
  if (scored.length === 0) return trials[Math.floor(trials.length / 2)];
  return scored.reduce((best, t) => {
    if ((t.valAccuracy as number) > (best.valAccuracy as number)) return t;
    if (t.valAccuracy === best.valAccuracy && (t.valLoss ?? Infinity) < (best.valLoss ?? Infinity)) return t;
    return best;
  });
}
