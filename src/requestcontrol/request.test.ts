import assert from "node:assert/strict";
import { test } from "node:test";
import { EppError } from "../framework/errors.js";
import { buildInferenceRequest, DEFAULT_FAIRNESS_ID, OBJECTIVE_ATTRIBUTE } from "./request.js";

const base = { requestId: "id", path: "/v1/completions", requestSizeBytes: 10 };

test("defaults: target = incoming model, priority 0, fairness default-flow", () => {
  const r = buildInferenceRequest({ ...base, body: { model: "m", prompt: "x" }, headers: {} });
  assert.equal(r.incomingModel, "m");
  assert.equal(r.targetModel, "m");
  assert.equal(r.objectives.priority, 0);
  assert.equal(r.fairnessId, DEFAULT_FAIRNESS_ID);
  assert.equal(r.requestSizeBytes, 10);
  assert.equal(r.attributes.size, 0);
});

test("headers: current names win over aliases; names lower-cased", () => {
  const r = buildInferenceRequest(
    {
      ...base,
      body: { model: "m" },
      headers: {
        "X-LLM-D-Model-Name-Rewrite": "t1",
        "x-gateway-model-name-rewrite": "t2",
        "x-gateway-inference-fairness-id": "tenant",
        "x-gateway-inference-objective": "gold",
      },
    },
    (name) => (name === "gold" ? { priority: 5 } : undefined),
  );
  assert.equal(r.targetModel, "t1");
  assert.equal(r.fairnessId, "tenant");
  assert.equal(r.objectives.priority, 5);
  assert.equal(r.attributes.get(OBJECTIVE_ATTRIBUTE), "gold");
  assert.equal(r.headers["x-llm-d-model-name-rewrite"], "t1");
});

test("unknown objective or unset priority → 0", () => {
  const h = { "x-llm-d-inference-objective": "x" };
  assert.equal(buildInferenceRequest({ ...base, body: { model: "m" }, headers: h }).objectives.priority, 0);
  assert.equal(
    buildInferenceRequest({ ...base, body: { model: "m" }, headers: h }, () => ({})).objectives.priority,
    0,
  );
});

test("missing model → 400", () => {
  assert.throws(
    () => buildInferenceRequest({ ...base, body: { prompt: "x" }, headers: {} }),
    (e: unknown) =>
      e instanceof EppError && e.status === 400 && /model not found in request body/.test(e.message),
  );
});
