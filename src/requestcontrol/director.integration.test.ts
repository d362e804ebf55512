/**
 * The Director with a loaded config, the real Scheduler and the real producers: the default
 * config (queue ×2, kv-cache ×2, prefix-cache ×3) auto-creates the approx prefix producer and
 * the estimate token producer, and a repeated prompt follows its prefix.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { loadConfig } from "../framework/config/index.js";
import { TOKENIZED_PROMPT } from "../framework/types.js";
import { createEppMetrics } from "../metrics/epp.js";
import { builtinRegistry } from "../plugins/builtins.js";
import { makeEndpoint, makeRequest } from "../plugins/testing.js";
import { Scheduler } from "../scheduler/scheduler.js";
import { Director, pluginDurationRecorder } from "./director.js";

test("default config: producers are auto-created and wired", () => {
  const cfg = loadConfig(null, builtinRegistry(), { warn: () => {} });
  const types = cfg.plugins.map((p) => `${p.type}/${p.name}`);
  assert.ok(types.includes("approx-prefix-cache-producer/approx-prefix-cache-producer"), types.join(","));
  assert.ok(types.includes("token-producer/token-producer"), types.join(","));
  assert.equal(cfg.plugins.filter((p) => p.type === "approx-prefix-cache-producer").length, 1);
});

test("a configured producer listed after the scorer is used, not duplicated", () => {
  const yaml = `apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: prefix-cache-scorer
- type: active-request-scorer
- type: approx-prefix-cache-producer
  parameters:
    maxPrefixTokensToMatch: 16384
`;
  const cfg = loadConfig(yaml, builtinRegistry(), { warn: () => {} });
  const approx = cfg.plugins.filter((p) => p.type === "approx-prefix-cache-producer");
  assert.equal(approx.length, 1);
  assert.equal(
    (approx[0] as unknown as { params: { maxPrefixTokensToMatch: number } }).params.maxPrefixTokensToMatch,
    16384,
  );
  assert.equal(cfg.plugins.filter((p) => p.type === "inflight-load-producer").length, 1);
});

test("unknown parameter of a producer is a ConfigError naming the field", () => {
  const yaml = `apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: approx-prefix-cache-producer
  parameters:
    lruCapacity: 5
- type: prefix-cache-scorer
`;
  assert.throws(
    () => loadConfig(yaml, builtinRegistry(), { warn: () => {} }),
    /plugins\[0\]\.parameters\.lruCapacity/,
  );
});

test("end to end: a repeated prompt goes back to the endpoint that served it", async () => {
  const cfg = loadConfig(null, builtinRegistry(), { warn: () => {} });
  const metrics = createEppMetrics();
  const scheduler = new Scheduler(cfg, { onPluginDuration: pluginDurationRecorder(metrics) });
  const director = new Director(cfg, scheduler, metrics);
  const eps = ["a", "b", "c", "d"].map((id) => makeEndpoint(id));
  const prompt = "the same long system prompt ".repeat(60);
  const first = await director.handleRequest(makeRequest({ model: "m", prompt }), eps);
  const home = first.targets[0].metadata.id;
  for (let i = 0; i < 5; i++) {
    for (const e of eps) e.attributes.clear();
    const r = makeRequest({ model: "m", prompt: prompt + String(i) });
    const out = await director.handleRequest(r, eps);
    assert.equal(out.targets[0].metadata.id, home);
    assert.equal((r.attributes.get(TOKENIZED_PROMPT) as { source: string }).source, "estimate");
  }
  const text = await metrics.metricsText();
  assert.match(
    text,
    /llm_d_epp_plugin_duration_seconds_count\{extension_point="Scorer",plugin_type="prefix-cache-scorer"/,
  );
  assert.match(
    text,
    /llm_d_epp_plugin_duration_seconds_count\{extension_point="DataProducer",plugin_type="approx-prefix-cache-producer",plugin_name="approx-prefix-cache-producer"\} 6/,
  );
  assert.match(text, /llm_d_epp_scheduler_attempts_total\{status="success"[^}]*\} 6/);
});
