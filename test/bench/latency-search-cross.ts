/**
 * Does it pay to search per runtime? For each (seed model, target fraction, RNG seed) that the
 * latency-search bench finished on two runtimes A and B: the alive structure A's search found
 * (its shrink's alive widths) is expanded in closed loop to B's target (the same fraction of the seed
 * measured on B) on B, trained with the
 * identical schedule (the search's final training: same options, same RNG seed, same data) and
 * set beside the network B's own search found. And the other way round.
 *
 * Reads the bench's JSON lines (`--in`) and its data directory (the same device tables; the seed
 * is measured again, since the closed loop needs the calibrated hooks); appends one JSON line per
 * (case, direction) to `--out` and skips those already there.
 *
 *   node --import tsx test/bench/latency-search-cross.ts [--in docs/bench/latency-search.jsonl]
 *     [--out docs/bench/latency-search-cross.jsonl] [--data-dir DIR] [--seeds 1]
 */
import { appendFile, readFile } from 'node:fs/promises';
import { cpus, hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startServer } from '../../server/app.ts';
import { prepareLocalLatency } from '../../cli/local-latency.ts';
import { parseModel } from '../../src/graph/parse.ts';
import { rebuild } from '../../src/graph/rebuild.ts';
import { identitySelection, selectionFromWidths } from '../../src/graph/widths.ts';
import { expandVerified, netOf, trainAndEvaluate } from '../../src/morph/search.ts';
import { runOptionsOf, withDefaults } from '../../src/morph/search-options.ts';
import { seedModel, type SeedName } from '../../src/seeds/index.ts';
import { modelDataShape, openDataset } from '../../src/train/data/index.ts';
import { startTorchEngine } from '../../src/train/torch/torch-engine.ts';

const { values } = parseArgs({
  options: {
    in: { type: 'string', default: 'docs/bench/latency-search.jsonl' },
    out: { type: 'string', default: 'docs/bench/latency-search-cross.jsonl' },
    'data-dir': { type: 'string', default: join(tmpdir(), 'morphnet-latbench-data') },
    seeds: { type: 'string', default: '1' },
  },
});

const log = (s: string): void => {
  process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${s}\n`);
};

interface BenchCase {
  model: string;
  runtime: string;
  fraction: number;
  seed: number;
  state: string;
  targetMs: number;
  config: Record<string, string>;
  groups: { alive: number }[];
  latencyMorphNet: { accuracy: number; measuredMs: number; macs: number; structure: Record<string, number> };
}

async function lines<T>(path: string): Promise<T[]> {
  try {
    return (await readFile(path, 'utf8')).split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as T);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

async function main(): Promise<void> {
  const cases = (await lines<BenchCase>(String(values.in))).filter((c) => c.state === 'done' && c.seed <= Number(values.seeds));
  const done = new Set((await lines<{ key: string }>(String(values.out))).map((r) => r.key));
  const pairs: { from: BenchCase; to: BenchCase; key: string }[] = [];
  for (const from of cases) {
    for (const to of cases) {
      if (to === from || to.model !== from.model || to.fraction !== from.fraction || to.seed !== from.seed || to.runtime === from.runtime) continue;
      const key = `${from.model}|${from.fraction}|${from.seed}|${from.runtime}->${to.runtime}`;
      if (!done.has(key)) pairs.push({ from, to, key });
    }
  }
  log(`${pairs.length} cross case(s) to run`);
  if (pairs.length === 0) return;
  const server = await startServer({ port: 0, dataDir: String(values['data-dir']), log: (l) => (l.includes('[local agent] lease') ? undefined : log(l)) });
  const engine = await startTorchEngine();
  const io = { out: (t: string) => log(t), err: (t: string) => log(t), isTty: false };
  try {
    for (const { from, to, key } of pairs) {
      const started = Date.now();
      const graph = parseModel(seedModel(from.model as SeedName)).graph;
      const net = netOf(graph);
      // The search's own options for the final training (the bench's, over the defaults).
      const options = runOptionsOf(withDefaults({ finalEpochs: Number(to.config['final-epochs']), seed: to.seed }), 'flops', { fraction: to.fraction });
      // The same fraction of the seed as B's search (the seed measured now: milliseconds drift with
      // the machine's phase, fractions do not).
      const setup = await prepareLocalLatency({ base: server.url, device: `${hostname()} (local)`, runtime: to.runtime, graph, profileGrid: 6, quick: false, fraction: to.fraction, json: true, timeoutS: 1800 }, io);
      const alive = from.groups.map((g) => g.alive);
      const expanded = await expandVerified(setup.hooks, net, alive, setup.targetMs, options.divisor, `${from.runtime} structure on ${to.runtime}`, () => undefined);
      const dataset = await openDataset('fashion-mnist', { seed: to.seed, limit: { train: Number(to.config['train-limit']), test: Number(to.config['test-limit']) }, model: modelDataShape(graph) });
      const grown = rebuild(net.graph, net.analysis, selectionFromWidths(net.analysis, expanded.expanded.widths), null, { seed: to.seed });
      const grownNet = netOf(parseModel({ format: 'layers-model', modelTopology: grown.modelTopology }).graph);
      const fresh = rebuild(grownNet.graph, grownNet.analysis, identitySelection(grownNet.analysis), null, { seed: to.seed });
      const trained = await trainAndEvaluate(engine, grownNet, fresh, dataset, options, 'final', () => undefined);
      const record = {
        key,
        bench: 'latency-search-cross',
        date: new Date().toISOString(),
        machine: { cpu: cpus()[0]?.model, cores: cpus().length, node: process.version },
        model: from.model,
        fraction: from.fraction,
        seed: from.seed,
        searchedOn: from.runtime,
        runOn: to.runtime,
        targetMs: setup.targetMs,
        transplanted: { accuracy: trained.accuracy, measuredMs: expanded.measured, vsTarget: (expanded.measured as number) / setup.targetMs - 1, verifyStop: expanded.stop, multiplier: expanded.expanded.multiplier, widths: expanded.expanded.widths },
        native: { accuracy: to.latencyMorphNet.accuracy, measuredMs: to.latencyMorphNet.measuredMs, vsTarget: to.latencyMorphNet.measuredMs / to.targetMs - 1 },
        nativeMinusTransplantedPt: 100 * (to.latencyMorphNet.accuracy - trained.accuracy),
        seconds: (Date.now() - started) / 1000,
      };
      await appendFile(String(values.out), `${JSON.stringify(record)}\n`);
      log(`${key}: transplanted ${(trained.accuracy * 100).toFixed(2)}% @ ${expanded.measured?.toFixed(3)} ms of ${setup.targetMs.toFixed(3)} (${expanded.stop}), native ${(to.latencyMorphNet.accuracy * 100).toFixed(2)}% @ ${to.latencyMorphNet.measuredMs.toFixed(3)} of ${to.targetMs.toFixed(3)} ms in its own search`);
    }
  } finally {
    await engine.close();
    await server.close();
  }
}

await main();
