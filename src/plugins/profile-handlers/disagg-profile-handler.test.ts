import assert from "node:assert/strict";
import { test } from "node:test";
import type { PluginHandle, SchedulerProfile } from "../../framework/plugin.js";
import {
  DISAGG_DECISION,
  type Endpoint,
  emptyMetrics,
  type InferenceRequest,
  PEER_ENDPOINT,
  PREFIX_CACHE_MATCH_INFO,
  type ProfileRunResult,
  TOKENIZED_PROMPT,
} from "../../framework/types.js";
import { alwaysDisaggPdDeciderFactory } from "../deciders/always-disagg-pd-decider.js";
import { prefixBasedPdDeciderFactory } from "../deciders/prefix-based-pd-decider.js";
import {
  DisaggProfileHandler,
  disaggProfileHandlerFactory,
  pdProfileHandlerFactory,
} from "./disagg-profile-handler.js";

const ep = (name: string, port: number): Endpoint => ({
  metadata: {
    id: name,
    name,
    namespace: "default",
    address: "10.0.0.1",
    port,
    hostPort: `10.0.0.1:${port}`,
    labels: {},
  },
  metrics: emptyMetrics(),
  models: new Set(["m"]),
  attributes: new Map(),
});
const req = (tokens: number, headers: Record<string, string> = {}): InferenceRequest => {
  const r: InferenceRequest = {
    requestId: "r",
    incomingModel: "m",
    targetModel: "m",
    path: "/v1/completions",
    body: {},
    headers,
    objectives: { priority: 0 },
    fairnessId: "default-flow",
    requestSizeBytes: 0,
    attributes: new Map(),
  };
  r.attributes.set(TOKENIZED_PROMPT, { tokenIds: new Uint32Array(tokens), source: "estimate" });
  return r;
};
const profile = (name: string): SchedulerProfile => ({
  name,
  filters: [],
  scorers: [],
  picker: undefined as never,
});
const profiles = new Map([
  ["decode", profile("decode")],
  ["prefill", profile("prefill")],
]);
const result = (e: Endpoint): ProfileRunResult => ({
  targetEndpoints: [e],
  scoredCandidates: [{ endpoint: e, score: 1 }],
});

function handle(plugins: Record<string, unknown>): PluginHandle {
  return {
    plugin: (n) => plugins[n] as never,
    addPlugin: () => {},
    allPlugins: () => Object.values(plugins) as never,
  };
}

test("prefix-based-pd-decider: disaggregates iff the non-cached part ≥ nonCachedTokens", () => {
  const d = prefixBasedPdDeciderFactory("d", { nonCachedTokens: 100 }, handle({})) as unknown as {
    disaggregate(r: InferenceRequest, e: Endpoint): boolean;
  };
  const decode = ep("d0", 8000);
  const key = PREFIX_CACHE_MATCH_INFO + "approx-prefix-cache-producer";
  const cases: [prompt: number, matchBlocks: number, expect: boolean][] = [
    [99, 0, false], // prompt shorter than nonCachedTokens
    [100, 0, true],
    [300, 3, true], // 300 − 3·64 = 108
    [300, 4, false], // 300 − 256 = 44
  ];
  for (const [prompt, matchBlocks, expect] of cases) {
    decode.attributes.set(key, { matchBlocks, totalBlocks: 5, blockSizeTokens: 64 });
    assert.equal(d.disaggregate(req(prompt), decode), expect, `prompt ${prompt}, ${matchBlocks} blocks`);
  }
  decode.attributes.delete(key);
  assert.equal(d.disaggregate(req(1000), decode), false, "missing match info → decode only");
  const off = prefixBasedPdDeciderFactory("off", {}, handle({})) as unknown as {
    disaggregate(r: InferenceRequest, e: Endpoint): boolean;
  };
  decode.attributes.set(key, { matchBlocks: 0, totalBlocks: 5, blockSizeTokens: 64 });
  assert.equal(off.disaggregate(req(1000), decode), false, "nonCachedTokens 0 disables P/D");
  assert.throws(
    () => prefixBasedPdDeciderFactory("x", { nonCachedTokens: 1, bogus: 1 }, handle({})),
    /bogus: unknown field/,
  );
});

test("decode-first: decode, then prefill when the decider approves; decode is primary; header set", () => {
  const always = alwaysDisaggPdDeciderFactory("always", undefined, handle({}));
  const h = disaggProfileHandlerFactory(
    "pd",
    { deciders: { prefill: "always" } },
    handle({ always }),
  ) as DisaggProfileHandler;
  const r = req(10, { "x-prefiller-host-port": "6.6.6.6:1" });
  const results: Record<string, ProfileRunResult | null> = {};
  assert.deepEqual(
    h.pickProfiles(r, profiles, results).map((p) => p.name),
    ["decode"],
  );
  const d0 = ep("d0", 8000);
  results.decode = result(d0);
  assert.deepEqual(
    h.pickProfiles(r, profiles, results).map((p) => p.name),
    ["prefill"],
  );
  assert.equal(r.attributes.get(PEER_ENDPOINT), d0);
  const p0 = ep("p0", 8001);
  results.prefill = result(p0);
  assert.deepEqual(h.pickProfiles(r, profiles, results), []);
  const sr = h.processResults(r, results);
  assert.equal(sr.primaryProfileName, "decode");
  assert.deepEqual(r.attributes.get(DISAGG_DECISION), {
    decisionType: "prefill-decode",
    pluginName: "pd",
    pluginType: "disagg-profile-handler",
  });
  h.preRequest(r, sr);
  assert.equal(r.headers["x-prefiller-host-port"], "10.0.0.1:8001", "stale client value replaced");
});

test("no decider → decode only, and a stale prefiller header is removed", () => {
  const h = disaggProfileHandlerFactory("pd", {}, handle({})) as DisaggProfileHandler;
  const r = req(5000, { "x-prefiller-host-port": "6.6.6.6:1" });
  const results: Record<string, ProfileRunResult | null> = { decode: result(ep("d0", 8000)) };
  assert.deepEqual(h.pickProfiles(r, profiles, results), []);
  const sr = h.processResults(r, results);
  assert.equal((r.attributes.get(DISAGG_DECISION) as { decisionType: string }).decisionType, "decode-only");
  h.preRequest(r, sr);
  assert.equal(r.headers["x-prefiller-host-port"], undefined);
});

test("a failed prefill profile degrades to decode-only; a failed decode profile fails", () => {
  const always = alwaysDisaggPdDeciderFactory("always", undefined, handle({}));
  const h = disaggProfileHandlerFactory(
    "pd",
    { deciders: { prefill: "always" } },
    handle({ always }),
  ) as DisaggProfileHandler;
  const r = req(10);
  const sr = h.processResults(r, { decode: result(ep("d0", 8000)), prefill: null });
  assert.equal(sr.primaryProfileName, "decode");
  assert.equal((r.attributes.get(DISAGG_DECISION) as { decisionType: string }).decisionType, "decode-only");
  assert.throws(() => h.processResults(req(1), { decode: null }), /decode profile/);
});

test("prefill-first runs prefill then decode; a decider is refused there; bad refs are named", () => {
  const h = disaggProfileHandlerFactory(
    "pd",
    { stageOrder: "prefill-first" },
    handle({}),
  ) as DisaggProfileHandler;
  const r = req(10);
  assert.deepEqual(
    h.pickProfiles(r, profiles, {}).map((p) => p.name),
    ["prefill"],
  );
  assert.deepEqual(
    h.pickProfiles(r, profiles, { prefill: result(ep("p", 1)) }).map((p) => p.name),
    ["decode"],
  );
  const always = alwaysDisaggPdDeciderFactory("always", undefined, handle({}));
  assert.throws(
    () =>
      disaggProfileHandlerFactory(
        "pd",
        { stageOrder: "prefill-first", deciders: { prefill: "always" } },
        handle({ always }),
      ),
    /deciders\.prefill: a prefill decider is not allowed/,
  );
  assert.throws(
    () => disaggProfileHandlerFactory("pd", { deciders: { prefill: "nope" } }, handle({})),
    /deciders\.prefill: undefined plugin "nope"/,
  );
  assert.throws(
    () =>
      disaggProfileHandlerFactory(
        "pd",
        { deciders: { prefill: "x" } },
        handle({ x: { type: "t", name: "x" } }),
      ),
    /not a P\/D decider/,
  );
});

test("pd-profile-handler (deprecated) maps its flat parameters; threshold 0 = always P/D", () => {
  const h = pdProfileHandlerFactory("pd", {}, handle({})) as DisaggProfileHandler;
  assert.equal(h.type, "pd-profile-handler");
  const r = req(1);
  const results: Record<string, ProfileRunResult | null> = { decode: result(ep("d0", 8000)) };
  assert.deepEqual(
    h.pickProfiles(r, profiles, results).map((p) => p.name),
    ["prefill"],
  );
});
