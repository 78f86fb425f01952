import { selectBackend } from '../../src/train/backend.ts';
import { openDataset } from '../../src/train/data/index.ts';
import { train } from '../../src/train/loop.ts';
import { buildTfModel, readWeights } from '../../src/train/tf-model.ts';
import { TINY_DATA, tinyTopology } from './tiny-model.ts';
await selectBackend({ backend: 'wasm' });
const ds = await openDataset(TINY_DATA);
for (const o of [{ kind: 'sgd', lr: 1e30, momentum: 0 }, { kind: 'adam', lr: 1e30 }, { kind: 'sgd', lr: 1e30 }] as const) {
  const m = await buildTfModel(tinyTopology(), null);
  try {
    await train(m, ds, { epochs: 2, batchSize: 16, optimizer: o }, { onStep: (e) => { if (e.globalStep < 6) console.log(e.globalStep, e.loss); } });
    const w = readWeights(m); console.log('finished', [...w.get('c1')!.get('kernel')!.data.slice(0, 3)], [...w.get('predictions')!.get('kernel')!.data.slice(0, 3)]);
  } catch (e) { console.log(String(e).slice(0, 200)); }
}
