/**
 * `round-robin-fairness-policy` — rotates across the band's flows that have queued items, one
 * dispatch each in flow-creation order, so backlogged tenants get equal shares whatever their
 * offered load. The cursor advances only on a real dispatch (a pick blocked by saturation does
 * not use up a flow's turn).
 *
 * Parameters: none.
 *
 * Source: reference/epp.md §6 "Plugins" (llm-d-router `framework/plugins/flowcontrol/fairness/roundrobin`).
 */
import { z } from "zod";
import { decodeParams } from "../../framework/config/params.js";
import type { FairnessBandState, FairnessPolicy, FlowView } from "../../framework/flow-control.js";
import type { PluginFactory } from "../../framework/plugin.js";

export const ROUND_ROBIN_FAIRNESS_POLICY_TYPE = "round-robin-fairness-policy";

/** Round robin across non-empty flows. */
export class RoundRobinFairnessPolicy implements FairnessPolicy {
  readonly type = ROUND_ROBIN_FAIRNESS_POLICY_TYPE;
  constructor(readonly name: string = ROUND_ROBIN_FAIRNESS_POLICY_TYPE) {}
  newBandState(): FairnessBandState {
    /** id of the flow served last; flows ids increase with creation */
    let lastId = -1;
    return {
      pick(flows: readonly FlowView[]): FlowView | undefined {
        let first: FlowView | undefined;
        let next: FlowView | undefined;
        for (const f of flows) {
          if (f.length === 0) continue;
          if (first === undefined || f.id < first.id) first = f;
          if (f.id > lastId && (next === undefined || f.id < next.id)) next = f;
        }
        return next ?? first;
      },
      dispatched(flow: FlowView): void {
        lastId = flow.id;
      },
    };
  }
}

/** Factory: no parameters. @throws ParamsError on any parameter. */
export const roundRobinFairnessPolicyFactory: PluginFactory = (name, params) => {
  decodeParams(z.object({}).strict(), params);
  return new RoundRobinFairnessPolicy(name);
};
