/**
 * The runtime adapter: how an agent turns a work item into something the measurement protocol
 * can time. One adapter per runtime (tfjs-wasm, tfjs-cpu, tfjs-node, tfjs-webgl, tflite); the
 * Node agent and the browser agent each provide their own, the protocol loop is shared.
 * This is the extension point for later runtimes (int8 TFLite, delegates): add an adapter.
 */
import type { OpSpec } from '../src/ops/op-spec.ts';
import type { NetworkPayload, RuntimeInfo, RuntimeName } from '../src/protocol/agent-protocol.ts';

/** A prepared op or network: `run` executes it once and has finished it when it returns (tfjs reads the output back; TFLite returns from `infer()`). */
export interface Runnable {
  run(): void | Promise<void>;
  /** Frees what `prepare*` allocated. Safe to call twice. */
  dispose(): void;
}

export interface RuntimeAdapter {
  readonly name: RuntimeName;
  /** What the agent reports in its hello for this runtime. */
  info(): RuntimeInfo;
  /** Builds the op with fixed random weights and inputs, ready to time. */
  prepareOp(spec: OpSpec): Promise<Runnable>;
  /** Builds a whole network (topology for tfjs runtimes, `.tflite` bytes for tflite): an item's, or its reference. */
  prepareNetwork(network: NetworkPayload): Promise<Runnable>;
}
