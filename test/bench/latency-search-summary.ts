/**
 * Aggregates a latency-search bench file (test/bench/latency-search.ts, one JSON line per case)
 * per (seed model, runtime, target fraction) over its RNG seeds: each network's accuracy and
 * measured latency vs the target, how many closed loops ended within ±3%, and the paired gains
 * (same RNG seed, same schedule) of latency-MorphNet over the uniform multiplier and over
 * FLOP-MorphNet as mean ± sd in points; what the closed loops cost (candidates and measurements
 * per loop). Also the regularizer's per-group weights on the device beside the FLOP weights
 * (normalised to sum 1), and the widths each search learned. Prints JSON. `--seeds 1,2` keeps
 * those RNG seeds only (to compare two files on the same cases).
 *
 *   node --import tsx test/bench/latency-search-summary.ts docs/bench/latency-search.jsonl [--groups] [--seeds 1]
 */
import { readFile } from 'node:fs/promises';
import { analyzeChannels } from '../../src/graph/channel-groups.ts';
import { costOps, flopsCostModel } from '../../src/cost/cost-model.ts';
import { parseModel } from '../../src/graph/parse.ts';
import { groupCoefficients } from '../../src/morph/regularizer.ts';
import { isSeedName, seedModel } from '../../src/seeds/index.ts';

interface Net {
  accuracy: number;
  measuredMs: number;
  vsTarget: number;
  within: boolean;
  verifyStop: string;
  macs: number;
  params: number;
  /** Channels per layer (structure.json). */
  structure: Record<string, number> | null;
  /** The closed loop's candidates, each with its measurements. */
  verify?: { runs: number[] }[];
}

interface Case {
  model: string;
  runtime: string;
  fraction: number;
  seed: number;
  state: string;
  targetMs?: number;
  wallSeconds: number;
  strength?: { strength: number; source: string };
  groups?: { id: number; layers: string[]; channels: number; alive: number; expanded: number; latencyCoefficient: number }[];
  latencyMorphNet?: Net | null;
  uniform?: Net | null;
  flopMorphNet?: Net | null;
}

const METHODS = ['latencyMorphNet', 'uniform', 'flopMorphNet'] as const;

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
const sd = (xs: number[]): number => (xs.length > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - mean(xs)) ** 2, 0) / (xs.length - 1)) : 0);
const round = (x: number, d = 4): number => Number(x.toFixed(d));

/** mean ± sd of paired differences in points, with wins. */
function paired(cases: Case[], a: (typeof METHODS)[number], b: (typeof METHODS)[number]): Record<string, unknown> | null {
  const diffs = cases.filter((c) => c[a] && c[b]).map((c) => 100 * (c[a]!.accuracy - c[b]!.accuracy));
  if (diffs.length === 0) return null;
  return { n: diffs.length, meanPt: round(mean(diffs), 2), sdPt: round(sd(diffs), 2), wins: diffs.filter((d) => d > 0).length, each: diffs.map((d) => round(d, 2)) };
}

/**
 * Each group's FLOP weight at the same alive widths as the latency weight was recorded (the end of
 * the shrink), so the two are the regularizer's weights on the same network.
 */
function flopShares(model: string, alive: readonly number[]): number[] | null {
  if (!isSeedName(model)) return null;
  const graph = parseModel(seedModel(model)).graph;
  const analysis = analyzeChannels(graph);
  return normalise(Array.from(groupCoefficients(costOps(graph, analysis), analysis, flopsCostModel, alive)));
}

/** A group's width in a network: the channels of its first layer that the structure lists. */
function widthOf(net: Net | null | undefined, layers: readonly string[]): number | null {
  const layer = layers.find((l) => net?.structure?.[l] !== undefined);
  return layer === undefined ? null : (net!.structure![layer] as number);
}

function normalise(xs: number[]): number[] {
  const total = xs.reduce((a, b) => a + Math.max(0, b), 0);
  return xs.map((x) => (total > 0 ? Math.max(0, x) / total : 0));
}

/** Per closed loop: how many candidates it measured, and how many measurements they took. */
function closedLoopCost(cases: Case[]): Record<string, unknown> {
  const loops = cases.flatMap((c) => METHODS.map((m) => c[m]?.verify).filter((v): v is { runs: number[] }[] => Array.isArray(v)));
  if (loops.length === 0) return { loops: 0 };
  const candidates = loops.map((v) => v.length);
  const measurements = loops.map((v) => v.reduce((s, x) => s + x.runs.length, 0));
  return {
    loops: loops.length,
    candidates: candidates.reduce((a, b) => a + b, 0),
    candidatesPerLoop: round(mean(candidates), 2),
    measurements: measurements.reduce((a, b) => a + b, 0),
    measurementsPerLoop: round(mean(measurements), 2),
    byRuntime: [...new Set(cases.map((c) => c.runtime))].map((runtime) => {
      const own = cases.filter((c) => c.runtime === runtime).flatMap((c) => METHODS.map((m) => c[m]?.verify).filter((v): v is { runs: number[] }[] => Array.isArray(v)));
      return { runtime, loops: own.length, candidatesPerLoop: round(mean(own.map((v) => v.length)), 2), measurementsPerLoop: round(mean(own.map((v) => v.reduce((s, x) => s + x.runs.length, 0))), 2) };
    }),
  };
}

async function main(): Promise<void> {
  const path = process.argv[2];
  if (!path) throw new Error('usage: latency-search-summary.ts FILE.jsonl [--groups]');
  const withGroups = process.argv.includes('--groups');
  const seedsAt = process.argv.indexOf('--seeds');
  const seeds = seedsAt > 0 ? new Set(String(process.argv[seedsAt + 1]).split(',').map(Number)) : null;
  const cases = (await readFile(path, 'utf8'))
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as Case)
    .filter((c) => seeds === null || seeds.has(c.seed));
  const keys = [...new Set(cases.map((c) => `${c.model}|${c.runtime}|${c.fraction}`))];
  const conditions = keys.map((key) => {
    const all = cases.filter((c) => `${c.model}|${c.runtime}|${c.fraction}` === key);
    const done = all.filter((c) => c.state === 'done');
    const [model, runtime, fraction] = key.split('|');
    const per = Object.fromEntries(
      METHODS.map((m) => {
        const nets = done.map((c) => c[m]).filter((n): n is Net => Boolean(n));
        return [
          m,
          nets.length === 0
            ? null
            : {
                accuracyMean: round(mean(nets.map((n) => n.accuracy))),
                vsTarget: nets.map((n) => round(n.vsTarget, 3)),
                within: nets.filter((n) => n.within).length,
                stops: nets.map((n) => n.verifyStop),
                macsMean: Math.round(mean(nets.map((n) => n.macs))),
                paramsMean: Math.round(mean(nets.map((n) => n.params))),
              },
        ];
      }),
    );
    const flop = withGroups && done[0]?.groups ? flopShares(model, done[0].groups.map((g) => g.alive)) : null;
    return {
      model,
      runtime,
      fraction: Number(fraction),
      cases: all.length,
      done: done.length,
      failed: all.filter((c) => c.state !== 'done').map((c) => ({ seed: c.seed, state: c.state })),
      targetMsMean: done.length ? round(mean(done.map((c) => c.targetMs as number))) : null,
      strengths: done.map((c) => c.strength?.strength ?? null),
      wallSecondsMean: done.length ? Math.round(mean(done.map((c) => c.wallSeconds))) : null,
      ...per,
      gainOverUniform: paired(done, 'latencyMorphNet', 'uniform'),
      gainOverFlop: paired(done, 'latencyMorphNet', 'flopMorphNet'),
      // Every network within ±3% of the target in all three closed loops.
      allWithin: done.filter((c) => METHODS.every((m) => c[m]?.within)).length,
      ...(withGroups && done[0]?.groups
        ? {
            groups: done[0].groups.map((g, i) => ({
              id: g.id,
              channels: g.channels,
              latencyWeight: round(normalise(done[0].groups!.map((x) => x.latencyCoefficient))[i], 4),
              flopWeight: flop ? round(flop[i], 4) : null,
              layer: g.layers.find((l) => done[0].latencyMorphNet?.structure?.[l] !== undefined) ?? g.layers[0],
              alive: done.map((c) => c.groups?.[i]?.alive ?? null),
              latencyWidths: done.map((c) => widthOf(c.latencyMorphNet, g.layers)),
              uniformWidths: done.map((c) => widthOf(c.uniform, g.layers)),
              flopWidths: done.map((c) => widthOf(c.flopMorphNet, g.layers)),
            })),
          }
        : {}),
    };
  });
  const everyDone = cases.filter((c) => c.state === 'done');
  const overall = {
    cases: cases.length,
    done: everyDone.length,
    allWithin: everyDone.filter((c) => METHODS.every((m) => c[m]?.within)).length,
    closedLoops: closedLoopCost(everyDone),
    byFraction: [...new Set(everyDone.map((c) => c.fraction))].map((f) => ({
      fraction: f,
      gainOverUniform: paired(everyDone.filter((c) => c.fraction === f), 'latencyMorphNet', 'uniform'),
      gainOverFlop: paired(everyDone.filter((c) => c.fraction === f), 'latencyMorphNet', 'flopMorphNet'),
    })),
  };
  process.stdout.write(`${JSON.stringify({ bench: 'latency-search-summary', file: path, overall, conditions }, null, 2)}\n`);
}

await main();
