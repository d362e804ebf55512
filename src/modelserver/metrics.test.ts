import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Registry } from "prom-client";
import { FastHistogram } from "../metrics/fast-histogram.js";
import { buckets125, ITL_BUCKETS, REQUEST_LATENCY_BUCKETS, TTFT_BUCKETS } from "./metrics.js";

describe("model server metrics helpers", () => {
  it("buckets125 follows vLLM build_1_2_5_buckets", () => {
    assert.deepEqual(buckets125(100), [1, 2, 5, 10, 20, 50, 100]);
    assert.deepEqual(buckets125(8192), [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000]);
    assert.deepEqual(buckets125(1), [1]);
  });

  it("bucket lists are vLLM's (reference/engine.md §2.4)", () => {
    assert.equal(TTFT_BUCKETS.length, 22);
    assert.equal(TTFT_BUCKETS.at(-1), 2560);
    assert.equal(ITL_BUCKETS.length, 19);
    assert.equal(ITL_BUCKETS[0], 0.01);
    assert.equal(REQUEST_LATENCY_BUCKETS.length, 21);
    assert.equal(REQUEST_LATENCY_BUCKETS.at(-1), 7680);
  });

  it("FastHistogram renders cumulative buckets, +Inf, sum and count through a prom-client registry", async () => {
    const reg = new Registry();
    const h = new FastHistogram("x_seconds", "help text", [0.1, 1, 10], ["model_name", "engine"], [reg]);
    const series = h.labels({ model_name: "m", engine: "0" });
    for (const v of [0.05, 0.1, 0.5, 5, 50, Number.NaN]) series.observe(v);
    const text = await reg.metrics();
    const lines = text.split("\n");
    assert.ok(lines.includes("# TYPE x_seconds histogram"));
    assert.ok(lines.includes('x_seconds_bucket{model_name="m",engine="0",le="0.1"} 2'));
    assert.ok(lines.includes('x_seconds_bucket{model_name="m",engine="0",le="1"} 3'));
    assert.ok(lines.includes('x_seconds_bucket{model_name="m",engine="0",le="10"} 4'));
    assert.ok(lines.includes('x_seconds_bucket{model_name="m",engine="0",le="+Inf"} 5'));
    assert.ok(lines.includes('x_seconds_sum{model_name="m",engine="0"} 55.65'));
    assert.ok(lines.includes('x_seconds_count{model_name="m",engine="0"} 5'));
    h.reset();
    assert.ok((await reg.metrics()).includes('x_seconds_count{model_name="m",engine="0"} 0'));
  });
});
