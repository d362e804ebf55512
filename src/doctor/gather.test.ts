import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { histogramTotals } from "./gather.js";

describe("histogramTotals", () => {
  it("sums _sum and _count of labelled series (what vLLM exposes), ignoring buckets and other families", () => {
    const text = [
      "# TYPE vllm:nixl_xfer_time_seconds histogram",
      'vllm:nixl_xfer_time_seconds_bucket{model_name="m",engine="0",le="0.005"} 1',
      'vllm:nixl_xfer_time_seconds_bucket{model_name="m",engine="0",le="+Inf"} 3',
      'vllm:nixl_xfer_time_seconds_sum{model_name="m",engine="0"} 0.25',
      'vllm:nixl_xfer_time_seconds_count{model_name="m",engine="0"} 3',
      'vllm:nixl_xfer_time_seconds_sum{model_name="m",engine="1"} 0.5',
      'vllm:nixl_xfer_time_seconds_count{model_name="m",engine="1"} 2',
      'vllm:nixl_xfer_time_seconds_extra_count{model_name="m"} 100',
      "plain_hist_sum 4",
      "plain_hist_count 2",
    ].join("\n");
    assert.deepEqual(histogramTotals(text, "vllm:nixl_xfer_time_seconds"), { sum: 0.75, count: 5 });
    assert.deepEqual(histogramTotals(text, "plain_hist"), { sum: 4, count: 2 });
    assert.deepEqual(histogramTotals(null, "x"), { sum: 0, count: 0 });
  });
});
