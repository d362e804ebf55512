import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Registry } from "prom-client";
import { FixedDetector, fakeRequest, flush, harness } from "../flowcontrol/test-helpers.js";
import { createFlowControlMetrics } from "./flow-control.js";

const line = (text: string, prefix: string): number | undefined => {
  const l = text.split("\n").find((x) => x.startsWith(prefix));
  return l === undefined ? undefined : Number(l.slice(prefix.length).trim());
};

describe("flow-control metrics", () => {
  it("reports queue size/bytes, outcomes, queue duration, saturation and cycle durations (with twins)", async () => {
    const registry = new Registry();
    const m = createFlowControlMetrics(registry);
    const det = new FixedDetector(1);
    const h = harness({ detector: det, observer: m, section: { defaultRequestTTL: "3s", maxRequests: 3 } });
    h.enqueue(fakeRequest("tenant-a", 5, 200));
    h.enqueue(fakeRequest("tenant-a", 5, 300));
    h.enqueue(fakeRequest("tenant-b", -1, 50));
    h.enqueue(fakeRequest("tenant-b", -1, 50)); // RejectedCapacity (global maxRequests 3)
    h.fc.dispatch();
    let text = await registry.metrics();
    assert.equal(line(text, 'llm_d_epp_flow_control_queue_size{fairness_id="tenant-a",priority="5"}'), 2);
    assert.equal(
      line(text, 'inference_extension_flow_control_queue_size{fairness_id="tenant-a",priority="5"}'),
      2,
    );
    assert.equal(line(text, 'llm_d_epp_flow_control_queue_bytes{fairness_id="tenant-a",priority="5"}'), 500);
    assert.equal(line(text, 'llm_d_epp_flow_control_pool_saturation{stage="effective"}'), 1);
    assert.equal(line(text, 'llm_d_epp_flow_control_requests_total{outcome="RejectedCapacity"}'), 1);
    assert.equal(line(text, "llm_d_epp_flow_control_dispatch_cycle_duration_seconds_count"), 1);
    assert.equal(
      line(text, 'llm_d_epp_flow_control_request_enqueue_duration_seconds_count{outcome="Queued"}'),
      3,
    );

    h.clock.advance(1500);
    det.value = 0.25;
    h.fc.dispatch(); // tenant-a ×2 then tenant-b: all dispatched after 1.5 s
    await flush();
    text = await registry.metrics();
    assert.equal(line(text, 'llm_d_epp_flow_control_queue_size{fairness_id="tenant-a",priority="5"}'), 0);
    assert.equal(line(text, 'llm_d_epp_flow_control_requests_total{outcome="Dispatched"}'), 3);
    assert.equal(line(text, 'llm_d_epp_flow_control_pool_saturation{stage="effective"}'), 0.25);
    const sum = line(
      text,
      'llm_d_epp_flow_control_request_queue_duration_seconds_sum{fairness_id="tenant-a",priority="5",outcome="Dispatched"}',
    );
    assert.equal(sum, 3);
    assert.equal(
      line(
        text,
        'inference_extension_flow_control_request_queue_duration_seconds_count{fairness_id="tenant-b",priority="-1",outcome="Dispatched"}',
      ),
      1,
    );
  });

  it("registering twice on one registry throws", () => {
    const registry = new Registry();
    createFlowControlMetrics(registry);
    assert.throws(() => createFlowControlMetrics(registry), /already been registered/);
  });
});
