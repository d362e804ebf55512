/**
 * The engine contract suite: the HTTP behaviour every engine must show behind
 * {@link startModelServer} (vLLM API surface, reference/engine.md §1, §2, §4.6), driven by the
 * official `openai` client and raw HTTP. Engine-neutral: it never assumes the output text,
 * only shapes, counts and statuses. Run it from a `*.test.ts` with an engine factory:
 *
 * ```ts
 * runModelServerContract("sim", () => new SimEngine({ timeScale: 1000 }));
 * ```
 *
 * Requirements on the engine: its model accepts prompts of a few hundred tokens, honours
 * `ignore_eos` + `max_tokens` exactly, reuses a cached prefix of ≥ 2 full blocks for an
 * identical second request, and a request with `max_tokens` min(4000, max_model_len − 2 ×
 * prompt) is still running after its first streamed chunk (for the disconnect test).
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import OpenAI from "openai";
import parsePrometheusTextFormat from "parse-prometheus-text-format";
import { INFERENCE_POD, INFERENCE_PORT, REQUEST_ID } from "../framework/headers.js";
import * as N from "../metrics/vllm-names.js";
import type { Engine } from "./engine.js";
import { type RunningModelServer, startModelServer } from "./server.js";

/** Fixture with the vLLM v0.26.0 metric families (`name type` lines). */
export const METRIC_FAMILIES_FIXTURE = new URL(
  "../../../shared/fixtures/vllm/metric-families-v0.26.0.txt",
  import.meta.url,
);

/** Families the model server must expose (all with labels model_name + engine unless noted). */
export const IMPLEMENTED_FAMILIES: readonly string[] = [
  N.VLLM_NUM_REQUESTS_RUNNING,
  N.VLLM_NUM_REQUESTS_WAITING,
  N.VLLM_KV_CACHE_USAGE_PERC,
  N.VLLM_CACHE_CONFIG_INFO,
  N.VLLM_LORA_REQUESTS_INFO,
  N.VLLM_PREFIX_CACHE_QUERIES_TOTAL,
  N.VLLM_PREFIX_CACHE_HITS_TOTAL,
  N.VLLM_PROMPT_TOKENS_TOTAL,
  N.VLLM_GENERATION_TOKENS_TOTAL,
  N.VLLM_NUM_PREEMPTIONS_TOTAL,
  N.VLLM_REQUEST_SUCCESS_TOTAL,
  N.VLLM_TIME_TO_FIRST_TOKEN_SECONDS,
  N.VLLM_INTER_TOKEN_LATENCY_SECONDS,
  N.VLLM_TIME_PER_OUTPUT_TOKEN_SECONDS,
  N.VLLM_REQUEST_TIME_PER_OUTPUT_TOKEN_SECONDS,
  N.VLLM_E2E_REQUEST_LATENCY_SECONDS,
  N.VLLM_REQUEST_QUEUE_TIME_SECONDS,
  N.VLLM_REQUEST_INFERENCE_TIME_SECONDS,
  N.VLLM_REQUEST_PREFILL_TIME_SECONDS,
  N.VLLM_REQUEST_DECODE_TIME_SECONDS,
  N.VLLM_REQUEST_PROMPT_TOKENS,
  N.VLLM_REQUEST_GENERATION_TOKENS,
  N.VLLM_REQUEST_PARAMS_MAX_TOKENS,
  N.VLLM_REQUEST_PARAMS_N,
  N.VLLM_ITERATION_TOKENS_TOTAL,
  N.VLLM_NUM_REQUESTS_WAITING_BY_REASON,
  N.VLLM_PROMPT_TOKENS_CACHED_TOTAL,
  N.VLLM_EXTERNAL_PREFIX_CACHE_QUERIES_TOTAL,
  N.VLLM_EXTERNAL_PREFIX_CACHE_HITS_TOTAL,
  N.VLLM_REQUEST_PREFILL_KV_COMPUTED_TOKENS,
  N.VLLM_REQUEST_MAX_NUM_GENERATION_TOKENS,
];

/** `name → TYPE` (lower case) of the fixture. */
export function fixtureFamilies(): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of readFileSync(METRIC_FAMILIES_FIXTURE, "utf8").split("\n")) {
    const t = line.trim();
    if (t === "" || t.startsWith("#")) continue;
    const [name, type] = t.split(/\s+/);
    out.set(name!, type!);
  }
  return out;
}

/** A prompt of `n` words (exactly `n` tokens with the sim tokenizer). */
export function words(n: number, salt = "w"): string {
  return Array.from({ length: n }, (_, i) => `${salt}${i}`).join(" ");
}

async function until(cond: () => boolean, what: string, tries = 400): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  assert.fail(`timed out waiting for: ${what}`);
}

/**
 * Registers the contract tests for one engine.
 * @param name suite name
 * @param makeEngine builds a fresh engine (the suite closes it)
 */
export function runModelServerContract(name: string, makeEngine: () => Engine | Promise<Engine>): void {
  describe(`model server contract: ${name}`, () => {
    let srv: RunningModelServer;
    let engine: Engine;
    let client: OpenAI;
    let model: string;

    const post = (path: string, body: string | Buffer, headers: Record<string, string> = {}) =>
      fetch(srv.url + path, {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        body,
      });

    const expectError = async (res: Response, status: number, param?: string | null) => {
      assert.equal(res.status, status);
      assert.match(res.headers.get("content-type") ?? "", /application\/json/);
      const b = (await res.json()) as {
        error: { message: string; type: string; param: unknown; code: unknown };
      };
      assert.equal(typeof b.error.message, "string");
      assert.ok(b.error.message.length > 0);
      assert.equal(typeof b.error.type, "string");
      assert.ok("param" in b.error);
      if (param !== undefined) assert.equal(b.error.param, param);
      assert.equal(typeof b.error.code === "number" || typeof b.error.code === "string", true);
      if (typeof b.error.code === "number") assert.equal(b.error.code, status);
      return b.error;
    };

    const stillServing = async () => {
      const h = await fetch(`${srv.url}/health`);
      assert.equal(h.status, 200);
      assert.equal(await h.text(), "");
    };

    before(async () => {
      engine = await makeEngine();
      srv = await startModelServer({ engine, port: 0, maxRequestBodySizeMb: 1, podName: "pod-under-test" });
      model = engine.info.model;
      client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: "unused", maxRetries: 0 });
    });
    after(async () => {
      await srv.close();
    });

    it("lists the model with vLLM's fields", async () => {
      const list = await client.models.list();
      const m = list.data.find((x) => x.id === model);
      assert.ok(m, "served model listed");
      const raw = m as unknown as Record<string, unknown>;
      assert.equal(raw.object, "model");
      assert.equal(raw.owned_by, "vllm");
      assert.equal(raw.parent, null);
      assert.equal(raw.max_model_len, engine.info.maxModelLen);
      assert.equal(typeof raw.root, "string");
      assert.equal(typeof raw.created, "number");
    });

    it("chat completion (non-stream) with usage, ids and headers", async () => {
      const messages = [{ role: "user" as const, content: words(20) }];
      const { data, response } = await client.chat.completions
        .create(
          {
            model,
            messages,
            max_tokens: 5,
            ignore_eos: true,
          } as OpenAI.ChatCompletionCreateParamsNonStreaming,
          {
            headers: { [REQUEST_ID]: "contract-req-1" },
          },
        )
        .withResponse();
      assert.equal(data.id, "chatcmpl-contract-req-1");
      assert.equal(response.headers.get(REQUEST_ID), "contract-req-1");
      assert.equal(response.headers.get(INFERENCE_POD), "pod-under-test");
      assert.equal(response.headers.get(INFERENCE_PORT), String(srv.port));
      assert.equal(data.object, "chat.completion");
      assert.equal(data.model, model);
      assert.equal(data.choices.length, 1);
      assert.equal(data.choices[0]!.message.role, "assistant");
      assert.equal(typeof data.choices[0]!.message.content, "string");
      assert.equal(data.choices[0]!.finish_reason, "length");
      const tok = engine.tokenizer;
      const expectedPrompt = tok.encode(
        tok.applyChatTemplate([{ role: "user", content: words(20) }], true),
      ).length;
      assert.equal(data.usage?.prompt_tokens, expectedPrompt);
      assert.equal(data.usage?.completion_tokens, 5);
      assert.equal(data.usage?.total_tokens, expectedPrompt + 5);
      assert.equal(typeof data.usage?.prompt_tokens_details?.cached_tokens, "number");
      assert.ok("kv_transfer_params" in (data as unknown as Record<string, unknown>));
    });

    it("generates an x-request-id when absent", async () => {
      const res = await post("/v1/completions", JSON.stringify({ model, prompt: "a b c", max_tokens: 1 }));
      assert.equal(res.status, 200);
      const rid = res.headers.get(REQUEST_ID);
      assert.ok(rid && rid.length >= 8);
      const b = (await res.json()) as { id: string };
      assert.equal(b.id, `cmpl-${rid}`);
    });

    it("chat stream: role first, content deltas, finish_reason, usage chunk with cached_tokens, [DONE]", async () => {
      const content = words(200, "stream");
      const run = async () => {
        const stream = await client.chat.completions.create({
          model,
          messages: [{ role: "user", content }],
          max_tokens: 6,
          ignore_eos: true,
          stream: true,
          stream_options: { include_usage: true },
        } as OpenAI.ChatCompletionCreateParamsStreaming);
        const chunks: OpenAI.ChatCompletionChunk[] = [];
        for await (const c of stream) chunks.push(c);
        return chunks;
      };
      const first = await run();
      assert.equal(first[0]!.choices[0]!.delta.role, "assistant");
      const last = first[first.length - 1]!;
      assert.deepEqual(last.choices, []);
      assert.equal(last.usage?.completion_tokens, 6);
      const finishes = first.flatMap((c) => c.choices.map((x) => x.finish_reason)).filter((x) => x != null);
      assert.deepEqual(finishes, ["length"]);
      for (const c of first) assert.equal(c.object, "chat.completion.chunk");
      const second = await run();
      const u2 = second[second.length - 1]!.usage!;
      assert.equal(u2.prompt_tokens, last.usage?.prompt_tokens);
      const cached = u2.prompt_tokens_details?.cached_tokens ?? 0;
      assert.ok(
        cached >= 2 * engine.info.blockSize,
        `cached_tokens ${cached} on the identical second request`,
      );
      assert.ok(cached < u2.prompt_tokens, "at least the last prompt token is computed");
    });

    it("raw SSE ends with data: [DONE] and has no usage chunk without include_usage", async () => {
      const res = await post(
        "/v1/completions",
        JSON.stringify({ model, prompt: "x y", max_tokens: 3, stream: true }),
      );
      assert.equal(res.status, 200);
      assert.match(res.headers.get("content-type") ?? "", /text\/event-stream/);
      const text = await res.text();
      const events = text.split("\n\n").filter((s) => s !== "");
      assert.equal(events[events.length - 1], "data: [DONE]");
      for (const e of events.slice(0, -1)) {
        assert.ok(e.startsWith("data: "));
        const j = JSON.parse(e.slice(6)) as { choices: unknown[]; usage?: unknown };
        assert.equal(j.choices.length, 1);
        assert.equal(j.usage, undefined);
      }
    });

    it("completions (non-stream and stream)", async () => {
      const c = await client.completions.create({
        model,
        prompt: words(10),
        max_tokens: 4,
        ignore_eos: true,
      } as OpenAI.CompletionCreateParamsNonStreaming);
      assert.equal(c.object, "text_completion");
      assert.equal(c.choices[0]!.finish_reason, "length");
      assert.equal(typeof c.choices[0]!.text, "string");
      assert.equal(c.usage?.prompt_tokens, engine.tokenizer.encode(words(10)).length);
      assert.equal(c.usage?.completion_tokens, 4);
      const s = await client.completions.create({
        model,
        prompt: words(10),
        max_tokens: 4,
        ignore_eos: true,
        stream: true,
        stream_options: { include_usage: true },
      } as OpenAI.CompletionCreateParamsStreaming);
      let text = "";
      let usage: OpenAI.CompletionUsage | undefined;
      for await (const ch of s) {
        for (const x of ch.choices) text += x.text;
        if (ch.usage) usage = ch.usage;
      }
      assert.equal(usage?.completion_tokens, 4);
      assert.equal(typeof text, "string");
    });

    it("default max_tokens of completions is 16", async () => {
      const c = await client.completions.create({
        model,
        prompt: "p q r",
        ignore_eos: true,
      } as OpenAI.CompletionCreateParamsNonStreaming);
      assert.equal(c.usage?.completion_tokens, 16);
    });

    it("tokenize and render endpoints return the engine's token ids", async () => {
      const tok = engine.tokenizer;
      const t = (await (
        await post("/tokenize", JSON.stringify({ model, prompt: "one two three" }))
      ).json()) as {
        count: number;
        tokens: number[];
        max_model_len: number;
      };
      assert.deepEqual(t.tokens, tok.encode("one two three"));
      assert.equal(t.count, t.tokens.length);
      assert.equal(t.max_model_len, engine.info.maxModelLen);
      const r1 = await post("/v1/completions/render", JSON.stringify({ model, prompt: "alpha beta" }));
      assert.equal(r1.status, 200);
      assert.deepEqual(await r1.json(), [{ token_ids: tok.encode("alpha beta") }]);
      const msgs = [
        { role: "system", content: "s" },
        { role: "user", content: "u v" },
      ];
      const r2 = await post("/v1/chat/completions/render", JSON.stringify({ model, messages: msgs }));
      assert.equal(r2.status, 200);
      const b2 = (await r2.json()) as { token_ids: number[] };
      assert.deepEqual(b2.token_ids, tok.encode(tok.applyChatTemplate(msgs, true)));
    });

    it("rejects bad input with vLLM's error shape and keeps serving", async () => {
      await expectError(await post("/v1/chat/completions", "{not json"), 400);
      await stillServing();
      await expectError(await post("/v1/chat/completions", "[1,2]"), 400);
      await expectError(
        await post("/v1/chat/completions", JSON.stringify({ messages: [{ role: "user", content: "hi" }] })),
        400,
        "model",
      );
      const nf = await expectError(
        await post(
          "/v1/chat/completions",
          JSON.stringify({ model: "nope", messages: [{ role: "user", content: "x" }] }),
        ),
        404,
      );
      assert.equal(nf.message, "The model `nope` does not exist.");
      assert.equal(nf.type, "NotFoundError");
      await expectError(
        await post("/v1/chat/completions", JSON.stringify({ model, messages: "hello" })),
        400,
        "messages",
      );
      await expectError(
        await post("/v1/completions", JSON.stringify({ model, prompt: "x", max_tokens: "ten" })),
        400,
        "max_tokens",
      );
      const so = await expectError(
        await post(
          "/v1/chat/completions",
          JSON.stringify({
            model,
            messages: [{ role: "user", content: "x" }],
            stream_options: { include_usage: true },
          }),
        ),
        400,
      );
      assert.match(so.message, /stream_options can only be set if stream is true/);
      const long = await expectError(
        await post(
          "/v1/completions",
          JSON.stringify({ model, prompt: "x y", max_tokens: engine.info.maxModelLen }),
        ),
        400,
      );
      assert.match(long.message, new RegExp(`maximum context length is ${engine.info.maxModelLen} tokens`));
      await expectError(
        await post("/v1/completions", JSON.stringify({ model, prompt: "x", max_tokens: 2, min_tokens: 3 })),
        400,
        "min_tokens",
      );
      await expectError(await post("/v1/completions", JSON.stringify({ model, prompt: "" })), 400, "prompt");
      await stillServing();
      const big = Buffer.alloc(1024 * 1024 + 10, 0x20);
      await expectError(await post("/v1/completions", big), 413);
      await stillServing();
      await expectError(await fetch(`${srv.url}/v1/nothing-here`), 404);
      await expectError(await fetch(`${srv.url}/v1/chat/completions`), 405);
      await stillServing();
      // the openai client surfaces the same errors
      await assert.rejects(
        client.chat.completions.create({ model: "nope", messages: [{ role: "user", content: "x" }] }),
        (e: unknown) => e instanceof OpenAI.NotFoundError,
      );
    });

    it("refuses an oversized chunked body while reading", async () => {
      const chunk = Buffer.alloc(256 * 1024, 0x20);
      let sent = 0;
      const body = new ReadableStream<Uint8Array>({
        pull(ctrl) {
          if (sent >= 8) return ctrl.close();
          sent++;
          ctrl.enqueue(chunk);
        },
      });
      const res = await fetch(`${srv.url}/v1/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
        duplex: "half",
      } as RequestInit);
      await expectError(res, 413);
      await stillServing();
    });

    it("client disconnect aborts the request in the engine and frees its KV blocks", async () => {
      const ac = new AbortController();
      const res = await fetch(`${srv.url}/v1/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          model,
          prompt: words(64, "dc"),
          max_tokens: Math.min(
            4000,
            engine.info.maxModelLen - 2 * engine.tokenizer.encode(words(64, "dc")).length,
          ),
          ignore_eos: true,
          stream: true,
        }),
        signal: ac.signal,
      });
      assert.equal(res.status, 200);
      const reader = res.body!.getReader();
      await reader.read();
      await until(() => engine.stats().running === 1, "request running");
      assert.ok(engine.stats().kvCacheUsage > 0);
      ac.abort();
      await until(() => engine.stats().running === 0 && engine.stats().waiting === 0, "request aborted");
      assert.equal(engine.stats().kvCacheUsage, 0);
      const text = await (await fetch(`${srv.url}/metrics`)).text();
      assert.match(text, /vllm:request_success_total\{[^}]*finished_reason="abort"[^}]*\} [1-9]/);
      await stillServing();
    });

    it("/metrics exposes vLLM families with the fixture's names and types, labels and buckets", async () => {
      const res = await fetch(`${srv.url}/metrics`);
      assert.equal(res.status, 200);
      const text = await res.text();
      const fams = parsePrometheusTextFormat(text);
      const ours = new Map(fams.map((f) => [f.name, f]));
      const fixture = fixtureFamilies();
      for (const name of IMPLEMENTED_FAMILIES) assert.ok(ours.has(name), `family ${name} exposed`);
      let compared = 0;
      for (const [name, fam] of ours) {
        if (!name.startsWith("vllm:")) continue;
        const want = fixture.get(name);
        if (want === undefined) continue;
        assert.equal(fam.type.toLowerCase(), want, `type of ${name}`);
        compared++;
      }
      assert.ok(compared >= 28, `compared ${compared} families with the fixture`);
      // Labels from the raw lines (the parser drops labels of histogram samples).
      const sampleLines = text.split("\n").filter((l) => l.startsWith("vllm:"));
      const labelsOf = (line: string): Record<string, string> => {
        const m = /^[^{ ]+\{([^}]*)\}/.exec(line);
        const out: Record<string, string> = {};
        if (m) for (const kv of m[1]!.matchAll(/(\w+)="([^"]*)"/g)) out[kv[1]!] = kv[2]!;
        return out;
      };
      for (const name of IMPLEMENTED_FAMILIES) {
        const lines = sampleLines.filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name}_`));
        assert.ok(lines.length > 0, `${name} has a series`);
        for (const line of lines) {
          const labels = labelsOf(line);
          if (name === N.VLLM_LORA_REQUESTS_INFO) {
            assert.deepEqual(Object.keys(labels).sort(), [
              "max_lora",
              "running_lora_adapters",
              "waiting_lora_adapters",
            ]);
            assert.ok(Number(line.split(" ").pop()) > 1e9, "lora info value is a Unix timestamp");
          } else if (name === N.VLLM_CACHE_CONFIG_INFO) {
            assert.equal(labels.block_size, String(engine.info.blockSize));
            assert.equal(labels.num_gpu_blocks, String(engine.info.numGpuBlocks));
            assert.equal(labels.engine, "0");
            assert.equal(line.split(" ").pop(), "1");
          } else {
            assert.equal(labels.model_name, model, `${line}: model_name`);
            assert.equal(labels.engine, "0", `${line}: engine`);
          }
        }
      }
      const ttftLines = sampleLines.filter((l) =>
        l.startsWith(`${N.VLLM_TIME_TO_FIRST_TOKEN_SECONDS}_bucket{`),
      );
      const le = ttftLines
        .map((l) => labelsOf(l).le!)
        .filter((x) => x !== "+Inf")
        .map(Number);
      assert.deepEqual(
        le,
        [
          0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
          40.0, 80.0, 160.0, 640.0, 2560.0,
        ],
      );
      const count = sampleLines.find((l) => l.startsWith(`${N.VLLM_TIME_TO_FIRST_TOKEN_SECONDS}_count{`));
      assert.ok(Number(count?.split(" ").pop()) >= 5, "TTFT observed for the requests so far");
      const reasons = ours
        .get(N.VLLM_REQUEST_SUCCESS_TOTAL)!
        .metrics.map((m) => m.labels?.finished_reason)
        .sort();
      assert.deepEqual(reasons, ["abort", "length", "stop"]);
      const gen = Number(ours.get(N.VLLM_GENERATION_TOKENS_TOTAL)!.metrics[0]!.value);
      assert.ok(gen >= 5 + 12 + 4 + 4 + 16, `generation tokens ${gen}`);
      const hits = Number(ours.get(N.VLLM_PREFIX_CACHE_HITS_TOTAL)!.metrics[0]!.value);
      assert.ok(hits >= 2 * engine.info.blockSize, `prefix cache hits ${hits}`);
    });
  });
}
