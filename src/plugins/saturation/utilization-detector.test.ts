import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isSaturationDetector } from "../../framework/flow-control.js";
import {
  type Endpoint,
  type EndpointMetrics,
  emptyMetrics,
  type InferenceRequest,
} from "../../framework/types.js";
import { UtilizationDetector, utilizationDetectorFactory } from "./utilization-detector.js";

const NOW = 1_000_000;
const ep = (id: string, m: Partial<EndpointMetrics>): Endpoint => ({
  metadata: {
    id,
    name: id,
    namespace: "default",
    address: "10.0.0.1",
    port: 8000,
    hostPort: `${id}:8000`,
    labels: {},
  },
  metrics: { ...emptyMetrics(), updateTime: NOW, ...m },
  models: new Set(),
  attributes: new Map(),
});
const req = {} as InferenceRequest;
const handle = { plugin: () => undefined, addPlugin: () => {}, allPlugins: () => [] };
const close = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-9, `${a} ≈ ${b}`);

describe("utilization-detector saturation formula", () => {
  const d = new UtilizationDetector();
  const cases: { name: string; eps: Partial<EndpointMetrics>[]; want: number }[] = [
    { name: "idle endpoint", eps: [{ waitingQueueSize: 0, kvCacheUsagePercent: 0 }], want: 0 },
    { name: "queue dominates: 5/5", eps: [{ waitingQueueSize: 5, kvCacheUsagePercent: 0.4 }], want: 1 },
    { name: "kv dominates: 0.6/0.8", eps: [{ waitingQueueSize: 1, kvCacheUsagePercent: 0.6 }], want: 0.75 },
    { name: "over threshold reads > 1: 10/5", eps: [{ waitingQueueSize: 10 }], want: 2 },
    {
      name: "pool = average over candidates",
      eps: [{ waitingQueueSize: 5 }, { kvCacheUsagePercent: 0.4 }, {}],
      want: (1 + 0.5 + 0) / 3,
    },
    { name: "stale endpoint (300 ms old) counts 1.0", eps: [{ updateTime: NOW - 300 }, {}], want: 0.5 },
    {
      name: "exactly at staleness threshold is fresh",
      eps: [{ updateTime: NOW - 200, waitingQueueSize: 1 }],
      want: 0.2,
    },
    { name: "never scraped counts 1.0", eps: [{ updateTime: 0 }], want: 1 },
    { name: "empty pool reads 1.0", eps: [], want: 1 },
  ];
  for (const c of cases) {
    it(c.name, () => {
      close(
        d.saturation(
          c.eps.map((m, i) => ep(`e${i}`, m)),
          NOW,
        ),
        c.want,
      );
    });
  }
  it("custom thresholds", () => {
    const d2 = new UtilizationDetector("u", { queueDepthThreshold: 10, kvCacheUtilThreshold: 0.5 });
    close(d2.saturation([ep("a", { waitingQueueSize: 4, kvCacheUsagePercent: 0.25 })], NOW), 0.5);
  });
});

describe("utilization-detector filter", () => {
  const clock = () => NOW;
  it("drops endpoints at/over the limits and stale ones", () => {
    const d = new UtilizationDetector("u", {}, clock);
    const a = ep("a", { waitingQueueSize: 4, kvCacheUsagePercent: 0.79 });
    const b = ep("b", { waitingQueueSize: 5 });
    const c = ep("c", { kvCacheUsagePercent: 0.8 });
    const s = ep("s", { updateTime: NOW - 201 });
    assert.deepEqual(
      d.filter(req, [a, b, c, s]).map((e) => e.metadata.id),
      ["a"],
    );
  });
  it("headroom widens the limits; KV limit capped at 1.0", () => {
    const d = new UtilizationDetector("u", { headroom: 0.5 }, clock);
    const q7 = ep("q7", { waitingQueueSize: 7 });
    const q8 = ep("q8", { waitingQueueSize: 8 });
    const kv95 = ep("kv95", { kvCacheUsagePercent: 0.95 });
    const kv100 = ep("kv100", { kvCacheUsagePercent: 1.0 });
    assert.deepEqual(
      d.filter(req, [q7, q8, kv95, kv100]).map((e) => e.metadata.id),
      ["q7", "kv95"],
    );
  });
  it("fails open: all dropped → original list", () => {
    const d = new UtilizationDetector("u", {}, clock);
    const list = [ep("a", { waitingQueueSize: 9 }), ep("b", { updateTime: 0 })];
    assert.equal(d.filter(req, list), list);
  });
});

describe("utilization-detector factory", () => {
  it("decodes parameters with units and defaults", () => {
    const d = utilizationDetectorFactory(
      "u",
      { queueDepthThreshold: 3, metricsStalenessThreshold: "1.5s", headroom: 0.2 },
      handle,
    ) as UtilizationDetector;
    assert.deepEqual(d.params, {
      queueDepthThreshold: 3,
      kvCacheUtilThreshold: 0.8,
      metricsStalenessThreshold: 1500,
      headroom: 0.2,
    });
    assert.ok(isSaturationDetector(d));
    assert.equal(d.type, "utilization-detector");
  });
  it("rejects unknown fields and bad values, naming the field", () => {
    assert.throws(() => utilizationDetectorFactory("u", { bogus: 1 }, handle), /bogus: unknown field/);
    assert.throws(
      () => utilizationDetectorFactory("u", { kvCacheUtilThreshold: 1.5 }, handle),
      /kvCacheUtilThreshold/,
    );
    assert.throws(
      () => utilizationDetectorFactory("u", { metricsStalenessThreshold: "soon" }, handle),
      /metricsStalenessThreshold: invalid duration/,
    );
  });
});
