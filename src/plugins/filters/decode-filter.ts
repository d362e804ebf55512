/**
 * `decode-filter` — keeps endpoints that can serve the decode stage.
 *
 * Keeps an endpoint when its `llm-d.ai/role` label is one of `decode`, `prefill-decode`,
 * `both` (deprecated), `encode-prefill-decode`, **or the label is absent** (an unlabelled
 * server is an aggregated server).
 *
 * Parameters: none (`parameters` must be absent or `{}`).
 *
 * Source: reference/epp.md §3.2 (llm-d-router `framework/plugins/scheduling/filter/bylabel`,
 * `DecodeRoleFactory`).
 */
import { z } from "zod";
import { decodeParams } from "../../framework/config/params.js";
import {
  ROLE_BOTH,
  ROLE_DECODE,
  ROLE_ENCODE_PREFILL_DECODE,
  ROLE_LABEL,
  ROLE_PREFILL_DECODE,
} from "../../framework/labels.js";
import type { Filter, PluginFactory } from "../../framework/plugin.js";
import type { Endpoint, InferenceRequest } from "../../framework/types.js";

export const DECODE_FILTER_TYPE = "decode-filter";

/** Role values accepted by the decode filter (reference/epp.md §3.2). */
export const DECODE_ROLES: ReadonlySet<string> = new Set([
  ROLE_DECODE,
  ROLE_PREFILL_DECODE,
  ROLE_BOTH,
  ROLE_ENCODE_PREFILL_DECODE,
]);

/** Keeps decode-capable and unlabelled endpoints. */
export class DecodeFilter implements Filter {
  readonly type = DECODE_FILTER_TYPE;
  constructor(readonly name: string = DECODE_FILTER_TYPE) {}
  filter(_request: InferenceRequest, endpoints: Endpoint[]): Endpoint[] {
    const out: Endpoint[] = [];
    for (const ep of endpoints) {
      const role = ep.metadata.labels[ROLE_LABEL];
      if (role === undefined || DECODE_ROLES.has(role)) out.push(ep);
    }
    return out;
  }
}

/** Factory: no parameters. @throws ParamsError on any parameter. */
export const decodeFilterFactory: PluginFactory = (name, params) => {
  decodeParams(z.object({}).strict(), params);
  return new DecodeFilter(name);
};
