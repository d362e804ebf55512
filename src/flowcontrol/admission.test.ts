import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { loadConfig } from "../framework/config/index.js";
import { EppError } from "../framework/errors.js";
import type { PluginRegistry } from "../framework/plugin.js";
import { createRegistry } from "../framework/registry.js";
import { registerSchedulingPlugins } from "../plugins/builtins.js";
import { registerFlowControlPlugins } from "../plugins/flow-control/index.js";
import { ConcurrencyDetector } from "../plugins/saturation/concurrency-detector.js";
import { UtilizationDetector } from "../plugins/saturation/utilization-detector.js";
import { createAdmission, FlowControlAdmission, LegacyAdmission } from "./admission.js";
import { ManualClock } from "./clock.js";
import { fakeEndpoint, fakeRequest, FixedDetector, flush } from "./test-helpers.js";

const registry = (): PluginRegistry => {
  const r = createRegistry();
  registerSchedulingPlugins(r);
  registerFlowControlPlugins(r);
  return r;
};
const HEAD = "apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\n";
const PLUGINS = "plugins:\n- type: queue-scorer\n";

describe("legacy admission (gate off)", () => {
  it("sheddable + saturation ≥ 1.0 → 429 rejected-saturated; everything else passes", async () => {
    const det = new FixedDetector(1.0);
    const adm = new LegacyAdmission(det);
    const eps = [fakeEndpoint("e0")];
    await assert.rejects(adm.admit(fakeRequest("t", -1), eps), (e: unknown) => {
      assert.ok(e instanceof EppError);
      assert.equal(e.status, 429);
      assert.equal(e.code, "ResourceExhausted");
      assert.equal(e.dropReason, "rejected-saturated");
      assert.equal(
        e.message,
        "inference error: ResourceExhausted - system saturated, sheddable request dropped",
      );
      return true;
    });
    assert.equal(await adm.admit(fakeRequest("t", 0), eps), 0, "priority 0 is never shed");
    assert.equal(await adm.admit(fakeRequest("t", 5), eps), 0);
    det.value = 0.99;
    assert.equal(await adm.admit(fakeRequest("t", -1), eps), 0, "below 1.0 sheddable passes");
  });

  it("with utilization-detector: stale metrics or an empty pool read saturated", async () => {
    const clock = new ManualClock(10_000);
    const adm = new LegacyAdmission(new UtilizationDetector(), clock);
    const fresh = fakeEndpoint("e0", { updateTime: 10_000, waitingQueueSize: 1 });
    const stale = fakeEndpoint("e1", { updateTime: 9_000 });
    assert.equal(await adm.admit(fakeRequest("t", -1), [fresh]), 0);
    await assert.rejects(adm.admit(fakeRequest("t", -1), [stale]), /sheddable request dropped/);
    await assert.rejects(adm.admit(fakeRequest("t", -1), []), /sheddable request dropped/);
    // (1/5 + 5/5) / 2 = 0.6 < 1.0 → passes
    const busy = fakeEndpoint("e2", { updateTime: 10_000, waitingQueueSize: 5 });
    assert.equal(await adm.admit(fakeRequest("t", -1), [fresh, busy]), 0);
  });

  it("under sustained saturation, sheddable requests are shed while others pass", async () => {
    const adm = new LegacyAdmission(new FixedDetector(1.2));
    const eps = [fakeEndpoint("e0")];
    const outcomes = { shed: 0, passed: 0, hiShed: 0 };
    for (let i = 0; i < 100; i++) {
      const sheddable = i % 3 !== 0;
      try {
        await adm.admit(fakeRequest(sheddable ? "batch" : "chat", sheddable ? -1 : 10), eps);
        outcomes.passed++;
      } catch (e) {
        assert.equal((e as EppError).dropReason, "rejected-saturated");
        if (sheddable) outcomes.shed++;
        else outcomes.hiShed++;
      }
    }
    assert.deepEqual(outcomes, { shed: 66, passed: 34, hiShed: 0 });
  });
});

describe("createAdmission from a loaded config", () => {
  it("gate off → legacy admission with the default utilization-detector", () => {
    const loaded = loadConfig(HEAD + PLUGINS, registry());
    const { admission, config, createdPlugins } = createAdmission(loaded, registry());
    assert.ok(admission instanceof LegacyAdmission);
    assert.ok(admission.detector instanceof UtilizationDetector);
    assert.deepEqual(
      createdPlugins.map((p) => p.type),
      ["utilization-detector"],
    );
    assert.equal(config.defaultRequestTTLMs, 60_000);
  });

  it("deprecated top-level saturationDetector is honoured", () => {
    const text = `${HEAD}plugins:\n- type: queue-scorer\n- type: concurrency-detector\n  parameters: {maxConcurrency: 7}\nsaturationDetector: {pluginRef: concurrency-detector}\n`;
    const loaded = loadConfig(text, registry(), { warn: () => {} });
    const { admission } = createAdmission(loaded, registry());
    assert.ok(admission.detector instanceof ConcurrencyDetector);
    assert.equal((admission.detector as ConcurrencyDetector).params.maxConcurrency, 7);
    assert.ok(
      loaded.plugins.includes(admission.detector),
      "the configured instance (wired to the Director's hooks) is used",
    );
  });

  it("gate on → flow control with configured bands and policies; outcomes become EppErrors", async () => {
    const text = `${HEAD}featureGates: [flowControl]
plugins:
- type: queue-scorer
- type: round-robin-fairness-policy
- type: concurrency-detector
  parameters: {maxConcurrency: 1}
flowControl:
  defaultRequestTTL: 30s
  priorityBands:
  - priority: 10
    maxRequests: 1
    fairnessPolicyRef: round-robin-fairness-policy
  saturationDetector: {pluginRef: concurrency-detector}
`;
    const loaded = loadConfig(text, registry());
    const clock = new ManualClock();
    const runs: (() => void)[] = [];
    const { admission, config } = createAdmission(loaded, registry(), {
      clock,
      schedule: (r) => runs.push(r),
      retryIntervalMs: 0,
    });
    assert.ok(admission instanceof FlowControlAdmission);
    assert.equal(config.priorityBands[0]?.fairnessPolicyRef, "round-robin-fairness-policy");
    assert.equal(config.priorityBands[0]?.maxBytes, 1e9);
    const eps = [fakeEndpoint("e0")];
    const firstReq = fakeRequest("a", 10);
    const first = admission.admit(firstReq, eps);
    runs.shift()?.();
    assert.equal(await first, 0, "dispatched at once: pool idle");
    // the only slot is now reserved by the first request (pending until PreRequest/done)
    const ac = new AbortController();
    const second = admission.admit(fakeRequest("a", 10), eps, ac.signal);
    const third = admission.admit(fakeRequest("b", 10), eps);
    await assert.rejects(
      third,
      (e: unknown) => (e as EppError).status === 429 && (e as EppError).dropReason === "rejected-saturated",
    );
    runs.shift()?.();
    ac.abort();
    await assert.rejects(
      second,
      (e: unknown) =>
        (e as EppError).status === 503 && (e as EppError).dropReason === "rejected-context-cancelled",
    );
    let fourthDone = false;
    const fourth = admission.admit(fakeRequest("a", 10), eps).then((ms) => {
      fourthDone = true;
      return ms;
    });
    runs.shift()?.();
    await flush();
    assert.equal(fourthDone, false, "blocked while the first request holds the slot");
    clock.advance(40);
    admission.onRequestDone(firstReq);
    runs.shift()?.();
    assert.equal(await fourth, 40, "released when the first request is done; queued 40 ms");
    admission.shutdown();
    await assert.rejects(
      admission.admit(fakeRequest("a", 10), eps),
      (e: unknown) =>
        (e as EppError).status === 503 && (e as EppError).dropReason === "rejected-shutting-down",
    );
  });

  it("gate on with the default utilization-detector: held while saturated or stale, released on a fresh scrape + kick", async () => {
    const loaded = loadConfig(`${HEAD}featureGates: [flowControl]\n${PLUGINS}`, registry());
    const clock = new ManualClock(50_000);
    const runs: (() => void)[] = [];
    const { admission } = createAdmission(loaded, registry(), {
      clock,
      schedule: (r) => runs.push(r),
      retryIntervalMs: 0,
    });
    assert.ok(admission.detector instanceof UtilizationDetector);
    const ep = fakeEndpoint("e0", { updateTime: 50_000, waitingQueueSize: 5 });
    let done = 0;
    const p = admission
      .admit(fakeRequest("a", 0), () => [ep])
      .then((ms) => {
        done++;
        return ms;
      });
    runs.shift()?.();
    await flush();
    assert.equal(done, 0, "5/5 waiting → saturation 1.0 → held");
    clock.advance(300);
    ep.metrics = { ...ep.metrics, waitingQueueSize: 1 }; // lower queue but a stale scrape
    admission.kick();
    runs.shift()?.();
    await flush();
    assert.equal(done, 0, "stale metrics (300 ms > 200 ms) count as saturated");
    ep.metrics = { ...ep.metrics, waitingQueueSize: 1, updateTime: clock.now() };
    admission.kick();
    runs.shift()?.();
    assert.equal(await p, 300, "released on the fresh scrape after 300 ms in the queue");
  });

  it("a ref to a plugin of the wrong kind is a ConfigError naming the field", () => {
    const text = `${HEAD}featureGates: [flowControl]\nplugins:\n- type: queue-scorer\nflowControl:\n  usageLimitPolicyPluginRef: queue-scorer\n`;
    const loaded = loadConfig(text, registry());
    assert.throws(
      () => createAdmission(loaded, registry()),
      /flowControl.usageLimitPolicyPluginRef: plugin "queue-scorer" \(queue-scorer\) is not a usage limit policy/,
    );
  });
});
