import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { emptyMetrics, type Endpoint, type InferenceRequest } from "../../framework/types.js";
import { DecodeFilter, decodeFilterFactory } from "./decode-filter.js";

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

describe("decode-filter", () => {
  const cases: { role: string | undefined; keep: boolean }[] = [
    { role: "decode", keep: true },
    { role: "prefill-decode", keep: true },
    { role: "both", keep: true },
    { role: "encode-prefill-decode", keep: true },
    { role: undefined, keep: true },
    { role: "prefill", keep: false },
    { role: "encode", keep: false },
    { role: "encode-prefill", keep: false },
    { role: "Decode", keep: false },
    { role: "", keep: false },
  ];
  for (const c of cases) {
    it(`role ${JSON.stringify(c.role)} → ${c.keep ? "kept" : "dropped"}`, () => {
      const e = ep("e", c.role);
      assert.deepEqual(new DecodeFilter().filter(req, [e]), c.keep ? [e] : []);
    });
  }
  it("keeps order and does not modify the input", () => {
    const eps = [ep("a", "decode"), ep("b", "prefill"), ep("c")];
    const input = [...eps];
    assert.deepEqual(
      new DecodeFilter().filter(req, input).map((e) => e.metadata.id),
      ["a", "c"],
    );
    assert.deepEqual(input, eps);
  });
  it("factory takes no parameters", () => {
    assert.equal(decodeFilterFactory("d", undefined, handle).name, "d");
    assert.throws(() => decodeFilterFactory("d", { role: "x" }, handle), /role: unknown field/);
  });
});
