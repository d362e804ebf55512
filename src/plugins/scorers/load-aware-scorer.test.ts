import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { emptyMetrics, type Endpoint, type InferenceRequest } from "../../framework/types.js";
import { type LoadAwareScorer, loadAwareScore, loadAwareScorerFactory } from "./load-aware-scorer.js";

const ep = (id: string, waiting: number): Endpoint => ({
  metadata: {
    id,
    name: id,
    namespace: "default",
    address: "10.0.0.1",
    port: 8000,
    hostPort: "10.0.0.1:8000",
    labels: {},
  },
  metrics: { ...emptyMetrics(), waitingQueueSize: waiting },
  models: new Set(),
  attributes: new Map(),
});
const req = {} as InferenceRequest;
const handle = { plugin: () => undefined, addPlugin: () => {}, allPlugins: () => [] };

describe("load-aware-scorer", () => {
  const cases: { q: number; threshold: number; want: number }[] = [
    { q: 0, threshold: 128, want: 0.5 },
    { q: 64, threshold: 128, want: 0.25 },
    { q: 32, threshold: 128, want: 0.375 },
    { q: 127, threshold: 128, want: 0.5 * (1 - 127 / 128) },
    { q: 128, threshold: 128, want: 0 },
    { q: 500, threshold: 128, want: 0 },
    { q: 5, threshold: 10, want: 0.25 },
  ];
  for (const c of cases) {
    it(`q=${c.q} threshold=${c.threshold} → ${c.want}`, () => {
      assert.equal(loadAwareScore(c.q, c.threshold), c.want);
      const s = loadAwareScorerFactory("l", { threshold: c.threshold }, handle) as LoadAwareScorer;
      const e = ep("e", c.q);
      assert.equal(s.score(req, [e]).get(e), c.want);
    });
  }
  it("threshold defaults to 128", () => {
    const s = loadAwareScorerFactory("l", undefined, handle) as LoadAwareScorer;
    assert.equal(s.threshold, 128);
  });
  it("rejects bad parameters", () => {
    assert.throws(() => loadAwareScorerFactory("l", { threshold: 0 }, handle), /^.*threshold: /);
    assert.throws(() => loadAwareScorerFactory("l", { threshold: "x" }, handle), /threshold: /);
    assert.throws(() => loadAwareScorerFactory("l", { threshold: 1.5 }, handle), /threshold: /);
    assert.throws(() => loadAwareScorerFactory("l", { treshold: 5 }, handle), /treshold: unknown field/);
  });
});
