/**
 * What a search prices networks with: the regularizer's cost model, the whole network's cost at
 * any group widths, expand to a target, and optionally a device that measures candidates (closed
 * loop). `runSearch` (search.ts) runs one path over these hooks whatever the cost: FLOPs and
 * parameters come from a `CostModel` (`costModelHooks`), a device's latency from its tables
 * (`latencyHooks`, latency-hooks.ts).
 */
import { costOps, type CostModel, type CostOp } from '../cost/cost-model.ts';
import type { ChannelAnalysis } from '../graph/channel-groups.ts';
import type { Graph } from '../graph/graph.ts';
import type { ModelConfigJson } from '../graph/keras-json.ts';
import { costModelCost, expandToTarget, type ExpandResult } from './expand.ts';
import { costAt } from './network-cost.ts';

/** The cost a search minimizes the network's accuracy loss under; the target is in its unit. */
export interface SearchCostHooks {
  readonly name: string;
  readonly unit: string;
  /** Decimal places of a cost in messages (default 3, as for ms; FLOPs and params use 0). */
  readonly digits?: number;
  /** The regularizer's cost model for `graph` (each round shrinks the previous round's network). */
  costModel(graph: Graph, analysis: ChannelAnalysis): CostModel;
  /** The whole network's cost at `widths` (per group of `analysis`). */
  costAt(graph: Graph, analysis: ChannelAnalysis, widths: ArrayLike<number>): number;
  /**
   * Widths of `graph` scaled from `base` to `target`. Throws MORPH_ERR_TARGET when the target is
   * unreachable (with `details.minimum` where it is below the smallest network).
   */
  expand(graph: Graph, analysis: ChannelAnalysis, base: ArrayLike<number>, target: number, divisor: number): ExpandResult;
  /** Measures a candidate network on the device, in the cost's unit (the median). */
  verify?(modelTopology: ModelConfigJson, label: string): Promise<number>;
  /** Relative tolerance of closed-loop expand. Default 0.03. */
  readonly verifyTolerance?: number;
}

/**
 * The hooks of a `CostModel` (FLOPs, params): the model is the regularizer, the network's cost is
 * Σ of its ops' costs (`costAt`), expand is `expandToTarget` on it with no ceiling, and nothing
 * is measured.
 */
export function costModelHooks(model: CostModel): SearchCostHooks {
  // Each round works on a new graph; the cost ops of one are derived once.
  const ops = new WeakMap<ChannelAnalysis, readonly CostOp[]>();
  const opsOf = (graph: Graph, analysis: ChannelAnalysis): readonly CostOp[] => {
    let o = ops.get(analysis);
    if (!o) {
      o = costOps(graph, analysis);
      ops.set(analysis, o);
    }
    return o;
  };
  return {
    name: model.name,
    unit: model.unit,
    digits: 0,
    costModel: () => model,
    costAt: (graph, analysis, widths) => costAt(opsOf(graph, analysis), model, widths),
    expand: (graph, analysis, base, target, divisor) => expandToTarget(analysis, costModelCost(opsOf(graph, analysis), model), base, target, { divisor }),
  };
}
