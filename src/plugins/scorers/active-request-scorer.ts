/**
 * `active-request-scorer` — prefers endpoints with fewer requests in flight, as counted by
 * `inflight-load-producer` ({@link InflightLoad} under {@link INFLIGHT_LOAD}; missing = 0).
 * Category: Distribution.
 *
 * With `count` = in-flight requests of the endpoint and `max` = the largest count among the
 * candidates: `count ≤ idleThreshold` → 1.0; otherwise `(max − count)/max · maxBusyScore`
 * (so the busiest endpoint scores 0).
 *
 * Parameters:
 * - `idleThreshold` (int requests ≥ 0, default 0).
 * - `maxBusyScore` (number in [0,1], default 1.0): best score of a non-idle endpoint.
 * - `requestTimeout` (string or number): accepted for compatibility and ignored.
 *
 * It `consumes` {@link INFLIGHT_LOAD}, so the config loader injects the default producer of that
 * key (`inflight-load-producer`) when none is configured (reference/epp.md §2.3).
 *
 * Source: reference/epp.md §3.3 (llm-d-router `scheduling/scorer/activerequest`).
 */
import { z } from "zod";
import { decodeParams } from "../../framework/config/params.js";
import type { PluginFactory, Scorer, ScorerCategory } from "../../framework/plugin.js";
import {
  type Endpoint,
  INFLIGHT_LOAD,
  type InferenceRequest,
  type InflightLoad,
} from "../../framework/types.js";

export const ACTIVE_REQUEST_SCORER_TYPE = "active-request-scorer";

const schema = z
  .object({
    idleThreshold: z.number().int().nonnegative().default(0),
    maxBusyScore: z.number().min(0).max(1).default(1),
    requestTimeout: z.union([z.string(), z.number()]).optional(),
  })
  .strict();

export type ActiveRequestScorerParams = z.infer<typeof schema>;

/** Score of one endpoint (see file header). */
export function activeRequestScore(
  count: number,
  max: number,
  idleThreshold: number,
  maxBusyScore: number,
): number {
  if (count <= idleThreshold) return 1;
  if (max <= 0) return 1;
  return ((max - count) / max) * maxBusyScore;
}

/** In-flight request count scorer (see file header). */
export class ActiveRequestScorer implements Scorer {
  readonly type = ACTIVE_REQUEST_SCORER_TYPE;
  readonly category: ScorerCategory = "Distribution";
  readonly consumes: readonly string[] = [INFLIGHT_LOAD];
  readonly idleThreshold: number;
  readonly maxBusyScore: number;

  constructor(
    readonly name: string = ACTIVE_REQUEST_SCORER_TYPE,
    params: Partial<ActiveRequestScorerParams> = {},
  ) {
    this.idleThreshold = params.idleThreshold ?? 0;
    this.maxBusyScore = params.maxBusyScore ?? 1;
  }

  score(_request: InferenceRequest, endpoints: Endpoint[]): Map<Endpoint, number> {
    const counts = endpoints.map(
      (ep) => (ep.attributes.get(INFLIGHT_LOAD) as InflightLoad | undefined)?.requests ?? 0,
    );
    let max = 0;
    for (const c of counts) if (c > max) max = c;
    const out = new Map<Endpoint, number>();
    for (let i = 0; i < endpoints.length; i++) {
      out.set(endpoints[i], activeRequestScore(counts[i], max, this.idleThreshold, this.maxBusyScore));
    }
    return out;
  }
}

/** Factory. @throws ParamsError naming an unknown or invalid field. */
export const activeRequestScorerFactory: PluginFactory = (name, params) =>
  new ActiveRequestScorer(name, decodeParams(schema, params));
