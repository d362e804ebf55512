import assert from "node:assert/strict";
import { test } from "node:test";
import { ConfigError } from "../../framework/errors.js";
import {
  PREFIX_CACHE_MATCH_INFO,
  type PrefixCacheMatchInfo,
  TOKENIZED_PROMPT,
} from "../../framework/types.js";
import {
  ApproxPrefixCacheProducer,
  approxPrefixCacheProducerFactory,
  decodeApproxPrefixParams,
  INACTIVE_PURGE_MS,
} from "./approx-prefix-cache-producer.js";
import { makeEndpoint, makeRequest, result } from "../testing.js";

const KEY = PREFIX_CACHE_MATCH_INFO + "approx-prefix-cache-producer";
const info = (ep: ReturnType<typeof makeEndpoint>) => ep.attributes.get(KEY) as PrefixCacheMatchInfo;
const handle = { plugin: () => undefined, addPlugin() {}, allPlugins: () => [] };

/** A prompt of `n` pseudo tokens (4 ASCII chars each). */
const prompt = (n: number, seed = "a") => {
  let s = "";
  for (let i = 0; i < n; i++) s += `${seed}${String(i % 1000).padStart(3, "0")}`;
  return s;
};

test("cold index: every endpoint matches 0 of the prompt's blocks (block size clamped to 64)", () => {
  const p = new ApproxPrefixCacheProducer();
  const eps = [makeEndpoint("a"), makeEndpoint("b")];
  const req = makeRequest({ prompt: prompt(200) });
  p.produce(req, eps);
  assert.deepEqual(info(eps[0]), { matchBlocks: 0, totalBlocks: 4, blockSizeTokens: 64 }); // ceil(200/64)
  assert.equal((req.attributes.get(TOKENIZED_PROMPT) as { source: string }).source, "estimate");
});

test("after PreRequest the target (and the prefill target) match; others do not", () => {
  const p = new ApproxPrefixCacheProducer();
  const [a, b, c, d] = ["a", "b", "c", "d"].map((id) => makeEndpoint(id));
  const first = makeRequest({ prompt: prompt(256) });
  p.produce(first, [a, b, c, d]);
  p.preRequest(first, result("decode", { decode: [b], prefill: [c] }));
  assert.equal(p.endpointBlocks("b"), 4);
  assert.equal(p.endpointBlocks("c"), 4);
  assert.equal(p.indexSize(), 4);

  // same first 128 tokens (2 blocks), different rest
  const second = makeRequest({ prompt: prompt(128) + prompt(128, "z") });
  for (const ep of [a, b, c, d]) ep.attributes.clear();
  p.produce(second, [a, b, c, d]);
  assert.deepEqual(
    [a, b, c, d].map((e) => info(e).matchBlocks),
    [0, 2, 2, 0],
  );
  assert.equal(info(b).totalBlocks, 4);

  // identical prompt → full match on b
  const third = makeRequest({ prompt: prompt(256) });
  p.produce(third, [a, b]);
  assert.equal(info(b).matchBlocks, 4);
});

test("model and cache_salt separate the index", () => {
  const p = new ApproxPrefixCacheProducer();
  const a = makeEndpoint("a");
  const r1 = makeRequest({ prompt: prompt(128) });
  p.produce(r1, [a]);
  p.preRequest(r1, result("default", { default: [a] }));
  const other = makeRequest({ prompt: prompt(128) }, { targetModel: "other" });
  p.produce(other, [a]);
  assert.equal(info(a).matchBlocks, 0);
  const salted = makeRequest({ prompt: prompt(128), cache_salt: "s" });
  p.produce(salted, [a]);
  assert.equal(info(a).matchBlocks, 0);
  const same = makeRequest({ prompt: prompt(128) });
  p.produce(same, [a]);
  assert.equal(info(a).matchBlocks, 2);
});

test("autoTune: endpoint block size (≥ 64) and LRU capacity from metrics", () => {
  const p = new ApproxPrefixCacheProducer();
  const big = makeEndpoint("big", { cacheBlockSize: 128, cacheNumBlocks: 3 });
  const small = makeEndpoint("small", { cacheBlockSize: 16 });
  const req = makeRequest({ prompt: prompt(640) });
  p.produce(req, [big, small]);
  assert.deepEqual(info(big), { matchBlocks: 0, totalBlocks: 5, blockSizeTokens: 128 });
  assert.deepEqual(info(small), { matchBlocks: 0, totalBlocks: 10, blockSizeTokens: 64 });
  p.preRequest(req, result("default", { default: [big] }));
  assert.equal(p.endpointBlocks("big"), 3); // capacity = cacheNumBlocks

  const noTune = new ApproxPrefixCacheProducer("x", { autoTune: false, blockSizeTokens: 100 });
  const e = makeEndpoint("e", { cacheBlockSize: 128 });
  noTune.produce(makeRequest({ prompt: prompt(640) }), [e]);
  assert.equal(
    (e.attributes.get(PREFIX_CACHE_MATCH_INFO + "x") as PrefixCacheMatchInfo).blockSizeTokens,
    100,
  );
});

test("maxPrefixTokensToMatch wins over maxPrefixBlocksToMatch; 0/0 = unlimited", () => {
  const a = makeEndpoint("a");
  const p1 = new ApproxPrefixCacheProducer("p", { maxPrefixTokensToMatch: 200, maxPrefixBlocksToMatch: 1 });
  p1.produce(makeRequest({ prompt: prompt(1000) }), [a]);
  assert.equal((a.attributes.get(PREFIX_CACHE_MATCH_INFO + "p") as PrefixCacheMatchInfo).totalBlocks, 3); // floor(200/64)
  const p2 = new ApproxPrefixCacheProducer("p", { maxPrefixTokensToMatch: 0, maxPrefixBlocksToMatch: 2 });
  p2.produce(makeRequest({ prompt: prompt(1000) }), [a]);
  assert.equal((a.attributes.get(PREFIX_CACHE_MATCH_INFO + "p") as PrefixCacheMatchInfo).totalBlocks, 2);
  const p3 = new ApproxPrefixCacheProducer("p", { maxPrefixTokensToMatch: 0, maxPrefixBlocksToMatch: 0 });
  p3.produce(makeRequest({ prompt: prompt(1000) }), [a]);
  assert.equal((a.attributes.get(PREFIX_CACHE_MATCH_INFO + "p") as PrefixCacheMatchInfo).totalBlocks, 16);
});

test("uses TOKENIZED_PROMPT when present", () => {
  const p = new ApproxPrefixCacheProducer();
  const a = makeEndpoint("a");
  const req = makeRequest({ prompt: "ignored" });
  req.attributes.set(TOKENIZED_PROMPT, { tokenIds: new Uint32Array(300), source: "vllm" });
  p.produce(req, [a]);
  assert.equal(info(a).totalBlocks, 5);
});

test("endpoints unseen for 2 minutes are purged", () => {
  let now = 1_000_000;
  const p = new ApproxPrefixCacheProducer(undefined, {}, () => now);
  const a = makeEndpoint("a");
  const b = makeEndpoint("b");
  const r = makeRequest({ prompt: prompt(128) });
  p.produce(r, [a, b]);
  p.preRequest(r, result("d", { d: [a] }));
  const r2 = makeRequest({ prompt: prompt(128, "q") });
  p.produce(r2, [a, b]);
  p.preRequest(r2, result("d", { d: [b] }));
  assert.equal(p.indexSize(), 4);
  now += INACTIVE_PURGE_MS - 1000;
  p.produce(makeRequest({ prompt: "x" }), [b]); // only b seen
  now += 11_000; // purge runs at most every 10 s
  p.produce(makeRequest({ prompt: "x" }), [b]); // a unseen > 2 min → purged
  assert.equal(p.endpointBlocks("a"), 0);
  assert.equal(p.endpointBlocks("b"), 2);
  assert.equal(p.indexSize(), 2);
});

test("match observer gets matched/total bytes of the primary target", () => {
  const p = new ApproxPrefixCacheProducer();
  const seen: [number, number][] = [];
  p.setMatchObserver((m, t) => seen.push([m, t]));
  const a = makeEndpoint("a");
  for (let i = 0; i < 2; i++) {
    const r = makeRequest({ prompt: prompt(192) });
    p.produce(r, [a]);
    p.preRequest(r, result("d", { d: [a] }));
  }
  assert.deepEqual(seen, [
    [0, 3 * 64 * 4],
    [3 * 64 * 4, 3 * 64 * 4],
  ]);
});

test("parameters: strict, defaults, deprecated blockSize", () => {
  const d = decodeApproxPrefixParams(undefined);
  assert.deepEqual(d, {
    autoTune: true,
    blockSizeTokens: 16,
    maxPrefixTokensToMatch: 131072,
    maxPrefixBlocksToMatch: 2048,
    lruCapacityPerServer: 31250,
  });
  assert.equal(decodeApproxPrefixParams({ blockSize: 128 }).blockSizeTokens, 128);
  assert.equal(decodeApproxPrefixParams({ blockSize: 128, blockSizeTokens: 32 }).blockSizeTokens, 32);
  assert.throws(
    () => approxPrefixCacheProducerFactory("p", { bogus: 1 }, handle),
    (e: Error) => {
      assert.ok(e instanceof ConfigError);
      assert.match(e.message, /bogus/);
      return true;
    },
  );
  assert.throws(
    () => approxPrefixCacheProducerFactory("p", { lruCapacityPerServer: 0 }, handle),
    /lruCapacityPerServer/,
  );
});
