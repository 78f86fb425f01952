/**
 * The fleet's REST endpoints under `/api` (docs/api.md): health, devices, profile and measure jobs,
 * the latency tables, networks, prediction and comparison; it mounts the UI's views
 * (routes/views.ts) and ends `/api` with its JSON 404 and error envelope, so server/app.ts mounts
 * it after the other `/api` routers. JSON in and out; every body and query is checked against the
 * REST contract (server/contract/), and every failure is `{ "error": { "code", "message",
 * "details"? } }` with the status of its code (src/errors.ts): never a stack trace.
 */
import express, { type Router } from 'express';
import { MorphError } from '../../src/errors.ts';
import { apiErrorHandler, jsonBody, MAX_BODY_BYTES, noQuery, notFound, parse, route } from '../http.ts';
import { applyCalibration } from '../../src/cost/calibration.ts';
import { predictNetwork, type MissingTable } from '../../src/cost/predict-network.ts';
import type { RuntimeName } from '../../src/protocol/agent-protocol.ts';
import { jobsQuerySchema, measureBodySchema, profileBodySchema, type DevicesResponse, type HealthResponse, type JobsResponse } from '../contract/devices.ts';
import {
  compareBodySchema,
  networksQuerySchema,
  predictBodySchema,
  tablesQuerySchema,
  type CompareResponse,
  type NetworksResponse,
  type PredictResponse,
  type TablesResponse,
} from '../contract/tables.ts';
import type { Fleet } from '../fleet.ts';
import type { Hub } from '../hub.ts';
import { resolveModel, type ResolvedModel } from '../models.ts';
import { compareDevices, type ColumnInput } from '../../src/cost/device-comparison.ts';
import type { StoredTable, TableReader } from '../tables.ts';
import { viewsRouter } from './views.ts';

export interface FleetApiContext {
  readonly fleet: Fleet;
  readonly tables: TableReader;
  readonly hub: Hub;
  readonly version: string;
}

/**
 * The model's latency on one device-runtime from its tables: per layer the calibrated prediction
 * and, where the table holds the layer's op(s) at exactly these widths, the op-alone measurement;
 * or the op signatures the table lacks.
 */
async function predictOn(
  ctx: FleetApiContext,
  deviceId: string,
  runtime: RuntimeName,
  model: ResolvedModel,
  tables?: StoredTable[],
): Promise<{ ok: true; prediction: Omit<PredictResponse, 'deviceId' | 'runtime'> } | { ok: false; missing: (MissingTable & { problem: string })[] }> {
  const stored = tables ?? (await ctx.tables.tables(deviceId, runtime));
  const bySig = new Map(stored.map((t) => [t.signature, t]));
  const calibration = await ctx.tables.calibration(deviceId, runtime, stored);
  const p = predictNetwork(model.specs, (s) => bySig.get(s)?.table ?? undefined, calibration ?? undefined);
  if (!p.ok) return { ok: false, missing: p.missing.map((m) => ({ ...m, problem: bySig.get(m.signature)?.problem ?? 'no table' })) };
  const measuredPoint = (sig: string, cIn: number, cOut: number): number | null => bySig.get(sig)?.points.find((pt) => pt.cIn === cIn && pt.cOut === cOut)?.medianMs ?? null;
  return {
    ok: true,
    prediction: {
      modelId: model.id,
      modelName: model.name,
      predictedMs: p.predictedMs,
      sumOpsMs: p.sumOpsMs,
      nOps: p.nOps,
      ioMB: p.ioMB,
      weightMB: p.weightMB,
      calibration: calibration ? { ...p.calibration, method: calibration.method, note: calibration.note, quality: calibration.quality, outOfSample: calibration.outOfSample } : p.calibration,
      layers: p.layers.map((l) => ({
        name: l.name,
        predictedMs: l.predictedMs,
        measuredMs: l.ops.every((o) => measuredPoint(o.signature, o.cIn, o.cOut) !== null) ? l.ops.reduce((s, o) => s + (measuredPoint(o.signature, o.cIn, o.cOut) as number), 0) : null,
        ops: l.ops,
      })),
      skipped: p.skipped,
    },
  };
}

/**
 * The device exists and, when `runtime` is given, one of its agents has reported that runtime.
 * @throws MorphError MORPH_ERR_NOT_FOUND for an unknown device, MORPH_ERR_BAD_ARGUMENT for a runtime it does not serve.
 */
export async function checkRuntime(fleet: Fleet, deviceId: string, runtime: RuntimeName | undefined): Promise<void> {
  const device = await fleet.requireDevice(deviceId);
  if (runtime === undefined) return;
  const reported = device.runtimes.map((r) => r.name);
  if (!reported.includes(runtime)) {
    throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `device ${deviceId} (${device.name}) does not serve runtime ${runtime}; it serves ${reported.join(', ')}`, { field: 'runtime', runtimes: reported });
  }
}

export function fleetRouter(ctx: FleetApiContext, log: (line: string) => void): Router {
  const api = express.Router();
  api.use(jsonBody(MAX_BODY_BYTES));

  api.get(
    '/health',
    route(async (_req, res) => {
      // Open without the admin token (for load balancers and health checks), but then it says no more than this.
      if (res.locals.admin === false) {
        res.json({ ok: true, version: ctx.version } satisfies HealthResponse);
        return;
      }
      const devices = await ctx.fleet.devices();
      res.json({ ok: true, version: ctx.version, devices: devices.length, online: devices.filter((d) => d.online).length, hub: ctx.hub.stats() } satisfies HealthResponse);
    }),
  );

  api.get(
    '/devices',
    noQuery,
    route(async (_req, res) => {
      res.json({ devices: await ctx.fleet.devices() } satisfies DevicesResponse);
    }),
  );

  api.get(
    '/devices/:id',
    noQuery,
    route(async (req, res) => {
      res.json(await ctx.fleet.requireDevice(String(req.params.id)));
    }),
  );

  api.post(
    '/profile',
    noQuery,
    route(async (req, res) => {
      const body = parse(profileBodySchema, req.body, 'profile request');
      await checkRuntime(ctx.fleet, body.deviceId, body.runtime);
      const model = resolveModel(body.model);
      const job = await ctx.fleet.createProfileJob({ deviceId: body.deviceId, runtime: body.runtime, model, grid: body.grid, measure: body.measure, force: body.force, refine: body.refine, forSearch: body.forSearch, paired: body.paired });
      res.status(202).location(`/api/jobs/${job.id}`).json(job);
    }),
  );

  api.post(
    '/measure',
    noQuery,
    route(async (req, res) => {
      const body = parse(measureBodySchema, req.body, 'measure request');
      await checkRuntime(ctx.fleet, body.deviceId, body.runtime);
      const model = resolveModel(body.model);
      const reference = body.reference === undefined ? undefined : resolveModel(body.reference, 'reference');
      const job = await ctx.fleet.createMeasureJob({ deviceId: body.deviceId, runtime: body.runtime, model, measure: body.measure, reference });
      res.status(202).location(`/api/jobs/${job.id}`).json(job);
    }),
  );

  api.get(
    '/jobs',
    route(async (req, res) => {
      const q = parse(jobsQuerySchema, req.query, 'query');
      res.json({ jobs: await ctx.fleet.jobs(q) } satisfies JobsResponse);
    }),
  );

  api.get(
    '/jobs/:id',
    noQuery,
    route(async (req, res) => {
      const job = await ctx.fleet.job(String(req.params.id));
      if (!job) throw new MorphError('MORPH_ERR_NOT_FOUND', `no job ${JSON.stringify(req.params.id)}; POST /api/profile or /api/measure returns the id of a new one`);
      res.json(job);
    }),
  );

  api.delete(
    '/jobs/:id',
    noQuery,
    route(async (req, res) => {
      const job = await ctx.fleet.cancelJob(String(req.params.id));
      if (!job) throw new MorphError('MORPH_ERR_NOT_FOUND', `no job ${JSON.stringify(req.params.id)}`);
      res.json(job);
    }),
  );

  api.post(
    '/predict',
    noQuery,
    route(async (req, res) => {
      const body = parse(predictBodySchema, req.body, 'predict request');
      await checkRuntime(ctx.fleet, body.deviceId, body.runtime);
      const model = resolveModel(body.model);
      const p = await predictOn(ctx, body.deviceId, body.runtime, model);
      if (!p.ok) {
        throw new MorphError(
          'MORPH_ERR_MISSING_OPS',
          `the ${body.runtime} table of device ${body.deviceId} lacks ${p.missing.length} op signature(s) of ${model.name}; POST /api/profile with this model first`,
          { missing: p.missing },
        );
      }
      res.json({ deviceId: body.deviceId, runtime: body.runtime, ...p.prediction } satisfies PredictResponse);
    }),
  );

  api.post(
    '/compare',
    noQuery,
    route(async (req, res) => {
      const body = parse(compareBodySchema, req.body, 'compare request');
      const model = resolveModel(body.model);
      const inputs: ColumnInput[] = [];
      for (const device of await ctx.fleet.devices()) {
        for (const runtime of device.runtimes.map((r) => r.name)) {
          const stored = await ctx.tables.tables(device.id, runtime);
          const measured = (await ctx.tables.networks(device.id, runtime, stored)).filter((n) => n.modelId === model.id).at(-1);
          // A device-runtime that has neither a table nor a measurement of this model has nothing to show.
          if (stored.length === 0 && !measured) continue;
          const p = await predictOn(ctx, device.id, runtime, model, stored);
          inputs.push({
            deviceId: device.id,
            deviceName: device.name,
            runtime,
            online: device.online,
            prediction: p.ok ? { predictedMs: p.prediction.predictedMs, layers: p.prediction.layers } : { missingSignatures: p.missing.length },
            measured: measured ? { medianMs: measured.measuredMs, p10Ms: measured.p10Ms, p90Ms: measured.p90Ms, measuredAt: measured.measuredAt } : null,
          });
        }
      }
      res.json({ modelId: model.id, modelName: model.name, ...compareDevices(inputs, body.slowest) } satisfies CompareResponse);
    }),
  );

  api.get(
    '/tables',
    route(async (req, res) => {
      const q = parse(tablesQuerySchema, req.query, 'query');
      await ctx.fleet.requireDevice(q.deviceId);
      const all = await ctx.tables.tables(q.deviceId, q.runtime);
      const stored = all.filter((t) => q.signature === undefined || t.signature === q.signature);
      const calibration = await ctx.tables.calibration(q.deviceId, q.runtime, all);
      res.json({
        deviceId: q.deviceId,
        runtime: q.runtime,
        tables: stored.map((t) => ({ signature: t.signature, mode: t.table?.mode ?? null, problem: t.problem, points: t.points })),
        calibration,
      } satisfies TablesResponse);
    }),
  );

  api.get(
    '/networks',
    route(async (req, res) => {
      const q = parse(networksQuerySchema, req.query, 'query');
      await ctx.fleet.requireDevice(q.deviceId);
      const stored = await ctx.tables.tables(q.deviceId, q.runtime);
      const networks = await ctx.tables.networks(q.deviceId, q.runtime, stored);
      const calibration = await ctx.tables.calibration(q.deviceId, q.runtime, stored);
      res.json({
        deviceId: q.deviceId,
        runtime: q.runtime,
        calibration,
        networks: networks.map((n) => ({
          ...n,
          predictedMs: calibration && n.sumOpsMs !== null && n.nOps !== null ? applyCalibration(calibration, { sumOpsMs: n.sumOpsMs, nOps: n.nOps, ioMB: n.ioMB ?? 0, weightMB: n.weightMB ?? 0 }) : null,
        })),
      } satisfies NetworksResponse);
    }),
  );

  // Seeds, datasets, model inspection, table coverage (routes/views.ts): read by the web UI.
  api.use(viewsRouter(ctx));

  // Anything else under /api: a JSON 404 (a wrong method on a known path too).
  api.use(notFound);

  api.use(apiErrorHandler(log));
  return api;
}
