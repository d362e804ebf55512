/**
 * `random-picker` — picks endpoints uniformly at random, ignoring scores.
 *
 * Shuffles the candidates and returns the first `maxNumOfEndpoints`.
 *
 * Parameters:
 * - `maxNumOfEndpoints` (integer ≥ 1, default 1).
 *
 * Source: reference/epp.md §3.4 (llm-d-router `framework/plugins/scheduling/picker/random`).
 */
import { firstEndpoints, pickerParamsSchema, type Rng, shuffleInPlace } from "../../framework/picking.js";
import { z } from "zod";
import { decodeParams } from "../../framework/config/params.js";
import type { Picker, PluginFactory } from "../../framework/plugin.js";
import type { Endpoint, InferenceRequest, ProfileRunResult, ScoredEndpoint } from "../../framework/types.js";

export const RANDOM_PICKER_TYPE = "random-picker";

/** Uniform random number in [0,1). */
export type { Rng };

const schema = pickerParamsSchema;

/** Uniform random choice of `maxNumOfEndpoints` distinct endpoints. */
export class RandomPicker implements Picker {
  readonly type = RANDOM_PICKER_TYPE;
  /** decoded parameters, defaults included (printed by `llmd config check`) */
  get parameters(): { maxNumOfEndpoints: number } {
    return { maxNumOfEndpoints: this.maxNumOfEndpoints };
  }
  constructor(
    readonly name: string = RANDOM_PICKER_TYPE,
    readonly maxNumOfEndpoints = 1,
    private readonly rng: Rng = Math.random,
  ) {}
  /** Shuffles `scored` in place. */
  pick(_request: InferenceRequest, scored: ScoredEndpoint[]): ProfileRunResult {
    shuffleInPlace(scored, this.rng);
    return { targetEndpoints: firstEndpoints(scored, this.maxNumOfEndpoints), scoredCandidates: scored };
  }
}

/** Factory. @throws ParamsError when `maxNumOfEndpoints` is not an integer ≥ 1 or a field is unknown. */
export const randomPickerFactory: PluginFactory = (name, params) =>
  new RandomPicker(name, decodeParams(schema, params).maxNumOfEndpoints);
