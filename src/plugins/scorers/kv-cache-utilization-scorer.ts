/**
 * `kv-cache-utilization-scorer` — prefers endpoints with free KV-cache.
 *
 * Score = `1 − kvCacheUsagePercent` where usage is the fraction 0..1 of
 * `vllm:kv_cache_usage_perc` (out-of-range values are clamped to [0,1] by the scheduler).
 * Category: Distribution.
 *
 * Parameters: none.
 *
 * Source: reference/epp.md §3.3 (llm-d-router `framework/plugins/scheduling/scorer/kvcacheutilization`).
 */
import { z } from "zod";
import { decodeParams } from "../../framework/config/params.js";
import type { PluginFactory, Scorer, ScorerCategory } from "../../framework/plugin.js";
import type { Endpoint, InferenceRequest } from "../../framework/types.js";

export const KV_CACHE_UTILIZATION_SCORER_TYPE = "kv-cache-utilization-scorer";

/** Scores `1 − KV usage`. */
export class KvCacheUtilizationScorer implements Scorer {
  readonly type = KV_CACHE_UTILIZATION_SCORER_TYPE;
  readonly category: ScorerCategory = "Distribution";
  constructor(readonly name: string = KV_CACHE_UTILIZATION_SCORER_TYPE) {}
  score(_request: InferenceRequest, endpoints: Endpoint[]): Map<Endpoint, number> {
    const out = new Map<Endpoint, number>();
    for (const ep of endpoints) out.set(ep, 1 - ep.metrics.kvCacheUsagePercent);
    return out;
  }
}

/** Factory: no parameters. @throws ParamsError on any parameter. */
export const kvCacheUtilizationScorerFactory: PluginFactory = (name, params) => {
  decodeParams(z.object({}).strict(), params);
  return new KvCacheUtilizationScorer(name);
};
