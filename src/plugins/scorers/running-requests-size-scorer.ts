/**
 * `running-requests-size-scorer` — prefers endpoints with fewer running requests.
 *
 * Score = `(maxR − r) / (maxR − minR)` where `r` is the endpoint's `runningRequestsSize`
 * (`vllm:num_requests_running`, requests), min/max over the candidates of this call; all
 * equal → 1.0. Category: Distribution.
 *
 * Parameters: none.
 *
 * Source: reference/epp.md §3.3 ("like queue-scorer on RunningRequestsSize").
 */
import { z } from "zod";
import { decodeParams } from "../../framework/config/params.js";
import type { PluginFactory, Scorer, ScorerCategory } from "../../framework/plugin.js";
import type { Endpoint, InferenceRequest } from "../../framework/types.js";

export const RUNNING_REQUESTS_SIZE_SCORER_TYPE = "running-requests-size-scorer";

/** Min-max scorer on the running request count. */
export class RunningRequestsSizeScorer implements Scorer {
  readonly type = RUNNING_REQUESTS_SIZE_SCORER_TYPE;
  readonly category: ScorerCategory = "Distribution";
  constructor(readonly name: string = RUNNING_REQUESTS_SIZE_SCORER_TYPE) {}
  score(_request: InferenceRequest, endpoints: Endpoint[]): Map<Endpoint, number> {
    let min = Number.POSITIVE_INFINITY;
    let max = Number.NEGATIVE_INFINITY;
    for (const ep of endpoints) {
      const r = ep.metrics.runningRequestsSize;
      if (r < min) min = r;
      if (r > max) max = r;
    }
    const out = new Map<Endpoint, number>();
    const range = max - min;
    for (const ep of endpoints) {
      out.set(ep, range === 0 ? 1 : (max - ep.metrics.runningRequestsSize) / range);
    }
    return out;
  }
}

/** Factory: no parameters. @throws ParamsError on any parameter. */
export const runningRequestsSizeScorerFactory: PluginFactory = (name, params) => {
  decodeParams(z.object({}).strict(), params);
  return new RunningRequestsSizeScorer(name);
};
