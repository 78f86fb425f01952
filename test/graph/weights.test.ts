import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { MorphError, type ErrorCode } from '../../src/errors.ts';
import { loadModelFile } from '../../src/graph/load.ts';
import { parseModel } from '../../src/graph/parse.ts';
import { decodeWeights } from '../../src/graph/weights.ts';
import { residualNet } from '../fixtures/reference-models.ts';
import { saveLayersModel, writeJson } from '../helpers/tfjs-io.ts';

async function rejectsCode(p: Promise<unknown>, code: ErrorCode, ...parts: string[]): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof MorphError, `expected a MorphError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    for (const part of parts) assert.ok(err.message.includes(part), `message ${JSON.stringify(err.message)} lacks ${JSON.stringify(part)}`);
    return true;
  });
}

let root: string;
let good: { json: { weightsManifest: { paths: string[]; weights: { name: string; shape: number[]; dtype: string }[] }[] } & Record<string, unknown>; bin: Buffer };
const res = residualNet();

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'morphnet-weights-'));
  const saved = await saveLayersModel(res.model, join(root, 'good'));
  good = { json: JSON.parse(await readFile(saved.modelJsonPath, 'utf8')), bin: await readFile(saved.weightsPath) };
});
after(async () => {
  res.model.dispose();
  await rm(root, { recursive: true, force: true });
});

/** Writes a variant of the good model into its own directory; returns the model.json path. */
async function variant(name: string, json: unknown, bin: Uint8Array | null = good.bin): Promise<string> {
  const path = await writeJson(join(root, name, 'model.json'), json);
  if (bin) await writeFile(join(root, name, 'weights.bin'), bin);
  return path;
}

const clone = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

describe('loadModelFile', () => {
  it('reads a tfjs-saved model and its weights, matching tfjs values', async () => {
    const loaded = await loadModelFile(join(root, 'good', 'model.json'));
    assert.equal(loaded.format, 'tfjs-layers-model');
    assert.ok(loaded.weights);
    for (const layer of res.model.layers) {
      const ours = loaded.weights.get(layer.name);
      layer.weights.forEach((w, i) => {
        const kind = w.originalName.slice(w.originalName.lastIndexOf('/') + 1);
        const t = ours?.get(kind);
        assert.ok(t, `${layer.name}/${kind}`);
        assert.deepEqual(t.shape, w.shape);
        assert.deepEqual(t.data, layer.getWeights()[i].dataSync());
      });
    }
  });

  it('reads the topology alone when asked, or when there is no manifest', async () => {
    const noWeights = await loadModelFile(join(root, 'good', 'model.json'), { weights: false });
    assert.equal(noWeights.weights, null);
    const { weightsManifest: _, ...topo } = clone(good.json);
    const loaded = await loadModelFile(await variant('topology-only', topo, null));
    assert.equal(loaded.weights, null);
    assert.equal(loaded.weightsManifest, null);
  });

  it('refuses a missing file (MORPH_ERR_NOT_FOUND) and a directory', async () => {
    await rejectsCode(loadModelFile(join(root, 'nope', 'model.json')), 'MORPH_ERR_NOT_FOUND', 'nope');
    await rejectsCode(loadModelFile(join(root, 'good')), 'MORPH_ERR_NOT_FOUND', 'not a file');
  });

  it('refuses a file that is not JSON (MORPH_ERR_NOT_JSON)', async () => {
    const path = join(root, 'not-json.json');
    await writeFile(path, '{"format": "layers-model", modelTopology: }');
    await rejectsCode(loadModelFile(path), 'MORPH_ERR_NOT_JSON', path);
    await writeFile(path, '');
    await rejectsCode(loadModelFile(path), 'MORPH_ERR_NOT_JSON');
  });

  it('refuses JSON that is not a model (MORPH_ERR_NOT_A_MODEL)', async () => {
    const path = await writeJson(join(root, 'foo', 'model.json'), { foo: 1 });
    await rejectsCode(loadModelFile(path), 'MORPH_ERR_NOT_A_MODEL', path);
  });

  it('refuses a model.json over the size limit (MORPH_ERR_LIMIT)', async () => {
    await rejectsCode(loadModelFile(join(root, 'good', 'model.json'), { maxJsonBytes: 100 }), 'MORPH_ERR_LIMIT', '100-byte');
  });

  it('refuses a missing weights file, naming it (MORPH_ERR_WEIGHTS_MISSING)', async () => {
    await rejectsCode(loadModelFile(await variant('no-bin', good.json, null)), 'MORPH_ERR_WEIGHTS_MISSING', 'weights.bin');
    const renamed = clone(good.json);
    renamed.weightsManifest[0].paths = ['group1-shard1of1.bin'];
    await rejectsCode(loadModelFile(await variant('other-name', renamed)), 'MORPH_ERR_WEIGHTS_MISSING', 'group1-shard1of1.bin');
  });

  it('refuses weight paths that escape the model directory', async () => {
    const escape = clone(good.json);
    escape.weightsManifest[0].paths = ['../good/weights.bin'];
    await rejectsCode(loadModelFile(await variant('escape', escape)), 'MORPH_ERR_NOT_A_MODEL', '../good/weights.bin');
    const abs = clone(good.json);
    abs.weightsManifest[0].paths = [join(root, 'good', 'weights.bin')];
    await rejectsCode(loadModelFile(await variant('absolute', abs)), 'MORPH_ERR_NOT_A_MODEL');
  });

  it('refuses a truncated weights file (MORPH_ERR_WEIGHTS_MISMATCH)', async () => {
    await rejectsCode(loadModelFile(await variant('truncated', good.json, good.bin.subarray(0, good.bin.length - 4))), 'MORPH_ERR_WEIGHTS_MISMATCH', 'truncated');
  });

  it('refuses a weights file with extra bytes (MORPH_ERR_WEIGHTS_MISMATCH)', async () => {
    const bigger = Buffer.concat([good.bin, Buffer.alloc(8)]);
    await rejectsCode(loadModelFile(await variant('extra', good.json, bigger)), 'MORPH_ERR_WEIGHTS_MISMATCH', `${bigger.length} bytes`);
  });

  it('refuses a weight whose shape does not fit the topology, naming layer and weight (MORPH_ERR_WEIGHTS_MISMATCH)', async () => {
    const wrong = clone(good.json);
    const k = wrong.weightsManifest[0].weights.find((w) => w.name === 'res1_conv1/kernel')!;
    k.shape = [3, 3, 32, 8]; // same size as [3, 3, 16, 16], so only the shape check catches it
    await rejectsCode(loadModelFile(await variant('wrong-shape', wrong)), 'MORPH_ERR_WEIGHTS_MISMATCH', '"res1_conv1"', 'kernel', '[3,3,32,8]', '[3,3,16,16]');
  });

  it('refuses a manifest that lacks a weight or has one of no layer (MORPH_ERR_WEIGHTS_MISMATCH)', async () => {
    // Drop the last weight (and its bytes): a layer now misses it.
    const missing = clone(good.json);
    const last = missing.weightsManifest[0].weights.pop()!;
    const bytes = last.shape.reduce((a, b) => a * b, 1) * 4;
    await rejectsCode(loadModelFile(await variant('missing-weight', missing, good.bin.subarray(0, good.bin.length - bytes))), 'MORPH_ERR_WEIGHTS_MISMATCH', last.name.split('/')[0], 'lacks');
    const stranger = clone(good.json);
    stranger.weightsManifest[0].weights[0].name = 'someone_else/kernel';
    await rejectsCode(loadModelFile(await variant('stranger', stranger)), 'MORPH_ERR_WEIGHTS_MISMATCH', 'someone_else/kernel');
  });

  it('refuses quantized weights and unsupported dtypes (MORPH_ERR_WEIGHTS_MISMATCH)', async () => {
    const q = clone(good.json) as unknown as { weightsManifest: { weights: Record<string, unknown>[] }[] };
    q.weightsManifest[0].weights[0].quantization = { dtype: 'uint8', scale: 0.1, min: 0 };
    await rejectsCode(loadModelFile(await variant('quantized', q)), 'MORPH_ERR_WEIGHTS_MISMATCH', 'quantized');
    const f16 = clone(good.json);
    f16.weightsManifest[0].weights[0].dtype = 'float16';
    await rejectsCode(loadModelFile(await variant('float16', f16)), 'MORPH_ERR_WEIGHTS_MISMATCH', 'float16');
  });
});

describe('decodeWeights', () => {
  const graph = parseModel({
    class_name: 'Sequential',
    config: { layers: [{ class_name: 'Dense', config: { name: 'd', units: 2, input_shape: [3] } }] },
  }).graph;

  it('decodes little-endian float32 across several groups and accepts scoped names with :0', () => {
    const kernel = Float32Array.from([1, 2, 3, 4, 5, 6]);
    const bias = Float32Array.from([-1, 0.5]);
    const map = decodeWeights(
      graph,
      [
        { paths: ['a.bin'], weights: [{ name: 'outer/d/kernel:0', shape: [3, 2], dtype: 'float32' }] },
        { paths: ['b.bin'], weights: [{ name: 'd/bias', shape: [2], dtype: 'float32' }] },
      ],
      [new Uint8Array(kernel.buffer), new Uint8Array(bias.buffer)],
      'test',
    );
    assert.deepEqual(map.get('d')!.get('kernel')!.data, kernel);
    assert.deepEqual(map.get('d')!.get('bias')!.data, bias);
  });

  it('refuses an unexpected extra weight on a known layer', () => {
    const data = new Uint8Array(4 * (6 + 2 + 1));
    assert.throws(
      () =>
        decodeWeights(
          graph,
          [
            {
              paths: ['w.bin'],
              weights: [
                { name: 'd/kernel', shape: [3, 2], dtype: 'float32' },
                { name: 'd/bias', shape: [2], dtype: 'float32' },
                { name: 'd/extra', shape: [1], dtype: 'float32' },
              ],
            },
          ],
          [data],
          'test',
        ),
      (e: unknown) => e instanceof MorphError && e.code === 'MORPH_ERR_WEIGHTS_MISMATCH' && e.message.includes('extra'),
    );
  });
});
