import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isSaturationDetector } from "../../framework/flow-control.js";
import {
  type Endpoint,
  emptyMetrics,
  type InferenceRequest,
  type SchedulingResult,
  TOKENIZED_PROMPT,
} from "../../framework/types.js";
import { ConcurrencyDetector, concurrencyDetectorFactory, InflightCounter } from "./concurrency-detector.js";

const ep = (id: string): Endpoint => ({
  metadata: {
    id,
    name: id,
    namespace: "default",
    address: "10.0.0.1",
    port: 8000,
    hostPort: `${id}:8000`,
    labels: {},
  },
  metrics: emptyMetrics(),
  models: new Set(),
  attributes: new Map(),
});
const handle = { plugin: () => undefined, addPlugin: () => {}, allPlugins: () => [] };
const close = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-9, `${a} ≈ ${b}`);
const load = (t: InflightCounter, id: string, requests: number, tokensEach: number) => {
  for (let i = 0; i < requests; i++) t.start(id, tokensEach);
};

describe("concurrency-detector modes", () => {
  const a = ep("a");
  const b = ep("b");
  it("requests: aggregate in-flight / aggregate capacity", () => {
    const t = new InflightCounter();
    load(t, "a", 50, 1000);
    load(t, "b", 100, 1000);
    const d = new ConcurrencyDetector("c", { concurrencyMode: "requests" }, t);
    close(d.saturation([a, b], 0), 150 / 200);
  });
  it("tokens: aggregate tokens / aggregate token capacity", () => {
    const t = new InflightCounter();
    load(t, "a", 2, 300_000);
    const d = new ConcurrencyDetector("c", { concurrencyMode: "tokens" }, t);
    close(d.saturation([a, b], 0), 600_000 / 2_000_000);
  });
  it("hybrid: per-endpoint max of ratios, averaged", () => {
    const t = new InflightCounter();
    load(t, "a", 10, 90_000); // r=0.1, t=0.9
    load(t, "b", 50, 1_000); // r=0.5, t=0.05
    const d = new ConcurrencyDetector("c", { concurrencyMode: "hybrid" }, t);
    close(d.saturation([a, b], 0), (0.9 + 0.5) / 2);
  });
  it("empty pool reads 1.0", () => {
    assert.equal(new ConcurrencyDetector().saturation([], 0), 1);
  });
  it("filter drops endpoints at max·(1+headroom), fails open", () => {
    const t = new InflightCounter();
    load(t, "a", 4, 1);
    load(t, "b", 5, 1);
    const d = new ConcurrencyDetector("c", { maxConcurrency: 4, headroom: 0.25 }, t);
    assert.deepEqual(
      d.filter({} as InferenceRequest, [a, b]).map((e) => e.metadata.id),
      ["a"],
    );
    load(t, "a", 1, 1);
    const list = [a, b];
    assert.equal(d.filter({} as InferenceRequest, list), list);
  });
});

describe("concurrency-detector tracking via request hooks", () => {
  it("preRequest counts on the primary target; responseComplete releases once", () => {
    const d = new ConcurrencyDetector("c", {
      concurrencyMode: "hybrid",
      maxConcurrency: 2,
      maxTokenConcurrency: 100,
    });
    const a = ep("a");
    const req = {
      requestId: "r1",
      requestSizeBytes: 400,
      attributes: new Map<string, unknown>([
        [TOKENIZED_PROMPT, { tokenIds: new Uint32Array(40), source: "estimate" }],
      ]),
    } as unknown as InferenceRequest;
    const result: SchedulingResult = {
      primaryProfileName: "decode",
      profileResults: { decode: { targetEndpoints: [a], scoredCandidates: [] } },
    };
    d.preRequest(req, result);
    d.preRequest(req, result); // idempotent per request id
    assert.deepEqual(d.tracker.get("a"), { requests: 1, tokens: 40 });
    close(d.saturation([a], 0), 0.5);
    d.responseComplete(req, { status: 200, endpoint: a, endOfStream: true });
    d.responseComplete(req, { status: 200, endpoint: a, endOfStream: true });
    assert.deepEqual(d.tracker.get("a"), { requests: 0, tokens: 0 });
  });
  it("without a tokenized prompt, tokens = ceil(bytes / 4)", () => {
    const d = new ConcurrencyDetector();
    const a = ep("a");
    d.preRequest(
      { requestId: "x", requestSizeBytes: 10, attributes: new Map() } as unknown as InferenceRequest,
      {
        primaryProfileName: "p",
        profileResults: { p: { targetEndpoints: [a], scoredCandidates: [] } },
      },
    );
    assert.deepEqual(d.tracker.get("a"), { requests: 1, tokens: 3 });
  });
});

describe("concurrency-detector factory", () => {
  it("defaults and strict decoding", () => {
    const d = concurrencyDetectorFactory("c", undefined, handle) as ConcurrencyDetector;
    assert.deepEqual(d.params, {
      concurrencyMode: "requests",
      maxConcurrency: 100,
      maxTokenConcurrency: 1_000_000,
      headroom: 0,
    });
    assert.ok(isSaturationDetector(d));
    assert.throws(
      () => concurrencyDetectorFactory("c", { concurrencyMode: "bytes" }, handle),
      /concurrencyMode/,
    );
    assert.throws(
      () => concurrencyDetectorFactory("c", { maxConcurency: 1 }, handle),
      /maxConcurency: unknown field/,
    );
  });
});

describe("concurrency-detector reservations from flow control", () => {
  it("onDispatched counts a pending request until preRequest places it or release drops it", () => {
    const d = new ConcurrencyDetector("c", { maxConcurrency: 2 });
    const a = ep("a");
    const r1 = { requestId: "p1", requestSizeBytes: 8, attributes: new Map() } as unknown as InferenceRequest;
    const r2 = { requestId: "p2", requestSizeBytes: 8, attributes: new Map() } as unknown as InferenceRequest;
    d.onDispatched(r1, 1000);
    d.onDispatched(r2, 1000);
    close(d.saturation([a], 1000), 1);
    d.preRequest(r1, {
      primaryProfileName: "p",
      profileResults: { p: { targetEndpoints: [a], scoredCandidates: [] } },
    });
    assert.equal(d.pendingRequests, 1);
    assert.deepEqual(d.tracker.get("a"), { requests: 1, tokens: 2 });
    close(d.saturation([a], 1000), 1);
    d.release(r2);
    close(d.saturation([a], 1000), 0.5);
    d.onDispatched(r2, 1000);
    close(d.saturation([a], 1000 + 30_001), 0.5);
    assert.equal(d.pendingRequests, 0, "unclaimed reservations expire after 30 s");
  });
});
