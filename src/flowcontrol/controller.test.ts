import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { BudgetDetector, FixedDetector, fakeRequest, flush, harness, type Tracked } from "./test-helpers.js";

const ids = (ts: Tracked[]) => ts.map((t) => t.request.fairnessId);

describe("flow control: priority bands", () => {
  it("dispatches strictly by priority, FCFS inside a band", async () => {
    const h = harness({ detector: new FixedDetector(1) });
    const order = [
      ["a1", 0],
      ["a2", 0],
      ["b1", 10],
      ["c1", 5],
      ["d1", -1],
      ["b2", 10],
    ] as const;
    for (const [id, p] of order) {
      h.enqueue(fakeRequest(id, p));
      h.clock.advance(1);
    }
    assert.equal(h.fc.dispatch(), 0, "saturated: nothing released");
    assert.equal(h.fc.queued, 6);
    (h.detector as FixedDetector).value = 0;
    assert.equal(h.fc.dispatch(), 6);
    await flush();
    assert.deepEqual(ids(h.done), ["b1", "b2", "c1", "a1", "a2", "d1"]);
    assert.ok(h.done.every((t) => t.result?.outcome === "Dispatched" && t.result.error === undefined));
    assert.deepEqual(
      h.fc.stats().map((b) => b.priority),
      [10, 5, 0, -1],
    );
  });

  it("a blocked higher band holds lower bands back (head-of-line), one gate read per dispatch", async () => {
    const det = new BudgetDetector(2);
    const h = harness({ detector: det });
    for (const [id, p] of [
      ["lo", 0],
      ["hi1", 9],
      ["hi2", 9],
      ["hi3", 9],
    ] as const)
      h.enqueue(fakeRequest(id, p));
    assert.equal(h.fc.dispatch(), 2);
    await flush();
    assert.deepEqual(ids(h.done), ["hi1", "hi2"]);
    det.budget = 1;
    assert.equal(h.fc.dispatch(), 1);
    await flush();
    assert.deepEqual(ids(h.done), ["hi1", "hi2", "hi3"]);
    det.budget = 5;
    assert.equal(h.fc.dispatch(), 1);
    await flush();
    assert.deepEqual(ids(h.done), ["hi1", "hi2", "hi3", "lo"]);
  });

  it("usage-limit ceiling: dispatch only while saturation < threshold", async () => {
    const det = new FixedDetector(0.7);
    const h = harness({ detector: det, threshold: 0.7 });
    h.enqueue(fakeRequest("a"));
    assert.equal(h.fc.dispatch(), 0);
    det.value = 0.69;
    assert.equal(h.fc.dispatch(), 1);
  });
});

describe("flow control: dispatch triggers", () => {
  it("enqueue, onRequestDone and kick schedule one coalesced pass; nothing runs by itself", async () => {
    const det = new FixedDetector(1);
    const h = harness({ detector: det });
    h.enqueue(fakeRequest("a"));
    h.enqueue(fakeRequest("b"));
    assert.equal(h.kicks, 1, "coalesced until the scheduled pass runs");
    assert.ok(h.runScheduled());
    assert.equal(h.fc.queued, 2);
    det.value = 0;
    h.fc.onRequestDone();
    assert.equal(h.kicks, 2);
    assert.ok(h.runScheduled());
    assert.equal(h.fc.queued, 0);
    assert.equal(h.clock.pending, 0, "no timer left when the queue is empty");
  });

  it("while blocked, re-checks every retryIntervalMs (timer, not a loop); stops when empty", async () => {
    const det = new FixedDetector(1);
    const h = harness({ detector: det, retryIntervalMs: 50 });
    h.enqueue(fakeRequest("a"));
    h.fc.dispatch();
    const calls = det.calls;
    assert.equal(h.clock.pending, 1);
    h.clock.advance(49);
    assert.equal(det.calls, calls, "no re-check before the interval");
    h.clock.advance(1);
    assert.equal(det.calls, calls + 1, "one re-check per interval");
    det.value = 0;
    h.clock.advance(50);
    await flush();
    assert.equal(h.done[0]?.result?.outcome, "Dispatched");
    assert.equal(h.clock.pending, 0);
  });
});

describe("flow control: fairness", () => {
  /**
   * Tenant A offers 10× the load of tenant B. Both start backlogged (A 1000, B 100) and keep
   * arriving 10:1; the pool releases 4 requests per tick for 80 ticks.
   */
  const run = (fairness: string) => {
    const det = new BudgetDetector(0);
    const h = harness({
      detector: det,
      section: { defaultPriorityBand: { fairnessPolicyRef: fairness }, defaultRequestTTL: "0s" },
    });
    for (let i = 0; i < 1000; i++) h.enqueue(fakeRequest("A"));
    for (let i = 0; i < 100; i++) h.enqueue(fakeRequest("B"));
    let a = 0;
    let b = 0;
    const before = () => h.fc.stats()[0]!.flows;
    for (let tick = 0; tick < 80; tick++) {
      h.clock.advance(10);
      for (let i = 0; i < 10; i++) h.enqueue(fakeRequest("A"));
      h.enqueue(fakeRequest("B"));
      const flows = before();
      const backlogged = flows.length === 2 && flows.every((f) => f.requests > 0);
      const qa = flows.find((f) => f.fairnessId === "A")?.requests ?? 0;
      const qb = flows.find((f) => f.fairnessId === "B")?.requests ?? 0;
      det.budget = 4;
      h.fc.dispatch();
      const after = before();
      if (backlogged) {
        a += qa - (after.find((f) => f.fairnessId === "A")?.requests ?? 0);
        b += qb - (after.find((f) => f.fairnessId === "B")?.requests ?? 0);
      }
    }
    return { a, b };
  };

  it("round-robin-fairness-policy: 10:1 offered load → equal shares (within 20%) while both backlogged", () => {
    const { a, b } = run("round-robin-fairness-policy");
    assert.equal(a + b, 320);
    const equal = (a + b) / 2;
    assert.ok(Math.abs(a - equal) <= 0.2 * equal, `A got ${a}, B got ${b}`);
    assert.ok(Math.abs(b - equal) <= 0.2 * equal, `A got ${a}, B got ${b}`);
  });

  it("global-strict-fairness-policy (contrast): one arrival-ordered queue, B starves behind A's backlog", () => {
    const { a, b } = run("global-strict-fairness-policy");
    assert.equal(a + b, 320);
    assert.ok(b < 0.2 * (a + b), `A got ${a}, B got ${b}`);
  });

  it("global-strict interleaves flows in arrival order", async () => {
    const h = harness({ detector: new FixedDetector(1) });
    for (const id of ["A", "B", "A", "C", "B"]) {
      h.enqueue(fakeRequest(id));
      h.clock.advance(1);
    }
    (h.detector as FixedDetector).value = 0;
    h.fc.dispatch();
    await flush();
    assert.deepEqual(ids(h.done), ["A", "B", "A", "C", "B"]);
  });
});

describe("flow control: ordering", () => {
  const scenario = async (ordering: string) => {
    const h = harness({
      detector: new FixedDetector(1),
      section: { defaultPriorityBand: { orderingPolicyRef: ordering } },
    });
    // same flow, arrival order x(5s) y(1s) z(3s)
    for (const [id, ttl] of [
      ["x", 5000],
      ["y", 1000],
      ["z", 3000],
    ] as const) {
      h.enqueue({ ...fakeRequest("f"), requestId: id }, undefined, undefined, ttl);
      h.clock.advance(1);
    }
    (h.detector as FixedDetector).value = 0;
    h.fc.dispatch();
    await flush();
    return h.done.map((t) => t.request.requestId);
  };
  it("edf-ordering-policy: earliest deadline (enqueue + TTL) first", async () => {
    assert.deepEqual(await scenario("edf-ordering-policy"), ["y", "z", "x"]);
  });
  it("fcfs-ordering-policy: arrival order", async () => {
    assert.deepEqual(await scenario("fcfs-ordering-policy"), ["x", "y", "z"]);
  });
});

describe("flow control: capacity limits", () => {
  it("band maxRequests → RejectedCapacity 429 rejected-saturated; frees after dispatch", async () => {
    const det = new FixedDetector(1);
    const h = harness({ detector: det, section: { priorityBands: [{ priority: 0, maxRequests: 2 }] } });
    h.enqueue(fakeRequest("a"));
    h.enqueue(fakeRequest("a"));
    const third = h.enqueue(fakeRequest("b"));
    await flush();
    assert.equal(third.result?.outcome, "RejectedCapacity");
    assert.equal(third.result?.error?.status, 429);
    assert.equal(third.result?.error?.dropReason, "rejected-saturated");
    // another band is not affected by band 0's limit
    const other = h.enqueue(fakeRequest("c", 1));
    await flush();
    assert.equal(other.result?.outcome, undefined);
    det.value = 0;
    h.fc.dispatch();
    const fourth = h.enqueue(fakeRequest("a"));
    await flush();
    assert.equal(fourth.result?.outcome, undefined, "queued again once capacity freed");
  });

  it("band maxBytes, global maxRequests and global maxBytes", async () => {
    const h1 = harness({
      detector: new FixedDetector(1),
      section: { defaultPriorityBand: { maxBytes: "250" } },
    });
    h1.enqueue(fakeRequest("a", 0, 100));
    h1.enqueue(fakeRequest("a", 0, 100));
    const r1 = h1.enqueue(fakeRequest("a", 0, 100));
    const h2 = harness({ detector: new FixedDetector(1), section: { maxRequests: 2 } });
    h2.enqueue(fakeRequest("a", 0));
    h2.enqueue(fakeRequest("b", 5));
    const r2 = h2.enqueue(fakeRequest("c", 9));
    const h3 = harness({ detector: new FixedDetector(1), section: { maxBytes: "1k" } });
    h3.enqueue(fakeRequest("a", 0, 600));
    const r3 = h3.enqueue(fakeRequest("b", 3, 401));
    const ok3 = h3.enqueue(fakeRequest("b", 3, 400));
    await flush();
    assert.equal(r1.result?.outcome, "RejectedCapacity");
    assert.equal(r2.result?.outcome, "RejectedCapacity");
    assert.equal(r3.result?.outcome, "RejectedCapacity");
    assert.equal(ok3.result?.outcome, undefined);
    assert.equal(h3.fc.queuedBytes, 1000);
  });
});

describe("flow control: TTL and no endpoints", () => {
  it("defaultRequestTTL evicts with 429 rejected-ttl-expired at the deadline", async () => {
    const h = harness({ detector: new FixedDetector(1), section: { defaultRequestTTL: "2s" } });
    const first = h.enqueue(fakeRequest("a"));
    h.clock.advance(1000);
    const second = h.enqueue(fakeRequest("a"));
    h.fc.dispatch();
    h.clock.advance(999);
    await flush();
    assert.equal(first.result?.outcome, undefined);
    h.clock.advance(1);
    await flush();
    assert.equal(first.result?.outcome, "EvictedTTL");
    assert.equal(first.result?.queueTimeMs, 2000);
    assert.equal(first.result?.error?.status, 429);
    assert.equal(first.result?.error?.dropReason, "rejected-ttl-expired");
    assert.equal(second.result?.outcome, undefined);
    h.clock.advance(1000);
    await flush();
    assert.equal(second.result?.outcome, "EvictedTTL");
    assert.equal(h.fc.queued, 0);
  });

  it("TTL expiry with an empty pool → 503 rejected-ttl-expired", async () => {
    const h = harness({ detector: new FixedDetector(1), section: { defaultRequestTTL: "1s" } });
    const t = h.enqueue(fakeRequest("a"));
    h.fc.dispatch();
    h.endpoints.length = 0;
    h.clock.advance(1000);
    await flush();
    assert.equal(t.result?.outcome, "EvictedTTL");
    assert.equal(t.result?.error?.status, 503);
    assert.equal(t.result?.error?.dropReason, "rejected-ttl-expired");
  });

  it("defaultRequestTTL 0s: no eviction and no timer", async () => {
    const h = harness({ detector: new FixedDetector(1), section: { defaultRequestTTL: "0s" } });
    const t = h.enqueue(fakeRequest("a"));
    h.fc.dispatch();
    assert.equal(h.clock.pending, 0);
    h.clock.advance(3_600_000);
    await flush();
    assert.equal(t.result?.outcome, undefined);
  });

  it("arrival with no endpoints waits noEndpointRequestTTL, then 503 rejected-no-endpoints", async () => {
    const h = harness({ section: { defaultRequestTTL: "60s", noEndpointRequestTTL: "1s" } });
    h.endpoints.length = 0;
    const t = h.enqueue(fakeRequest("a"));
    h.fc.dispatch();
    h.clock.advance(1000);
    await flush();
    assert.equal(t.result?.outcome, "EvictedNoEndpoints");
    assert.equal(t.result?.error?.status, 503);
    assert.equal(t.result?.error?.dropReason, "rejected-no-endpoints");
  });

  it("arrival with no endpoints is dispatched when endpoints appear in time", async () => {
    const h = harness({ section: { noEndpointRequestTTL: "1s" } });
    const saved = h.endpoints.splice(0);
    const t = h.enqueue(fakeRequest("a"));
    assert.equal(h.fc.dispatch(), 0);
    h.endpoints.push(...saved);
    h.clock.advance(500);
    h.fc.kick();
    h.runScheduled();
    await flush();
    assert.equal(t.result?.outcome, "Dispatched");
  });

  it("noEndpointRequestTTL 0s: an empty pool rejects at once (RejectedNoEndpoints 503)", async () => {
    const h = harness({ section: { noEndpointRequestTTL: "0s" } });
    const t = h.enqueue(fakeRequest("a"), undefined, () => []);
    await flush();
    assert.equal(t.result?.outcome, "RejectedNoEndpoints");
    assert.equal(t.result?.error?.status, 503);
    assert.equal(t.result?.error?.dropReason, "rejected-no-endpoints");
    assert.equal(h.fc.queued, 0);
  });
});

describe("flow control: cancellation and shutdown", () => {
  it("client abort while queued → EvictedContextCancelled 503 rejected-context-cancelled", async () => {
    const h = harness({ detector: new FixedDetector(1) });
    const ac = new AbortController();
    const t = h.enqueue(fakeRequest("a"), ac.signal);
    const other = h.enqueue(fakeRequest("a"));
    h.clock.advance(250);
    ac.abort();
    await flush();
    assert.equal(t.result?.outcome, "EvictedContextCancelled");
    assert.equal(t.result?.queueTimeMs, 250);
    assert.equal(t.result?.error?.status, 503);
    assert.equal(t.result?.error?.dropReason, "rejected-context-cancelled");
    assert.equal(other.result?.outcome, undefined);
    assert.equal(h.fc.queued, 1);
  });

  it("an already-aborted signal is never queued", async () => {
    const h = harness();
    const ac = new AbortController();
    ac.abort();
    const t = h.enqueue(fakeRequest("a"), ac.signal);
    await flush();
    assert.equal(t.result?.outcome, "EvictedContextCancelled");
    assert.equal(h.fc.queued, 0);
  });

  it("shutdown rejects queued and later requests with 503 rejected-shutting-down", async () => {
    const h = harness({ detector: new FixedDetector(1) });
    const a = h.enqueue(fakeRequest("a"));
    const b = h.enqueue(fakeRequest("b", 3));
    h.fc.shutdown();
    const c = h.enqueue(fakeRequest("c"));
    await flush();
    for (const t of [a, b, c]) {
      assert.equal(t.result?.error?.status, 503);
      assert.equal(t.result?.error?.dropReason, "rejected-shutting-down");
    }
    assert.equal(a.result?.outcome, "EvictedOther");
    assert.equal(c.result?.outcome, "RejectedOther");
    assert.equal(h.fc.queued, 0);
    assert.equal(h.clock.pending, 0);
  });
});

describe("flow control: failures inside a pass", () => {
  it("a throwing detector leaves requests queued (no throw, no loss) and the pass is retried", async () => {
    const det = new FixedDetector(0);
    let fail = true;
    const orig = det.saturation.bind(det);
    det.saturation = (c) => {
      if (fail) throw new Error("boom");
      return orig(c);
    };
    const h = harness({ detector: det, retryIntervalMs: 50 });
    const t = h.enqueue(fakeRequest("a"));
    assert.equal(h.fc.dispatch(), 0);
    assert.equal(h.fc.queued, 1);
    fail = false;
    h.clock.advance(50);
    await flush();
    assert.equal(t.result?.outcome, "Dispatched");
  });

  it("a throwing candidates provider reads as no endpoints (TTL eviction still answers 503)", async () => {
    const h = harness({ section: { defaultRequestTTL: "1s" } });
    let calls = 0;
    const t = h.enqueue(fakeRequest("a"), undefined, () => {
      if (calls++ > 0) throw new Error("store gone");
      return h.endpoints;
    });
    assert.equal(h.fc.dispatch(), 0);
    h.clock.advance(1000);
    await flush();
    assert.equal(t.result?.outcome, "EvictedTTL");
    assert.equal(t.result?.error?.status, 503);
  });
});

describe("flow control: enableEviction", () => {
  it("a held higher-priority request evicts one in-flight sheddable request at a time (lowest priority, newest first)", async () => {
    const det = new FixedDetector(0);
    const h = harness({ detector: det, section: { enableEviction: true } });
    const s1 = h.enqueue(fakeRequest("batch", -1));
    h.clock.advance(1);
    const s2 = h.enqueue(fakeRequest("batch", -1));
    h.clock.advance(1);
    const s3 = h.enqueue(fakeRequest("bulk", -2));
    h.clock.advance(1);
    const n0 = h.enqueue(fakeRequest("chat", 0));
    h.fc.dispatch();
    await flush();
    const sig = (t: Tracked) => h.fc.evictionSignal(t.request);
    assert.ok(sig(s1) && sig(s2) && sig(s3), "sheddable requests get an eviction signal");
    assert.equal(sig(n0), undefined, "priority ≥ 0 requests are never evicted");
    const [a1, a2, a3] = [sig(s1)!, sig(s2)!, sig(s3)!];

    det.value = 1; // pool saturated; a high-priority request arrives and is held
    const hi = h.enqueue(fakeRequest("chat", 5));
    h.fc.dispatch();
    assert.equal(a3.aborted, true, "lowest priority (-2) goes first");
    assert.equal(a1.aborted || a2.aborted, false);
    const reason = a3.reason as { status: number; dropReason: string; message: string };
    assert.equal(reason.status, 429);
    assert.equal(reason.dropReason, "evicted");
    assert.match(reason.message, /request evicted by flow control/);
    h.fc.dispatch();
    assert.equal(a2.aborted, false, "no second eviction before the first is confirmed");
    h.fc.onRequestDone(s3.request);
    h.runScheduled();
    assert.equal(a2.aborted, true, "then the newest of priority -1");
    assert.equal(a1.aborted, false);
    await flush();
    assert.equal(hi.result?.outcome, undefined, "still held until saturation drops");
  });

  it("off by default: no eviction signals", async () => {
    const h = harness();
    const s = h.enqueue(fakeRequest("batch", -1));
    h.fc.dispatch();
    await flush();
    assert.equal(h.fc.evictionSignal(s.request), undefined);
  });
});
