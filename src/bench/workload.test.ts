import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { oracleHitRate } from "./oracle.js";
import { createRng, poissonArrivalsMs, shuffleInPlace } from "./prng.js";
import { buildWorkload } from "./run.js";
import { SHARED_PREFIX_DEFAULTS, sharedPrefixWorkload, simTokens } from "./workload.js";
import { WORDS } from "./words.js";

describe("prng", () => {
  it("is deterministic per seed and stream, and differs across them", () => {
    const a = Array.from(
      { length: 5 },
      (() => {
        const r = createRng(7);
        return () => r.next();
      })(),
    );
    const b = Array.from(
      { length: 5 },
      (() => {
        const r = createRng(7);
        return () => r.next();
      })(),
    );
    const c = Array.from(
      { length: 5 },
      (() => {
        const r = createRng(8);
        return () => r.next();
      })(),
    );
    const d = Array.from(
      { length: 5 },
      (() => {
        const r = createRng(7, 1);
        return () => r.next();
      })(),
    );
    assert.deepEqual(a, b);
    assert.notDeepEqual(a, c);
    assert.notDeepEqual(a, d);
    for (const x of a) assert.ok(x >= 0 && x < 1);
  });

  it("shuffles into a permutation", () => {
    const xs = shuffleInPlace(
      Array.from({ length: 50 }, (_, i) => i),
      createRng(3),
    );
    assert.deepEqual(
      [...xs].sort((p, q) => p - q),
      Array.from({ length: 50 }, (_, i) => i),
    );
    assert.notDeepEqual(
      xs,
      Array.from({ length: 50 }, (_, i) => i),
    );
  });

  it("Poisson arrivals increase and have roughly the requested mean gap", () => {
    const t = poissonArrivalsMs(2000, 50, createRng(1, 4));
    for (let i = 1; i < t.length; i++) assert.ok(t[i]! > t[i - 1]!);
    const meanGap = t[t.length - 1]! / t.length;
    // mean 20 ms; 2000 exponential samples have a standard error of ~2.2%
    assert.ok(meanGap > 18 && meanGap < 22, `mean gap ${meanGap}`);
    assert.throws(() => poissonArrivalsMs(3, 0, createRng(1)), RangeError);
  });
});

describe("shared-prefix workload", () => {
  const p = { groups: 3, promptsPerGroup: 4, systemPromptTokens: 40, questionTokens: 7 };

  it("makes exact sim-token counts, one system prompt per group, unique questions", () => {
    const w = sharedPrefixWorkload({ outputTokens: 5, seed: 9 }, p);
    assert.equal(w.name, "shared-prefix");
    assert.equal(w.requests.length, 12);
    const systems = new Map<number, string>();
    const questions = new Set<string>();
    const perGroup = new Map<number, number>();
    for (const [i, r] of w.requests.entries()) {
      assert.equal(r.index, i);
      assert.equal(r.maxTokens, 5);
      const toks = simTokens(r.prompt);
      assert.equal(toks.length, 47);
      assert.equal(r.promptTokens, 47);
      // one space between words: prompt = system + " " + question
      assert.equal(r.prompt, toks.join(" "));
      const sys = toks.slice(0, 40).join(" ");
      const q = toks.slice(40).join(" ");
      const g = r.group!;
      if (systems.has(g)) assert.equal(systems.get(g), sys);
      else systems.set(g, sys);
      assert.ok(!questions.has(q), "questions are unique per request");
      questions.add(q);
      perGroup.set(g, (perGroup.get(g) ?? 0) + 1);
      for (const t of toks.slice(1, 40)) assert.ok(WORDS.includes(t));
    }
    assert.equal(systems.size, 3);
    assert.equal(new Set(systems.values()).size, 3);
    // different groups share no first token, hence no prefix
    assert.equal(new Set([...systems.values()].map((s) => s.split(" ")[0])).size, 3);
    assert.deepEqual([...perGroup.values()], [4, 4, 4]);
  });

  it("interleaves groups in a seeded order", () => {
    const order = (seed: number) =>
      sharedPrefixWorkload({ outputTokens: 1, seed }, { ...p, groups: 6, promptsPerGroup: 6 }).requests.map(
        (r) => r.group,
      );
    assert.deepEqual(order(1), order(1));
    assert.notDeepEqual(order(1), order(2));
    const o = order(1);
    const sortedByGroup = [...o].sort((a, b) => a! - b!);
    assert.notDeepEqual(o, sortedByGroup, "not grouped");
    // same text for the same seed
    const a = sharedPrefixWorkload({ outputTokens: 1, seed: 5 }, p).requests.map((r) => r.prompt);
    const b = sharedPrefixWorkload({ outputTokens: 1, seed: 5 }, p).requests.map((r) => r.prompt);
    assert.deepEqual(a, b);
  });

  it("honours --requests below and above groups × prompts", () => {
    const few = sharedPrefixWorkload({ outputTokens: 1, seed: 1, requests: 5 }, p);
    assert.equal(few.requests.length, 5);
    const many = sharedPrefixWorkload({ outputTokens: 1, seed: 1, requests: 30 }, p);
    assert.equal(many.requests.length, 30);
    const counts = [0, 0, 0];
    for (const r of many.requests.slice(0, 24)) counts[r.group!]!++;
    assert.deepEqual(counts, [8, 8, 8], "two full rounds of pairs");
    assert.equal(new Set(many.requests.map((r) => r.prompt)).size, 30);
  });

  it("validates parameters and applies defaults", () => {
    assert.throws(() => sharedPrefixWorkload({ outputTokens: 1, seed: 1 }, { ...p, groups: 0 }), RangeError);
    assert.throws(() => sharedPrefixWorkload({ outputTokens: 0, seed: 1 }, p), RangeError);
    const w = buildWorkload({});
    assert.equal(w.requests.length, SHARED_PREFIX_DEFAULTS.groups * SHARED_PREFIX_DEFAULTS.promptsPerGroup);
    assert.equal(w.requests[0]!.promptTokens, 1024 + 64);
    assert.equal(simTokens(w.requests[0]!.prompt).length, 1088);
    assert.equal(w.requests[0]!.maxTokens, 32);
    assert.deepEqual(w.params, {
      num_groups: 16,
      num_prompts_per_group: 8,
      system_prompt_len: 1024,
      question_len: 64,
      output_len: 32,
    });
  });
});

describe("oracle hit rate", () => {
  it("matches a hand-computed value for a tiny shared-prefix workload", () => {
    // 2 groups × 3 prompts, system 20 + question 5 = 25 tokens, blocks of 8.
    // First request of each group: 0. The other 4 share the 20-token system prompt → 2 whole
    // blocks = 16 tokens (cap floor(24/8)·8 = 24 does not bite). 4 × 16 / (6 × 25) = 64/150.
    const w = sharedPrefixWorkload(
      { outputTokens: 1, seed: 4 },
      { groups: 2, promptsPerGroup: 3, systemPromptTokens: 20, questionTokens: 5 },
    );
    const r = oracleHitRate(
      w.requests.map((q) => simTokens(q.prompt)),
      8,
    );
    assert.equal(r.hitTokens, 64);
    assert.equal(r.promptTokens, 150);
    assert.equal(r.hitRate, 64 / 150);
  });

  it("caps at prompt_tokens − 1 (whole blocks) and needs chained blocks", () => {
    const a = "a b c d e f g h i j k l m n o p".split(" "); // 16 tokens = 2 blocks of 8
    // identical repeat: 2 blocks match but at most floor(15/8) = 1 block counts → 8
    assert.equal(oracleHitRate([a, a], 8).hitTokens, 8);
    // 17 tokens: both blocks count (cap floor(16/8) = 2)
    assert.equal(oracleHitRate([a, [...a, "x"]], 8).hitTokens, 16);
    // same second block after a different first block: no hit
    const b = ["z", ...a.slice(1)];
    assert.equal(oracleHitRate([a, b, [...b, "y"]], 8).hitTokens, 16);
    // partial blocks never count; order matters (first request of a prefix is a miss)
    assert.equal(oracleHitRate([a.slice(0, 7), a.slice(0, 7)], 8).hitTokens, 0);
    assert.deepEqual(oracleHitRate([], 16), { hitRate: 0, hitTokens: 0, promptTokens: 0 });
    assert.throws(() => oracleHitRate([a], 0), RangeError);
  });
});
