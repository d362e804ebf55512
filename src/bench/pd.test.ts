import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { countersByLabel, histogramSumCount, type PdCounters, pdSummary } from "./pd.js";

describe("bench P/D figures", () => {
  it("reads decisions by type and transfer totals from Prometheus text", () => {
    const router = [
      "# TYPE llm_d_epp_disagg_decision_total counter",
      'llm_d_epp_disagg_decision_total{model_name="m",decision_type="prefill-decode"} 7',
      'llm_d_epp_disagg_decision_total{model_name="m",decision_type="decode-only"} 3',
      'llm_d_epp_disagg_decision_total{model_name="n",decision_type="decode-only"} 1',
    ].join("\n");
    assert.deepEqual(countersByLabel(router, "llm_d_epp_disagg_decision_total", "decision_type"), {
      "prefill-decode": 7,
      "decode-only": 4,
    });
    const server = [
      'vllm:nixl_xfer_time_seconds_bucket{model_name="m",engine="0",le="+Inf"} 4',
      'vllm:nixl_xfer_time_seconds_sum{model_name="m",engine="0"} 0.2',
      'vllm:nixl_xfer_time_seconds_count{model_name="m",engine="0"} 4',
    ].join("\n");
    assert.deepEqual(histogramSumCount(server, "vllm:nixl_xfer_time_seconds"), { sum: 0.2, count: 4 });
  });

  it("summarises deltas; null when nothing P/D happened", () => {
    const b: PdCounters = {
      decisions: { "prefill-decode": 2, "decode-only": 1 },
      xferSumS: 0.1,
      xferCount: 2,
    };
    const a: PdCounters = {
      decisions: { "prefill-decode": 6, "decode-only": 3 },
      xferSumS: 0.3,
      xferCount: 6,
    };
    assert.deepEqual(pdSummary(b, a), {
      prefill_decode: 4,
      decode_only: 2,
      transfers: 4,
      mean_transfer_ms: 50,
    });
    assert.equal(pdSummary(b, b), null);
    const none: PdCounters = { decisions: null, xferSumS: 0, xferCount: 0 };
    assert.equal(pdSummary(none, none), null);
  });
});
