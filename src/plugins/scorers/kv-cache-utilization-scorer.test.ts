import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { emptyMetrics, type Endpoint, type InferenceRequest } from "../../framework/types.js";
import { KvCacheUtilizationScorer, kvCacheUtilizationScorerFactory } from "./kv-cache-utilization-scorer.js";

const ep = (id: string, kv: number): Endpoint => ({
  metadata: {
    id,
    name: id,
    namespace: "default",
    address: "10.0.0.1",
    port: 8000,
    hostPort: "10.0.0.1:8000",
    labels: {},
  },
  metrics: { ...emptyMetrics(), kvCacheUsagePercent: kv },
  models: new Set(),
  attributes: new Map(),
});
const req = {} as InferenceRequest;
const handle = { plugin: () => undefined, addPlugin: () => {}, allPlugins: () => [] };

describe("kv-cache-utilization-scorer", () => {
  const cases = [
    { kv: 0, want: 1 },
    { kv: 0.25, want: 0.75 },
    { kv: 0.9, want: 1 - 0.9 },
    { kv: 1, want: 0 },
  ];
  it("scores 1 − usage", () => {
    const eps = cases.map((c, i) => ep(`e${i}`, c.kv));
    const scores = new KvCacheUtilizationScorer().score(req, eps);
    for (const [i, c] of cases.entries()) assert.equal(scores.get(eps[i]!), c.want, `kv=${c.kv}`);
  });
  it("factory rejects unknown parameters", () => {
    assert.throws(
      () => kvCacheUtilizationScorerFactory("k", { threshold: 1 }, handle),
      /threshold: unknown field/,
    );
    assert.equal(kvCacheUtilizationScorerFactory("k", {}, handle).name, "k");
  });
});
