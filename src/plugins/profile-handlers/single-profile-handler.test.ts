import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { EppError } from "../../framework/errors.js";
import type { SchedulerProfile } from "../../framework/plugin.js";
import type { InferenceRequest, ProfileRunResult } from "../../framework/types.js";
import { SingleProfileHandler, singleProfileHandlerFactory } from "./single-profile-handler.js";

const req = {} as InferenceRequest;
const handle = { plugin: () => undefined, addPlugin: () => {}, allPlugins: () => [] };
const profile = { name: "default", filters: [], scorers: [], picker: {} } as unknown as SchedulerProfile;
const profiles = new Map([["default", profile]]);
const ok: ProfileRunResult = { targetEndpoints: [], scoredCandidates: [] };

describe("single-profile-handler", () => {
  it("picks the profile once, then nothing", () => {
    const h = new SingleProfileHandler();
    assert.deepEqual(h.pickProfiles(req, profiles, {}), [profile]);
    assert.deepEqual(h.pickProfiles(req, profiles, { default: ok }), []);
    assert.deepEqual(h.pickProfiles(req, profiles, { default: null }), []);
  });
  it("the profile is primary", () => {
    const r = new SingleProfileHandler().processResults(req, { default: ok });
    assert.equal(r.primaryProfileName, "default");
    assert.equal(r.profileResults.default, ok);
  });
  it("a failed profile is a 429 rejected-saturated", () => {
    assert.throws(
      () => new SingleProfileHandler().processResults(req, { default: null }),
      (e: unknown) => e instanceof EppError && e.status === 429 && e.dropReason === "rejected-saturated",
    );
  });
  it("more than one result is an error", () => {
    assert.throws(() => new SingleProfileHandler().processResults(req, { a: ok, b: ok }), EppError);
  });
  it("factory takes no parameters", () => {
    assert.equal(singleProfileHandlerFactory("h", undefined, handle).name, "h");
    assert.throws(() => singleProfileHandlerFactory("h", { x: 1 }, handle), /x: unknown field/);
  });
});
