/**
 * The scheduler: runs scheduling profiles over endpoint snapshots and returns the targets.
 *
 * Pure and synchronous (no I/O, no timers): reads endpoint metrics/attributes and request
 * attributes written earlier by data producers. Semantics follow llm-d-router
 * `pkg/epp/scheduling/scheduler.go` and `scheduler_profile.go` (reference/epp.md §2.2):
 *
 * 1. no candidates → `EppError("ServiceUnavailable", …, "rejected-no-endpoints")` (503);
 * 2. loop: `profileHandler.pickProfiles(request, profiles, results)` until it returns none;
 *    each picked profile runs once: filters in order (an empty list fails the profile: its
 *    result is `null`), then scorers in order with weighted score
 *    **Σ clamp(score, 0, 1) × weight** (no normalisation; an endpoint a scorer omits gets 0;
 *    NaN counts as 0), then the picker;
 * 3. every profile failed (or none ran) → `EppError("ResourceExhausted", …, "rejected-saturated")` (429);
 * 4. `profileHandler.processResults(request, results)`; an error that is not an `EppError`
 *    becomes `ResourceExhausted` / `rejected-saturated`.
 *
 * A handler that picks a profile that already ran, or keeps going for more rounds than there
 * are profiles, is a bug: `EppError("Internal")` instead of an endless loop.
 *
 * Plugin durations are reported through `onPluginDuration` with the extension-point labels of
 * `plugin_duration_seconds` (reference/epp.md §7): `ProfilePicker`, `Filter`, `Scorer`,
 * `Picker`, `ProcessProfilesResults`. Nothing is timed when no callback is given.
 */
import { performance } from "node:perf_hooks";
import { EppError } from "../framework/errors.js";
import type { LoadedConfig, ProfileHandler, SchedulerProfile } from "../framework/plugin.js";
import type {
  Endpoint,
  InferenceRequest,
  ProfileRunResult,
  ScoredEndpoint,
  SchedulingResult,
} from "../framework/types.js";

/** Extension-point labels of `plugin_duration_seconds` (reference/epp.md §7). */
export const EXTENSION_POINT = {
  profilePicker: "ProfilePicker",
  filter: "Filter",
  scorer: "Scorer",
  picker: "Picker",
  processProfilesResults: "ProcessProfilesResults",
} as const;

/**
 * Receives one plugin call's duration.
 * @param extensionPoint one of {@link EXTENSION_POINT}
 * @param seconds wall time of the call, seconds
 */
export type PluginDurationCallback = (
  extensionPoint: string,
  pluginType: string,
  pluginName: string,
  seconds: number,
) => void;

/** Options of {@link Scheduler}. */
export interface SchedulerOptions {
  onPluginDuration?: PluginDurationCallback;
}

// performance.now(): a double, where hrtime.bigint() allocates a BigInt per reading
const elapsedSeconds = (t0: number): number => (performance.now() - t0) / 1000;

/** Runs the profiles of a loaded config (see file header for the exact semantics). */
export class Scheduler {
  private readonly profiles: ReadonlyMap<string, SchedulerProfile>;
  private readonly handler: ProfileHandler;
  private readonly onDuration: PluginDurationCallback | undefined;

  constructor(config: LoadedConfig, opts: SchedulerOptions = {}) {
    this.profiles = config.profiles;
    this.handler = config.profileHandler;
    this.onDuration = opts.onPluginDuration;
  }

  /**
   * Picks target endpoints for one request.
   * @param candidates endpoint snapshots (not modified)
   * @throws EppError `ServiceUnavailable`/`rejected-no-endpoints` when `candidates` is empty;
   *   `ResourceExhausted`/`rejected-saturated` when every profile failed or the handler rejects;
   *   `Internal` when the profile handler loops.
   */
  schedule(request: InferenceRequest, candidates: Endpoint[]): SchedulingResult {
    if (candidates.length === 0) {
      throw new EppError(
        "ServiceUnavailable",
        "no candidate endpoints for the request",
        "rejected-no-endpoints",
      );
    }
    const handler = this.handler;
    const onDuration = this.onDuration;
    const results: Record<string, ProfileRunResult | null> = {};
    let ran = 0;
    let succeeded = 0;
    const maxRounds = this.profiles.size + 1;
    for (let round = 0; ; round++) {
      if (round >= maxRounds) {
        throw new EppError(
          "Internal",
          `profile handler ${handler.name} did not stop after ${maxRounds} rounds`,
        );
      }
      let picked: SchedulerProfile[];
      if (onDuration) {
        const t0 = performance.now();
        picked = handler.pickProfiles(request, this.profiles, results);
        onDuration(EXTENSION_POINT.profilePicker, handler.type, handler.name, elapsedSeconds(t0));
      } else {
        picked = handler.pickProfiles(request, this.profiles, results);
      }
      if (picked.length === 0) break;
      for (let i = 0; i < picked.length; i++) {
        const profile = picked[i]!;
        if (Object.hasOwn(results, profile.name)) {
          throw new EppError(
            "Internal",
            `profile handler ${handler.name} picked profile '${profile.name}' twice`,
          );
        }
        const r = this.runProfile(request, profile, candidates);
        results[profile.name] = r;
        ran++;
        if (r !== null) succeeded++;
      }
    }
    if (succeeded === 0) {
      throw new EppError(
        "ResourceExhausted",
        ran === 0
          ? "no scheduling profile ran for the request"
          : `failed to run any scheduling profile: no endpoint left after filtering (${Object.keys(results).join(", ")})`,
        "rejected-saturated",
      );
    }
    try {
      if (onDuration) {
        const t0 = performance.now();
        const res = handler.processResults(request, results);
        onDuration(EXTENSION_POINT.processProfilesResults, handler.type, handler.name, elapsedSeconds(t0));
        return res;
      }
      return handler.processResults(request, results);
    } catch (e) {
      if (e instanceof EppError) throw e;
      throw new EppError("ResourceExhausted", (e as Error)?.message ?? String(e), "rejected-saturated");
    }
  }

  /** One profile run; `null` when filters left no endpoint or the picker picked none. */
  private runProfile(
    request: InferenceRequest,
    profile: SchedulerProfile,
    candidates: Endpoint[],
  ): ProfileRunResult | null {
    const onDuration = this.onDuration;
    let eps = candidates;
    const filters = profile.filters;
    for (let i = 0; i < filters.length; i++) {
      const f = filters[i]!;
      if (onDuration) {
        const t0 = performance.now();
        eps = f.filter(request, eps);
        onDuration(EXTENSION_POINT.filter, f.type, f.name, elapsedSeconds(t0));
      } else {
        eps = f.filter(request, eps);
      }
      if (eps.length === 0) return null;
    }
    const n = eps.length;
    const totals = new Float64Array(n);
    const scorers = profile.scorers;
    for (let s = 0; s < scorers.length; s++) {
      const { scorer, weight } = scorers[s]!;
      let m: Map<Endpoint, number>;
      if (onDuration) {
        const t0 = performance.now();
        m = scorer.score(request, eps);
        onDuration(EXTENSION_POINT.scorer, scorer.type, scorer.name, elapsedSeconds(t0));
      } else {
        m = scorer.score(request, eps);
      }
      for (let i = 0; i < n; i++) {
        const v = m.get(eps[i]!);
        // clamp to [0,1]; undefined / NaN / ≤ 0 contribute nothing
        if (v !== undefined && v > 0) totals[i]! += Math.min(v, 1) * weight;
      }
    }
    const scored: ScoredEndpoint[] = new Array(n);
    for (let i = 0; i < n; i++) scored[i] = { endpoint: eps[i]!, score: totals[i]! };
    const picker = profile.picker;
    let result: ProfileRunResult;
    if (onDuration) {
      const t0 = performance.now();
      result = picker.pick(request, scored);
      onDuration(EXTENSION_POINT.picker, picker.type, picker.name, elapsedSeconds(t0));
    } else {
      result = picker.pick(request, scored);
    }
    return result.targetEndpoints.length === 0 ? null : result;
  }
}
