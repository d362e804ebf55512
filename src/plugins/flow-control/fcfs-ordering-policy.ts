/**
 * `fcfs-ordering-policy` — the default ordering policy: within a flow, the request that arrived
 * first is dispatched first (enqueue time, then arrival sequence).
 *
 * Parameters: none.
 *
 * Source: reference/epp.md §6 "Plugins" (llm-d-router `framework/plugins/flowcontrol/ordering/fcfs`).
 */
import { z } from "zod";
import { decodeParams } from "../../framework/config/params.js";
import type { OrderingPolicy, QueueItem } from "../../framework/flow-control.js";
import type { PluginFactory } from "../../framework/plugin.js";

export const FCFS_ORDERING_POLICY_TYPE = "fcfs-ordering-policy";

/** First come, first served. */
export class FcfsOrderingPolicy implements OrderingPolicy {
  readonly type = FCFS_ORDERING_POLICY_TYPE;
  constructor(readonly name: string = FCFS_ORDERING_POLICY_TYPE) {}
  readonly compare = (a: QueueItem, b: QueueItem): number => a.enqueueTime - b.enqueueTime || a.seq - b.seq;
}

/** Factory: no parameters. @throws ParamsError on any parameter. */
export const fcfsOrderingPolicyFactory: PluginFactory = (name, params) => {
  decodeParams(z.object({}).strict(), params);
  return new FcfsOrderingPolicy(name);
};
