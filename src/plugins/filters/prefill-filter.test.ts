import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { emptyMetrics, type Endpoint, type InferenceRequest } from "../../framework/types.js";
import { PrefillFilter, prefillFilterFactory } from "./prefill-filter.js";

const ep = (id: string, role?: string): Endpoint => ({
  metadata: {
    id,
    name: id,
    namespace: "default",
    address: "10.0.0.1",
    port: 8000,
    hostPort: "10.0.0.1:8000",
    labels: role === undefined ? {} : { "llm-d.ai/role": role },
  },
  metrics: emptyMetrics(),
  models: new Set(),
  attributes: new Map(),
});
const req = {} as InferenceRequest;
const handle = { plugin: () => undefined, addPlugin: () => {}, allPlugins: () => [] };

describe("prefill-filter", () => {
  const cases: { role: string | undefined; keep: boolean }[] = [
    { role: "prefill", keep: true },
    { role: "encode-prefill", keep: true },
    { role: "prefill-decode", keep: true },
    { role: "both", keep: true },
    { role: "encode-prefill-decode", keep: true },
    { role: undefined, keep: false },
    { role: "decode", keep: false },
    { role: "encode", keep: false },
  ];
  for (const c of cases) {
    it(`role ${JSON.stringify(c.role)} → ${c.keep ? "kept" : "dropped"}`, () => {
      const e = ep("e", c.role);
      assert.deepEqual(new PrefillFilter().filter(req, [e]), c.keep ? [e] : []);
    });
  }
  it("factory takes no parameters", () => {
    assert.equal(prefillFilterFactory("p", {}, handle).type, "prefill-filter");
    assert.throws(() => prefillFilterFactory("p", { a: 1 }, handle), /a: unknown field/);
  });
});
