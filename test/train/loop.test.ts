/**
 * The training loop on the small synthetic dataset and a tiny conv net (wasm backend): it learns,
 * the extra loss reaches the gradient, batch-norm statistics move, checkpoints resume exactly, a
 * NaN stops the run at once with the step named, and no tensor leaks.
 */
import { analyzeChannels } from '../../src/graph/channel-groups.ts';
import { parseModel } from '../../src/graph/parse.ts';
import { rebuild } from '../../src/graph/rebuild.ts';
import { identitySelection } from '../../src/graph/widths.ts';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { MorphError } from '../../src/errors.ts';
import type { WeightMap } from '../../src/graph/weights.ts';
import { selectBackend } from '../../src/train/backend.ts';
import { openDataset, type Dataset } from '../../src/train/data/index.ts';
import { evaluate, train, type EpochEvent, type TrainOptions } from '../../src/train/loop.ts';
import { buildTfModel, readWeights } from '../../src/train/tf-model.ts';
import { TINY_DATA, tinyTopology } from './tiny-model.ts';

let ds: Dataset;
let initial: WeightMap;
let dir: string;

before(async () => {
  await selectBackend({ backend: 'wasm' });
  ds = await openDataset(TINY_DATA);
  // Seeded weights (tfjs's own initialisers draw from Math.random): the outcomes below must not
  // depend on a lucky draw (one clean-clone run reached 65% instead of > 80%).
  const graph = parseModel({ format: 'layers-model', modelTopology: tinyTopology() }).graph;
  const analysis = analyzeChannels(graph);
  const m = await buildTfModel(tinyTopology(), rebuild(graph, analysis, identitySelection(analysis), null, { seed: 1 }).weights);
  initial = readWeights(m);
  m.dispose();
  dir = await mkdtemp(join(tmpdir(), 'morphnet-train-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const BASE: TrainOptions = { epochs: 6, batchSize: 16, optimizer: { kind: 'adam', lr: 0.01 }, seed: 3 };

/** Sum of |gamma| over the model's batch-norm layers. */
function gammaL1(weights: WeightMap): number {
  let s = 0;
  for (const [, kinds] of weights) for (const v of kinds.get('gamma')?.data ?? []) s += Math.abs(v);
  return s;
}

function gammaPenalty(model: tf.LayersModel, strength: number): () => tf.Scalar {
  const gammas = model.trainableWeights.filter((w) => w.originalName.endsWith('/gamma')).map((w) => w.read());
  return () => tf.mul(strength, tf.addN(gammas.map((g) => tf.sum(tf.abs(g))))) as tf.Scalar;
}

function maxDiff(a: WeightMap, b: WeightMap): number {
  let d = 0;
  for (const [layer, kinds] of a) {
    for (const [kind, t] of kinds) {
      const u = b.get(layer)!.get(kind)!.data;
      t.data.forEach((v, i) => (d = Math.max(d, Math.abs(v - u[i]))));
    }
  }
  return d;
}

describe('train', () => {
  it('learns the synthetic task well above chance, and batch-norm moving statistics update', async () => {
    const model = await buildTfModel(tinyTopology(), initial);
    const result = await train(model, ds, BASE);
    const test = await evaluate(model, ds, 'test', 64);
    assert.equal(result.epochsCompleted, 6);
    assert.equal(result.stopped, false);
    assert.equal(test.n, 60);
    assert.ok(test.accuracy > 0.8, `test accuracy ${test.accuracy} (chance 0.33)`);
    assert.ok(result.history.at(-1)!.valAccuracy! > 0.8, JSON.stringify(result.history.at(-1)));
    assert.ok(result.history.at(-1)!.trainLoss < result.history[0].trainLoss);
    const mean = readWeights(model).get('c1_bn')!.get('moving_mean')!.data;
    assert.ok(mean.some((v) => Math.abs(v) > 1e-3), `moving_mean still at its initial zeros: ${mean}`);
    const variance = readWeights(model).get('c2_bn')!.get('moving_variance')!.data;
    assert.ok(variance.some((v) => Math.abs(v - 1) > 1e-3), 'moving_variance still at its initial ones');
    model.dispose();
  });

  it('puts extraLoss into the gradient: an L1 on gammas drives them down', async () => {
    const opts: TrainOptions = { ...BASE, epochs: 2, optimizer: { kind: 'sgd', lr: 0.05 } };
    const plain = await buildTfModel(tinyTopology(), initial);
    await train(plain, ds, opts);
    const reg = await buildTfModel(tinyTopology(), initial);
    const steps: number[] = [];
    const r = await train(reg, ds, opts, { extraLoss: gammaPenalty(reg, 0.05), onStep: (e) => void steps.push(e.extraLoss) });
    const l1Plain = gammaL1(readWeights(plain));
    const l1Reg = gammaL1(readWeights(reg));
    assert.ok(l1Reg < 0.8 * l1Plain, `sum |gamma| ${l1Reg} with the penalty vs ${l1Plain} without`);
    assert.ok(steps[0] > 0 && steps.at(-1)! < steps[0], 'extraLoss is reported per step and falls');
    assert.ok(r.history[0].trainExtraLoss > 0);
    plain.dispose();
    reg.dispose();
  });

  it('resumes an interrupted run from the next epoch, ending with the same weights as an uninterrupted one', async () => {
    const opts: TrainOptions = { ...BASE, epochs: 3, schedule: 'cosine', maxStepsPerEpoch: 8 };
    const whole = await buildTfModel(tinyTopology(), initial);
    await train(whole, ds, { ...opts, checkpoint: { dir: join(dir, 'whole') } });

    const ckdir = join(dir, 'resume');
    const first = await buildTfModel(tinyTopology(), initial);
    const epochsSeen: number[] = [];
    const r1 = await train(first, ds, { ...opts, checkpoint: { dir: ckdir } }, { onEpochEnd: (e) => (epochsSeen.push(e.epoch), 'stop') });
    assert.deepEqual(epochsSeen, [1]);
    assert.equal(r1.stopped, true);
    assert.equal(r1.epochsCompleted, 1);
    assert.deepEqual(await readdir(ckdir), ['epoch-0001']);
    first.dispose();

    // A freshly initialised model: everything must come from the checkpoint.
    const second = await buildTfModel(tinyTopology(), null);
    const firstSteps: { epoch: number; globalStep: number; lr: number }[] = [];
    const r2 = await train(second, ds, { ...opts, checkpoint: { dir: ckdir }, resume: true }, { onStep: (e) => void firstSteps.push(e) });
    assert.equal(r2.resumedFrom, join(ckdir, 'epoch-0001'));
    assert.equal(firstSteps[0].epoch, 2);
    assert.equal(firstSteps[0].globalStep, 9);
    assert.equal(r2.epochsCompleted, 3);
    assert.deepEqual(r2.history.map((h) => h.epoch), [1, 2, 3]);
    assert.deepEqual(await readdir(ckdir), ['epoch-0003']);
    const diff = maxDiff(readWeights(whole), readWeights(second));
    assert.ok(diff < 1e-5, `max weight difference ${diff}`);
    whole.dispose();
    second.dispose();
  });

  it('refuses to resume with other options, naming them (MORPH_ERR_CHECKPOINT)', async () => {
    const ckdir = join(dir, 'other');
    const m = await buildTfModel(tinyTopology(), initial);
    await train(m, ds, { ...BASE, epochs: 1, maxStepsPerEpoch: 2, checkpoint: { dir: ckdir } });
    await assert.rejects(
      train(m, ds, { ...BASE, epochs: 1, batchSize: 8, maxStepsPerEpoch: 2, checkpoint: { dir: ckdir }, resume: true }),
      (e: unknown) => e instanceof MorphError && e.code === 'MORPH_ERR_CHECKPOINT' && /batchSize was 16, now 8/.test(e.message),
    );
    m.dispose();
  });

  it('stops at once on a NaN extra loss, naming the epoch and step and keeping the last checkpoint', async () => {
    const ckdir = join(dir, 'nan');
    const model = await buildTfModel(tinyTopology(), initial);
    let calls = 0;
    const extraLoss = (): tf.Scalar => (++calls === 12 ? tf.scalar(Number.NaN) : tf.scalar(0));
    const before = tf.memory().numTensors;
    await assert.rejects(
      train(model, ds, { ...BASE, epochs: 3, maxStepsPerEpoch: 8, checkpoint: { dir: ckdir } }, { extraLoss }),
      (e: unknown) => {
        assert.ok(e instanceof MorphError && e.code === 'MORPH_ERR_NAN', String(e));
        assert.match(e.message, /epoch 2, step 4 \(global step 12\)/);
        assert.ok(e.message.includes(join(ckdir, 'epoch-0001')), e.message);
        assert.equal(e.details.checkpoint, join(ckdir, 'epoch-0001'));
        return true;
      },
    );
    assert.deepEqual(await readdir(ckdir), ['epoch-0001'], 'only the good checkpoint, no temporary directory');
    assert.equal(tf.memory().numTensors, before, 'a failed run releases its tensors');
    // The NaN step was not applied: the weights are still finite.
    for (const [, kinds] of readWeights(model)) for (const [, t] of kinds) assert.ok(t.data.every(Number.isFinite));
    model.dispose();
  });

  it('stops on a diverging learning rate (lr 1e30) with MORPH_ERR_NAN', async () => {
    const model = await buildTfModel(tinyTopology(), initial);
    await assert.rejects(
      train(model, ds, { ...BASE, epochs: 2, optimizer: { kind: 'sgd', lr: 1e30, momentum: 0 } }),
      (e: unknown) => e instanceof MorphError && e.code === 'MORPH_ERR_NAN' && /epoch 1, step \d+/.test(e.message) && /no checkpoint directory/.test(e.message),
    );
    model.dispose();
  });

  it('does not leak tensors across epochs', async () => {
    const model = await buildTfModel(tinyTopology(), initial);
    const counts: number[] = [];
    const onEpochEnd = (_e: EpochEvent): void => void counts.push(tf.memory().numTensors);
    const base = tf.memory().numTensors;
    await train(model, ds, { ...BASE, epochs: 4, maxStepsPerEpoch: 5, checkpoint: { dir: join(dir, 'leak') } }, { extraLoss: gammaPenalty(model, 1e-3), onEpochEnd });
    // Epoch 1 creates the optimizer's slots; from then on the count stays flat.
    assert.deepEqual(counts.slice(1), [counts[0], counts[0], counts[0]]);
    assert.equal(tf.memory().numTensors, base, 'the optimizer is released when train returns');
    model.dispose();
  });

  it('refuses bad options and data that does not fit the model', async () => {
    const model = await buildTfModel(tinyTopology(), initial);
    const code = (c: string) => (e: unknown) => e instanceof MorphError && e.code === c;
    await assert.rejects(train(model, ds, { epochs: 0 }), code('MORPH_ERR_BAD_ARGUMENT'));
    await assert.rejects(train(model, ds, { epochs: 1, batchSize: 2.5 }), code('MORPH_ERR_BAD_ARGUMENT'));
    await assert.rejects(train(model, ds, { epochs: 1, optimizer: { lr: -1 } }), code('MORPH_ERR_BAD_ARGUMENT'));
    await assert.rejects(train(model, ds, { epochs: 1, schedule: 'linear' as 'cosine' }), code('MORPH_ERR_BAD_ARGUMENT'));
    await assert.rejects(train(model, ds, { epochs: 1, resume: true }), code('MORPH_ERR_BAD_ARGUMENT'));
    const wide = await openDataset('synthetic:h=12,w=12,c=1,classes=5,train=50,test=10');
    await assert.rejects(train(model, wide, { epochs: 1 }), code('MORPH_ERR_DATASET_MISMATCH'));
    model.dispose();
  });
});
