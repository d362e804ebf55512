/**
 * A deterministic queueing simulation of the gate-on path: a 2-endpoint pool (4 concurrent
 * requests each, 100 ms service time) driven by `concurrency-detector`, offered 120 req/s against
 * a capacity of 80 req/s: an interactive flow (priority 10, 20 req/s) and a sheddable batch flow
 * (priority −1, 100 req/s). Manual clock, 10 ms steps, dispatch passes run by the test.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { InferenceRequest } from "../framework/types.js";
import { FcfsOrderingPolicy } from "../plugins/flow-control/fcfs-ordering-policy.js";
import { GlobalStrictFairnessPolicy } from "../plugins/flow-control/global-strict-fairness-policy.js";
import { StaticUsageLimitPolicy } from "../plugins/flow-control/static-usage-limit-policy.js";
import { ConcurrencyDetector } from "../plugins/saturation/concurrency-detector.js";
import { ManualClock } from "./clock.js";
import { parseFlowControlConfig } from "./config.js";
import { FlowController, type FlowControlResult } from "./controller.js";
import { fakeEndpoint, fakeRequest, flush } from "./test-helpers.js";

const p99 = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.max(0, Math.ceil(0.99 * s.length) - 1)]!;
};

describe("flow control under saturation (gate on)", () => {
  it("high priority p99 queue time ≤ 0.1 × sheddable's; sheddable time out with 429 rejected-ttl-expired", async (t) => {
    const clock = new ManualClock();
    const detector = new ConcurrencyDetector("c", { maxConcurrency: 4 });
    const runs: (() => void)[] = [];
    const fc = new FlowController({
      config: parseFlowControlConfig({ defaultRequestTTL: "2s" }),
      detector,
      usageLimit: new StaticUsageLimitPolicy(),
      fairnessPolicies: new Map([["global-strict-fairness-policy", new GlobalStrictFairnessPolicy()]]),
      orderingPolicies: new Map([["fcfs-ordering-policy", new FcfsOrderingPolicy()]]),
      clock,
      schedule: (run) => runs.push(run),
      retryIntervalMs: 0,
    });
    const pool = [fakeEndpoint("e0"), fakeEndpoint("e1")];
    const completions: { at: number; req: InferenceRequest }[] = [];
    const results: { cls: "hi" | "batch"; r: FlowControlResult }[] = [];
    let maxInflight = 0;

    const submit = (cls: "hi" | "batch") => {
      const req = cls === "hi" ? fakeRequest("interactive", 10) : fakeRequest("batch", -1);
      void fc
        .enqueueAndWait(req, () => pool)
        .then((r) => {
          results.push({ cls, r });
          if (r.outcome !== "Dispatched") return;
          // scheduling: least-loaded endpoint, then PreRequest moves the reservation onto it
          const target = [...pool].sort(
            (a, b) =>
              detector.tracker.get(a.metadata.id).requests - detector.tracker.get(b.metadata.id).requests,
          )[0]!;
          detector.preRequest(req, {
            primaryProfileName: "p",
            profileResults: { p: { targetEndpoints: [target], scoredCandidates: [] } },
          });
          completions.push({ at: clock.now() + 100, req });
        });
    };

    const STEPS = 1000; // 10 s
    for (let step = 0; step < STEPS; step++) {
      clock.advance(10);
      const now = clock.now();
      for (let i = completions.length - 1; i >= 0; i--) {
        const c = completions[i]!;
        if (c.at > now) continue;
        completions.splice(i, 1);
        detector.responseComplete(c.req, { status: 200, endpoint: pool[0]!, endOfStream: true });
        fc.onRequestDone(c.req);
      }
      if (step % 5 === 0) submit("hi");
      submit("batch");
      for (let k = 0; k < 10 && runs.length > 0; k++) runs.shift()!();
      const inflight = pool.reduce((s, e) => s + detector.tracker.get(e.metadata.id).requests, 0);
      maxInflight = Math.max(maxInflight, inflight + detector.pendingRequests);
      await flush();
    }

    const q = (cls: string) =>
      results.filter((x) => x.cls === cls && x.r.outcome === "Dispatched").map((x) => x.r.queueTimeMs);
    const hi = q("hi");
    const batch = q("batch");
    const batchEvicted = results.filter((x) => x.cls === "batch" && x.r.outcome === "EvictedTTL");
    t.diagnostic(
      `interactive n=${hi.length} p99=${p99(hi)}ms; batch n=${batch.length} p99=${p99(batch)}ms, ` +
        `timed out ${batchEvicted.length}; max in flight ${maxInflight}`,
    );
    assert.ok(hi.length >= 190, `interactive dispatched: ${hi.length}`);
    assert.ok(batch.length > 100, `batch dispatched: ${batch.length}`);
    assert.ok(maxInflight <= 8, `in flight never above capacity: ${maxInflight}`);
    assert.ok(p99(batch) >= 1000, `batch p99 ${p99(batch)} ms shows saturation`);
    assert.ok(p99(hi) <= 0.1 * p99(batch), `interactive p99 ${p99(hi)} ms vs batch p99 ${p99(batch)} ms`);
    assert.equal(
      results.filter((x) => x.cls === "hi" && x.r.outcome !== "Dispatched").length,
      0,
      "no interactive request lost",
    );
    assert.ok(batchEvicted.length > 100, `batch timed out: ${batchEvicted.length}`);
    for (const x of batchEvicted) {
      assert.equal(x.r.error?.status, 429);
      assert.equal(x.r.error?.dropReason, "rejected-ttl-expired");
      assert.equal(x.r.queueTimeMs, 2000);
    }
  });
});
