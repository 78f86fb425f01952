/**
 * Aggregates a latency-search bench file (test/bench/latency-search.ts) per (seed model, runtime)
 * over its RNG seeds: accuracy of latency-MorphNet, the uniform multiplier and FLOP-MorphNet
 * (mean, min, max, paired wins), their measured latency vs the target, the cross-runtime
 * measurements, and how a search's wall time splits (from the phases the bench polled every 2 s).
 *
 *   node --import tsx test/bench/latency-search-summary.ts docs/bench/latency-search.json
 */
import { readFile } from 'node:fs/promises';

interface Net {
  measuredMs: number;
  predictedMs: number;
  verifyStop: string;
  accuracy: number;
  macs: number;
}

interface Run {
  model: string;
  runtime: string;
  seed: number;
  state: string;
  targetMs?: number;
  seedMeasuredMs?: number;
  latencyMorphNet?: Net | null;
  uniform?: Net | null;
  flopMorphNet?: Net | null;
  wallSeconds: number;
  phases: { at: number; what: string }[];
  cross?: Record<string, number>;
}

const METHODS = ['latencyMorphNet', 'uniform', 'flopMorphNet'] as const;

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
const round = (x: number, d = 4): number => Number(x.toFixed(d));

/** Seconds per part of a search, from the polled phase transitions. */
export function wallSplit(run: Run): Record<string, number> {
  const parts: Record<string, number> = { profiling: 0, shrink: 0, expandVerify: 0, final: 0, baselines: 0 };
  let inBaselines = false;
  run.phases.forEach((p, i) => {
    const end = i + 1 < run.phases.length ? run.phases[i + 1].at : run.wallSeconds;
    const span = end - p.at;
    if (p.what.startsWith('running baseline')) inBaselines = true;
    if (p.what.startsWith('queued') || p.what.startsWith('done')) return;
    const key = p.what.startsWith('preparing') ? 'profiling' : inBaselines ? 'baselines' : p.what.endsWith('shrink') ? 'shrink' : p.what.endsWith('final') ? 'final' : 'expandVerify';
    parts[key] += span;
  });
  return Object.fromEntries(Object.entries(parts).map(([k, v]) => [k, round(v, 1)]));
}

export function summarize(runs: Run[]): Record<string, unknown>[] {
  const groups = new Map<string, Run[]>();
  for (const r of runs) {
    const key = `${r.model}/${r.runtime}`;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  return [...groups.entries()].map(([key, all]) => {
    const done = all.filter((r) => r.state === 'done' && r.latencyMorphNet && r.uniform && r.flopMorphNet);
    const per = Object.fromEntries(
      METHODS.map((m) => {
        const nets = done.map((r) => r[m] as Net);
        const acc = nets.map((n) => n.accuracy);
        const err = done.map((r) => (r[m] as Net).measuredMs / (r.targetMs as number) - 1);
        return [m, { accuracyMean: round(mean(acc)), accuracyMin: round(Math.min(...acc)), accuracyMax: round(Math.max(...acc)), measuredVsTargetMeanPct: round(100 * mean(err), 1), measuredVsTargetMaxAbsPct: round(100 * Math.max(...err.map(Math.abs)), 1), withinTolerance: nets.filter((n) => n.verifyStop === 'within').length, macsMean: Math.round(mean(nets.map((n) => n.macs))) }];
      }),
    );
    const wins = (other: 'uniform' | 'flopMorphNet'): string => `${done.filter((r) => (r.latencyMorphNet as Net).accuracy > (r[other] as Net).accuracy).length}/${done.length}`;
    const splits = done.map(wallSplit);
    return {
      group: key,
      seeds: all.length,
      done: done.length,
      failed: all.filter((r) => r.state !== 'done').map((r) => ({ seed: r.seed, state: r.state })),
      targetMsMean: round(mean(done.map((r) => r.targetMs as number))),
      seedMeasuredMsMean: round(mean(done.map((r) => r.seedMeasuredMs as number))),
      ...per,
      latencyBeatsUniform: wins('uniform'),
      latencyBeatsFlop: wins('flopMorphNet'),
      accuracyGainOverUniformPts: round(100 * mean(done.map((r) => (r.latencyMorphNet as Net).accuracy - (r.uniform as Net).accuracy)), 2),
      accuracyGainOverFlopPts: round(100 * mean(done.map((r) => (r.latencyMorphNet as Net).accuracy - (r.flopMorphNet as Net).accuracy)), 2),
      wallSecondsMean: round(mean(done.map((r) => r.wallSeconds)), 1),
      wallSplitMean: Object.fromEntries(Object.keys(splits[0] ?? {}).map((k) => [k, round(mean(splits.map((s) => s[k])), 1)])),
      // This runtime's network on another runtime, against that runtime's own target and own search.
      cross: done.flatMap((r) =>
        Object.entries(r.cross ?? {}).map(([other, ms]) => {
          const there = runs.find((o) => o.model === r.model && o.seed === r.seed && o.runtime === other && o.state === 'done');
          return {
            seed: r.seed,
            measuredOn: other,
            ms: round(ms),
            otherTargetMs: there ? round(there.targetMs as number) : null,
            vsOtherTargetPct: there ? round(100 * (ms / (there.targetMs as number) - 1), 1) : null,
            accuracy: r.latencyMorphNet?.accuracy ?? null,
            otherSearchAccuracy: there?.latencyMorphNet?.accuracy ?? null,
          };
        }),
      ),
    };
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write('usage: node --import tsx test/bench/latency-search-summary.ts BENCH.json\n');
    process.exit(2);
  }
  const data = JSON.parse(await readFile(file, 'utf8')) as { runs: Run[] };
  process.stdout.write(`${JSON.stringify(summarize(data.runs), null, 2)}\n`);
}
