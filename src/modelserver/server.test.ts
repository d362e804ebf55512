import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import fc from "fast-check";
import OpenAI from "openai";
import { REQUEST_ID } from "../framework/headers.js";
import { words } from "./contract.js";
import { SimEngine } from "./engines/sim/engine.js";
import { type RunningModelServer, startModelServer } from "./server.js";

const json = (b: unknown) => ({
  method: "POST",
  headers: { "content-type": "application/json" },
  body: JSON.stringify(b),
});

function metricValue(text: string, name: string, labelPart = ""): number {
  const line = text.split("\n").find((l) => l.startsWith(`${name}{`) && l.includes(labelPart));
  assert.ok(line, `metric ${name} ${labelPart}`);
  return Number(line.split(" ").pop());
}

describe("model server with the sim engine (echo mode)", () => {
  let srv: RunningModelServer;
  let engine: SimEngine;
  let client: OpenAI;
  before(async () => {
    engine = new SimEngine({
      model: "base/m",
      mode: "echo",
      timeScale: 1000,
      maxModelLen: 512,
      historySize: 100,
    });
    srv = await startModelServer({ engine, servedModelNames: ["alias-a", "alias-b"] });
    client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: "x", maxRetries: 0 });
  });
  after(() => srv.close());

  it("serves every --served-model-name and labels metrics with the first", async () => {
    const list = await client.models.list();
    assert.deepEqual(
      list.data.map((m) => m.id),
      ["alias-a", "alias-b"],
    );
    assert.equal((list.data[0] as unknown as { root: string }).root, "base/m");
    const r = await client.chat.completions.create({
      model: "alias-b",
      messages: [{ role: "user", content: "hi" }],
    });
    assert.equal(r.model, "alias-b");
    const r2 = await fetch(`${srv.url}/v1/completions`, json({ model: "base/m", prompt: "x" }));
    assert.equal(r2.status, 404, "the base name is not served when aliases are given");
    const text = await (await fetch(`${srv.url}/metrics`)).text();
    assert.match(text, /vllm:num_requests_running\{model_name="alias-a",engine="0"\} 0/);
  });

  it("echoes the last user message (chat) and the prompt (completions)", async () => {
    const c = await client.chat.completions.create({
      model: "alias-a",
      messages: [
        { role: "user", content: "first question" },
        { role: "assistant", content: "answer" },
        { role: "user", content: "the second  question\nhere" },
      ],
    });
    assert.equal(c.choices[0]!.message.content, "the second  question\nhere");
    assert.equal(c.choices[0]!.finish_reason, "stop");
    assert.equal(c.usage?.completion_tokens, 4);
    const t = await client.completions.create({ model: "alias-a", prompt: "a b c d e", max_tokens: 3 });
    assert.equal(t.choices[0]!.text, "a b c");
    assert.equal(t.choices[0]!.finish_reason, "length");
    const ids = await client.completions.create({
      model: "alias-a",
      prompt: engine.tokenizer.encode("p q"),
      max_tokens: 5,
    });
    assert.equal(ids.choices[0]!.text, "p q");
  });

  it("chat default max_tokens is max_model_len − prompt", async () => {
    const content = words(400);
    const c = await client.chat.completions.create({
      model: "alias-a",
      messages: [{ role: "user", content }],
    });
    // prompt = 400 words + 2 template tokens folded into first/last; output truncated by the limit
    const prompt = c.usage!.prompt_tokens;
    assert.equal(c.usage!.completion_tokens, Math.min(400, 512 - prompt));
  });

  it("honours stop strings (non-stream and stream), excluding the stop text", async () => {
    const c = await client.completions.create({
      model: "alias-a",
      prompt: "one two three four five",
      max_tokens: 10,
      stop: [" thr", "zzz"],
    });
    assert.equal(c.choices[0]!.text, "one two");
    assert.equal(c.choices[0]!.finish_reason, "stop");
    assert.equal((c.choices[0] as unknown as { stop_reason: string }).stop_reason, " thr");
    const s = await client.chat.completions.create({
      model: "alias-a",
      messages: [{ role: "user", content: "alpha beta gamma delta" }],
      stop: "gamma",
      stream: true,
    });
    let text = "";
    const reasons: (string | null)[] = [];
    for await (const ch of s) {
      for (const x of ch.choices) {
        text += x.delta.content ?? "";
        reasons.push(x.finish_reason);
      }
    }
    assert.equal(text, "alpha beta ");
    assert.equal(reasons.filter((r) => r !== null).join(), "stop");
    assert.equal(engine.stats().running, 0);
  });

  it("echoes x-request-id in the stream chunk ids", async () => {
    const res = await fetch(`${srv.url}/v1/chat/completions`, {
      ...json({ model: "alias-a", messages: [{ role: "user", content: "x" }], stream: true }),
      headers: { "content-type": "application/json", [REQUEST_ID]: "rid-42" },
    });
    assert.equal(res.headers.get(REQUEST_ID), "rid-42");
    const text = await res.text();
    const ids = text
      .split("\n\n")
      .filter((l) => l.startsWith("data: {"))
      .map((l) => (JSON.parse(l.slice(6)) as { id: string }).id);
    assert.ok(ids.length >= 2);
    for (const id of ids) assert.equal(id, "chatcmpl-rid-42");
  });

  it("reports n > 1 and multiple prompts as unsupported (400)", async () => {
    for (const body of [
      { model: "alias-a", prompt: "x", n: 2 },
      { model: "alias-a", prompt: ["x", "y"] },
    ]) {
      const r = await fetch(`${srv.url}/v1/completions`, json(body));
      assert.equal(r.status, 400);
      assert.match(((await r.json()) as { error: { message: string } }).error.message, /not supported/);
    }
  });

  it("never answers 5xx to arbitrary JSON bodies and keeps serving", async () => {
    const paths = [
      "/v1/chat/completions",
      "/v1/completions",
      "/tokenize",
      "/v1/completions/render",
      "/v1/chat/completions/render",
    ];
    const field = fc.oneof(
      fc.jsonValue(),
      fc.constant("alias-a"),
      fc.constant([{ role: "user", content: "hi" }]),
    );
    const bodyArb = fc.oneof(
      fc.jsonValue(),
      fc.record(
        {
          model: fc.oneof(fc.constant("alias-a"), fc.jsonValue()),
          prompt: field,
          messages: field,
          max_tokens: fc.oneof(fc.integer({ min: -5, max: 40 }), fc.jsonValue()),
          stream: fc.oneof(fc.boolean(), fc.jsonValue()),
          stop: field,
          stream_options: field,
        },
        { requiredKeys: [] },
      ),
    );
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...paths), bodyArb, async (path, body) => {
        const r = await fetch(`${srv.url}${path}`, json(body));
        const text = await r.text();
        assert.ok(r.status < 500, `${path} ${JSON.stringify(body)} → ${r.status} ${text}`);
      }),
      { numRuns: 150 },
    );
    assert.equal((await fetch(`${srv.url}/health`)).status, 200);
    assert.equal(engine.stats().running, 0);
  });

  it("metrics counters equal the engine's counts", async () => {
    const before = engine.stats();
    const cachedBefore = metricValue(
      await (await fetch(`${srv.url}/metrics`)).text(),
      "vllm:prompt_tokens_cached_total",
    );
    await client.completions.create({ model: "alias-a", prompt: words(40, "m"), max_tokens: 3 });
    await client.completions.create({ model: "alias-a", prompt: words(40, "m"), max_tokens: 3 });
    const text = await (await fetch(`${srv.url}/metrics`)).text();
    const s = engine.stats();
    assert.equal(s.promptTokens - before.promptTokens, 80);
    assert.equal(s.prefixCacheHits - before.prefixCacheHits, 32);
    assert.equal(metricValue(text, "vllm:prompt_tokens_total"), s.promptTokens);
    assert.equal(metricValue(text, "vllm:generation_tokens_total"), s.generationTokens);
    assert.equal(metricValue(text, "vllm:prefix_cache_hits_total"), s.prefixCacheHits);
    assert.equal(metricValue(text, "vllm:prefix_cache_queries_total"), s.prefixCacheQueries);
    assert.equal(metricValue(text, "vllm:kv_cache_usage_perc"), 0);
    assert.equal(metricValue(text, "vllm:prompt_tokens_cached_total") - cachedBefore, 32);
    assert.equal(metricValue(text, "vllm:num_requests_waiting_by_reason", 'reason="capacity"'), 0);
    const text2 = await (await fetch(`${srv.url}/metrics`)).text();
    assert.equal(
      metricValue(text2, "vllm:prompt_tokens_total"),
      s.promptTokens,
      "a second scrape does not double-count",
    );
    assert.equal(
      metricValue(text, "vllm:request_prompt_tokens_count"),
      metricValue(text, "vllm:e2e_request_latency_seconds_count"),
    );
  });
});

describe("model server with the sim engine: load effects", () => {
  it("returns 429 when the waiting queue is full, and gauges show running/waiting/usage", async () => {
    const engine = new SimEngine({
      mode: "random",
      timeScale: 1,
      interTokenLatencyMs: 2,
      prefillOverheadMs: 0,
      prefillTimePerTokenMs: 0,
      maxNumSeqs: 1,
      maxWaitingQueueLength: 1,
    });
    const srv = await startModelServer({ engine, enablePromptTokensDetails: false });
    try {
      const body = {
        model: "llmd/sim-8b",
        prompt: words(20),
        max_tokens: 2000,
        ignore_eos: true,
        stream: true,
      };
      const ac = new AbortController();
      const first = await fetch(`${srv.url}/v1/completions`, { ...json(body), signal: ac.signal });
      assert.equal(first.status, 200);
      const r1 = first.body!.getReader();
      await r1.read();
      const second = await fetch(`${srv.url}/v1/completions`, { ...json(body), signal: ac.signal });
      assert.equal(second.status, 200);
      const third = await fetch(`${srv.url}/v1/completions`, json(body));
      assert.equal(third.status, 429);
      const err = (await third.json()) as { error: { type: string; code: number; message: string } };
      assert.equal(err.error.type, "RateLimitError");
      assert.equal(err.error.code, 429);
      assert.match(err.error.message, /waiting requests queue is full/);
      const text = await (await fetch(`${srv.url}/metrics`)).text();
      assert.equal(metricValue(text, "vllm:num_requests_running"), 1);
      assert.equal(metricValue(text, "vllm:num_requests_waiting"), 1);
      assert.equal(metricValue(text, "vllm:num_requests_waiting_by_reason", 'reason="capacity"'), 1);
      assert.ok(metricValue(text, "vllm:kv_cache_usage_perc") > 0);
      ac.abort();
      await r1.cancel().catch(() => {});
    } finally {
      await srv.close();
    }
  });

  it("uses the tokenizer's incremental decoder when it has one (held-back text is flushed)", async () => {
    const engine = new SimEngine({ mode: "echo", timeScale: 1000 });
    const tok = engine.tokenizer;
    let pushes = 0;
    // a decoder that releases text only every second token, the rest at flush
    (tok as unknown as { createDecoder: () => { push(id: number): string; flush(): string } }).createDecoder =
      () => {
        let held = "";
        return {
          push(id) {
            pushes++;
            held += tok.decodeOne(id);
            if (pushes % 2 === 0) {
              const out = held;
              held = "";
              return out;
            }
            return "";
          },
          flush() {
            const out = held;
            held = "";
            return out;
          },
        };
      };
    const srv = await startModelServer({ engine });
    try {
      for (const stream of [false, true]) {
        const r = await fetch(
          `${srv.url}/v1/completions`,
          json({ model: "llmd/sim-8b", prompt: "one two three", max_tokens: 5, stream }),
        );
        const t = await r.text();
        const text = stream
          ? t
              .split("\n\n")
              .filter((l) => l.startsWith("data: {"))
              .map((l) => (JSON.parse(l.slice(6)) as { choices: { text: string }[] }).choices[0]?.text ?? "")
              .join("")
          : (JSON.parse(t) as { choices: { text: string }[] }).choices[0]!.text;
        assert.equal(text, "one two three", `stream=${stream}`);
      }
      assert.equal(pushes, 6);
    } finally {
      await srv.close();
    }
  });

  it("P/D: prefill leg answers kv_transfer_params (no streaming); decode leg accepts them", async () => {
    const engine = new SimEngine({ mode: "echo", timeScale: 1000, historySize: 10 });
    const srv = await startModelServer({ engine });
    try {
      const prompt = words(40, "pd");
      const prefillKv = {
        do_remote_decode: true,
        do_remote_prefill: false,
        remote_engine_id: null,
        remote_block_ids: null,
        remote_host: null,
        remote_port: null,
      };
      const streamed = await fetch(
        `${srv.url}/v1/completions`,
        json({ model: "llmd/sim-8b", prompt, max_tokens: 1, stream: true, kv_transfer_params: prefillKv }),
      );
      assert.equal(streamed.status, 400);
      assert.match(
        ((await streamed.json()) as { error: { message: string } }).error.message,
        /Prefill does not support streaming/,
      );
      const p = await fetch(
        `${srv.url}/v1/completions`,
        json({ model: "llmd/sim-8b", prompt, max_tokens: 1, min_tokens: 1, kv_transfer_params: prefillKv }),
      );
      assert.equal(p.status, 200);
      const pj = (await p.json()) as {
        kv_transfer_params: Record<string, unknown>;
        choices: { finish_reason: string }[];
      };
      assert.equal(pj.choices[0]!.finish_reason, "length");
      const kv = pj.kv_transfer_params;
      assert.equal(kv.do_remote_prefill, true);
      assert.equal(kv.do_remote_decode, false);
      assert.equal(kv.remote_host, "127.0.0.1");
      assert.equal(kv.remote_port, srv.port);
      assert.equal(kv.remote_engine_id, engine.engineId);
      assert.ok(Array.isArray(kv.remote_block_ids));
      const d = await fetch(
        `${srv.url}/v1/completions`,
        json({ model: "llmd/sim-8b", prompt, max_tokens: 4, kv_transfer_params: kv }),
      );
      assert.equal(d.status, 200);
      const dj = (await d.json()) as { choices: { text: string }[]; kv_transfer_params: unknown };
      assert.equal(dj.choices[0]!.text, words(4, "pd"));
      assert.equal(dj.kv_transfer_params, null);
      const dec = engine.finished.at(-1)!;
      assert.equal(
        dec.prefillTokens,
        dec.promptTokens % 16 || 1,
        "the decode leg computes only the tokens past the last full block",
      );
    } finally {
      await srv.close();
    }
  });

  it("forwards engine events to extra observers alongside the metrics", async () => {
    const stored: number[] = [];
    const srv = await startModelServer({
      sim: { timeScale: 1000 },
      observers: [{ onBlocksStored: (e) => stored.push(e.blockHashes.length) }],
    });
    try {
      const r = await fetch(
        `${srv.url}/v1/completions`,
        json({ model: "llmd/sim-8b", prompt: words(40), max_tokens: 1 }),
      );
      assert.equal(r.status, 200);
      assert.deepEqual(stored, [2]);
      const text = await (await fetch(`${srv.url}/metrics`)).text();
      assert.ok(
        metricValue(text, "vllm:iteration_tokens_total_count") >= 1,
        "metrics observer still registered",
      );
    } finally {
      await srv.close();
    }
  });

  it("omits prompt_tokens_details when disabled (null non-stream)", async () => {
    const srv = await startModelServer({ sim: { timeScale: 1000 }, enablePromptTokensDetails: false });
    try {
      const r = (await (
        await fetch(`${srv.url}/v1/completions`, json({ model: "llmd/sim-8b", prompt: "a", max_tokens: 1 }))
      ).json()) as { usage: Record<string, unknown> };
      assert.equal(r.usage.prompt_tokens_details, null);
    } finally {
      await srv.close();
    }
  });

  it("counts preemptions in vllm:num_preemptions_total", async () => {
    const engine = new SimEngine({ mode: "echo", timeScale: 1000, numGpuBlocks: 6, blockSize: 4 });
    const srv = await startModelServer({ engine });
    try {
      const body = (p: string) => json({ model: "llmd/sim-8b", prompt: p, max_tokens: 8, ignore_eos: true });
      const rs = await Promise.all([
        fetch(`${srv.url}/v1/completions`, body(words(8, "a"))),
        fetch(`${srv.url}/v1/completions`, body(words(8, "c"))),
      ]);
      for (const r of rs) assert.equal(r.status, 200);
      const text = await (await fetch(`${srv.url}/metrics`)).text();
      assert.ok(engine.stats().preemptions >= 1);
      assert.equal(metricValue(text, "vllm:num_preemptions_total"), engine.stats().preemptions);
    } finally {
      await srv.close();
    }
  });
});
