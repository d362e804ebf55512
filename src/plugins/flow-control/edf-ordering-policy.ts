/**
 * `edf-ordering-policy` — earliest deadline first: within a flow, the request whose deadline
 * (enqueue time + request TTL) comes first is dispatched first; requests without a deadline
 * (TTL 0) go after every request that has one, in arrival order. Ties: arrival sequence.
 *
 * Parameters: none.
 *
 * Source: reference/epp.md §6 "Plugins" (llm-d-router `framework/plugins/flowcontrol/ordering/edf`).
 */
import { z } from "zod";
import { decodeParams } from "../../framework/config/params.js";
import type { OrderingPolicy, QueueItem } from "../../framework/flow-control.js";
import type { PluginFactory } from "../../framework/plugin.js";

export const EDF_ORDERING_POLICY_TYPE = "edf-ordering-policy";

/** Earliest deadline first. */
export class EdfOrderingPolicy implements OrderingPolicy {
  readonly type = EDF_ORDERING_POLICY_TYPE;
  constructor(readonly name: string = EDF_ORDERING_POLICY_TYPE) {}
  readonly compare = (a: QueueItem, b: QueueItem): number => {
    if (a.deadline !== b.deadline) {
      if (a.deadline === Number.POSITIVE_INFINITY) return 1;
      if (b.deadline === Number.POSITIVE_INFINITY) return -1;
      return a.deadline - b.deadline;
    }
    return a.seq - b.seq;
  };
}

/** Factory: no parameters. @throws ParamsError on any parameter. */
export const edfOrderingPolicyFactory: PluginFactory = (name, params) => {
  decodeParams(z.object({}).strict(), params);
  return new EdfOrderingPolicy(name);
};
