/**
 * Summarises `composition-probe.ts` JSON lines: the noise floor (each network's repeated end-to-end
 * readings within ±10% of their own median; each op's passes more than 10% apart), Σ ops alone
 * against the network, and the product's calibration a·Σ + b·n + c judged leave-one-out (each
 * network predicted from a fit on the others), all on the lowest reading of each op and network.
 *
 *   node --import tsx test/bench/composition-summary.ts docs/bench/composition-probe-tflite.jsonl
 */
import { readFile } from 'node:fs/promises';
import { applyCalibration, fitCalibration, type CalibrationSample } from '../../src/cost/calibration.ts';

const file = process.argv[2];
if (!file || file === '--help') {
  process.stdout.write(`${(await readFile(new URL(import.meta.url), 'utf8')).split('*/')[0]}*/\n`);
  process.exit(file ? 0 : 1);
}

interface Row {
  runtime?: string;
  name: string;
  e2eMs: number;
  e2eAllMs: number[];
  nOps: number;
  sumAloneMs: number;
  ops: { aloneAllMs?: number[] }[];
}

const rows = (await readFile(file, 'utf8'))
  .split('\n')
  .filter((l) => l.trim())
  .map((l) => JSON.parse(l) as Row);
const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

let readings = 0;
let readingsWithin = 0;
let opPairs = 0;
let opPairsApart = 0;
for (const r of rows) {
  const m = median(r.e2eAllMs);
  readings += r.e2eAllMs.length;
  readingsWithin += r.e2eAllMs.filter((x) => Math.abs(x / m - 1) <= 0.1).length;
  for (const o of r.ops) {
    const all = o.aloneAllMs ?? [];
    if (all.length < 2) continue;
    opPairs++;
    if (Math.max(...all) / Math.min(...all) > 1.1) opPairsApart++;
  }
}

const samples: CalibrationSample[] = rows.map((r) => ({ device: 'this', runtime: r.runtime ?? 'tflite', sumOpsMs: r.sumAloneMs, nOps: r.nOps, measuredMs: r.e2eMs, model: r.name }));
// The calibration's own leave-one-out figure (what GET /api/tables reports), and each network's
// out-of-sample prediction beside it.
const outOfSample = fitCalibration(samples).outOfSample;
const loo = rows.map((r, i) => {
  const predicted = applyCalibration(fitCalibration(samples.filter((_, j) => j !== i)), samples[i]);
  return { name: r.name, measuredMs: r.e2eMs, sumAloneMs: r.sumAloneMs, predictedMs: predicted, error: predicted / r.e2eMs - 1 };
});
process.stdout.write(
  `${JSON.stringify(
    {
      file,
      networks: rows.length,
      noiseFloor: {
        readingsWithin10OfOwnMedian: `${readingsWithin}/${readings}`,
        opsWithPassesOver10Apart: opPairs ? `${opPairsApart}/${opPairs}` : null,
      },
      sumAloneOverNetwork: median(rows.map((r) => r.sumAloneMs / r.e2eMs)),
      calibrationLeaveOneOut: outOfSample ? { within10: `${outOfSample.withinCount}/${outOfSample.n}`, medianAbsError: outOfSample.medianApe, each: loo } : null,
    },
    null,
    2,
  )}\n`,
);
