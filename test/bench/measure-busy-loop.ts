/**
 * How close does the measurement protocol come to a run of known length on this machine? Busy
 * loops of fixed wall time (by default 2 ms and 0.05 ms, the two the protocol test used to hold to
 * [2, 3) ms and [0.05, 0.2) ms) timed `--repeats` times with the protocol and the real clock.
 * Prints one JSON object: per loop length, each repeat's median, p10, p90, runs per sample and
 * total time, and how many medians fell within `--tolerance` of the loop's length.
 *
 * A tolerance on real timings belongs here, not in test/: on a loaded machine the 2 ms loop's
 * median read 5.6 ms (issue 18). test/measure/timing.test.ts keeps what holds whatever the load
 * (per-run times never under the loop's length) and drives the protocol's logic with a fake clock.
 *
 *   node --import tsx test/bench/measure-busy-loop.ts [--loops 2,0.05] [--repeats 10] [--tolerance 0.5]
 *     [--max-ms 1500] [--warmup-ms 20] [--min-window-ms 100]
 */
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { measure, summarize } from '../../src/measure/timing.ts';

const { values } = parseArgs({
  options: {
    loops: { type: 'string', default: '2,0.05' },
    repeats: { type: 'string', default: '10' },
    tolerance: { type: 'string', default: '0.5' },
    'max-ms': { type: 'string', default: '1500' },
    'warmup-ms': { type: 'string', default: '20' },
    'min-window-ms': { type: 'string', default: '100' },
  },
});

const loops = values.loops.split(',').map(Number);
const repeats = Number(values.repeats);
const tolerance = Number(values.tolerance);
const options = { maxMs: Number(values['max-ms']), warmupMs: Number(values['warmup-ms']), minWindowMs: Number(values['min-window-ms']) };
if (!loops.every((ms) => Number.isFinite(ms) && ms > 0) || !(Number.isInteger(repeats) && repeats >= 1) || !(tolerance >= 0)) {
  console.error('usage: --loops MS[,MS…] (each > 0) --repeats N (≥ 1) --tolerance F (≥ 0, relative)');
  process.exit(2);
}

const spin = (ms: number) => (): void => {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    // busy
  }
};

const round = (x: number, digits = 4): number => Number(x.toFixed(digits));
const loadAtStart = loadavg().map((x) => round(x, 2));
const results = [];
for (const loopMs of loops) {
  const runs = [];
  for (let i = 0; i < repeats; i++) {
    const m = await measure(spin(loopMs), options);
    runs.push({ medianMs: round(m.medianMs), p10Ms: round(m.p10Ms), p90Ms: round(m.p90Ms), cv: round(m.cv), n: m.n, runsPerSample: m.runsPerSample, stable: m.stable, capped: m.capped, totalMs: round(m.totalMs, 1) });
  }
  const medians = summarize(runs.map((r) => r.medianMs));
  results.push({
    loopMs,
    withinTolerance: runs.filter((r) => r.medianMs >= loopMs && r.medianMs < loopMs * (1 + tolerance)).length,
    medianOfMedians: round(medians.median),
    worstRelativeError: round(Math.max(...runs.map((r) => r.medianMs / loopMs - 1))),
    runs,
  });
}

console.log(
  JSON.stringify({
    bench: 'measure-busy-loop',
    date: new Date().toISOString(),
    config: { loops, repeats, tolerance, ...options },
    machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? 'unknown', node: process.version, loadAverage: { atStart: loadAtStart, atEnd: loadavg().map((x) => round(x, 2)) } },
    results,
  }),
);
