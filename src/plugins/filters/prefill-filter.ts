/**
 * `prefill-filter` — keeps endpoints that can serve the prefill stage.
 *
 * Keeps an endpoint when its `llm-d.ai/role` label is one of `prefill`, `encode-prefill`,
 * `prefill-decode`, `both` (deprecated), `encode-prefill-decode`. Unlabelled endpoints are
 * **dropped**.
 *
 * Parameters: none (`parameters` must be absent or `{}`).
 *
 * Source: reference/epp.md §3.2 (llm-d-router `framework/plugins/scheduling/filter/bylabel`,
 * `PrefillRoleFactory`).
 */
import { z } from "zod";
import { decodeParams } from "../../framework/config/params.js";
import {
  ROLE_BOTH,
  ROLE_ENCODE_PREFILL,
  ROLE_ENCODE_PREFILL_DECODE,
  ROLE_LABEL,
  ROLE_PREFILL,
  ROLE_PREFILL_DECODE,
} from "../../framework/labels.js";
import type { Filter, PluginFactory } from "../../framework/plugin.js";
import type { Endpoint, InferenceRequest } from "../../framework/types.js";

export const PREFILL_FILTER_TYPE = "prefill-filter";

/** Role values accepted by the prefill filter (reference/epp.md §3.2). */
export const PREFILL_ROLES: ReadonlySet<string> = new Set([
  ROLE_PREFILL,
  ROLE_ENCODE_PREFILL,
  ROLE_PREFILL_DECODE,
  ROLE_BOTH,
  ROLE_ENCODE_PREFILL_DECODE,
]);

/** Keeps prefill-capable endpoints; unlabelled ones are dropped. */
export class PrefillFilter implements Filter {
  readonly type = PREFILL_FILTER_TYPE;
  constructor(readonly name: string = PREFILL_FILTER_TYPE) {}
  filter(_request: InferenceRequest, endpoints: Endpoint[]): Endpoint[] {
    const out: Endpoint[] = [];
    for (const ep of endpoints) {
      const role = ep.metadata.labels[ROLE_LABEL];
      if (role !== undefined && PREFILL_ROLES.has(role)) out.push(ep);
    }
    return out;
  }
}

/** Factory: no parameters. @throws ParamsError on any parameter. */
export const prefillFilterFactory: PluginFactory = (name, params) => {
  decodeParams(z.object({}).strict(), params);
  return new PrefillFilter(name);
};
