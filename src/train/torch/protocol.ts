/**
 * The torch worker's message protocol, version 1: JSON lines on stdio. The parent sends commands
 * `{id, cmd, ...}` (and `{cmd: 'stop'}`, which ends a running epoch after its current step); the
 * worker answers each with `{id, ok: true, ...reply}` or `{id, ok: false, error: {code, message}}`,
 * and while an epoch runs it sends `{id, event: 'step', ...}` per step. Its first line is a
 * `hello`. Bulk data (weights, dataset splits, probe batches) goes through files in a directory
 * the parent owns, named in the commands: raw little-endian float32 (uint8 for exact byte images,
 * int32 labels), weights in the tfjs layout in the spec's order.
 */
import type { TorchInfo } from '../engine.ts';
import type { NetSpec } from './net-spec.ts';

export const TORCH_PROTOCOL_VERSION = 1;

export type Hello =
  | ({ readonly type: 'hello'; readonly ok: true; readonly protocol: number } & TorchInfo)
  | { readonly type: 'hello'; readonly ok: false; readonly protocol: number; readonly error: string; readonly python: string; readonly executable: string };

export interface ProxGroupSpec {
  /** λ·w_g: the step's threshold is lr times this. */
  readonly threshold: number;
  readonly slices: readonly { layer: string; offset: number; channels: number; repeat: number; tile: number; stride: number }[];
}

/** Every command and the reply it gets. */
export interface Commands {
  build: { req: { spec: NetSpec; weights: string | null }; res: { params: number } };
  data: { req: { key: string; x: string; y: string; dtype: 'uint8' | 'float32'; shape: readonly [number, number, number, number] }; res: { n: number } };
  'drop-data': { req: { key: string }; res: Record<string, never> };
  optimizer: { req: { kind: 'adam' | 'sgd'; lr: number; momentum: number; weightDecay: number }; res: Record<string, never> };
  'set-weights': { req: { file: string }; res: Record<string, never> };
  'get-weights': { req: { file: string }; res: Record<string, never> };
  gammas: { req: { layers: readonly string[] }; res: { gammas: Record<string, number[]> } };
  forward: { req: { x: string; out: string; shape: readonly [number, number, number, number]; training: boolean }; res: { shape: number[] } };
  prox: { req: { groups: readonly ProxGroupSpec[]; lr: number }; res: Record<string, never> };
  evaluate: { req: { key: string; batchSize: number }; res: { loss: number | null; lossText?: string; accuracy: number | null; n: number } };
  recalibrate: { req: { key: string; layers: readonly string[]; order: readonly number[]; batchSize: number }; res: { updated: number } };
  epoch: {
    req: { key: string; order: readonly number[]; lrs: readonly number[]; batchSize: number; prox: readonly ProxGroupSpec[] | null; events: boolean };
    res: { steps: number; lossSum: number; seen: number; stopped: boolean; nan: { step: number; problem: string } | null };
  };
}

export type CommandName = keyof Commands;

export interface StepMessage {
  readonly id: number;
  readonly event: 'step';
  readonly step: number;
  readonly loss: number;
  readonly lr: number;
  readonly n: number;
  readonly seconds: number;
}
