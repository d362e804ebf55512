/**
 * `static-usage-limit-policy` — the default usage-limit policy: one fixed saturation ceiling
 * for every priority; a band dispatches only while pool saturation `< threshold`.
 *
 * Parameters:
 * - `threshold` (saturation fraction > 0, default 1.0)
 *
 * Source: reference/epp.md §6 "Plugins" (llm-d-router `framework/plugins/flowcontrol/usagelimit/static`).
 */
import { z } from "zod";
import { decodeParams } from "../../framework/config/params.js";
import type { UsageLimitPolicy } from "../../framework/flow-control.js";
import type { PluginFactory } from "../../framework/plugin.js";

export const STATIC_USAGE_LIMIT_POLICY_TYPE = "static-usage-limit-policy";
export const DEFAULT_USAGE_THRESHOLD = 1.0;

const schema = z.object({ threshold: z.number().positive().default(DEFAULT_USAGE_THRESHOLD) }).strict();

/** Fixed ceiling. */
export class StaticUsageLimitPolicy implements UsageLimitPolicy {
  readonly type = STATIC_USAGE_LIMIT_POLICY_TYPE;
  constructor(
    readonly name: string = STATIC_USAGE_LIMIT_POLICY_TYPE,
    readonly threshold: number = DEFAULT_USAGE_THRESHOLD,
  ) {}
  ceiling(_priority: number): number {
    return this.threshold;
  }
}

/** Factory. @throws ParamsError naming the offending parameter. */
export const staticUsageLimitPolicyFactory: PluginFactory = (name, params) =>
  new StaticUsageLimitPolicy(name, decodeParams(schema, params).threshold);
