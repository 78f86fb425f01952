/**
 * The REST endpoints of models and searches (docs/api.md, "Searches and models"), a Router that
 * server/app.ts mounts under `/api` before the fleet's router. Same conventions as routes/fleet.ts:
 * JSON bodies validated by zod, errors as `{error: {code, message, details?}}` with the status of
 * their code. A search request is checked whole (model, device and runtime, dataset against the
 * model, target against the seed and the minimum reachable cost) before anything is stored.
 */
import { stat } from 'node:fs/promises';
import express, { type Request, type Response, type Router } from 'express';
import type { z } from 'zod';
import { flopsCostModel, paramsCostModel, costOps, type CostModel } from '../../src/cost/cost-model.ts';
import { apiErrorHandler, jsonBody, MAX_BODY_BYTES, noQuery, parse, route } from '../http.ts';
import { checkRuntime } from './fleet.ts';
import { MorphError } from '../../src/errors.ts';
import { analyzeChannels } from '../../src/graph/channel-groups.ts';
import { minimumCost } from '../../src/morph/expand.ts';
import type { Target } from '../../src/morph/search.ts';
import { seedWidths } from '../../src/graph/widths.ts';
import { costAt } from '../../src/morph/network-cost.ts';
import { checkDatasetFitsModel, modelDataShape, openDataset, type Dataset, type ModelDataShape } from '../../src/train/data/index.ts';
import { FASHION_MNIST_APT_PACKAGE, FASHION_MNIST_DIR } from '../../src/train/data/idx-dataset.ts';
import type { Fleet } from '../fleet.ts';
import { ModelStore, modelShapes } from '../model-store.ts';
import { resolveModel, type ResolvedModel } from '../models.ts';
import { sendArtifact } from '../search/artifacts.ts';
import { resolveLatencyTarget } from '../search/latency.ts';
import { SEARCH_OPTION_DEFAULTS, withDefaults } from '../../src/morph/search-options.ts';
import { modelsQuerySchema, type ModelsResponse } from '../contract/models.ts';
import type { SearchEventRecord, SearchEventsEnd } from '../contract/search-events.ts';
import {
  searchBodySchema,
  searchDataSchema,
  searchEventsQuerySchema,
  searchesQuerySchema,
  TERMINAL_SEARCH_STATES,
  type ArtifactsResponse,
  type SearchConfig,
  type SearchesResponse,
  type SearchState,
} from '../contract/searches.ts';
import type { SearchService } from '../search/service.ts';
import type { TableReader } from '../tables.ts';

/** Most searches waiting in the queue at once. */
export const MAX_QUEUED_SEARCHES = 100;

/** Datasets a search may name through the API (no paths: the server would read any directory). */
export const API_DATASETS = ['fashion-mnist', 'mnist', 'synthetic', 'synthetic:k=v,…'] as const;

export interface SearchApiContext {
  readonly searches: SearchService;
  readonly models: ModelStore;
  readonly fleet: Fleet;
  readonly tables: TableReader;
  /** SSE comment line interval, ms. Default 15 000. */
  readonly heartbeatMs?: number;
}

/** Defaults of `options`: the one set (src/morph/search-options.ts) the CLI uses too. */
export const SEARCH_DEFAULTS = SEARCH_OPTION_DEFAULTS;



/**
 * The image shape and classes of an API dataset, without loading it on the HTTP thread (the worker
 * loads it): synthetic data is generated lazily, so it is opened for real; the MNIST-style sets
 * have fixed shapes.
 */
async function describeDataset(data: z.infer<typeof searchDataSchema>, seed: number, model: ModelDataShape | undefined): Promise<Pick<Dataset, 'name' | 'imageShape' | 'numClasses'>> {
  const spec = data.dataset.trim();
  if (spec === 'synthetic' || spec.startsWith('synthetic:')) {
    const ds = await openDataset(spec, { seed, limit: { train: data.trainLimit, test: data.testLimit }, model, ...(data.imageShape ? { imageShape: data.imageShape } : {}) });
    return { name: ds.name, imageShape: ds.imageShape, numClasses: ds.numClasses };
  }
  if (spec === 'fashion-mnist') {
    try {
      await stat(FASHION_MNIST_DIR);
    } catch {
      throw new MorphError('MORPH_ERR_NOT_FOUND', `data.dataset: fashion-mnist is not installed on the server (${FASHION_MNIST_DIR}); install it with \`apt-get install ${FASHION_MNIST_APT_PACKAGE}\` or use mnist or synthetic`, { field: 'data.dataset' });
    }
    return { name: spec, imageShape: data.imageShape ?? [28, 28, 1], numClasses: 10 };
  }
  if (spec === 'mnist') return { name: spec, imageShape: data.imageShape ?? [28, 28, 1], numClasses: 10 };
  throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `data.dataset ${JSON.stringify(data.dataset)} is not one the API accepts; give ${API_DATASETS.join(', ')}`, { field: 'data.dataset', accepted: API_DATASETS });
}

/**
 * The FLOP or parameter target, checked against the seed's cost and the smallest reachable one.
 * Mirrors `resolveTarget` of src/morph/search.ts (which loads tfjs, so the HTTP thread does not
 * import it); the worker's `runSearch` checks the same again.
 */
function resolveCostTarget(model: ResolvedModel, costModel: CostModel, target: Target, divisor: number): { value: number; seedCost: number; minimum: number } {
  const analysis = analyzeChannels(model.graph);
  const ops = costOps(model.graph, analysis);
  const seedCost = costAt(ops, costModel, seedWidths(analysis));
  const value = 'fraction' in target ? target.fraction * seedCost : target.value;
  if (value >= seedCost) {
    throw new MorphError('MORPH_ERR_TARGET', `target ${value.toFixed(0)} ${costModel.unit} is not below the seed's ${seedCost.toFixed(0)} ${costModel.unit}; give a smaller target (e.g. {"fraction": 0.5})`, { target: value, seed: seedCost });
  }
  const minimum = minimumCost(ops, analysis, costModel, divisor);
  if (minimum > value) {
    throw new MorphError(
      'MORPH_ERR_TARGET',
      `target ${value.toFixed(0)} ${costModel.unit} is below the minimum reachable ${minimum.toFixed(0)} ${costModel.unit} (every resizable group at ${divisor} channel(s); the fixed layers cost the rest); raise the target or lower options.divisor`,
      { target: value, minimum },
    );
  }
  return { value, seedCost, minimum };
}

async function modelOf(ctx: SearchApiContext, body: z.infer<typeof searchBodySchema>): Promise<{ model: ResolvedModel; source: SearchConfig['model']['source'] }> {
  const given = (['model', 'modelId', 'seed'] as const).filter((k) => body[k] !== undefined);
  if (given.length !== 1) {
    throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `give exactly one of model (a model.json object or seed name), modelId (from POST /api/models) or seed (mobilenet, resnet, vgg); got ${given.length === 0 ? 'none' : given.join(' and ')}`, { field: 'model' });
  }
  if (body.modelId !== undefined) {
    const stored = await ctx.models.get(body.modelId);
    const model = stored ? await ctx.tables.model(stored.id) : undefined;
    if (!model) throw new MorphError('MORPH_ERR_NOT_FOUND', `no uploaded model ${JSON.stringify(body.modelId)}; POST /api/models returns the id of an upload, GET /api/models lists them`, { field: 'modelId' });
    return { model, source: 'upload' };
  }
  if (body.seed !== undefined) return { model: resolveModel(body.seed, 'seed'), source: 'seed' };
  return { model: resolveModel(body.model, 'model'), source: typeof body.model === 'string' ? 'seed' : 'inline' };
}

/** Validates a search request whole and returns what the service stores. Creates nothing. */
async function searchConfigOf(ctx: SearchApiContext, raw: unknown): Promise<{ config: SearchConfig; topology: unknown }> {
  const body = parse(searchBodySchema, raw, 'search request');
  const cost = body.cost ?? 'flops';
  const options = withDefaults(body.options);
  const { model, source } = await modelOf(ctx, body);

  if (body.runtime !== undefined && body.deviceId === undefined) throw new MorphError('MORPH_ERR_BAD_ARGUMENT', 'runtime needs a deviceId (GET /api/devices lists them)', { field: 'deviceId' });
  if (body.deviceId !== undefined) await checkRuntime(ctx.fleet, body.deviceId, body.runtime);
  if (cost === 'latency') {
    if (body.deviceId === undefined || body.runtime === undefined) throw new MorphError('MORPH_ERR_BAD_ARGUMENT', "cost 'latency' needs deviceId and runtime: the device and runtime whose measured latency the search targets", { field: body.deviceId === undefined ? 'deviceId' : 'runtime' });
    if ((body.targetMs === undefined) === (body.target === undefined)) throw new MorphError('MORPH_ERR_BAD_ARGUMENT', "cost 'latency' needs exactly one of targetMs (ms per run) or target ({fraction} of the seed's latency, or {value} in ms)", { field: 'targetMs' });
  } else if (body.clampTarget !== undefined) {
    throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `clampTarget is for cost 'latency'`, { field: 'clampTarget' });
  } else if (body.targetMs !== undefined) {
    throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `targetMs is for cost 'latency'; with cost '${cost}' give target {"fraction": f} or {"value": v} in ${cost === 'flops' ? 'FLOPs' : 'parameters'}`, { field: 'targetMs' });
  }

  const { inputShape, outputs } = modelShapes(model.graph);
  const dataset = await describeDataset(body.data, options.seed, modelDataShape(model.graph));
  checkDatasetFitsModel(dataset as Dataset, inputShape as [number | null, number | null, number | null], outputs ?? 0);

  let resolvedTarget: SearchConfig['resolvedTarget'];
  let latency: SearchConfig['latency'] = null;
  if (cost === 'latency') {
    latency = await resolveLatencyTarget({ model, deviceId: body.deviceId!, runtime: body.runtime!, targetMs: body.targetMs ?? null, target: body.target ?? null, clamp: body.clampTarget === true, fleet: ctx.fleet, tables: ctx.tables });
    resolvedTarget = { value: latency.targetMs, unit: 'ms', seedCost: latency.seedMs, minimum: latency.minimumMs };
  } else {
    const costModel = cost === 'flops' ? flopsCostModel : paramsCostModel;
    const t = resolveCostTarget(model, costModel, body.target ?? { fraction: 0.5 }, options.divisor);
    resolvedTarget = { value: t.value, unit: costModel.unit, seedCost: t.seedCost, minimum: t.minimum };
  }
  const config: SearchConfig = {
    model: { id: model.id, name: model.name, source },
    data: { dataset: body.data.dataset.trim(), trainLimit: body.data.trainLimit ?? null, testLimit: body.data.testLimit ?? null, imageShape: body.data.imageShape ?? null },
    cost,
    deviceId: body.deviceId ?? null,
    runtime: body.runtime ?? null,
    target: body.target ?? (cost === 'latency' ? null : { fraction: 0.5 }),
    targetMs: body.targetMs ?? null,
    resolvedTarget,
    latency,
    options,
  };
  return { config, topology: model.modelConfig };
}

function sseWrite(res: Response, e: SearchEventRecord): void {
  res.write(`${e.seq !== null ? `id: ${e.seq}\n` : ''}event: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`);
}

/** Streams a search's events: the stored ones after Last-Event-ID (or ?after=), then live ones. */
async function streamEvents(ctx: SearchApiContext, req: Request, res: Response): Promise<void> {
  const id = String(req.params.id);
  await ctx.searches.require(id);
  const afterText = req.get('last-event-id') ?? (typeof req.query.after === 'string' ? req.query.after : '0');
  const after = /^\d{1,9}$/.test(afterText) ? Number(afterText) : 0;

  res.status(200).set({ 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-cache, no-transform', Connection: 'keep-alive', 'X-Accel-Buffering': 'no' });
  res.flushHeaders();
  res.write('retry: 3000\n\n');

  let lastSeq = after;
  let ended = false;
  let replaying = true;
  const buffered: [SearchEventRecord, SearchState | null][] = [];
  const heartbeat = setInterval(() => res.write(`: heartbeat ${new Date().toISOString()}\n\n`), ctx.heartbeatMs ?? 15_000);
  heartbeat.unref();
  const cleanup = (): void => {
    clearInterval(heartbeat);
    unsubscribe();
  };
  const finish = (state: SearchState): void => {
    if (ended) return;
    ended = true;
    cleanup();
    res.write(`event: end\ndata: ${JSON.stringify({ state } satisfies SearchEventsEnd)}\n\n`);
    res.end();
  };
  const deliver = (e: SearchEventRecord, state: SearchState | null, live: boolean): void => {
    if (ended) return;
    if (e.seq === null || e.seq > lastSeq) {
      if (e.seq !== null) lastSeq = e.seq;
      sseWrite(res, e);
    }
    // Past terminal states (an interruption before a resume) do not end a replay; live ones do,
    // even when the replay already wrote the event (it was stored before the search's state).

    if (live && state !== null && TERMINAL_SEARCH_STATES.includes(state)) finish(state);
  };
  const unsubscribe = ctx.searches.subscribe(id, (e, state) => {
    if (replaying) buffered.push([e, state]);
    else deliver(e, state, true);
  });
  res.on('close', () => {
    ended = true;
    cleanup();
  });

  for (const e of await ctx.searches.events(id, after)) deliver(e, null, false);
  replaying = false;
  for (const [e, state] of buffered) deliver(e, state, true);
  const now = await ctx.searches.get(id);
  if (!now || TERMINAL_SEARCH_STATES.includes(now.state)) finish(now?.state ?? 'failed');
}

export function searchRouter(ctx: SearchApiContext, log: (line: string) => void): Router {
  const r = express.Router();
  const json = jsonBody(MAX_BODY_BYTES);

  r.post(
    '/models',
    noQuery,
    json,
    route(async (req, res) => {
      if (req.body === null || typeof req.body !== 'object' || Array.isArray(req.body) || Object.keys(req.body as object).length === 0) {
        throw new MorphError('MORPH_ERR_BAD_ARGUMENT', 'the body must be a model: a tfjs model.json object or a Keras model config', { field: 'body' });
      }
      const model = resolveModel(req.body, 'body');
      const { model: info, created } = await ctx.models.put(model);
      res.status(created ? 201 : 200).location(`/api/models/${info.id}`).json(info);
    }),
  );

  r.get(
    '/models',
    route(async (req, res) => {
      const q = parse(modelsQuerySchema, req.query, 'query');
      res.json({ models: await ctx.models.list(q.limit) } satisfies ModelsResponse);
    }),
  );

  r.get(
    '/models/:id',
    noQuery,
    route(async (req, res) => {
      const info = await ctx.models.get(String(req.params.id));
      if (!info) throw new MorphError('MORPH_ERR_NOT_FOUND', `no uploaded model ${JSON.stringify(req.params.id)}; GET /api/models lists them`);
      res.json(info);
    }),
  );

  r.post(
    '/searches',
    noQuery,
    json,
    route(async (req, res) => {
      const { config, topology } = await searchConfigOf(ctx, req.body);
      const queued = await ctx.searches.list({ state: 'queued', limit: MAX_QUEUED_SEARCHES });
      if (queued.length >= MAX_QUEUED_SEARCHES) throw new MorphError('MORPH_ERR_QUOTA', `${queued.length} searches are queued already (the limit); wait for some to finish or cancel some`, { limit: MAX_QUEUED_SEARCHES });
      const view = await ctx.searches.create({ config, modelTopology: topology });
      res.status(201).location(`/api/searches/${view.id}`).json(view);
    }),
  );

  r.get(
    '/searches',
    route(async (req, res) => {
      const q = parse(searchesQuerySchema, req.query, 'query');
      res.json({ searches: await ctx.searches.list(q) } satisfies SearchesResponse);
    }),
  );

  r.get(
    '/searches/:id',
    noQuery,
    route(async (req, res) => {
      res.json(await ctx.searches.require(String(req.params.id)));
    }),
  );

  r.delete(
    '/searches/:id',
    noQuery,
    route(async (req, res) => {
      res.json(await ctx.searches.cancel(String(req.params.id)));
    }),
  );

  r.post(
    '/searches/:id/resume',
    noQuery,
    route(async (req, res) => {
      res.status(202).json(await ctx.searches.resume(String(req.params.id)));
    }),
  );

  r.get(
    '/searches/:id/events',
    route((req, res) => {
      parse(searchEventsQuerySchema, req.query, 'query');
      return streamEvents(ctx, req, res);
    }),
  );

  r.get(
    '/searches/:id/artifacts',
    noQuery,
    route(async (req, res) => {
      const id = String(req.params.id);
      await ctx.searches.require(id);
      const list = await ctx.searches.artifacts(id);
      res.json({ id, artifacts: list.map((a) => ({ ...a, url: `/api/searches/${id}/artifacts/${a.name}` })) } satisfies ArtifactsResponse);
    }),
  );

  r.get(
    '/searches/:id/artifacts/:name',
    noQuery,
    route(async (req, res) => {
      const id = String(req.params.id);
      await ctx.searches.require(id);
      await sendArtifact(res, ctx.searches.artifactsDir(id), id, String(req.params.name));
    }),
  );

  r.use(apiErrorHandler(log));
  return r;
}
