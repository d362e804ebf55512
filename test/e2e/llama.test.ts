/**
 * The real engine end to end: `llmd up --engine llama` with a generated 1M-parameter GGUF model
 * (one thread per server), driven by the official `openai` client through the router:
 *
 * 1. aggregated (`--replicas 2`): models, chat (streaming and not), completion; prefix reuse
 *    through one server's HTTP surface (`cached_tokens` = the shared prefix, exactly);
 * 2. P/D (`--prefill 1 --decode 1`): a long prompt is prefilled on the prefill server, its KV
 *    pulled over the HTTP side channel by the decode server (`vllm:nixl_*` there rises), and
 *    the greedy text equals the aggregated stack's greedy text for the same prompt.
 *
 * Why the texts must be equal: both stacks compute `prompt[0..n−1)` in one evaluate call and
 * the last prompt token alone (engine.ts module doc), and each request runs alone on its
 * server (no concurrent requests here, so no batching: reference/llama-engine.md §6).
 * The stacks run one after the other (2 cores).
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import OpenAI from "openai";
import { createModel } from "../../src/gguf/model.js";
import { freePort, type LlmdChild, runLlmd } from "./helpers.js";

const dir = mkdtempSync(join(tmpdir(), "llmd-e2e-llama-"));
const modelPath = join(dir, "m1.gguf");
const MODEL = "llmd-e2e-1m";

const PARAGRAPH =
  "The people of this city said that there was a great story about water and the sea. " +
  "Every morning the children walk to school along the river, and their mother tells them to stay together. ";
/** ≥ 256 estimated tokens (≈ 4 bytes each) not cached anywhere: config/pd.yaml sends it P/D */
const LONG_PROMPT = `${PARAGRAPH.repeat(10)}And so the story ends:`;

/** Sum of a metric's samples in a Prometheus text page (0 when absent). */
function metricSum(text: string, name: string): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    if (line.startsWith(`${name}{`) || line.startsWith(`${name} `)) sum += Number(line.split(" ").at(-1));
  }
  return sum;
}

/** Starts `llmd up --engine llama --model <1m file> <extra>`; resolves with its URL and server ports. */
async function startStack(
  extra: string[],
  what: RegExp,
): Promise<{ up: LlmdChild; url: string; ports: number[] }> {
  const port = await freePort();
  const first = await freePort();
  const up = runLlmd([
    "up",
    "--engine",
    "llama",
    "--model",
    modelPath,
    "--port",
    String(port),
    "--first-server-port",
    String(first),
    "--ready-timeout",
    "120000",
    ...extra,
  ]);
  const line = await up.waitForLine(/router ready at|exited/, 150_000);
  const m = /ready at (\S+) with (.+) llama servers \(([^)]+)\)/.exec(line);
  assert.ok(m, `ready line: ${line}\n${up.lines.join("\n")}`);
  assert.match(m[2]!, what);
  return { up, url: m[1]!, ports: m[3]!.split(", ").map((hp) => Number(hp.split(":")[1])) };
}

async function stopStack(s: { up: LlmdChild; ports: number[] } | undefined): Promise<void> {
  if (!s) return;
  assert.equal(await s.up.stop(), 0, "llmd up exits 0 on SIGTERM");
  for (const p of s.ports) {
    await assert.rejects(
      fetch(`http://127.0.0.1:${p}/health`),
      "server still answering after llmd up stopped",
    );
  }
}

before(async () => {
  await createModel({ out: modelPath, params: "1m", seed: 11, name: MODEL });
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** Greedy text of the long prompt on the aggregated stack (the P/D reference). */
let aggregatedText: string | undefined;

describe("llmd up --engine llama --replicas 2", () => {
  let stack: Awaited<ReturnType<typeof startStack>> | undefined;
  let client: OpenAI;
  before(async () => {
    stack = await startStack(["--replicas", "2"], /^2$/);
    client = new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: "unused" });
  });
  after(() => stopStack(stack));

  test("the openai client lists the model named in the GGUF file", async () => {
    const models = await client.models.list();
    assert.deepEqual(
      models.data.map((m) => m.id),
      [MODEL],
    );
  });

  test("chat completion, non-streaming", async () => {
    const r = await client.chat.completions.create({
      model: MODEL,
      messages: [{ role: "user", content: "Hello there, real engine" }],
      max_tokens: 8,
      temperature: 0,
    });
    assert.equal(r.object, "chat.completion");
    assert.equal(r.choices[0]!.message.role, "assistant");
    assert.ok(["stop", "length"].includes(r.choices[0]!.finish_reason));
    assert.ok(r.usage && r.usage.prompt_tokens > 5 && r.usage.completion_tokens >= 1);
    assert.ok(r.usage.completion_tokens <= 8);
  });

  test("chat completion, streaming, with include_usage", async () => {
    const stream = await client.chat.completions.create({
      model: MODEL,
      messages: [{ role: "user", content: "Stream me some words please" }],
      max_tokens: 6,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    });
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | undefined;
    let chunks = 0;
    for await (const c of stream) {
      chunks++;
      if (c.choices[0]?.finish_reason) finish = c.choices[0].finish_reason;
      if (c.usage) usage = c.usage;
    }
    assert.ok(chunks >= 2, `chunks: ${chunks}`);
    assert.ok(finish === "stop" || finish === "length");
    assert.ok(usage && usage.completion_tokens >= 1 && usage.completion_tokens <= 6);
  });

  test("completion: greedy output is deterministic (the P/D reference)", async () => {
    const a = await client.completions.create({
      model: MODEL,
      prompt: LONG_PROMPT,
      max_tokens: 16,
      temperature: 0,
    });
    assert.equal(a.object, "text_completion");
    assert.ok(a.usage && a.usage.prompt_tokens > 256, `prompt tokens ${a.usage?.prompt_tokens}`);
    aggregatedText = a.choices[0]!.text;
    assert.ok(aggregatedText.length > 0);
  });

  test("prefix reuse through one server: cached_tokens = the shared prefix, only the suffix is computed", async () => {
    const server = `http://127.0.0.1:${stack!.ports[0]}`;
    const tokenize = async (prompt: string) =>
      (
        (await (
          await fetch(`${server}/tokenize`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ model: MODEL, prompt }),
          })
        ).json()) as { tokens: number[] }
      ).tokens;
    const complete = async (prompt: string) =>
      (await (
        await fetch(`${server}/v1/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ model: MODEL, prompt, max_tokens: 2, temperature: 0 }),
        })
      ).json()) as { usage: { prompt_tokens: number; prompt_tokens_details: { cached_tokens: number } } };
    const prefix = `Questions about a story. ${PARAGRAPH.repeat(4)}Question number `;
    const a = `${prefix}one: where is the river?`;
    const b = `${prefix}two: who walks to school?`;
    const [ta, tb] = [await tokenize(a), await tokenize(b)];
    let common = 0;
    while (common < ta.length && ta[common] === tb[common]) common++;
    assert.ok(common > 100 && common < tb.length - 1, `common prefix ${common} of ${tb.length}`);
    const computed = async () =>
      metricSum(
        await (await fetch(`${server}/metrics`)).text(),
        "vllm:request_prefill_kv_computed_tokens_sum",
      );
    const c0 = await computed();
    const ra = await complete(a);
    assert.equal(ra.usage.prompt_tokens, ta.length);
    const c1 = await computed();
    const rb = await complete(b);
    assert.equal(rb.usage.prompt_tokens, tb.length);
    assert.equal(rb.usage.prompt_tokens_details.cached_tokens, common, "the shared prefix is reused");
    // prefill KV computed = prompt minus reused prefix (vllm:request_prefill_kv_computed_tokens)
    assert.equal(c1 - c0, ta.length - ra.usage.prompt_tokens_details.cached_tokens);
    assert.equal((await computed()) - c1, tb.length - common);
  });
});

describe("llmd up --engine llama --prefill 1 --decode 1", () => {
  let stack: Awaited<ReturnType<typeof startStack>> | undefined;
  before(async () => {
    stack = await startStack(["--prefill", "1", "--decode", "1"], /^1 prefill \+ 1 decode$/);
  });
  after(() => stopStack(stack));

  test("a long prompt goes P/D over the side channel and gives the aggregated greedy text", async () => {
    assert.ok(aggregatedText !== undefined, "the aggregated stack ran first");
    const [prefillPort, decodePort] = stack!.ports as [number, number];
    const scrape = async (port: number) => (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const before = await scrape(decodePort);
    assert.equal(metricSum(before, "vllm:nixl_xfer_time_seconds_count"), 0);
    const client = new OpenAI({ baseURL: `${stack!.url}/v1`, apiKey: "unused" });
    const r = await client.completions.create({
      model: MODEL,
      prompt: LONG_PROMPT,
      max_tokens: 16,
      temperature: 0,
    });
    assert.equal(r.choices[0]!.text, aggregatedText, "P/D greedy text = aggregated greedy text");
    const d = await scrape(decodePort);
    assert.equal(
      metricSum(d, "vllm:nixl_xfer_time_seconds_count"),
      1,
      "the decode server pulled the KV once",
    );
    const bytes = metricSum(d, "vllm:nixl_bytes_transferred_sum");
    // 1m model: 2 × 4 layers × 128 KV width × 2 bytes = 2048 bytes per token of the prompt
    assert.ok(bytes > (r.usage!.prompt_tokens - 1) * 2048, `${bytes} bytes transferred`);
    assert.equal(metricSum(d, "vllm:nixl_num_failed_transfers_total"), 0);
    // the prefill server served one 1-token request and holds nothing afterwards
    const p = await scrape(prefillPort);
    assert.equal(metricSum(p, "vllm:request_generation_tokens_sum"), 1);
    const blocks = await fetch(`http://127.0.0.1:${prefillPort}/llmd/kv/layout`);
    assert.equal(blocks.status, 200);
    // streaming P/D through the router also works (a prompt sharing no prefix with the first:
    // the decode server now caches LONG_PROMPT, so a continuation of it would be decode-only)
    const stream = await client.completions.create({
      model: MODEL,
      prompt: `Another tale, streamed: ${PARAGRAPH.split(" ").reverse().join(" ").repeat(10)}`,
      max_tokens: 8,
      temperature: 0,
      stream: true,
    });
    let text = "";
    for await (const c of stream) text += c.choices[0]?.text ?? "";
    assert.ok(text.length > 0);
    assert.equal(metricSum(await scrape(decodePort), "vllm:nixl_xfer_time_seconds_count"), 2);
  });
});
