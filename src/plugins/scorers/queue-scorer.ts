/**
 * `queue-scorer` — prefers endpoints with shorter waiting queues.
 *
 * Score = `(maxQ − q) / (maxQ − minQ)` where `q` is the endpoint's `waitingQueueSize`
 * (`vllm:num_requests_waiting`, requests) and min/max are taken over the candidates of this
 * call; when all candidates have the same queue size every score is 1.0. Category: Distribution.
 *
 * Parameters: none.
 *
 * Source: reference/epp.md §3.3 (llm-d-router `framework/plugins/scheduling/scorer/queue`).
 */
import { z } from "zod";
import { decodeParams } from "../../framework/config/params.js";
import type { PluginFactory, Scorer, ScorerCategory } from "../../framework/plugin.js";
import type { Endpoint, InferenceRequest } from "../../framework/types.js";

export const QUEUE_SCORER_TYPE = "queue-scorer";

/** Min-max scorer on the waiting queue size. */
export class QueueScorer implements Scorer {
  readonly type = QUEUE_SCORER_TYPE;
  readonly category: ScorerCategory = "Distribution";
  constructor(readonly name: string = QUEUE_SCORER_TYPE) {}
  score(_request: InferenceRequest, endpoints: Endpoint[]): Map<Endpoint, number> {
    let min = Number.POSITIVE_INFINITY;
    let max = Number.NEGATIVE_INFINITY;
    for (const ep of endpoints) {
      const q = ep.metrics.waitingQueueSize;
      if (q < min) min = q;
      if (q > max) max = q;
    }
    const out = new Map<Endpoint, number>();
    const range = max - min;
    for (const ep of endpoints) {
      out.set(ep, range === 0 ? 1 : (max - ep.metrics.waitingQueueSize) / range);
    }
    return out;
  }
}

/** Factory: no parameters. @throws ParamsError on any parameter. */
export const queueScorerFactory: PluginFactory = (name, params) => {
  decodeParams(z.object({}).strict(), params);
  return new QueueScorer(name);
};
