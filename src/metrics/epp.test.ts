import assert from "node:assert/strict";
import { test } from "node:test";
import { createEppMetrics, LabelCapper } from "./epp.js";
import * as N from "./epp-names.js";

const L = { modelName: "m", targetModelName: "t", fairnessId: "f", priority: 2 };

/** Value of the first sample line starting with `prefix` (name + labels). */
function sample(text: string, prefix: string): number | undefined {
  for (const line of text.split("\n")) {
    if (line.startsWith(prefix)) return Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return undefined;
}

function typeOf(text: string, name: string): string | undefined {
  const m = text.match(new RegExp(`^# TYPE ${name} (\\w+)$`, "m"));
  return m?.[1];
}

test("every canonical name and its deprecated twin are exposed with the right type", async () => {
  const m = createEppMetrics();
  const text = await m.metricsText();
  const expect: [string, string][] = [
    [N.REQUEST_TOTAL, "counter"],
    [N.REQUEST_TOTAL_DEPRECATED, "counter"],
    [N.REQUEST_ERROR_TOTAL, "counter"],
    [N.REQUEST_ERROR_TOTAL_DEPRECATED, "counter"],
    [N.REQUEST_DURATION_SECONDS, "histogram"],
    [N.REQUEST_DURATION_SECONDS_DEPRECATED, "histogram"],
    [N.REQUEST_TTFT_SECONDS, "histogram"],
    [N.REQUEST_STREAMING_ITL_SECONDS, "histogram"],
    [N.REQUEST_INPUT_TOKENS, "histogram"],
    [N.REQUEST_INPUT_TOKENS_DEPRECATED, "histogram"],
    [N.REQUEST_OUTPUT_TOKENS, "histogram"],
    [N.REQUEST_OUTPUT_TOKENS_DEPRECATED, "histogram"],
    [N.REQUEST_CACHED_TOKENS, "histogram"],
    [N.REQUEST_CACHED_TOKENS_DEPRECATED, "histogram"],
    [N.REQUEST_RUNNING, "gauge"],
    [N.REQUEST_RUNNING_DEPRECATED, "gauge"],
    [N.SCHEDULER_E2E_DURATION_SECONDS, "histogram"],
    [N.SCHEDULER_E2E_DURATION_SECONDS_DEPRECATED, "histogram"],
    [N.SCHEDULER_ATTEMPTS_TOTAL, "counter"],
    [N.SCHEDULER_ATTEMPTS_TOTAL_DEPRECATED, "counter"],
    [N.PLUGIN_DURATION_SECONDS, "histogram"],
    [N.PLUGIN_DURATION_SECONDS_DEPRECATED, "histogram"],
    [N.READY_ENDPOINTS, "gauge"],
    [N.READY_ENDPOINTS_DEPRECATED, "gauge"],
    [N.AVERAGE_KV_CACHE_UTILIZATION, "gauge"],
    [N.AVERAGE_KV_CACHE_UTILIZATION_DEPRECATED, "gauge"],
    [N.AVERAGE_QUEUE_SIZE, "gauge"],
    [N.AVERAGE_QUEUE_SIZE_DEPRECATED, "gauge"],
    [N.AVERAGE_RUNNING_REQUESTS, "gauge"],
    [N.AVERAGE_RUNNING_REQUESTS_DEPRECATED, "gauge"],
    [N.PREFIX_INDEXER_SIZE, "gauge"],
    [N.PREFIX_INDEXER_SIZE_DEPRECATED, "gauge"],
    [N.PREFIX_INDEXER_HIT_RATIO, "histogram"],
    [N.PREFIX_INDEXER_HIT_RATIO_DEPRECATED, "histogram"],
    [N.DISAGG_DECISION_TOTAL, "counter"],
    [N.DISAGG_DECISION_TOTAL_DEPRECATED, "counter"],
    [N.INFO, "gauge"],
    [N.INFO_DEPRECATED, "gauge"],
  ];
  for (const [name, type] of expect) assert.equal(typeOf(text, name), type, name);
  // the exact names of the spec (not only our constants)
  assert.equal(N.REQUEST_TOTAL, "llm_d_epp_request_total");
  assert.equal(N.REQUEST_CACHED_TOKENS_DEPRECATED, "inference_objective_prompt_cached_tokens");
  assert.equal(N.READY_ENDPOINTS_DEPRECATED, "inference_pool_ready_pods");
  assert.equal(N.DISAGG_DECISION_TOTAL_DEPRECATED, "llm_d_inference_scheduler_disagg_decision_total");
});

test("dual emission: canonical and deprecated series carry the same value", async () => {
  const m = createEppMetrics();
  m.requestTotal.inc(L);
  m.requestTotal.inc(L);
  m.requestErrorTotal.inc(L, "ResourceExhausted");
  m.requestDuration.observe(L, 0.3);
  m.schedulerE2eDuration.observe(0.0003);
  m.schedulerAttemptsTotal.inc("success", {
    targetModelName: "t",
    endpointName: "s0",
    namespace: "ns",
    port: 8000,
  });
  m.pluginDuration.observe("Scorer", "queue-scorer", "q", 0.00005);
  m.readyEndpoints.set("pool", 3);
  m.disaggDecisionTotal.inc({
    pluginName: "h",
    pluginType: "disagg-profile-handler",
    modelName: "m",
    decisionType: "prefill-decode",
  });
  m.info.set("abc", "v1");
  m.prefixIndexerSize.track("p", "approx-prefix-cache-producer", () => 42);
  m.requestRunning.inc(L);
  const t = await m.metricsText();
  assert.equal(
    sample(t, 'llm_d_epp_request_total{model_name="m",target_model_name="t",fairness_id="f",priority="2"}'),
    2,
  );
  assert.equal(
    sample(t, 'inference_objective_request_total{model_name="m",target_model_name="t",priority="2"}'),
    2,
  );
  assert.equal(
    sample(
      t,
      'llm_d_epp_request_error_total{model_name="m",target_model_name="t",fairness_id="f",priority="2",error_code="ResourceExhausted"}',
    ),
    1,
  );
  assert.equal(
    sample(
      t,
      'inference_objective_request_error_total{model_name="m",target_model_name="t",priority="2",error_code="ResourceExhausted"}',
    ),
    1,
  );
  assert.equal(
    sample(
      t,
      'llm_d_epp_request_duration_seconds_bucket{model_name="m",target_model_name="t",fairness_id="f",priority="2",le="0.4"}',
    ),
    1,
  );
  assert.equal(
    sample(
      t,
      'llm_d_epp_request_duration_seconds_bucket{model_name="m",target_model_name="t",fairness_id="f",priority="2",le="0.2"}',
    ),
    0,
  );
  assert.equal(sample(t, 'inference_objective_request_duration_seconds_count{model_name="m"'), 1);
  assert.equal(sample(t, 'llm_d_epp_scheduler_e2e_duration_seconds_bucket{le="0.0005"}'), 1);
  assert.equal(sample(t, 'inference_extension_scheduler_e2e_duration_seconds_bucket{le="0.0002"}'), 0);
  assert.equal(
    sample(
      t,
      'llm_d_epp_scheduler_attempts_total{status="success",target_model_name="t",namespace="ns",port="8000",endpoint_name="s0"}',
    ),
    1,
  );
  assert.equal(
    sample(
      t,
      'inference_extension_scheduler_attempts_total{status="success",target_model_name="t",namespace="ns",port="8000",pod_name="s0"}',
    ),
    1,
  );
  assert.equal(
    sample(
      t,
      'llm_d_epp_plugin_duration_seconds_bucket{extension_point="Scorer",plugin_type="queue-scorer",plugin_name="q",le="0.0001"}',
    ),
    1,
  );
  assert.equal(sample(t, 'inference_extension_plugin_duration_seconds_count{extension_point="Scorer"'), 1);
  assert.equal(sample(t, 'llm_d_epp_ready_endpoints{name="pool"}'), 3);
  assert.equal(sample(t, 'inference_pool_ready_pods{name="pool"}'), 3);
  assert.equal(sample(t, 'llm_d_inference_scheduler_disagg_decision_total{plugin_name="h"'), 1);
  assert.equal(sample(t, 'llm_d_epp_info{commit="abc",build_ref="v1"}'), 1);
  assert.equal(sample(t, 'inference_extension_info{commit="abc",build_ref="v1"}'), 1);
  assert.equal(
    sample(t, 'llm_d_epp_prefix_indexer_size{plugin_name="p",plugin_type="approx-prefix-cache-producer"}'),
    42,
  );
  assert.equal(sample(t, 'inference_extension_prefix_indexer_size{plugin_name="p"'), 42);
  assert.equal(sample(t, 'inference_objective_running_requests{model_name="m"}'), 1);
  m.requestRunning.dec(L);
  assert.equal(sample(await m.metricsText(), 'inference_objective_running_requests{model_name="m"}'), 0);
});

test("label cardinality cap: 1000 values, then other", async () => {
  const c = new LabelCapper(3);
  assert.deepEqual(
    ["a", "b", "c", "d", "a", "e"].map((v) => c.map(v)),
    ["a", "b", "c", "other", "a", "other"],
  );
  const m = createEppMetrics();
  for (let i = 0; i < 1005; i++) m.requestTotal.inc({ ...L, modelName: `m${i}` });
  const t = await m.metricsText();
  assert.equal(sample(t, 'llm_d_epp_request_total{model_name="m999"'), 1);
  assert.equal(sample(t, 'llm_d_epp_request_total{model_name="m1000"'), undefined);
  assert.equal(sample(t, 'llm_d_epp_request_total{model_name="other"'), 5);
});

test("two metric sets on separate registries do not collide", async () => {
  const a = createEppMetrics();
  const b = createEppMetrics();
  a.requestTotal.inc(L);
  assert.equal(sample(await b.metricsText(), "llm_d_epp_request_total{"), undefined);
});

test("requestSeries writes the same series (and deprecated twins) as the labelled methods", async () => {
  const a = createEppMetrics();
  const b = createEppMetrics();
  const s = a.requestSeries(L);
  s.total.inc();
  s.sizeBytes.observe(100);
  s.responseSizeBytes.observe(200);
  s.duration.observe(0.3);
  s.inputTokens.observe(5);
  s.outputTokens.observe(7);
  s.cachedTokens.observe(2);
  s.ntpot.observe(0.01);
  s.ttft.observe(0.05);
  s.streamingTtft.observe(0.05);
  s.streamingItl.observe(0.002);
  s.running.inc();
  s.running.inc();
  s.running.dec();
  b.requestTotal.inc(L);
  b.requestSizeBytes.observe(L, 100);
  b.responseSizeBytes.observe(L, 200);
  b.requestDuration.observe(L, 0.3);
  b.requestInputTokens.observe(L, 5);
  b.requestOutputTokens.observe(L, 7);
  b.requestCachedTokens.observe(L, 2);
  b.requestNtpot.observe(L, 0.01);
  b.requestTtft.observe(L, 0.05);
  b.requestStreamingTtft.observe(L, 0.05);
  b.requestStreamingItl.observe(L, 0.002);
  b.requestRunning.inc(L);
  b.requestRunning.inc(L);
  b.requestRunning.dec(L);
  const ta = await a.metricsText();
  assert.equal(ta, await b.metricsText());
  assert.equal(
    sample(ta, 'inference_objective_request_total{model_name="m",target_model_name="t",priority="2"}'),
    1,
  );
  assert.equal(sample(ta, 'inference_objective_running_requests{model_name="m"}'), 1);
  assert.equal(a.requestSeries({ ...L }), s, "one bundle per label set");
});
