import assert from "node:assert/strict";
import { test } from "node:test";
import { type InferenceModelRewrite, PolicyStore } from "./policies.js";
import { poolEndpoints } from "./pool.js";

const rw = (
  name: string,
  created: string,
  rules: NonNullable<InferenceModelRewrite["spec"]>["rules"],
  pool = "pool",
): InferenceModelRewrite => ({
  metadata: { name, creationTimestamp: created },
  spec: { poolRef: { name: pool }, rules },
});

test("objectives: priority, unset priority, other pools ignored", () => {
  const s = new PolicyStore("pool");
  s.replaceObjectives([
    { metadata: { name: "hi" }, spec: { priority: 10, poolRef: { name: "pool" } } },
    { metadata: { name: "unset" }, spec: { poolRef: { name: "pool" } } },
    { metadata: { name: "shed" }, spec: { priority: -5, poolRef: { name: "pool" } } },
    { metadata: { name: "x" }, spec: { priority: 3, poolRef: { name: "other" } } },
  ]);
  assert.deepEqual(s.objective("hi"), { priority: 10 });
  assert.deepEqual(s.objective("unset"), {});
  assert.deepEqual(s.objective("shed"), { priority: -5 });
  assert.equal(s.objective("x"), undefined);
  assert.deepEqual(s.objectiveNames(), ["hi", "shed", "unset"]);
});

test("rewrites: exact beats catch-all even in a newer object", () => {
  const s = new PolicyStore("pool", () => 0);
  s.replaceRewrites([
    rw("old-catch-all", "2026-01-01T00:00:00Z", [{ matches: [], targets: [{ modelRewrite: "fallback" }] }]),
    rw("new-exact", "2026-06-01T00:00:00Z", [
      { matches: [{ model: { value: "llama" } }], targets: [{ modelRewrite: "llama-v2" }] },
    ]),
  ]);
  assert.equal(s.rewriteModel("llama"), "llama-v2");
  assert.equal(s.rewriteModel("other"), "fallback");
});

test("rewrites: ties → oldest object; first matching rule inside an object; other pools ignored", () => {
  const s = new PolicyStore("pool", () => 0);
  s.replaceRewrites([
    rw("newer", "2026-03-01T00:00:00Z", [
      { matches: [{ model: { type: "Exact", value: "m" } }], targets: [{ modelRewrite: "from-newer" }] },
    ]),
    rw("older", "2026-02-01T00:00:00Z", [
      { matches: [{ model: { value: "m" } }], targets: [{ modelRewrite: "first-rule" }] },
      { matches: [{ model: { value: "m" } }], targets: [{ modelRewrite: "second-rule" }] },
    ]),
    rw(
      "elsewhere",
      "2020-01-01T00:00:00Z",
      [{ matches: [{ model: { value: "m" } }], targets: [{ modelRewrite: "wrong-pool" }] }],
      "other",
    ),
  ]);
  assert.equal(s.rewriteModel("m"), "first-rule");
  s.deleteRewrite({ metadata: { name: "older" } });
  assert.equal(s.rewriteModel("m"), "from-newer");
});

test("rewrites: weighted draw (weights 3:1) and uniform when all weights unset", () => {
  let r = 0;
  const s = new PolicyStore("pool", () => r);
  s.replaceRewrites([
    rw("w", "2026-01-01T00:00:00Z", [
      {
        matches: [{ model: { value: "a" } }],
        targets: [
          { modelRewrite: "a1", weight: 3 },
          { modelRewrite: "a2", weight: 1 },
        ],
      },
      { matches: [{ model: { value: "b" } }], targets: [{ modelRewrite: "b1" }, { modelRewrite: "b2" }] },
    ]),
  ]);
  const draw = (model: string, x: number) => {
    r = x;
    return s.rewriteModel(model);
  };
  assert.equal(draw("a", 0), "a1");
  assert.equal(draw("a", 0.74), "a1"); // 0.74 × 4 = 2.96 < 3
  assert.equal(draw("a", 0.75), "a2"); // 3.0 ≥ 3
  assert.equal(draw("b", 0.49), "b1");
  assert.equal(draw("b", 0.5), "b2");
  assert.equal(draw("zzz", 0.5), undefined);
});

test("poolEndpoints: ready + selector, one endpoint per target port with rank ids", () => {
  const pool = {
    metadata: { name: "p", namespace: "ns" },
    spec: { selector: { matchLabels: { app: "v" } }, targetPorts: [{ number: 8000 }, { number: 8001 }] },
  };
  const ready = [{ type: "Ready", status: "True" }];
  const eps = poolEndpoints(pool, [
    {
      metadata: { name: "a", labels: { app: "v", "llm-d.ai/role": "decode" } },
      status: { podIP: "10.0.0.1", conditions: ready },
    },
    {
      metadata: { name: "b", labels: { app: "v" } },
      status: { podIP: "10.0.0.2", conditions: [{ type: "Ready", status: "False" }] },
    },
    { metadata: { name: "c", labels: { app: "w" } }, status: { podIP: "10.0.0.3", conditions: ready } },
    {
      metadata: { name: "d", labels: { app: "v" }, deletionTimestamp: "now" },
      status: { podIP: "10.0.0.4", conditions: ready },
    },
    { metadata: { name: "e", labels: { app: "v" } }, status: { conditions: ready } },
  ]);
  assert.deepEqual(
    eps.map((e) => [e.id, e.name, e.hostPort, e.labels["llm-d.ai/role"]]),
    [
      ["ns/a-rank-0", "a-rank-0", "10.0.0.1:8000", "decode"],
      ["ns/a-rank-1", "a-rank-1", "10.0.0.1:8001", "decode"],
    ],
  );
  const single = poolEndpoints({ ...pool, spec: { ...pool.spec, targetPorts: [{ number: 8000 }] } }, [
    { metadata: { name: "a", labels: { app: "v" } }, status: { podIP: "10.0.0.1", conditions: ready } },
  ]);
  assert.deepEqual(
    single.map((e) => e.id),
    ["ns/a"],
  );
  assert.deepEqual(poolEndpoints(undefined, []), []);
});
