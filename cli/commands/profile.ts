/**
 * `morphnet profile`: fills a device's latency table for a model through a running server, times
 * the whole model end to end, and prints each layer's predicted and measured latency beside the
 * whole network's. A client of the REST API (docs/api.md), nothing more.
 */
import { readFile } from 'node:fs/promises';
import { MorphError } from '../../src/errors.ts';
import { isRuntimeName, VALID_RUNTIMES } from '../../src/protocol/agent-protocol.ts';
import { isSeedName, VALID_SEEDS } from '../../src/seeds/index.ts';
import { numberFlag, parseFlags, requireString, type Command, type CommandIo } from '../args.ts';
import { table } from '../format.ts';
import type { CompareResponse, MeasureJobView, MeasureResult, PredictResponse, ProfileJobView } from '../../server/contract/index.ts';
import { call, findDevice, waitJob } from '../server-client.ts';

const USAGE = `Usage: morphnet profile --server http://HOST:PORT --device D [--runtime R] (MODEL.json | --seed NAME) [options]
       morphnet profile --server http://HOST:PORT --compare (MODEL.json | --seed NAME) [--device D ...] [--json]

Through a running server (morphnet serve): measures every op of the model on the device at the
channel counts its latency table needs (skipping points already measured), times the whole model
end to end, and prints each layer's predicted latency (from the table, calibrated on the device's
end-to-end measurements) and measured latency (the table's timing of its ops), then the whole
network's predicted and measured latency.

With --compare: the model on every device and runtime that has a table or a measurement of it,
side by side (POST /api/compare): per layer and in total, measured figures as they are and
predicted ones marked "p", the slowest layers of each column marked "*". With --device, the
model is profiled and measured there first.

Options:
  --server URL        the server's http:// address (default http://127.0.0.1:8080)
  --device D          the device id or name (see GET /api/devices); required
  --runtime R         ${VALID_RUNTIMES.join(', ')} (default: tfjs-wasm when the device serves it)
  --seed NAME         a built-in seed instead of a file: ${VALID_SEEDS.join(', ')}
  --grid-max N        at most N channel counts per table axis (default 8)
  --quick             a short measurement protocol (fewer samples): for a first look
  --no-measure        skip the end-to-end measurement (prediction only)
  --timeout S         give up after S seconds of waiting for a job (default 3600)
  --compare           print the model side by side on every device-runtime (see above)
  --json              one JSON object with the prediction and the measurement (with --compare:
                      the comparison, as POST /api/compare returns it)
  -h, --help          this text`;

const QUICK_MEASURE = { warmupRuns: 2, warmupMs: 10, minSamples: 5, minWindowMs: 20, maxMs: 1500 };

const ms = (x: number | null | undefined): string => (x === null || x === undefined ? '—' : x < 1 ? x.toFixed(3) : x.toFixed(2));

export const profileCommand: Command = {
  name: 'profile',
  summary: 'measure a model on a device through the server: per-layer predicted vs measured latency',
  usage: USAGE,
  async run(argv, io) {
    const { values, positionals } = parseFlags('profile', argv, {
      server: { type: 'string' },
      device: { type: 'string' },
      runtime: { type: 'string' },
      seed: { type: 'string' },
      'grid-max': { type: 'string' },
      quick: { type: 'boolean' },
      'no-measure': { type: 'boolean' },
      timeout: { type: 'string' },
      json: { type: 'boolean' },
      compare: { type: 'boolean' },
    });
    const base = (typeof values.server === 'string' ? values.server : 'http://127.0.0.1:8080').replace(/\/+$/, '');
    if (!/^https?:\/\/[^/]+$/.test(base)) throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `morphnet profile: --server ${JSON.stringify(values.server)} must be http://HOST:PORT`);
    const compare = Boolean(values.compare);
    const deviceArg = compare && values.device === undefined ? null : requireString('profile', 'device', values.device, 'd-1a2b3c4d5e6f');
    const gridMax = numberFlag('profile', 'grid-max', values['grid-max'], (n) => Number.isInteger(n) && n >= 2 && n <= 64, 'an integer from 2 to 64');
    const timeoutS = numberFlag('profile', 'timeout', values.timeout, (n) => n > 0, 'a positive number of seconds') ?? 3600;
    if (values.runtime !== undefined && !isRuntimeName(values.runtime)) {
      throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `morphnet profile: --runtime ${JSON.stringify(values.runtime)} is not one of ${VALID_RUNTIMES.join(', ')}`);
    }
    let model: unknown;
    if (typeof values.seed === 'string') {
      if (positionals.length > 0) throw new MorphError('MORPH_ERR_BAD_ARGUMENT', 'morphnet profile: give either MODEL.json or --seed, not both');
      if (!isSeedName(values.seed)) throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `morphnet profile: --seed ${JSON.stringify(values.seed)} is not one of ${VALID_SEEDS.join(', ')}`);
      model = values.seed;
    } else {
      if (positionals.length !== 1) throw new MorphError('MORPH_ERR_BAD_ARGUMENT', 'morphnet profile: give one MODEL.json (or --seed NAME); see "morphnet profile --help"');
      let text: string;
      try {
        text = await readFile(positionals[0], 'utf8');
      } catch (err) {
        throw new MorphError('MORPH_ERR_NOT_FOUND', `morphnet profile: cannot read ${positionals[0]}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
      try {
        model = JSON.parse(text);
      } catch (err) {
        throw new MorphError('MORPH_ERR_NOT_JSON', `morphnet profile: ${positionals[0]} is not JSON: ${(err as Error).message}`);
      }
    }

    const json = Boolean(values.json);
    if (deviceArg === null) return printComparison(base, model, json, io);
    const { device, runtime } = await findDevice(base, 'profile', deviceArg, values.runtime as string | undefined);
    const measure = values.quick ? QUICK_MEASURE : undefined;

    const profile = await call<ProfileJobView>(base, 'POST', '/api/profile', { deviceId: device.id, runtime, model, ...(gridMax ? { grid: { maxPerAxis: gridMax } } : {}), ...(measure ? { measure } : {}) });
    await waitJob(base, profile.id, 'profile', io, json, timeoutS);
    let measured: MeasureResult | null = null;
    if (!values['no-measure']) {
      const job = await call<MeasureJobView>(base, 'POST', '/api/measure', { deviceId: device.id, runtime, model, ...(measure ? { measure } : {}) });
      measured = (await waitJob<MeasureJobView>(base, job.id, 'measure', io, json, timeoutS)).result;
    }
    if (compare) return printComparison(base, model, json, io);
    const p = await call<PredictResponse>(base, 'POST', '/api/predict', { deviceId: device.id, runtime, model });
    const errorPct = measured ? (100 * (p.predictedMs - measured.medianMs)) / measured.medianMs : null;
    if (json) {
      io.out(JSON.stringify({ deviceId: device.id, device: device.name, runtime, model: p.modelName, predictedMs: p.predictedMs, sumOpsMs: p.sumOpsMs, nOps: p.nOps, calibration: p.calibration, measured, errorPct, layers: p.layers }));
      return 0;
    }
    io.out(`${p.modelName} on ${device.name} (${device.id}), ${runtime}`);
    io.out(table(['layer', 'predicted ms', 'measured ms'], p.layers.map((l) => [l.name, ms(l.predictedMs), ms(l.measuredMs)])));
    const memory = p.calibration.method === 'bytes' ? ` + ${ms(p.calibration.d ?? 0)} ms/MB of activations + ${ms(p.calibration.e ?? 0)} ms/MB of weights` : '';
    const cal = p.calibration.fitted ? `calibrated on ${p.calibration.samples} network(s): ${p.calibration.a.toFixed(3)}·Σops + ${ms(p.calibration.b)} ms/op${memory} + ${ms(p.calibration.c)} ms` : 'not calibrated yet (no end-to-end measurement on this device)';
    io.out(`Σ ops ${ms(p.sumOpsMs)} ms over ${p.nOps} ops; ${cal}`);
    io.out(`network: predicted ${ms(p.predictedMs)} ms${measured ? `, measured ${ms(measured.medianMs)} ms (p10 ${ms(measured.p10Ms)}, p90 ${ms(measured.p90Ms)}, n ${measured.n}), error ${errorPct! >= 0 ? '+' : ''}${errorPct!.toFixed(1)}%` : ''}`);
    if (measured && p.calibration.samples <= 1) io.out('note: with one measured network the calibration fits it exactly; measure more networks for an honest error figure');
    return 0;
  },
};

/** `--compare`: the model on every device-runtime with a table or a measurement of it. */
async function printComparison(base: string, model: unknown, json: boolean, io: CommandIo): Promise<number> {
  const c = await call<CompareResponse>(base, 'POST', '/api/compare', { model });
  if (json) {
    io.out(JSON.stringify(c));
    return 0;
  }
  if (c.columns.length === 0) {
    io.out(`${c.modelName}: no device has a table or a measurement of it yet; profile it on one first (morphnet profile --device D ...)`);
    return 0;
  }
  const cell = (x: { ms: number; source: string; slow?: boolean } | null): string => (x ? `${ms(x.ms)}${x.source === 'predicted' ? 'p' : ''}${x.slow ? '*' : ''}` : '—');
  io.out(`${c.modelName} on ${c.columns.length} device-runtime(s), fastest first`);
  io.out(
    table(
      ['layer', ...c.columns.map((col) => `${col.deviceName} ${col.runtime}`)],
      [['total', ...c.columns.map((col) => cell(col.total))], ...c.layers.map((name, i) => [name, ...c.columns.map((col) => cell(col.layers[i]))])],
    ),
  );
  io.out('ms per run; p: predicted from the table (else measured: the total end to end, a layer as its op alone at these widths); *: among the slowest layers of the column');
  return 0;
}
