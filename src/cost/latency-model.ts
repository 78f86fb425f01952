/**
 * The measured-latency `CostModel`: an op's cost is its interpolated latency (ms) on one device
 * and runtime, read from the latency tables of the op's signature(s); its marginals are the
 * interpolant's local slopes. Ops whose table is missing fall back to a FLOP-proportional
 * estimate, and the model says which ones did.
 *
 * How a `CostOp` maps to tables is injected (`locate`), so that this module does not depend on
 * how OpSpecs and their signatures are built (`src/ops`). One op may map to several tables (a
 * separable conv runs as a depthwise op and a pointwise op) and to table channel counts that are
 * linear in its own (a dense layer after Flatten reads tile·c_in features; a depthwise op writes
 * m·c_in channels): the marginals follow by the chain rule.
 */
import { MorphError } from '../errors.ts';
import { flopsCostModel, type CostModel, type CostOp, type Marginals } from './cost-model.ts';
import { LatencyTableSet, type LatencyTable } from './latency-table.ts';

/** One table an op reads, and how the op's (c_in, c_out) become the table's. */
export interface TableRef {
  /** The table's signature (the OpSpec without c_in/c_out). */
  readonly signature: string;
  /** Table c_in = inMap[0]·c_in + inMap[1]·c_out. Default [1, 0]. Non-negative. */
  readonly inMap?: readonly [number, number];
  /** Table c_out = outMap[0]·c_in + outMap[1]·c_out. Default [0, 1]. Non-negative. */
  readonly outMap?: readonly [number, number];
  /** Runs per inference. Default `op.calls`. */
  readonly repeat?: number;
}

/** Maps an op to the table(s) it reads; `undefined` when no table can describe it. */
export type LocateTables = (op: CostOp) => TableRef | readonly TableRef[] | undefined;

/**
 * Milliseconds per FLOP for ops without a table when no rate is given: 27 GFLOP/s, what a 3×3
 * conv reaches on tfjs wasm (SIMD, one thread) on the development host (DESIGN "Runtimes").
 */
export const DEFAULT_MS_PER_FLOP = 1e3 / 27e9;

export interface LatencyCostModelOptions {
  readonly device: string;
  readonly runtime: string;
  /** Tables of any devices/runtimes; only this device's and runtime's are read. */
  readonly tables: LatencyTableSet | Iterable<LatencyTable>;
  readonly locate: LocateTables;
  /** Rate for the FLOP-proportional fallback, ms per FLOP. Default `DEFAULT_MS_PER_FLOP`. */
  readonly msPerFlop?: number;
}

export interface OpLatency {
  readonly ms: number;
  readonly dIn: number;
  readonly dOut: number;
  /** 'table' when every table the op needs exists; 'fallback' when it was priced by FLOPs. */
  readonly source: 'table' | 'fallback';
  /** Whether some table was read outside its measured range. */
  readonly extrapolated: boolean;
  /** Signatures the op needs that have no table (empty for 'table'). */
  readonly missing: readonly string[];
}

const ID_IN: readonly [number, number] = [1, 0];
const ID_OUT: readonly [number, number] = [0, 1];

function checkMap(op: CostOp, name: string, m: readonly number[]): void {
  if (m.length !== 2 || !m.every((x) => Number.isFinite(x) && x >= 0)) {
    throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `table ${name} for layer ${op.layer} must be two finite numbers ≥ 0, got [${m.join(', ')}]`);
  }
}

export class LatencyCostModel implements CostModel {
  readonly name = 'latency';
  readonly unit = 'ms';
  readonly device: string;
  readonly runtime: string;
  readonly msPerFlop: number;
  readonly #tables: LatencyTableSet;
  readonly #locate: LocateTables;
  /** Layers priced by the fallback so far, with the signatures they lacked. */
  readonly #fallbacks = new Map<string, readonly string[]>();

  /** @throws MorphError MORPH_ERR_BAD_ARGUMENT for a missing device/runtime/locate or a bad rate. */
  constructor(options: LatencyCostModelOptions) {
    const problems: string[] = [];
    if (typeof options.device !== 'string' || options.device === '') problems.push('device must be a non-empty string');
    if (typeof options.runtime !== 'string' || options.runtime === '') problems.push('runtime must be a non-empty string');
    if (typeof options.locate !== 'function') problems.push('locate must be a function from a CostOp to its table reference(s)');
    const rate = options.msPerFlop ?? DEFAULT_MS_PER_FLOP;
    if (!(Number.isFinite(rate) && rate > 0)) problems.push(`msPerFlop must be finite and > 0, got ${rate}`);
    if (problems.length > 0) throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `bad latency cost model options: ${problems.join('; ')}`, { problems });
    this.device = options.device;
    this.runtime = options.runtime;
    this.msPerFlop = rate;
    this.#tables = options.tables instanceof LatencyTableSet ? options.tables : new LatencyTableSet(options.tables);
    this.#locate = options.locate;
  }

  #refs(op: CostOp): readonly TableRef[] | undefined {
    const r = this.#locate(op);
    if (r === undefined) return undefined;
    return Array.isArray(r) ? (r as readonly TableRef[]) : [r as TableRef];
  }

  #table(signature: string): LatencyTable | undefined {
    return this.#tables.get({ device: this.device, runtime: this.runtime, signature });
  }

  #missing(op: CostOp, refs: readonly TableRef[] | undefined): string[] {
    if (refs === undefined || refs.length === 0) return [`(no table describes the ${op.kind} op ${op.layer})`];
    return refs.filter((r) => !this.#table(r.signature)).map((r) => r.signature);
  }

  /** Latency of `op` at (cIn, cOut) with its slopes and where they came from. */
  estimate(op: CostOp, cIn: number, cOut: number): OpLatency {
    const refs = this.#refs(op);
    const missing = this.#missing(op, refs);
    if (refs === undefined || missing.length > 0) {
      this.#fallbacks.set(op.layer, missing);
      const m = flopsCostModel.marginals(op, cIn, cOut);
      return {
        ms: this.msPerFlop * flopsCostModel.cost(op, cIn, cOut),
        dIn: Math.max(0, this.msPerFlop * m.dIn),
        dOut: Math.max(0, this.msPerFlop * m.dOut),
        source: 'fallback',
        extrapolated: false,
        missing,
      };
    }
    let ms = 0;
    let dIn = 0;
    let dOut = 0;
    let extrapolated = false;
    for (const ref of refs) {
      const inMap = ref.inMap ?? ID_IN;
      const outMap = ref.outMap ?? ID_OUT;
      checkMap(op, 'inMap', inMap);
      checkMap(op, 'outMap', outMap);
      const repeat = ref.repeat ?? op.calls;
      if (!(Number.isFinite(repeat) && repeat >= 0)) throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `table repeat for layer ${op.layer} must be finite and ≥ 0, got ${repeat}`);
      const e = (this.#table(ref.signature) as LatencyTable).estimate(inMap[0] * cIn + inMap[1] * cOut, outMap[0] * cIn + outMap[1] * cOut);
      ms += repeat * e.ms;
      dIn += repeat * (e.dIn * inMap[0] + e.dOut * outMap[0]);
      dOut += repeat * (e.dIn * inMap[1] + e.dOut * outMap[1]);
      extrapolated ||= e.extrapolated;
    }
    return { ms, dIn, dOut, source: 'table', extrapolated, missing: [] };
  }

  cost(op: CostOp, cIn: number, cOut: number): number {
    return this.estimate(op, cIn, cOut).ms;
  }

  marginals(op: CostOp, cIn: number, cOut: number): Marginals {
    const e = this.estimate(op, cIn, cOut);
    return { dIn: e.dIn, dOut: e.dOut };
  }

  /** Signatures that `ops` need and this device/runtime has no table for (sorted, unique). */
  missingSignatures(ops: readonly CostOp[]): string[] {
    const missing = new Set<string>();
    for (const op of ops) for (const r of this.#refs(op) ?? []) if (!this.#table(r.signature)) missing.add(r.signature);
    return [...missing].sort();
  }

  /** Layers priced by the FLOP fallback so far, with the signatures each lacked. */
  fallbacks(): ReadonlyMap<string, readonly string[]> {
    return new Map(this.#fallbacks);
  }

  /**
   * The device's observed ms per FLOP over ops that have tables, at the given channel counts:
   * a better rate for the fallback than the default. `undefined` when none has a table.
   */
  observedMsPerFlop(items: readonly { op: CostOp; cIn: number; cOut: number }[]): number | undefined {
    let ms = 0;
    let flops = 0;
    for (const { op, cIn, cOut } of items) {
      if (this.#missing(op, this.#refs(op)).length > 0) continue;
      const e = this.estimate(op, cIn, cOut);
      ms += e.ms;
      flops += flopsCostModel.cost(op, cIn, cOut);
    }
    return ms > 0 && flops > 0 ? ms / flops : undefined;
  }
}
