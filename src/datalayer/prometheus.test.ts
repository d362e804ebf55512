import assert from "node:assert/strict";
import { test } from "node:test";
import { extractVllmMetrics, filterFamilies } from "./prometheus.js";

const TEXT = `# HELP vllm:num_requests_waiting Number of requests waiting.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="m"} 3
vllm:num_requests_waiting{engine="1",model_name="m"} 9
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="m"} 5
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.25
# TYPE vllm:cache_config_info gauge
vllm:cache_config_info{block_size="16",num_gpu_blocks="512",engine="0"} 1
# TYPE vllm:lora_requests_info gauge
vllm:lora_requests_info{max_lora="2",running_lora_adapters="a,b",waiting_lora_adapters=""} 1700000000
vllm:lora_requests_info{max_lora="2",running_lora_adapters="c",waiting_lora_adapters="d"} 1700000100
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{le="0.001",model_name="m"} 0
vllm:time_to_first_token_seconds_bucket{le="+Inf",model_name="m"} 4
vllm:time_to_first_token_seconds_sum{model_name="m"} 1.5
vllm:time_to_first_token_seconds_count{model_name="m"} 4
`;

test("extracts the EPP's fields: first series for gauges, newest series for LoRA", () => {
  const m = extractVllmMetrics(TEXT);
  assert.equal(m.waitingQueueSize, 3, "first series wins, not engine 1's 9");
  assert.equal(m.runningRequestsSize, 5);
  assert.equal(m.kvCacheUsagePercent, 0.25);
  assert.equal(m.cacheBlockSize, 16);
  assert.equal(m.cacheNumBlocks, 512);
  assert.deepEqual(m.activeModels, ["c"]);
  assert.deepEqual(m.waitingModels, ["d"]);
  assert.equal(m.maxActiveModels, 2);
});

test("missing families are left out, not zeroed", () => {
  const m = extractVllmMetrics("# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running 2\n");
  assert.deepEqual(m, { runningRequestsSize: 2 });
});

test("the line filter keeps only the wanted families", () => {
  const f = filterFamilies(TEXT, ["vllm:kv_cache_usage_perc"]);
  assert.equal(f.trim().split("\n").length, 2);
  assert.match(f, /^# TYPE vllm:kv_cache_usage_perc gauge\nvllm:kv_cache_usage_perc\{/);
});
