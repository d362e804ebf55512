import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { loadConfig } from "../framework/config/index.js";
import { createRegistry } from "../framework/registry.js";
import { registerSchedulingPlugins } from "../plugins/builtins.js";
import { registerFlowControlPlugins } from "../plugins/flow-control/index.js";
import { parseDurationMs, parseFlowControlConfig, parseQuantityBytes } from "./config.js";

describe("durations and byte quantities", () => {
  const durations: [string | number, number][] = [
    ["60s", 60_000],
    ["200ms", 200],
    ["1.5s", 1500],
    ["1m30s", 90_000],
    ["0s", 0],
    ["250us", 0.25],
    [1500, 1500],
    ["42", 42],
  ];
  for (const [v, ms] of durations)
    it(`duration ${JSON.stringify(v)} = ${ms} ms`, () => assert.equal(parseDurationMs(v), ms));
  it("bad durations throw", () => {
    for (const v of ["", "s", "10 s", "1d", "-1s", -5])
      assert.throws(() => parseDurationMs(v), /invalid duration/);
  });
  const sizes: [string | number, number][] = [
    ["1G", 1e9],
    ["1Gi", 2 ** 30],
    ["512Mi", 512 * 2 ** 20],
    ["1k", 1000],
    ["1K", 1000],
    ["2.5M", 2_500_000],
    ["1e6", 1e6],
    [1000, 1000],
  ];
  for (const [v, b] of sizes)
    it(`quantity ${JSON.stringify(v)} = ${b} bytes`, () => assert.equal(parseQuantityBytes(v), b));
  it("bad quantities throw", () => {
    for (const v of ["", "1GB", "one", "-1", -1])
      assert.throws(() => parseQuantityBytes(v), /invalid byte quantity/);
  });
});

describe("parseFlowControlConfig", () => {
  it("defaults", () => {
    const c = parseFlowControlConfig(undefined);
    assert.deepEqual(c, {
      maxBytes: Number.POSITIVE_INFINITY,
      maxRequests: Number.POSITIVE_INFINITY,
      defaultRequestTTLMs: 60_000,
      noEndpointRequestTTLMs: 60_000,
      defaultPriorityBand: {
        maxBytes: 1e9,
        maxRequests: 5000,
        fairnessPolicyRef: "global-strict-fairness-policy",
        orderingPolicyRef: "fcfs-ordering-policy",
      },
      defaultNegativePriorityBand: {
        maxBytes: 1e9,
        maxRequests: 5000,
        fairnessPolicyRef: "global-strict-fairness-policy",
        orderingPolicyRef: "fcfs-ordering-policy",
      },
      priorityBands: [],
      usageLimitPolicyPluginRef: "static-usage-limit-policy",
      saturationDetectorRef: "utilization-detector",
      enableEviction: false,
    });
  });

  it("full section with units; noEndpointRequestTTL defaults to defaultRequestTTL; bands inherit templates", () => {
    const c = parseFlowControlConfig({
      maxBytes: "2Gi",
      maxRequests: 100,
      defaultRequestTTL: "30s",
      defaultPriorityBand: { maxRequests: 50, fairnessPolicyRef: "round-robin-fairness-policy" },
      defaultNegativePriorityBand: { maxBytes: "10M", orderingPolicyRef: "edf-ordering-policy" },
      priorityBands: [{ priority: 10, maxBytes: "1Mi" }, { priority: -5 }],
      saturationDetector: { pluginRef: "concurrency-detector" },
      enableEviction: true,
    });
    assert.equal(c.maxBytes, 2 ** 31);
    assert.equal(c.maxRequests, 100);
    assert.equal(c.defaultRequestTTLMs, 30_000);
    assert.equal(c.noEndpointRequestTTLMs, 30_000);
    assert.deepEqual(c.defaultNegativePriorityBand, {
      maxBytes: 1e7,
      maxRequests: 50,
      fairnessPolicyRef: "round-robin-fairness-policy",
      orderingPolicyRef: "edf-ordering-policy",
    });
    assert.deepEqual(c.priorityBands, [
      {
        priority: 10,
        maxBytes: 2 ** 20,
        maxRequests: 50,
        fairnessPolicyRef: "round-robin-fairness-policy",
        orderingPolicyRef: "fcfs-ordering-policy",
      },
      {
        priority: -5,
        maxBytes: 1e7,
        maxRequests: 50,
        fairnessPolicyRef: "round-robin-fairness-policy",
        orderingPolicyRef: "edf-ordering-policy",
      },
    ]);
    assert.equal(c.saturationDetectorRef, "concurrency-detector");
    assert.equal(c.enableEviction, true);
  });

  it("global 0 = unlimited; deprecated top-level detector used when the section names none", () => {
    const c = parseFlowControlConfig({ maxRequests: 0, maxBytes: 0 }, "my-detector");
    assert.equal(c.maxRequests, Number.POSITIVE_INFINITY);
    assert.equal(c.maxBytes, Number.POSITIVE_INFINITY);
    assert.equal(c.saturationDetectorRef, "my-detector");
  });

  it("errors name the field", () => {
    assert.throws(
      () => parseFlowControlConfig({ defaultRequestTTL: "soon" }),
      /^ConfigError: flowControl.defaultRequestTTL: invalid duration: soon/,
    );
    assert.throws(
      () => parseFlowControlConfig({ priorityBands: [{ priority: 1, maxBytes: "1GB" }] }),
      /flowControl.priorityBands\[0\].maxBytes: invalid byte quantity/,
    );
    assert.throws(() => parseFlowControlConfig({ bogus: 1 }), /flowControl.bogus: unknown field/);
    assert.throws(
      () => parseFlowControlConfig({ priorityBands: [{ priority: 1 }, { priority: 1 }] }),
      /flowControl.priorityBands\[1\].priority: duplicate priority 1/,
    );
  });

  it("reads the loader's resolved flowControl section", () => {
    const r = createRegistry();
    registerSchedulingPlugins(r);
    registerFlowControlPlugins(r);
    const loaded = loadConfig(
      `apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: queue-scorer
- type: edf-ordering-policy
flowControl:
  defaultRequestTTL: 15s
  noEndpointRequestTTL: 500ms
  priorityBands:
  - priority: 1
    orderingPolicyRef: edf-ordering-policy
`,
      r,
    );
    const c = parseFlowControlConfig(loaded.resolved.flowControl);
    assert.equal(c.defaultRequestTTLMs, 15_000);
    assert.equal(c.noEndpointRequestTTLMs, 500);
    assert.equal(c.priorityBands[0]?.orderingPolicyRef, "edf-ordering-policy");
    assert.equal(c.priorityBands[0]?.maxBytes, 1e9);
    assert.equal(c.priorityBands[0]?.maxRequests, 5000);
  });
});
