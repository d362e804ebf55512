import assert from "node:assert/strict";
import { test } from "node:test";
import { INFLIGHT_LOAD, PREFIX_CACHE_MATCH_INFO, TOKENIZED_PROMPT } from "../../framework/types.js";
import { InflightLoadProducer, inflightLoadProducerFactory } from "./inflight-load-producer.js";
import { makeEndpoint, makeRequest, result } from "../testing.js";

const handle = { plugin: () => undefined, addPlugin() {}, allPlugins: () => [] };
const withTokens = (n: number, body: Record<string, unknown> = {}) => {
  const r = makeRequest(body);
  r.attributes.set(TOKENIZED_PROMPT, { tokenIds: new Uint32Array(n), source: "estimate" });
  return r;
};
const resp = (ep: ReturnType<typeof makeEndpoint>) => ({ status: 200, endpoint: ep, endOfStream: false });

test("PreRequest increments the target; first chunk releases prompt tokens; complete releases the rest", () => {
  const p = new InflightLoadProducer();
  const a = makeEndpoint("a");
  const b = makeEndpoint("b");
  const r1 = withTokens(100);
  const r2 = withTokens(40);
  p.preRequest(r1, result("d", { d: [a] }));
  p.preRequest(r2, result("d", { d: [a] }));
  assert.deepEqual(p.loadOf("a"), { requests: 2, tokens: 140 });
  p.produce(makeRequest({}), [a, b]);
  assert.deepEqual(a.attributes.get(INFLIGHT_LOAD), { requests: 2, tokens: 140 });
  assert.deepEqual(b.attributes.get(INFLIGHT_LOAD), { requests: 0, tokens: 0 });
  p.responseStreaming(r1, resp(a));
  p.responseStreaming(r1, resp(a)); // only the first chunk counts
  assert.deepEqual(p.loadOf("a"), { requests: 2, tokens: 40 });
  p.responseComplete(r1, resp(a));
  p.responseComplete(r1, resp(a)); // idempotent
  assert.deepEqual(p.loadOf("a"), { requests: 1, tokens: 40 });
  p.responseComplete(r2, resp(a)); // non-streaming: all released at the end
  assert.deepEqual(p.loadOf("a"), { requests: 0, tokens: 0 });
});

test("cached prefix is discounted; estimated output tokens capped", () => {
  const p = new InflightLoadProducer("i", {
    addEstimatedOutputTokens: true,
    outputRatio: 1.5,
    maxEstimatedOutputTokens: 100,
  });
  const a = makeEndpoint("a");
  a.attributes.set(`${PREFIX_CACHE_MATCH_INFO}x`, { matchBlocks: 1, totalBlocks: 2, blockSizeTokens: 64 });
  const r = withTokens(100);
  p.preRequest(r, result("d", { d: [a] }));
  assert.deepEqual(p.loadOf("a"), { requests: 1, tokens: 36 + 100 }); // (100−64) + min(150,100)
  const r2 = withTokens(10, { max_tokens: 5 });
  p.preRequest(r2, result("d", { d: [a] }));
  assert.deepEqual(p.loadOf("a"), { requests: 2, tokens: 136 + 10 + 5 - 10 }); // 64 cached ≥ 10 prompt → 0 + 5
  p.responseStreaming(r, resp(a));
  assert.deepEqual(p.loadOf("a"), { requests: 2, tokens: 100 + 5 });
});

test("factory defaults and strictness", () => {
  const p = inflightLoadProducerFactory("n", undefined, handle) as InflightLoadProducer;
  assert.deepEqual(p.params, {
    addEstimatedOutputTokens: false,
    outputRatio: 1.5,
    maxEstimatedOutputTokens: undefined,
  });
  assert.throws(() => inflightLoadProducerFactory("n", { outputRatio: -1 }, handle), /outputRatio/);
  assert.throws(() => inflightLoadProducerFactory("n", { foo: 1 }, handle), /foo/);
});
