/**
 * `load-aware-scorer` — scores endpoints by waiting-queue length against a threshold.
 *
 * With `q` = `waitingQueueSize` (requests): `q = 0` → 0.5; `q ≥ threshold` → 0;
 * otherwise `0.5 · (1 − q/threshold)`. The maximum score is 0.5. Category: Distribution.
 *
 * Parameters:
 * - `threshold` (integer > 0, requests, default 128): queue length at which the score reaches 0.
 *
 * Source: reference/epp.md §3.3 (llm-d-router `framework/plugins/scheduling/scorer/loadaware`).
 */
import { z } from "zod";
import { decodeParams } from "../../framework/config/params.js";
import type { PluginFactory, Scorer, ScorerCategory } from "../../framework/plugin.js";
import type { Endpoint, InferenceRequest } from "../../framework/types.js";

export const LOAD_AWARE_SCORER_TYPE = "load-aware-scorer";
/** Default `threshold`, requests. */
export const DEFAULT_LOAD_AWARE_THRESHOLD = 128;

const schema = z
  .object({ threshold: z.number().int().positive().default(DEFAULT_LOAD_AWARE_THRESHOLD) })
  .strict();

/** Load score of one queue length (see file header). */
export function loadAwareScore(queue: number, threshold: number): number {
  if (queue <= 0) return 0.5;
  if (queue >= threshold) return 0;
  return 0.5 * (1 - queue / threshold);
}

/** Scores waiting-queue load against `threshold`. */
export class LoadAwareScorer implements Scorer {
  readonly type = LOAD_AWARE_SCORER_TYPE;
  readonly category: ScorerCategory = "Distribution";
  /** decoded parameters, defaults included (printed by `llmd config check`) */
  get parameters(): { threshold: number } {
    return { threshold: this.threshold };
  }
  constructor(
    readonly name: string = LOAD_AWARE_SCORER_TYPE,
    readonly threshold: number = DEFAULT_LOAD_AWARE_THRESHOLD,
  ) {}
  score(_request: InferenceRequest, endpoints: Endpoint[]): Map<Endpoint, number> {
    const out = new Map<Endpoint, number>();
    for (const ep of endpoints) out.set(ep, loadAwareScore(ep.metrics.waitingQueueSize, this.threshold));
    return out;
  }
}

/** Factory. @throws ParamsError when `threshold` is not a positive integer or a field is unknown. */
export const loadAwareScorerFactory: PluginFactory = (name, params) =>
  new LoadAwareScorer(name, decodeParams(schema, params).threshold);
