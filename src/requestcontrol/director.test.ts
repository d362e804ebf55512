import assert from "node:assert/strict";
import { test } from "node:test";
import { EppError } from "../framework/errors.js";
import type { LoadedConfig, Plugin, ProfileHandler, ResponseInfo } from "../framework/plugin.js";
import type { Endpoint, InferenceRequest, SchedulingResult } from "../framework/types.js";
import { createEppMetrics } from "../metrics/epp.js";
import { ApproxPrefixCacheProducer } from "../plugins/producers/approx-prefix-cache-producer.js";
import { InflightLoadProducer } from "../plugins/producers/inflight-load-producer.js";
import { makeEndpoint, makeRequest, result } from "../plugins/testing.js";
import { TokenProducer } from "../plugins/producers/token-producer.js";
import { PrefixCacheScorer } from "../plugins/scorers/prefix-cache-scorer.js";
import { Director, producerLevels } from "./director.js";

function config(plugins: Plugin[]): LoadedConfig {
  return {
    plugins,
    profiles: new Map(),
    profileHandler: {} as ProfileHandler,
    featureGates: new Set(),
    resolved: {},
  };
}

/** A scheduler that records the call and picks the first candidate. */
function recordingScheduler(calls: string[]) {
  return {
    schedule(_r: InferenceRequest, eps: Endpoint[]): SchedulingResult {
      calls.push("schedule");
      return result("default", { default: [eps[0]] });
    },
  };
}

test("order: producers (dependency order) → scheduler → every PreRequest; targets of the primary profile", async () => {
  const calls: string[] = [];
  const consumer = {
    type: "t",
    name: "consumer",
    consumes: ["k"],
    async produce(r: InferenceRequest) {
      calls.push(`consumer saw ${r.attributes.get("k")}`);
    },
  };
  const producer = {
    type: "t",
    name: "producer",
    produces: ["k"],
    produce(r: InferenceRequest) {
      calls.push("producer");
      r.attributes.set("k", "v");
    },
  };
  const pre1 = { type: "t", name: "pre1", preRequest: () => void calls.push("pre1") };
  const pre2 = { type: "t", name: "pre2", preRequest: () => void calls.push("pre2") };
  const m = createEppMetrics();
  const d = new Director(config([consumer, pre1, producer, pre2]), recordingScheduler(calls), m);
  const eps = [makeEndpoint("a"), makeEndpoint("b")];
  const out = await d.handleRequest(makeRequest({ prompt: "x" }), eps);
  assert.deepEqual(calls, ["producer", "consumer saw v", "schedule", "pre1", "pre2"]);
  assert.deepEqual(out.targets, [eps[0]]);
  const text = await m.metricsText();
  assert.match(
    text,
    /llm_d_epp_plugin_duration_seconds_count\{extension_point="DataProducer",plugin_type="t",plugin_name="consumer"\} 1/,
  );
  assert.match(
    text,
    /llm_d_epp_plugin_duration_seconds_count\{extension_point="PreRequest",plugin_type="t",plugin_name="pre2"\} 1/,
  );
  assert.match(
    text,
    /llm_d_epp_scheduler_attempts_total\{status="success",target_model_name="m",namespace="default",port="8000",endpoint_name="a"\} 1/,
  );
  assert.match(text, /llm_d_epp_scheduler_e2e_duration_seconds_count 1/);
});

test("producer levels: independent producers share a level, cycles do not hang", () => {
  const p = (name: string, produces: string[], consumes: string[]) => ({
    type: "t",
    name,
    produces,
    consumes,
    produce() {},
  });
  const a = p("a", ["x"], ["y"]);
  const b = p("b", ["y"], ["x"]);
  const c = p("c", [], []);
  const lv = producerLevels([a, b, c]).map((l) => l.map((x) => x.name));
  assert.equal(lv.flat().length, 3);
  const t = p("tok", ["tokens"], []);
  const u = p("use", [], ["tokens"]);
  assert.deepEqual(
    producerLevels([u, c, t]).map((l) => l.map((x) => x.name)),
    [["c", "tok"], ["use"]],
  );
});

test("producer failures and timeouts are not fatal", async () => {
  const calls: string[] = [];
  const throwing = {
    type: "t",
    name: "throws",
    produce: () => {
      throw new Error("boom");
    },
  };
  const rejecting = {
    type: "t",
    name: "rejects",
    produce: async () => {
      throw new Error("async boom");
    },
  };
  const hanging = {
    type: "t",
    name: "hangs",
    produceTimeoutMs: 20,
    produce: () => new Promise<void>(() => {}),
  };
  const d = new Director(
    config([throwing, rejecting, hanging]),
    recordingScheduler(calls),
    createEppMetrics(),
    {
      produceTimeoutMs: 10_000,
    },
  );
  const out = await d.handleRequest(makeRequest({}), [makeEndpoint("a")]);
  assert.equal(out.targets[0].metadata.id, "a");
  assert.deepEqual(calls, ["schedule"]);
});

test("default produce timeout applies to producers without their own", async () => {
  const hanging = { type: "t", name: "hangs", produce: () => new Promise<void>(() => {}) };
  const d = new Director(config([hanging]), recordingScheduler([]), createEppMetrics(), {
    produceTimeoutMs: 15,
  });
  await d.handleRequest(makeRequest({}), [makeEndpoint("a")]);
});

test("PreRequest errors: all plugins run, errors joined into Internal", async () => {
  const ran: string[] = [];
  const bad1 = {
    type: "t",
    name: "bad1",
    preRequest: () => {
      ran.push("bad1");
      throw new Error("e1");
    },
  };
  const ok = { type: "t", name: "ok", preRequest: () => void ran.push("ok") };
  const bad2 = {
    type: "t",
    name: "bad2",
    preRequest: () => {
      ran.push("bad2");
      throw new Error("e2");
    },
  };
  const d = new Director(config([bad1, ok, bad2]), recordingScheduler([]), createEppMetrics());
  await assert.rejects(d.handleRequest(makeRequest({}), [makeEndpoint("a")]), (e: unknown) => {
    assert.ok(e instanceof EppError);
    assert.equal(e.code, "Internal");
    assert.match(e.message, /bad1: e1; bad2: e2/);
    return true;
  });
  assert.deepEqual(ran, ["bad1", "ok", "bad2"]);
});

test("no candidates → 503 rejected-no-endpoints; scheduler EppError propagates and counts a failure", async () => {
  const m = createEppMetrics();
  const produced: string[] = [];
  const prod = { type: "t", name: "p", produce: () => void produced.push("p") };
  const d = new Director(config([prod]), recordingScheduler([]), m);
  await assert.rejects(d.handleRequest(makeRequest({}), []), (e: unknown) => {
    assert.ok(e instanceof EppError);
    assert.equal(e.status, 503);
    assert.equal(e.dropReason, "rejected-no-endpoints");
    return true;
  });
  assert.deepEqual(produced, []);
  const failing = {
    schedule(): SchedulingResult {
      throw new EppError("ResourceExhausted", "all filtered", "rejected-saturated");
    },
  };
  const d2 = new Director(config([]), failing, m);
  await assert.rejects(d2.handleRequest(makeRequest({}), [makeEndpoint("a")]), (e: unknown) => {
    assert.ok(e instanceof EppError);
    assert.equal(e.code, "ResourceExhausted");
    return true;
  });
  assert.match(await m.metricsText(), /llm_d_epp_scheduler_attempts_total\{status="failure"[^}]*\} 1/);
});

test("response hooks fan out; a throwing hook does not stop the others", () => {
  const seen: string[] = [];
  const a = {
    type: "t",
    name: "a",
    responseReceived: () => void seen.push("a.received"),
    responseStreaming: () => {
      throw new Error("x");
    },
    responseComplete: () => void seen.push("a.complete"),
  };
  const b = {
    type: "t",
    name: "b",
    responseStreaming: () => void seen.push("b.streaming"),
    responseComplete: () => void seen.push("b.complete"),
  };
  const d = new Director(config([a, b]), recordingScheduler([]), createEppMetrics());
  const req = makeRequest({});
  const info: ResponseInfo = { status: 200, endpoint: makeEndpoint("a"), endOfStream: false };
  d.responseReceived(req, info);
  d.responseStreaming(req, info);
  d.responseComplete(req, { ...info, endOfStream: true });
  assert.deepEqual(seen, ["a.received", "b.streaming", "a.complete", "b.complete"]);
});

test("with the real producers: the second identical prompt follows the prefix; in-flight load and indexer metrics", async () => {
  const tok = new TokenProducer();
  const approx = new ApproxPrefixCacheProducer();
  const inflight = new InflightLoadProducer();
  const scorer = new PrefixCacheScorer();
  let rr = 0;
  // picks the best prefix score; ties round-robin (so the first request lands on b)
  const scheduler = {
    schedule(r: InferenceRequest, eps: Endpoint[]): SchedulingResult {
      const s = scorer.score(r, eps);
      const best = Math.max(...eps.map((e) => s.get(e) ?? 0));
      const top = eps.filter((e) => (s.get(e) ?? 0) === best);
      return result("default", { default: [top[rr++ % top.length]] });
    },
  };
  const m = createEppMetrics();
  const d = new Director(config([approx, inflight, tok, scorer]), scheduler, m);
  const eps = [makeEndpoint("a"), makeEndpoint("b"), makeEndpoint("c")];
  const body = { prompt: "x".repeat(4 * 300) };
  rr = 1;
  const r1 = makeRequest(body);
  const o1 = await d.handleRequest(r1, eps);
  assert.equal(o1.targets[0].metadata.id, "b");
  assert.equal(inflight.loadOf("b").requests, 1);
  const r2 = makeRequest(body);
  const o2 = await d.handleRequest(r2, eps);
  assert.equal(o2.targets[0].metadata.id, "b");
  assert.equal(inflight.loadOf("b").requests, 2);
  d.responseComplete(r1, { status: 200, endpoint: eps[1], endOfStream: true });
  assert.equal(inflight.loadOf("b").requests, 1);
  const text = await m.metricsText();
  assert.match(
    text,
    /llm_d_epp_prefix_indexer_size\{plugin_name="approx-prefix-cache-producer",plugin_type="approx-prefix-cache-producer"\} 5/,
  );
  assert.match(text, /llm_d_epp_prefix_indexer_hit_ratio_count\{[^}]*\} 2/);
  assert.match(text, /llm_d_epp_prefix_indexer_hit_ratio_sum\{[^}]*\} 1/);
});
