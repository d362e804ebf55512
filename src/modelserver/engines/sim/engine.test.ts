import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ApiError } from "../../../api/errors.js";
import type { EngineFinish, EngineRequest, StoredBlocks } from "../../engine.js";
import { SimEngine, type SimEngineOptions } from "./engine.js";
import { blockHashes, firstBlockExtra } from "./kv-cache.js";

const range = (a: number, b: number) => Array.from({ length: b - a }, (_, i) => a + i);

function engine(o: Partial<SimEngineOptions> = {}): SimEngine {
  return new SimEngine({ timeScale: 1e6, historySize: 10_000, mode: "echo", ...o });
}

let nextId = 0;
function req(prompt: number[], maxTokens: number, extra: Partial<EngineRequest> = {}): EngineRequest {
  return {
    requestId: `r${nextId++}`,
    promptTokens: prompt,
    params: { maxTokens, minTokens: 0, ignoreEos: true },
    echoTokens: range(1000, 1001 + maxTokens),
    ...extra,
  };
}

async function run(e: SimEngine, r: EngineRequest): Promise<{ tokens: number[]; finish: EngineFinish }> {
  const tokens: number[] = [];
  for await (const o of e.generate(r)) {
    tokens.push(...o.tokens);
    if (o.finish) return { tokens, finish: o.finish };
  }
  throw new Error("no finish");
}

const rec = (e: SimEngine, id: string) => {
  const r = e.finished.find((x) => x.requestId === id);
  assert.ok(r, `record of ${id}`);
  return r;
};

describe("SimEngine", () => {
  it("generates the echo tokens, finish length when truncated, stop otherwise", async () => {
    const e = engine();
    const a = await run(e, { ...req([1, 2, 3], 2), echoTokens: [7, 8, 9] });
    assert.deepEqual(a.tokens, [7, 8]);
    assert.equal(a.finish.reason, "length");
    assert.deepEqual(a.finish.usage, { promptTokens: 3, cachedTokens: 0, completionTokens: 2 });
    const b = await run(e, { ...req([1, 2, 3], 5), echoTokens: [7, 8, 9] });
    assert.deepEqual(b.tokens, [7, 8, 9]);
    assert.equal(b.finish.reason, "stop");
    const s = e.stats();
    assert.equal(s.promptTokens, 6);
    assert.equal(s.generationTokens, 5);
    assert.equal(s.running + s.waiting, 0);
    assert.equal(s.kvCacheUsage, 0);
    await e.close();
  });

  it("random mode is deterministic for the same seed + prompt + request seed", async () => {
    const e = engine({ mode: "random", seed: 5 });
    const p = range(0, 20);
    const r1 = await run(
      e,
      req(p, 30, { params: { maxTokens: 30, minTokens: 0, ignoreEos: true, seed: 1 } }),
    );
    const r2 = await run(
      e,
      req(p, 30, { params: { maxTokens: 30, minTokens: 0, ignoreEos: true, seed: 1 } }),
    );
    const r3 = await run(
      e,
      req(p, 30, { params: { maxTokens: 30, minTokens: 0, ignoreEos: true, seed: 2 } }),
    );
    assert.deepEqual(r1.tokens, r2.tokens);
    assert.notDeepEqual(r1.tokens, r3.tokens);
    assert.equal(r1.tokens.length, 30);
    assert.equal(r1.finish.reason, "length");
    // N output tokens decode to N words
    assert.equal(e.tokenizer.decode(r1.tokens).split(" ").length, 30);
    // without ignore_eos a seeded EOS may end a request early, never below min_tokens
    let early = 0;
    let total = 0;
    for (let s = 0; s < 40; s++) {
      const r = await run(
        e,
        req(p, 2000, { params: { maxTokens: 2000, minTokens: 5, ignoreEos: false, seed: s } }),
      );
      assert.ok(r.tokens.length >= 5 && r.tokens.length <= 2000);
      total += r.tokens.length;
      if (r.finish.reason === "stop") {
        early++;
        assert.ok(r.tokens.length < 2000);
      } else assert.equal(r.tokens.length, 2000);
    }
    assert.ok(early >= 35, `early stops: ${early}`);
    const mean = total / 40;
    assert.ok(mean > 100 && mean < 500, `mean length ${mean} (geometric, ≈ 5 + 256)`);
    const again = await run(
      e,
      req(p, 2000, { params: { maxTokens: 2000, minTokens: 5, ignoreEos: false, seed: 3 } }),
    );
    const again2 = await run(
      e,
      req(p, 2000, { params: { maxTokens: 2000, minTokens: 5, ignoreEos: false, seed: 3 } }),
    );
    assert.equal(again.tokens.length, again2.tokens.length);
    await e.close();
  });

  it("continuous batching never runs more than max-num-seqs", async () => {
    const e = engine({ maxNumSeqs: 2 });
    const rs = await Promise.all(range(0, 5).map(() => run(e, req(range(0, 8), 4))));
    for (const r of rs) assert.equal(r.tokens.length, 4);
    assert.ok(e.steps.length > 0);
    for (const s of e.steps) assert.ok(s.seqs <= 2, `step with ${s.seqs} seqs`);
    assert.ok(e.steps.some((s) => s.seqs === 2));
    await e.close();
  });

  it("chunked prefill respects max-num-batched-tokens", async () => {
    const e = engine({ maxNumBatchedTokens: 64, prefillOverheadMs: 10, prefillTimePerTokenMs: 1 });
    const r = await run(e, req(range(0, 200), 3));
    assert.equal(r.tokens.length, 3);
    const prefill = e.steps.filter((s) => s.prefillTokens > 0).map((s) => s.prefillTokens);
    assert.deepEqual(prefill, [64, 64, 64, 8]);
    for (const s of e.steps) assert.ok(s.prefillTokens + s.decodeSeqs <= 64);
    // TTFT in simulated time: four prefill steps of 10 ms + n × 1 ms
    assert.equal(e.finished.at(-1)!.ttftMs, 4 * 10 + 200);
    await e.close();
  });

  it("a long prefill raises the step time of co-running decodes", async () => {
    const e = engine({
      prefillOverheadMs: 30,
      prefillTimePerTokenMs: 0.25,
      interTokenLatencyMs: 12,
      decodeBatchFactor: 0,
    });
    const a = req(range(0, 10), 12);
    let seen = 0;
    let bDone: Promise<unknown> | null = null;
    for await (const o of e.generate(a)) {
      seen += o.tokens.length;
      if (seen >= 3 && bDone === null) bDone = run(e, req(range(100, 1100), 2));
      if (o.finish) break;
    }
    await bDone;
    const itl = rec(e, a.requestId).itlMs;
    assert.equal(itl.length, 11);
    const stalled = itl.filter((x) => x > 12);
    assert.deepEqual(stalled, [12 + 30 + 1000 * 0.25], "one decode step shared B's 1000-token prefill");
    assert.equal(itl.filter((x) => x === 12).length, 10);
    const mixed = e.steps.find((s) => s.prefillTokens === 1000)!;
    assert.equal(mixed.decodeSeqs, 1);
    assert.equal(mixed.durationMs, 292);
    await e.close();
  });

  it("constant latency calculator: a request's prefill chunks sum to time-to-first-token", async () => {
    const e = engine({
      timeToFirstTokenMs: 100,
      maxNumBatchedTokens: 30,
      interTokenLatencyMs: 7,
      prefillOverheadMs: 50,
    });
    const r = await run(e, req(range(0, 90), 3));
    assert.equal(r.tokens.length, 3);
    const prefill = e.steps.filter((s) => s.prefillTokens > 0);
    assert.deepEqual(
      prefill.map((s) => s.prefillTokens),
      [30, 30, 30],
    );
    const rec0 = e.finished.at(-1)!;
    assert.ok(Math.abs(rec0.ttftMs - 100) < 1e-9, `ttft ${rec0.ttftMs}`);
    assert.deepEqual(rec0.itlMs, [7, 7]);
    // explicit per-token calculator ignores time-to-first-token
    const e2 = engine({
      latencyCalculator: "per-token",
      timeToFirstTokenMs: 100,
      prefillOverheadMs: 5,
      prefillTimePerTokenMs: 1,
    });
    await run(e2, req(range(0, 90), 1));
    assert.equal(e2.finished.at(-1)!.ttftMs, 5 + 90);
    await e.close();
    await e2.close();
  });

  it("decode step time grows with the decode batch", async () => {
    const e = engine({
      interTokenLatencyMs: 10,
      decodeBatchFactor: 0.1,
      prefillOverheadMs: 0,
      prefillTimePerTokenMs: 0,
    });
    await Promise.all(range(0, 4).map(() => run(e, req(range(0, 4), 6))));
    const decodeOnly = e.steps.filter((s) => s.prefillTokens === 0 && s.decodeSeqs === 4);
    assert.ok(decodeOnly.length > 0);
    for (const s of decodeOnly) assert.ok(Math.abs(s.durationMs - 10 * 1.3) < 1e-9);
    await e.close();
  });

  it("a prefix-cache hit skips prefill work and lowers TTFT (at least the last token is computed)", async () => {
    const e = engine({ prefillOverheadMs: 30, prefillTimePerTokenMs: 0.25, blockSize: 16 });
    const p = range(0, 100);
    const r1 = await run(e, req(p, 2));
    const r2 = await run(e, req(p, 2));
    assert.equal(r1.finish.usage.cachedTokens, 0);
    assert.equal(r2.finish.usage.cachedTokens, 96);
    const [a, b] = e.finished.slice(-2);
    assert.equal(a!.prefillTokens, 100);
    assert.equal(b!.prefillTokens, 4);
    assert.equal(a!.ttftMs, 30 + 100 * 0.25);
    assert.equal(b!.ttftMs, 30 + 4 * 0.25);
    // a prompt of exactly 6 full blocks: the last block is recomputed
    const r3 = await run(e, req(range(0, 96), 1));
    assert.equal(r3.finish.usage.cachedTokens, 80);
    // different cache_salt: no hit
    const r4 = await run(e, req(p, 1, { cacheSalt: "tenant-b" }));
    assert.equal(r4.finish.usage.cachedTokens, 0);
    const s = e.stats();
    assert.equal(s.prefixCacheQueries, 100 + 100 + 96 + 100);
    assert.equal(s.prefixCacheHits, 96 + 80);
    await e.close();
  });

  it("a full KV cache queues requests", async () => {
    // 8 blocks of 16: each request holds ceil((50+10)/16) = 4 blocks at the end
    const e = engine({ numGpuBlocks: 8, blockSize: 16, maxNumSeqs: 16 });
    let maxWaiting = 0;
    let maxUsage = 0;
    const probe = async (r: EngineRequest) => {
      const tokens: number[] = [];
      for await (const o of e.generate(r)) {
        const s = e.stats();
        maxWaiting = Math.max(maxWaiting, s.waiting);
        maxUsage = Math.max(maxUsage, s.kvCacheUsage);
        tokens.push(...o.tokens);
        if (o.finish) break;
      }
      return tokens;
    };
    const rs = await Promise.all(range(0, 4).map((i) => probe(req(range(i * 1000, i * 1000 + 50), 10))));
    for (const r of rs) assert.equal(r.length, 10);
    assert.ok(
      e.steps.every((s) => s.seqs <= 2),
      "at most two requests fit at once",
    );
    assert.ok(e.steps.some((s) => s.seqs === 2));
    assert.ok(maxWaiting >= 1, `waiting ${maxWaiting}`);
    assert.ok(maxUsage <= 1 && maxUsage > 0.5, `usage ${maxUsage}`);
    assert.equal(e.stats().kvCacheUsage, 0);
    await e.close();
  });

  it("preempts the most recently admitted request when a decode cannot get a block", async () => {
    // 6 blocks of 4 tokens; each request needs 4 blocks by the end (8 prompt + 8 output)
    const e = engine({ numGpuBlocks: 6, blockSize: 4 });
    const a = req(range(0, 8), 8);
    const b = req(range(50, 58), 8);
    const [ra, rb] = await Promise.all([run(e, a), run(e, b)]);
    assert.deepEqual(ra.tokens, range(1000, 1008));
    assert.deepEqual(rb.tokens, range(1000, 1008));
    assert.equal(ra.finish.reason, "length");
    assert.equal(rb.finish.reason, "length");
    assert.equal(rec(e, a.requestId).preemptions, 0);
    assert.ok(rec(e, b.requestId).preemptions >= 1, "B, admitted last, was preempted");
    assert.ok(e.stats().preemptions >= 1);
    // B recomputed its prompt + outputs after preemption
    assert.ok(rec(e, b.requestId).prefillTokens > 8);
    assert.equal(e.stats().kvCacheUsage, 0);
    assert.equal(e.stats().generationTokens, 16);
    await e.close();
  });

  it("reports stored (chained, per run) and evicted blocks to the observer for KV events", async () => {
    const e = engine({ blockSize: 16, numGpuBlocks: 6 });
    const stored: StoredBlocks[] = [];
    const removed: bigint[] = [];
    let stepEnds = 0;
    e.setObserver({
      onBlocksStored: (x) => stored.push(x),
      onBlocksRemoved: (h) => removed.push(...h),
      onStepEnd: () => {
        stepEnds++;
      },
    });
    const p = range(0, 40);
    await run(e, req(p, 20)); // 40 prompt + 20 output: blocks 0,1 after prefill, block 2 while decoding
    assert.equal(stored.length, 2);
    assert.equal(stored[0]!.blockHashes.length, 2);
    assert.deepEqual(stored[0]!.tokenIds, range(0, 32));
    assert.equal(stored[0]!.parentHash, null);
    assert.equal(stored[1]!.blockHashes.length, 1);
    assert.equal(stored[1]!.parentHash, stored[0]!.blockHashes[1]);
    assert.deepEqual(stored[1]!.tokenIds, [...range(32, 40), ...range(1000, 1008)]);
    const expected = blockHashes([...p, ...range(1000, 1020)], 16, firstBlockExtra(e.info.model));
    assert.deepEqual([...stored[0]!.blockHashes, ...stored[1]!.blockHashes], expected.slice(0, 3));
    assert.equal(stepEnds, 20, "one prefill step + 19 decode steps");
    // the same request again: its blocks are cache hits or already cached → no new events
    await run(e, req(p, 20));
    assert.equal(stored.length, 2);
    assert.equal(removed.length, 0);
    // a different 90-token prompt needs all 6 blocks: the 3 cached ones are evicted
    await run(e, req(range(500, 590), 1));
    assert.deepEqual(new Set(removed), new Set(expected.slice(0, 3)));
    assert.equal(stored.at(-1)!.blockHashes.length, 5);
    await e.close();
  });

  it("P/D prefill leg returns NIXL v2 kv_transfer_params", async () => {
    const e = engine({ blockSize: 16 });
    const r = await run(
      e,
      req(range(0, 40), 1, { kvTransferParams: { do_remote_decode: true, do_remote_prefill: false } }),
    );
    assert.equal(r.finish.reason, "length");
    const kv = r.finish.kvTransferParams!;
    assert.equal(kv.do_remote_prefill, true);
    assert.equal(kv.do_remote_decode, false);
    assert.equal(kv.remote_engine_id, e.engineId);
    assert.equal(kv.tp_size, 1);
    assert.equal((kv.remote_block_ids as number[]).length, 2, "full prompt blocks only");
    assert.equal(typeof kv.remote_request_id, "string");
    // an ordinary request returns none
    const plain = await run(e, req(range(0, 40), 1));
    assert.equal(plain.finish.kvTransferParams, null);
    await e.close();
  });

  it("P/D decode leg pulls the KV instead of prefilling, without stalling co-running decodes", async () => {
    const e = engine({
      kvCacheTransferTimePerTokenMs: 0.01,
      interTokenLatencyMs: 12,
      decodeBatchFactor: 0,
      prefillOverheadMs: 30,
      prefillTimePerTokenMs: 0.25,
    });
    const remote = {
      do_remote_prefill: true,
      do_remote_decode: false,
      remote_block_ids: [1, 2],
      remote_engine_id: "x",
    };
    const alone = req(range(0, 1000), 3, { kvTransferParams: remote });
    const r = await run(e, alone);
    assert.equal(r.tokens.length, 3);
    const rec0 = rec(e, alone.requestId);
    // 62 full blocks (992 tokens) are pulled; the 8 tokens past the last full block are computed
    // locally with the first decode step (per-token cost, no prefill overhead)
    assert.equal(rec0.prefillTokens, 8, "only the remainder past the last full block is computed");
    assert.ok(Math.abs(rec0.ttftMs - (992 * 0.01 + 12 + 7 * 0.25)) < 1e-9, `ttft ${rec0.ttftMs}`);
    assert.ok(e.steps.every((s) => s.prefillTokens === 0), "no prefill step");
    // while another request decodes, a pulled request adds no prefill step
    const a = req(range(5000, 5010), 12);
    let seen = 0;
    let cDone: Promise<unknown> | null = null;
    for await (const o of e.generate(a)) {
      seen += o.tokens.length;
      if (seen >= 3 && cDone === null)
        cDone = run(e, req(range(7000, 8000), 2, { kvTransferParams: remote }));
      if (o.finish) break;
    }
    await cDone;
    // one step carries the pulled request's 8-token remainder (+7 × 0.25 ms), never a prefill
    const itlA = rec(e, a.requestId).itlMs;
    assert.deepEqual(
      itlA.filter((x) => Math.abs(x - 12) > 1e-9).map((x) => Math.round(x * 1e6) / 1e6),
      [12 + 7 * 0.25],
      `ITL of the co-running request: ${itlA}`,
    );
    assert.equal(e.stats().kvCacheUsage, 0);
    await e.close();
  });

  it("P/D decode leg aborted while pulling frees its blocks; pulls count as waiting", async () => {
    const e = engine({ timeScale: 1, kvCacheTransferLatencyMs: 10_000 });
    const ac = new AbortController();
    const it = e
      .generate(req(range(0, 100), 5, { kvTransferParams: { do_remote_prefill: true }, signal: ac.signal }))
      [Symbol.asyncIterator]();
    const first = it.next();
    for (let i = 0; i < 50 && e.stats().kvCacheUsage === 0; i++) await new Promise((r) => setImmediate(r));
    assert.ok(e.stats().kvCacheUsage > 0, "blocks allocated for the pull");
    assert.equal(e.stats().waiting, 1);
    assert.equal(e.stats().running, 0);
    ac.abort();
    const o = await first;
    assert.equal(o.value?.finish?.reason, "abort");
    assert.equal(e.stats().kvCacheUsage, 0);
    assert.equal(e.stats().waiting, 0);
    await e.close();
  });

  it("abort frees the request's KV blocks and finishes with abort", async () => {
    const e = engine({
      timeScale: 1,
      interTokenLatencyMs: 5,
      prefillOverheadMs: 0,
      prefillTimePerTokenMs: 0,
    });
    const ac = new AbortController();
    const r = req(range(0, 40), 1000, { signal: ac.signal });
    let finish: EngineFinish | undefined;
    let n = 0;
    for await (const o of e.generate(r)) {
      n += o.tokens.length;
      if (n >= 2 && !ac.signal.aborted) {
        assert.ok(e.stats().kvCacheUsage > 0);
        ac.abort();
      }
      if (o.finish) finish = o.finish;
    }
    assert.equal(finish?.reason, "abort");
    assert.equal(e.stats().kvCacheUsage, 0);
    assert.equal(e.stats().running, 0);
    await e.close();
  });

  it("refuses with 429 when the waiting queue is full, and 400 when too long", async () => {
    const e = engine({ maxWaitingQueueLength: 2, maxModelLen: 100 });
    const ok = [run(e, req([1, 2], 2)), run(e, req([3, 4], 2))];
    assert.throws(
      () => e.generate(req([5], 1)),
      (err: unknown) => err instanceof ApiError && err.status === 429,
    );
    assert.throws(
      () => e.generate(req(range(0, 90), 20)),
      (err: unknown) =>
        err instanceof ApiError && err.status === 400 && /maximum context length is 100/.test(err.message),
    );
    await Promise.all(ok);
    await e.close();
  });

  it("with zero latencies the loop yields to the event loop and stops when idle", async () => {
    const e = engine({
      timeScale: 1,
      prefillOverheadMs: 0,
      prefillTimePerTokenMs: 0,
      interTokenLatencyMs: 0,
      decodeBatchFactor: 0,
    });
    let ticks = 0;
    let stop = false;
    const tick = () => {
      ticks++;
      if (!stop) setImmediate(tick);
    };
    setImmediate(tick);
    const r = await run(e, req([1, 2, 3], 200));
    stop = true;
    assert.equal(r.tokens.length, 200);
    assert.ok(ticks >= 50, `event loop ran ${ticks} times during 200 steps`);
    const steps = e.steps.length;
    for (let i = 0; i < 5; i++) await new Promise((res) => setImmediate(res));
    assert.equal(e.steps.length, steps, "no steps while idle");
    await e.close();
  });
});
