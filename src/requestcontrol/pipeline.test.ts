import assert from "node:assert/strict";
import { test } from "node:test";
import { ApiError, modelNotFound } from "../api/errors.js";
import { EndpointStore } from "../datalayer/store.js";
import { EppError } from "../framework/errors.js";
import type { ResponseInfo } from "../framework/plugin.js";
import type { Endpoint, InferenceRequest } from "../framework/types.js";
import { createEppMetrics } from "../metrics/epp.js";
import {
  errorToResponse,
  hintIp,
  type PipelineRuntime,
  prepareRequest,
  resolveApiKind,
  trackResponse,
} from "./pipeline.js";
import { buildInferenceRequest } from "./request.js";

test("resolveApiKind: exact paths, longest suffix, query ignored, unknown → 400", () => {
  assert.equal(resolveApiKind("/v1/chat/completions"), "chat");
  assert.equal(resolveApiKind("/v1/completions?x=1"), "completions");
  assert.equal(resolveApiKind("/openai/v1/chat/completions"), "chat");
  assert.throws(
    () => resolveApiKind("/v1/embeddings"),
    (e: EppError) => e.status === 400,
  );
});

test("hintIp: ip:port, bare ip, bracketed IPv6", () => {
  assert.equal(hintIp("10.0.0.1:8000"), "10.0.0.1");
  assert.equal(hintIp("10.0.0.1"), "10.0.0.1");
  assert.equal(hintIp("[fd00::1]:8000"), "fd00::1");
});

test("errorToResponse: EppError, ApiError, unknown; text and openai formats", () => {
  const e = errorToResponse(new EppError("ResourceExhausted", "saturated", "rejected-saturated"));
  assert.deepEqual(e, {
    status: 429,
    code: "ResourceExhausted",
    body: "inference error: ResourceExhausted - saturated",
    headers: { "x-llm-d-request-dropped-reason": "rejected-saturated", "content-type": "text/plain" },
  });
  const nf = errorToResponse(modelNotFound("x"));
  assert.equal(nf.status, 404);
  assert.equal(nf.body, "inference error: NotFound - The model `x` does not exist.");
  const oa = errorToResponse(modelNotFound("x"), "openai");
  assert.equal(JSON.parse(oa.body).error.code, "model_not_found");
  assert.equal(errorToResponse(new ApiError(413, "too big")).status, 413);
  const u = errorToResponse(new Error("boom"));
  assert.deepEqual([u.status, u.code, u.body], [500, "Internal", "inference error: Internal - boom"]);
  const oe = JSON.parse(errorToResponse(new EppError("ServiceUnavailable", "none"), "openai").body);
  assert.equal(oe.error.message, "inference error: ServiceUnavailable - none");
});

function setup() {
  const store = new EndpointStore();
  const ep = store.upsert({
    id: "d/a",
    name: "a",
    namespace: "d",
    address: "10.0.0.1",
    port: 8000,
    hostPort: "10.0.0.1:8000",
    labels: {},
  });
  store.markScrapeOk("d/a", Date.now());
  store.setModels("d/a", ["m-v2"]);
  const seen: { request?: InferenceRequest; complete?: ResponseInfo } = {};
  const metrics = createEppMetrics();
  const runtime: PipelineRuntime = {
    metrics,
    buildRequest: (input) => buildInferenceRequest(input),
    director: {
      async handleRequest(request, candidates) {
        seen.request = request;
        return {
          result: {
            primaryProfileName: "p",
            profileResults: { p: { targetEndpoints: candidates, scoredCandidates: [] } },
          },
          targets: candidates as Endpoint[],
        };
      },
      responseReceived() {},
      responseStreaming() {},
      responseComplete(_r, info) {
        seen.complete = { ...info };
      },
    },
  };
  return { store, ep, runtime, metrics, seen };
}

test("prepareRequest: CRD rewrite → target model, body re-marshalled; objective priority from policies", async () => {
  const { store, runtime, seen } = setup();
  const raw = Buffer.from(JSON.stringify({ model: "m", prompt: "hi" }));
  const prep = await prepareRequest(runtime, store, {
    path: "/v1/completions",
    rawBody: raw,
    headers: { "x-llm-d-inference-objective": "gold" },
    newRequestId: () => "rid",
    policies: {
      objective: (n) => (n === "gold" ? { priority: 7 } : undefined),
      rewriteModel: (m) => (m === "m" ? "m-v2" : undefined),
    },
  });
  assert.equal(prep.request.requestId, "rid");
  assert.equal(prep.request.headers["x-request-id"], "rid");
  assert.equal(prep.request.targetModel, "m-v2");
  assert.equal(prep.request.objectives.priority, 7);
  assert.deepEqual(JSON.parse(prep.body.toString()), { model: "m-v2", prompt: "hi" });
  assert.equal(prep.destination, "10.0.0.1:8000");
  assert.equal(seen.request, prep.request);
});

test("prepareRequest: original bytes forwarded unchanged without a rewrite; errors counted", async () => {
  const { store, runtime, metrics } = setup();
  const raw = Buffer.from('{ "model" : "m-v2", "prompt": "hi" }');
  const prep = await prepareRequest(runtime, store, { path: "/v1/completions", rawBody: raw, headers: {} });
  assert.equal(prep.body, raw);
  await assert.rejects(
    prepareRequest(runtime, store, {
      path: "/v1/completions",
      rawBody: Buffer.from('{"model":"zz","prompt":"x"}'),
      headers: {},
    }),
    (e: ApiError) => e.status === 404,
  );
  await assert.rejects(
    prepareRequest(runtime, store, {
      path: "/v1/completions",
      rawBody: raw,
      headers: {},
      subsetHint: ["10.9.9.9:1"],
    }),
    (e: EppError) => e.status === 503 && e.dropReason === "rejected-no-endpoints",
  );
  const text = await metrics.metricsText();
  assert.match(text, /llm_d_epp_request_error_total\{[^}]*error_code="NotFound"[^}]*\} 1\n/);
  assert.match(text, /llm_d_epp_request_error_total\{[^}]*error_code="ServiceUnavailable"[^}]*\} 1\n/);
});

test("trackResponse: usage, hooks once, running gauge back to 0", async () => {
  const { store, runtime, ep, seen, metrics } = setup();
  const prep = await prepareRequest(runtime, store, {
    path: "/v1/completions",
    rawBody: Buffer.from('{"model":"m-v2","prompt":"hi"}'),
    headers: {},
  });
  const t = trackResponse(runtime, prep);
  t.received(200, ep, false);
  const parts = ['{"usage":{"prompt_tokens":3,', '"completion_tokens":5}}'];
  for (const p of parts) t.chunk(Buffer.from(p));
  const bytes = parts.join("").length;
  assert.equal(bytes, 51);
  assert.deepEqual(t.complete(), { promptTokens: 3, completionTokens: 5, cachedTokens: 0 });
  t.terminate("client-disconnect");
  assert.equal(seen.complete?.terminationCause, undefined);
  assert.equal(seen.complete?.endOfStream, true);
  const text = await metrics.metricsText();
  assert.match(text, /llm_d_epp_request_running\{[^}]*\} 0\n/);
  assert.match(text, new RegExp(`llm_d_epp_response_size_bytes_sum\\{[^}]*\\} ${bytes}\n`));
});
