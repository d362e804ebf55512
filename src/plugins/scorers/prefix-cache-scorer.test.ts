import assert from "node:assert/strict";
import { test } from "node:test";
import type { Plugin } from "../../framework/plugin.js";
import { PREFIX_CACHE_MATCH_INFO } from "../../framework/types.js";
import { makeEndpoint, makeRequest } from "../testing.js";
import { makePrefixCacheScorerFactory, PrefixCacheScorer, prefixCacheScore } from "./prefix-cache-scorer.js";

test("score formula table", () => {
  const i = (matchBlocks: number, totalBlocks: number, blockSizeTokens = 64) => ({
    matchBlocks,
    totalBlocks,
    blockSizeTokens,
  });
  const rows: [ReturnType<typeof i> | undefined, number, number, number][] = [
    [undefined, 0, 8192, 0],
    [i(0, 4), 0, 8192, 0],
    [i(2, 4), 0, 8192, 0.5],
    [i(4, 4), 0, 8192, 1],
    [i(0, 0), 0, 8192, 0],
    // w=1: only length: (64·64/8192)² = 0.25
    [i(64, 128), 1, 8192, 0.25],
    [i(256, 256), 1, 8192, 1], // 16384 tokens ≥ scale → 1
    // w=0.5: 0.5·(32·64/8192)² + 0.5·(32/64) = 0.5·0.0625 + 0.25 = 0.28125
    [i(32, 64), 0.5, 8192, 0.28125],
  ];
  for (const [info, w, s, want] of rows)
    assert.equal(prefixCacheScore(info, w, s), want, JSON.stringify([info, w]));
});

test("scorer reads the attribute of its producer; missing → 0", () => {
  const s = new PrefixCacheScorer("s", { prefixMatchInfoProducerName: "pp" });
  const a = makeEndpoint("a");
  const b = makeEndpoint("b");
  const c = makeEndpoint("c");
  a.attributes.set(`${PREFIX_CACHE_MATCH_INFO}pp`, { matchBlocks: 3, totalBlocks: 4, blockSizeTokens: 64 });
  c.attributes.set(`${PREFIX_CACHE_MATCH_INFO}other`, {
    matchBlocks: 4,
    totalBlocks: 4,
    blockSizeTokens: 64,
  });
  const m = s.score(makeRequest({}), [a, b, c]);
  assert.deepEqual([m.get(a), m.get(b), m.get(c)], [0.75, 0, 0]);
  assert.equal(s.category, "Affinity");
});

test("factory auto-creates the producer only when none of that name exists; strict params", () => {
  const added: Plugin[] = [];
  const existing = new Map<string, Plugin>();
  const handle = {
    plugin: (n: string) => existing.get(n),
    addPlugin: (p: Plugin) => {
      added.push(p);
      existing.set(p.name, p);
    },
    allPlugins: () => [...existing.values()],
  };
  const f = makePrefixCacheScorerFactory((name) => ({ type: "approx-prefix-cache-producer", name }));
  const s1 = f("s1", undefined, handle) as PrefixCacheScorer;
  assert.deepEqual(s1.params, {
    matchLengthWeight: 0,
    matchLengthScaleTokens: 8192,
    prefixMatchInfoProducerName: "approx-prefix-cache-producer",
  });
  assert.equal(added.length, 1);
  assert.equal(added[0].name, "approx-prefix-cache-producer");
  f("s2", {}, handle);
  assert.equal(added.length, 1); // already there
  assert.throws(() => f("s3", { matchLengthWeight: 2 }, handle), /matchLengthWeight/);
  assert.throws(() => f("s3", { foo: 1 }, handle), /foo/);
});
