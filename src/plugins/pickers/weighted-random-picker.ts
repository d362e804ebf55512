/**
 * `weighted-random-picker` — picks endpoints at random with probability proportional to score.
 *
 * Weighted sampling without replacement by A-Res (Efraimidis–Spirakis): each endpoint with
 * score `w > 0` draws `U ~ (0,1)` and gets key `U^(1/w)`; the `maxNumOfEndpoints` largest keys
 * win. Endpoints with score ≤ 0 are excluded; when every score is ≤ 0 the pick is uniform
 * random over all candidates (like `random-picker`).
 *
 * Parameters:
 * - `maxNumOfEndpoints` (integer ≥ 1, default 1).
 *
 * Source: reference/epp.md §3.4 (llm-d-router `framework/plugins/scheduling/picker/weightedrandom`).
 */
import { firstEndpoints, pickerParamsSchema, type Rng, shuffleInPlace } from "../../framework/picking.js";
import { z } from "zod";
import { decodeParams } from "../../framework/config/params.js";
import type { Picker, PluginFactory } from "../../framework/plugin.js";
import type { Endpoint, InferenceRequest, ProfileRunResult, ScoredEndpoint } from "../../framework/types.js";

export const WEIGHTED_RANDOM_PICKER_TYPE = "weighted-random-picker";

/** Uniform random number in [0,1). */
export type { Rng };

const schema = pickerParamsSchema;

/** Score-proportional random choice (A-Res). */
export class WeightedRandomPicker implements Picker {
  readonly type = WEIGHTED_RANDOM_PICKER_TYPE;
  /** decoded parameters, defaults included (printed by `llmd config check`) */
  get parameters(): { maxNumOfEndpoints: number } {
    return { maxNumOfEndpoints: this.maxNumOfEndpoints };
  }
  constructor(
    readonly name: string = WEIGHTED_RANDOM_PICKER_TYPE,
    readonly maxNumOfEndpoints = 1,
    private readonly rng: Rng = Math.random,
  ) {}
  pick(_request: InferenceRequest, scored: ScoredEndpoint[]): ProfileRunResult {
    let anyPositive = false;
    for (const s of scored) {
      if (s.score > 0) {
        anyPositive = true;
        break;
      }
    }
    if (!anyPositive) {
      for (let i = scored.length - 1; i > 0; i--) {
        const j = Math.floor(this.rng() * (i + 1));
        const t = scored[i]!;
        scored[i] = scored[j]!;
        scored[j] = t;
      }
      const n = Math.min(this.maxNumOfEndpoints, scored.length);
      const targets: Endpoint[] = new Array(n);
      for (let i = 0; i < n; i++) targets[i] = scored[i]!.endpoint;
      return { targetEndpoints: targets, scoredCandidates: scored };
    }
    const keyed: { s: ScoredEndpoint; key: number }[] = [];
    for (const s of scored) {
      if (!(s.score > 0)) continue;
      let u = this.rng();
      if (u === 0) u = 1e-10;
      keyed.push({ s, key: u ** (1 / s.score) });
    }
    keyed.sort((a, b) => b.key - a.key);
    const n = Math.min(this.maxNumOfEndpoints, keyed.length);
    const targets: Endpoint[] = new Array(n);
    for (let i = 0; i < n; i++) targets[i] = keyed[i]!.s.endpoint;
    return { targetEndpoints: targets, scoredCandidates: scored };
  }
}

/** Factory. @throws ParamsError when `maxNumOfEndpoints` is not an integer ≥ 1 or a field is unknown. */
export const weightedRandomPickerFactory: PluginFactory = (name, params) =>
  new WeightedRandomPicker(name, decodeParams(schema, params).maxNumOfEndpoints);
