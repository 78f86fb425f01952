/**
 * Training checkpoints that let an interrupted run continue exactly: the model's weights (batch-norm
 * moving statistics included), the optimizer's state (Adam moments, momentum), the number of
 * epochs done and the schedule position, plus the options that must not change on resume.
 *
 * Layout: `DIR/epoch-0003/{model.json, weights.bin, optimizer.bin, state.json}`. `model.json` +
 * `weights.bin` is an ordinary tfjs model, so the last checkpoint is also a usable model. Each
 * checkpoint is written into a hidden temporary sibling and renamed into place, so `DIR` only ever
 * holds complete checkpoints; older ones are removed only after the new one is in place.
 */
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { MorphError } from '../errors.ts';
import type { NamedWeight } from '../graph/rebuild.ts';
import { sizeOf } from '../graph/weights.ts';
import type { TrainOptimizer } from './optimizer.ts';
import { assignWeights, namedWeights } from './tf-model.ts';

export const CHECKPOINT_VERSION = 1;
const NAME = /^epoch-(\d+)$/;

/** Facts about a run that a resumed run must share, compared field by field on resume. */
export type RunFingerprint = Readonly<Record<string, string | number | boolean | null>>;

export interface EpochRecord {
  readonly epoch: number;
  readonly trainLoss: number;
  readonly trainExtraLoss: number;
  readonly valLoss: number | null;
  readonly valAccuracy: number | null;
  readonly lr: number;
  readonly seconds: number;
}

export interface CheckpointState {
  readonly version: number;
  /** Epochs completed (1-based count); the resumed run starts with epoch `epoch + 1`. */
  readonly epoch: number;
  /** Optimizer steps done in the whole run: the schedule position. */
  readonly globalStep: number;
  readonly fingerprint: RunFingerprint;
  readonly history: readonly EpochRecord[];
  /** The optimizer tensors in `optimizer.bin`, in tfjs `getWeights()` order. */
  readonly optimizer: { kind: string; weights: { name: string; shape: number[]; dtype: 'float32' | 'int32' }[] };
  readonly savedAt: string;
}

export interface LoadedCheckpoint {
  readonly path: string;
  readonly state: CheckpointState;
  readonly weights: readonly NamedWeight[];
  /** Raw optimizer tensors; call `restoreOptimizer` to load them. */
  readonly optimizerData: readonly { name: string; shape: number[]; dtype: 'float32' | 'int32'; data: Float32Array | Int32Array }[];
}

function dirName(epoch: number): string {
  return `epoch-${String(epoch).padStart(4, '0')}`;
}

function concat(arrays: readonly (Float32Array | Int32Array)[]): Uint8Array {
  const total = arrays.reduce((a, x) => a + x.byteLength, 0);
  const out = new Uint8Array(total);
  let offset = 0;
  for (const a of arrays) {
    out.set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength), offset);
    offset += a.byteLength;
  }
  return out;
}

/** Checkpoint directories in `dir`, newest (highest epoch) first. Missing `dir` gives []. */
export async function listCheckpoints(dir: string): Promise<{ epoch: number; path: string }[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  return names
    .map((n) => ({ m: NAME.exec(n), n }))
    .filter((e): e is { m: RegExpExecArray; n: string } => e.m !== null)
    .map((e) => ({ epoch: Number(e.m[1]), path: join(resolve(dir), e.n) }))
    .sort((a, b) => b.epoch - a.epoch);
}

export interface WriteCheckpointArgs {
  readonly dir: string;
  readonly model: tf.LayersModel;
  readonly optimizer: TrainOptimizer;
  readonly epoch: number;
  readonly globalStep: number;
  readonly fingerprint: RunFingerprint;
  readonly history: readonly EpochRecord[];
  /** Checkpoints to keep, newest first (default 1). */
  readonly keep?: number;
}

/** Writes one checkpoint atomically and prunes older ones. @returns its absolute path. */
export async function writeCheckpoint(a: WriteCheckpointArgs): Promise<string> {
  const root = resolve(a.dir);
  await mkdir(root, { recursive: true });
  const weights = namedWeights(a.model);
  const optWeights = await a.optimizer.tf.getWeights();
  const optData = optWeights.map((w) => ({
    name: w.name,
    shape: [...w.tensor.shape],
    dtype: (w.tensor.dtype === 'int32' ? 'int32' : 'float32') as 'float32' | 'int32',
    data: w.tensor.dtype === 'int32' ? Int32Array.from(w.tensor.dataSync()) : Float32Array.from(w.tensor.dataSync()),
  }));
  // saveIterations makes a fresh scalar each call; the slot variables belong to the optimizer.
  optWeights[0]?.tensor.dispose();
  const state: CheckpointState = {
    version: CHECKPOINT_VERSION,
    epoch: a.epoch,
    globalStep: a.globalStep,
    fingerprint: a.fingerprint,
    history: a.history,
    optimizer: { kind: a.optimizer.kind, weights: optData.map(({ name, shape, dtype }) => ({ name, shape, dtype })) },
    savedAt: new Date().toISOString(),
  };
  const modelJson = {
    format: 'layers-model',
    generatedBy: 'morphnet-edge checkpoint',
    convertedBy: null,
    modelTopology: a.model.toJSON(null, false),
    weightsManifest: [{ paths: ['weights.bin'], weights: weights.map((w) => ({ name: w.name, shape: [...w.shape], dtype: 'float32' })) }],
  };
  const target = join(root, dirName(a.epoch));
  const tmp = join(root, `.${dirName(a.epoch)}.tmp-${process.pid}-${Date.now()}`);
  await mkdir(tmp);
  try {
    await writeFile(join(tmp, 'model.json'), JSON.stringify(modelJson));
    await writeFile(join(tmp, 'weights.bin'), concat(weights.map((w) => w.data)));
    await writeFile(join(tmp, 'optimizer.bin'), concat(optData.map((w) => w.data)));
    // state.json last: a directory with it is complete even if renamed by hand.
    await writeFile(join(tmp, 'state.json'), `${JSON.stringify(state, null, 2)}\n`);
    await rm(target, { recursive: true, force: true });
    await rename(tmp, target);
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
  const keep = Math.max(1, a.keep ?? 1);
  for (const old of (await listCheckpoints(root)).slice(keep)) await rm(old.path, { recursive: true, force: true });
  return target;
}

function bad(path: string, why: string): MorphError {
  return new MorphError('MORPH_ERR_CHECKPOINT', `checkpoint ${path} cannot be resumed: ${why}`, { path });
}

function split(bytes: Uint8Array, specs: readonly { shape: number[]; dtype: 'float32' | 'int32' }[], path: string, file: string): (Float32Array | Int32Array)[] {
  const out: (Float32Array | Int32Array)[] = [];
  let offset = 0;
  for (const s of specs) {
    const n = sizeOf(s.shape);
    if (offset + n * 4 > bytes.byteLength) throw bad(path, `${file} is shorter than state.json describes (truncated?)`);
    const copy = bytes.slice(offset, offset + n * 4);
    out.push(s.dtype === 'int32' ? new Int32Array(copy.buffer) : new Float32Array(copy.buffer));
    offset += n * 4;
  }
  if (offset !== bytes.byteLength) throw bad(path, `${file} holds ${bytes.byteLength} bytes but state.json describes ${offset}`);
  return out;
}

/** Reads the newest checkpoint in `dir`, or null when there is none. @throws MORPH_ERR_CHECKPOINT */
export async function readLatestCheckpoint(dir: string): Promise<LoadedCheckpoint | null> {
  const latest = (await listCheckpoints(dir))[0];
  if (!latest) return null;
  const path = latest.path;
  let state: CheckpointState;
  let modelJson: { weightsManifest?: { weights: { name: string; shape: number[] }[] }[] };
  let weightBytes: Uint8Array;
  let optBytes: Uint8Array;
  try {
    state = JSON.parse(await readFile(join(path, 'state.json'), 'utf8')) as CheckpointState;
    modelJson = JSON.parse(await readFile(join(path, 'model.json'), 'utf8')) as typeof modelJson;
    weightBytes = new Uint8Array(await readFile(join(path, 'weights.bin')));
    optBytes = new Uint8Array(await readFile(join(path, 'optimizer.bin')));
  } catch (err) {
    throw bad(path, err instanceof Error ? err.message : String(err));
  }
  if (typeof state !== 'object' || state === null) throw bad(path, 'state.json is not an object');
  if (state.version !== CHECKPOINT_VERSION) throw bad(path, `it has format version ${String(state.version)}, this program reads ${CHECKPOINT_VERSION}`);
  if (!state.optimizer || !Array.isArray(state.optimizer.weights) || !Array.isArray(modelJson?.weightsManifest)) {
    throw bad(path, 'state.json lacks the optimizer weights or model.json lacks its weightsManifest');
  }
  const specs = (modelJson.weightsManifest ?? []).flatMap((g) => g.weights).map((w) => ({ name: w.name, shape: w.shape, dtype: 'float32' as const }));
  const weightData = split(weightBytes, specs, path, 'weights.bin');
  const optData = split(optBytes, state.optimizer.weights, path, 'optimizer.bin');
  return {
    path,
    state,
    weights: specs.map((s, i) => ({ name: s.name, shape: s.shape, data: weightData[i] as Float32Array })),
    optimizerData: state.optimizer.weights.map((s, i) => ({ ...s, data: optData[i] })),
  };
}

/** Lists every field whose value differs between the checkpoint's run and this one. */
export function fingerprintDiff(saved: RunFingerprint, now: RunFingerprint): string[] {
  const keys = new Set([...Object.keys(saved), ...Object.keys(now)]);
  return [...keys].filter((k) => saved[k] !== now[k]).map((k) => `${k} was ${JSON.stringify(saved[k])}, now ${JSON.stringify(now[k])}`);
}

/**
 * Loads a checkpoint into a model and a fresh optimizer, after checking that it belongs to this
 * run. @throws MORPH_ERR_CHECKPOINT naming every differing option, the optimizer kind or the
 * state that does not fit the model's trainable variables; MORPH_ERR_WEIGHTS_MISMATCH from the weights.
 */
export async function restoreCheckpoint(ckpt: LoadedCheckpoint, model: tf.LayersModel, optimizer: TrainOptimizer, fingerprint: RunFingerprint): Promise<void> {
  const diff = fingerprintDiff(ckpt.state.fingerprint, fingerprint);
  if (diff.length > 0) throw bad(ckpt.path, `it was written with other training options (${diff.join('; ')}); resume with the same options or use another checkpoint directory`);
  if (ckpt.state.optimizer.kind !== optimizer.kind) throw bad(ckpt.path, `it holds ${ckpt.state.optimizer.kind} state, this run uses ${optimizer.kind}`);
  const trainable = model.trainableWeights;
  const slots = ckpt.optimizerData.slice(1);
  const expected = trainable.length * optimizer.slotsPerVariable;
  if (ckpt.optimizerData.length === 0 || slots.length !== expected) {
    throw bad(ckpt.path, `its optimizer state has ${slots.length} slot tensors, this model and optimizer need ${expected}`);
  }
  slots.forEach((s, i) => {
    const want = trainable[i % trainable.length].shape;
    if (s.shape.length !== want.length || s.shape.some((d, k) => d !== want[k])) {
      throw bad(ckpt.path, `optimizer slot ${s.name} is ${JSON.stringify(s.shape)} but variable ${trainable[i % trainable.length].originalName} is ${JSON.stringify(want)}`);
    }
  });
  assignWeights(model, ckpt.weights, `checkpoint ${ckpt.path}: the weights`);
  const tensors = ckpt.optimizerData.map((w) => ({ name: w.name, tensor: tf.tensor(w.data, w.shape, w.dtype) }));
  try {
    await optimizer.tf.setWeights(tensors);
  } finally {
    // setWeights turns each into a variable that shares (and references) the data.
    tf.dispose(tensors.map((t) => t.tensor));
  }
}
