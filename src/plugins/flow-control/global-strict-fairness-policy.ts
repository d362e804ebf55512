/**
 * `global-strict-fairness-policy` — the default fairness policy: the band behaves as one
 * logical queue across its flows. It picks the flow whose head item the band's ordering policy
 * ranks first (with `fcfs-ordering-policy`: strict arrival order across all flows; a busy
 * tenant gets a share proportional to its offered load).
 *
 * Parameters: none.
 *
 * Source: reference/epp.md §6 "Plugins" (llm-d-router `framework/plugins/flowcontrol/fairness/globalstrict`).
 */
import { z } from "zod";
import { decodeParams } from "../../framework/config/params.js";
import type {
  FairnessBandState,
  FairnessPolicy,
  FlowView,
  ItemComparator,
  QueueItem,
} from "../../framework/flow-control.js";
import type { PluginFactory } from "../../framework/plugin.js";

export const GLOBAL_STRICT_FAIRNESS_POLICY_TYPE = "global-strict-fairness-policy";

/** One logical queue across flows. */
export class GlobalStrictFairnessPolicy implements FairnessPolicy {
  readonly type = GLOBAL_STRICT_FAIRNESS_POLICY_TYPE;
  constructor(readonly name: string = GLOBAL_STRICT_FAIRNESS_POLICY_TYPE) {}
  newBandState(): FairnessBandState {
    return {
      pick(flows: readonly FlowView[], compare: ItemComparator): FlowView | undefined {
        let best: FlowView | undefined;
        let bestHead: QueueItem | undefined;
        for (const f of flows) {
          const h = f.head();
          if (h === undefined) continue;
          if (bestHead === undefined || compare(h, bestHead) < 0) {
            best = f;
            bestHead = h;
          }
        }
        return best;
      },
    };
  }
}

/** Factory: no parameters. @throws ParamsError on any parameter. */
export const globalStrictFairnessPolicyFactory: PluginFactory = (name, params) => {
  decodeParams(z.object({}).strict(), params);
  return new GlobalStrictFairnessPolicy(name);
};
