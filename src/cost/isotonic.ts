/**
 * Least-squares monotone (non-decreasing) fits, used to clean noisy latency tables so that the
 * interpolant's slopes — the regularizer's per-channel weights — are never negative.
 */

/**
 * Pool-adjacent-violators: the non-decreasing sequence closest to `y` in weighted least squares.
 * Returns `y`'s values unchanged where `y` is already non-decreasing.
 */
export function isotonic1d(y: readonly number[], w: readonly number[] = y.map(() => 1)): number[] {
  const means: number[] = [];
  const weights: number[] = [];
  const sizes: number[] = [];
  for (let i = 0; i < y.length; i++) {
    means.push(y[i]);
    weights.push(w[i]);
    sizes.push(1);
    while (means.length > 1 && means[means.length - 2] > means[means.length - 1]) {
      const m1 = means.pop() as number;
      const w1 = weights.pop() as number;
      const s1 = sizes.pop() as number;
      const last = means.length - 1;
      const wt = weights[last] + w1;
      means[last] = (means[last] * weights[last] + m1 * w1) / wt;
      weights[last] = wt;
      sizes[last] += s1;
    }
  }
  const out: number[] = [];
  for (let b = 0; b < means.length; b++) for (let k = 0; k < sizes[b]; k++) out.push(means[b]);
  return out;
}

const mapRows = (m: readonly (readonly number[])[], f: (row: readonly number[]) => number[]): number[][] => m.map(f);

function transpose(m: readonly (readonly number[])[]): number[][] {
  return m[0].map((_, j) => m.map((row) => row[j]));
}

function add(a: readonly (readonly number[])[], b: readonly (readonly number[])[], sign = 1): number[][] {
  return a.map((row, i) => row.map((v, j) => v + sign * b[i][j]));
}

/**
 * The grid closest to `v` (least squares) that is non-decreasing along both axes: Dykstra's
 * alternating projections onto the row-monotone and column-monotone cones, each by PAVA. A grid
 * that is already monotone comes back unchanged. A final running-max pass removes the last
 * rounding-level violations so that the result is exactly monotone.
 */
export function isotonic2d(v: readonly (readonly number[])[], maxIterations = 500): number[][] {
  if (v.length === 0 || v[0].length === 0) return [];
  const scale = Math.max(...v.map((row) => Math.max(...row.map(Math.abs))), 1e-300);
  let x = v.map((row) => [...row]);
  let p = v.map((row) => row.map(() => 0));
  let q = v.map((row) => row.map(() => 0));
  for (let it = 0; it < maxIterations; it++) {
    const xp = add(x, p);
    const y = mapRows(xp, (row) => isotonic1d(row));
    p = add(xp, y, -1);
    const yq = add(y, q);
    const next = transpose(mapRows(transpose(yq), (col) => isotonic1d(col)));
    q = add(yq, next, -1);
    let change = 0;
    for (let i = 0; i < x.length; i++) for (let j = 0; j < x[i].length; j++) change = Math.max(change, Math.abs(next[i][j] - x[i][j]));
    x = next;
    if (change <= 1e-12 * scale) break;
  }
  for (const row of x) for (let j = 1; j < row.length; j++) row[j] = Math.max(row[j], row[j - 1]);
  for (let i = 1; i < x.length; i++) for (let j = 0; j < x[i].length; j++) x[i][j] = Math.max(x[i][j], x[i - 1][j]);
  return x;
}
