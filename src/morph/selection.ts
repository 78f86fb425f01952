/**
 * Turning target widths into a `Selection` over a trained network: which channels survive when a
 * group is narrower than its alive count (the largest |γ| first), and how many fresh channels are
 * appended when it is wider.
 */
import type { ChannelAnalysis } from '../graph/channel-groups.ts';
import type { GroupSelection, Selection } from '../graph/widths.ts';

/**
 * @param widths target width per group.
 * @param gammas per group, the max |γ| of each channel (empty for unregularized groups).
 * @param threshold channels at or below it are dead and are the last to be kept.
 */
export function selectByGamma(analysis: ChannelAnalysis, widths: readonly number[], gammas: readonly ArrayLike<number>[], threshold: number): Selection {
  return analysis.groups.map((g): GroupSelection => {
    const width = widths[g.id];
    const gam = gammas[g.id];
    if (!g.regularized || gam.length === 0) {
      const k = Math.min(width, g.channels);
      return { keep: Array.from({ length: k }, (_, i) => i), add: width - k };
    }
    const alive = Array.from({ length: gam.length }, (_, c) => c)
      .filter((c) => gam[c] > threshold)
      .sort((a, b) => gam[b] - gam[a] || a - b);
    // A group with nothing alive still keeps its strongest channel (it was kept when pruning).
    const ranked = alive.length > 0 ? alive : [Array.from({ length: gam.length }, (_, c) => c).sort((a, b) => gam[b] - gam[a])[0]];
    const keep = ranked.slice(0, width).sort((a, b) => a - b);
    return { keep, add: width - keep.length };
  });
}
