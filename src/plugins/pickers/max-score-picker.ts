/**
 * `max-score-picker` — picks the highest-scored endpoints.
 *
 * Shuffles the scored candidates (random tie-break among equal scores), stable-sorts them by
 * score descending and returns the top `maxNumOfEndpoints` as targets (best first);
 * `scoredCandidates` holds every candidate in that sorted order.
 *
 * Parameters:
 * - `maxNumOfEndpoints` (integer ≥ 1, default 1): how many endpoints to return (the proxy
 *   falls back down the list).
 *
 * Source: reference/epp.md §3.4 (llm-d-router `framework/plugins/scheduling/picker/maxscore`).
 */
import { firstEndpoints, pickerParamsSchema, type Rng, shuffleInPlace } from "../../framework/picking.js";
import { z } from "zod";
import { decodeParams } from "../../framework/config/params.js";
import type { Picker, PluginFactory } from "../../framework/plugin.js";
import type { Endpoint, InferenceRequest, ProfileRunResult, ScoredEndpoint } from "../../framework/types.js";

export const MAX_SCORE_PICKER_TYPE = "max-score-picker";

/** Uniform random number in [0,1). */
export type { Rng };

const schema = pickerParamsSchema;

const byScoreDesc = (a: ScoredEndpoint, b: ScoredEndpoint): number => b.score - a.score;

/** Highest score wins; ties broken uniformly at random. */
export class MaxScorePicker implements Picker {
  readonly type = MAX_SCORE_PICKER_TYPE;
  /** decoded parameters, defaults included (printed by `llmd config check`) */
  get parameters(): { maxNumOfEndpoints: number } {
    return { maxNumOfEndpoints: this.maxNumOfEndpoints };
  }
  constructor(
    readonly name: string = MAX_SCORE_PICKER_TYPE,
    readonly maxNumOfEndpoints = 1,
    private readonly rng: Rng = Math.random,
  ) {}
  /** Sorts `scored` in place (the scheduler hands over a fresh array). */
  pick(_request: InferenceRequest, scored: ScoredEndpoint[]): ProfileRunResult {
    // Fisher–Yates shuffle, then a stable sort: equal scores end up in random order.
    shuffleInPlace(scored, this.rng);
    scored.sort(byScoreDesc);
    return { targetEndpoints: firstEndpoints(scored, this.maxNumOfEndpoints), scoredCandidates: scored };
  }
}

/** Factory. @throws ParamsError when `maxNumOfEndpoints` is not an integer ≥ 1 or a field is unknown. */
export const maxScorePickerFactory: PluginFactory = (name, params) =>
  new MaxScorePicker(name, decodeParams(schema, params).maxNumOfEndpoints);
