import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { emptyMetrics, type Endpoint, type InferenceRequest } from "../../framework/types.js";
import { type ByLabelFilter, byLabelFilterFactory } from "./by-label-filter.js";

const ep = (id: string, labels: Record<string, string>): Endpoint => ({
  metadata: {
    id,
    name: id,
    namespace: "default",
    address: "10.0.0.1",
    port: 8000,
    hostPort: "10.0.0.1:8000",
    labels,
  },
  metrics: emptyMetrics(),
  models: new Set(),
  attributes: new Map(),
});
const req = {} as InferenceRequest;
const handle = { plugin: () => undefined, addPlugin: () => {}, allPlugins: () => [] };
const fleet = [ep("a", { "gpu.type": "a100" }), ep("h", { "gpu.type": "h100" }), ep("none", {})];

describe("by-label", () => {
  const cases: { name: string; params: unknown; want: string[] }[] = [
    { name: "valid values only", params: { label: "gpu.type", validValues: ["a100"] }, want: ["a"] },
    {
      name: "allowsNoLabel keeps unlabelled",
      params: { label: "gpu.type", validValues: ["h100"], allowsNoLabel: true },
      want: ["h", "none"],
    },
    { name: "only unlabelled", params: { label: "gpu.type", allowsNoLabel: true }, want: ["none"] },
    {
      name: "several values",
      params: { label: "gpu.type", validValues: ["a100", "h100"] },
      want: ["a", "h"],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const f = byLabelFilterFactory("f", c.params, handle) as ByLabelFilter;
      assert.equal(f.type, "by-label");
      assert.deepEqual(
        f.filter(req, fleet).map((e) => e.metadata.id),
        c.want,
      );
    });
  }
  it("rejects bad parameters naming the field", () => {
    assert.throws(() => byLabelFilterFactory("f", undefined, handle), /label: required field missing/);
    assert.throws(() => byLabelFilterFactory("f", { label: "x" }, handle), /validValues: must be non-empty/);
    assert.throws(() => byLabelFilterFactory("f", { label: "x", validValues: "a" }, handle), /validValues: /);
    assert.throws(
      () => byLabelFilterFactory("f", { label: "x", validValues: ["a"], foo: 1 }, handle),
      /foo: unknown field/,
    );
  });
});
