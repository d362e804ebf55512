import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { emptyMetrics, type Endpoint, type InferenceRequest } from "../../framework/types.js";
import { byLabelSelectorFilterFactory, labelSelectorFilterFactory } from "./label-selector-filter.js";

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

const fleet = [
  ep("a100-decode", { gpu: "a100", role: "decode" }),
  ep("h100-decode", { gpu: "h100", role: "decode" }),
  ep("h100-prefill", { gpu: "h100", role: "prefill" }),
  ep("unlabelled", {}),
];

describe("label-selector-filter", () => {
  const cases: { name: string; params: unknown; want: string[] }[] = [
    { name: "empty selector keeps all", params: undefined, want: fleet.map((e) => e.metadata.id) },
    {
      name: "matchLabels single",
      params: { matchLabels: { gpu: "h100" } },
      want: ["h100-decode", "h100-prefill"],
    },
    {
      name: "matchLabels AND",
      params: { matchLabels: { gpu: "h100", role: "decode" } },
      want: ["h100-decode"],
    },
    {
      name: "In",
      params: { matchExpressions: [{ key: "gpu", operator: "In", values: ["a100", "h100"] }] },
      want: ["a100-decode", "h100-decode", "h100-prefill"],
    },
    {
      name: "NotIn keeps unlabelled",
      params: { matchExpressions: [{ key: "gpu", operator: "NotIn", values: ["a100"] }] },
      want: ["h100-decode", "h100-prefill", "unlabelled"],
    },
    {
      name: "Exists",
      params: { matchExpressions: [{ key: "role", operator: "Exists" }] },
      want: ["a100-decode", "h100-decode", "h100-prefill"],
    },
    {
      name: "DoesNotExist",
      params: { matchExpressions: [{ key: "role", operator: "DoesNotExist" }] },
      want: ["unlabelled"],
    },
    {
      name: "matchLabels AND matchExpressions",
      params: {
        matchLabels: { role: "decode" },
        matchExpressions: [{ key: "gpu", operator: "NotIn", values: ["a100"] }],
      },
      want: ["h100-decode"],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const f = labelSelectorFilterFactory("f", c.params, handle);
      assert.ok("filter" in f);
      assert.deepEqual(
        (f as { filter: (r: InferenceRequest, e: Endpoint[]) => Endpoint[] })
          .filter(req, fleet)
          .map((e) => e.metadata.id),
        c.want,
      );
    });
  }
  it("rejects bad selectors naming the field", () => {
    assert.throws(
      () => labelSelectorFilterFactory("f", { matchLabel: { a: "b" } }, handle),
      /matchLabel: unknown field/,
    );
    assert.throws(
      () =>
        labelSelectorFilterFactory(
          "f",
          { matchExpressions: [{ key: "a", operator: "Equals", values: ["x"] }] },
          handle,
        ),
      /matchExpressions\[0\]\.operator/,
    );
    assert.throws(
      () => labelSelectorFilterFactory("f", { matchExpressions: [{ key: "a", operator: "In" }] }, handle),
      /matchExpressions\[0\]\.values: must be non-empty/,
    );
    assert.throws(
      () =>
        labelSelectorFilterFactory(
          "f",
          { matchExpressions: [{ key: "a", operator: "Exists", values: ["x"] }] },
          handle,
        ),
      /matchExpressions\[0\]\.values: must be empty/,
    );
    assert.throws(
      () =>
        labelSelectorFilterFactory(
          "f",
          { matchExpressions: [{ key: "a", operator: "In", values: ["x"], extra: 1 }] },
          handle,
        ),
      /matchExpressions\[0\]\.extra: unknown field/,
    );
  });
  it("deprecated by-label-selector has the same semantics under its own type", () => {
    const f = byLabelSelectorFilterFactory("old", { matchLabels: { gpu: "a100" } }, handle) as unknown as {
      type: string;
      filter: (r: InferenceRequest, e: Endpoint[]) => Endpoint[];
    };
    assert.equal(f.type, "by-label-selector");
    assert.deepEqual(
      f.filter(req, fleet).map((e) => e.metadata.id),
      ["a100-decode"],
    );
  });
});
