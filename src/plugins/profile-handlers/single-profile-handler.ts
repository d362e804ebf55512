/**
 * `single-profile-handler` — runs the only scheduling profile; it is the primary profile.
 *
 * `pickProfiles` returns every configured profile (exactly one, enforced by the loader) on
 * the first call and nothing once a result exists. `processResults` requires exactly one
 * result and throws an `EppError` (`ResourceExhausted`, `rejected-saturated`) when that
 * profile failed.
 *
 * Parameters: none.
 *
 * Source: reference/epp.md §3.1, §2.2 (llm-d-router `framework/plugins/scheduling/profilehandler/single`).
 */
import { z } from "zod";
import { decodeParams } from "../../framework/config/params.js";
import { EppError } from "../../framework/errors.js";
import type { PluginFactory, ProfileHandler, SchedulerProfile } from "../../framework/plugin.js";
import type { InferenceRequest, ProfileRunResult, SchedulingResult } from "../../framework/types.js";

export const SINGLE_PROFILE_HANDLER_TYPE = "single-profile-handler";

const NONE: SchedulerProfile[] = [];

/** Runs the single profile once. */
export class SingleProfileHandler implements ProfileHandler {
  readonly type = SINGLE_PROFILE_HANDLER_TYPE;
  private cachedFor: ReadonlyMap<string, SchedulerProfile> | undefined;
  private cached: SchedulerProfile[] = NONE;
  constructor(readonly name: string = SINGLE_PROFILE_HANDLER_TYPE) {}

  pickProfiles(
    _request: InferenceRequest,
    profiles: ReadonlyMap<string, SchedulerProfile>,
    results: Readonly<Record<string, ProfileRunResult | null>>,
  ): SchedulerProfile[] {
    for (const _ in results) return NONE;
    if (this.cachedFor !== profiles) {
      this.cachedFor = profiles;
      this.cached = [...profiles.values()];
    }
    return this.cached;
  }

  processResults(
    _request: InferenceRequest,
    results: Record<string, ProfileRunResult | null>,
  ): SchedulingResult {
    const names = Object.keys(results);
    if (names.length !== 1) {
      throw new EppError(
        "Internal",
        `single profile handler expects exactly one profile result, got ${names.length}`,
      );
    }
    const primary = names[0]!;
    if (results[primary] == null) {
      throw new EppError(
        "ResourceExhausted",
        `failed to run scheduler profile '${primary}'`,
        "rejected-saturated",
      );
    }
    return { profileResults: results, primaryProfileName: primary };
  }
}

/** Factory: no parameters. @throws ParamsError on any parameter. */
export const singleProfileHandlerFactory: PluginFactory = (name, params) => {
  decodeParams(z.object({}).strict(), params);
  return new SingleProfileHandler(name);
};
