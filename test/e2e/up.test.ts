/**
 * The main job end to end: `llmd up` brings up the router and a pool of sim servers; the
 * official `openai` client lists models, gets chat completions (streamed and not) and a
 * completion through the router; Ctrl-C (SIGTERM) stops every child.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import OpenAI from "openai";
import { freePort, type LlmdChild, runLlmd } from "./helpers.js";

let up: LlmdChild;
let url: string;
let serverPorts: number[] = [];

before(async () => {
  const port = await freePort();
  const first = await freePort();
  up = runLlmd([
    "up",
    "--port",
    String(port),
    "--replicas",
    "2",
    "--first-server-port",
    String(first),
    "--server-arg=--time-scale",
    "--server-arg=20",
  ]);
  const line = await up.waitForLine(/router ready at (http:\/\/\S+) with 2 sim servers \(([^)]+)\)/);
  const m = /ready at (\S+) with 2 sim servers \(([^)]+)\)/.exec(line)!;
  url = m[1]!;
  serverPorts = m[2]!.split(", ").map((hp) => Number(hp.split(":")[1]));
});

after(async () => {
  const code = await up?.stop();
  assert.equal(code, 0, "llmd up exits 0 on SIGTERM");
  // every child is gone: their ports refuse connections
  for (const p of serverPorts) {
    await assert.rejects(
      fetch(`http://127.0.0.1:${p}/health`),
      "server still answering after llmd up stopped",
    );
  }
});

test("the openai client lists the pool's models through the router", async () => {
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: "unused" });
  const models = await client.models.list();
  assert.deepEqual(
    models.data.map((m) => m.id),
    ["llmd/sim-8b"],
  );
});

test("chat completion, non-streaming, with usage", async () => {
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: "unused" });
  const r = await client.chat.completions.create({
    model: "llmd/sim-8b",
    messages: [{ role: "user", content: "Hello there, router" }],
    max_tokens: 8,
  });
  assert.equal(r.object, "chat.completion");
  assert.equal(r.choices.length, 1);
  assert.equal(r.choices[0]!.message.role, "assistant");
  assert.ok((r.choices[0]!.message.content ?? "").length > 0);
  assert.ok(["stop", "length"].includes(r.choices[0]!.finish_reason));
  assert.ok(
    r.usage && r.usage.prompt_tokens > 0 && r.usage.completion_tokens > 0 && r.usage.completion_tokens <= 8,
  );
});

test("chat completion, streaming, with include_usage", async () => {
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: "unused" });
  const stream = await client.chat.completions.create({
    model: "llmd/sim-8b",
    messages: [{ role: "user", content: "Stream me some words please" }],
    max_tokens: 6,
    stream: true,
    stream_options: { include_usage: true },
  });
  let text = "";
  let chunks = 0;
  let usage: OpenAI.CompletionUsage | undefined;
  let finish: string | null = null;
  for await (const c of stream) {
    chunks++;
    if (c.choices[0]?.delta?.content) text += c.choices[0].delta.content;
    if (c.choices[0]?.finish_reason) finish = c.choices[0].finish_reason;
    if (c.usage) usage = c.usage;
  }
  assert.ok(chunks >= 3, `expected several chunks, got ${chunks}`);
  assert.ok(text.length > 0);
  assert.ok(finish === "stop" || finish === "length");
  assert.ok(usage, "final usage chunk");
  assert.equal(usage.completion_tokens, 6);
});

test("completion through the router; the second identical request hits the prefix cache", async () => {
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: "unused" });
  const prompt = Array.from({ length: 200 }, (_, i) => `word${i}`).join(" ");
  const a = await client.completions.create({ model: "llmd/sim-8b", prompt, max_tokens: 4 });
  assert.equal(a.object, "text_completion");
  assert.equal(a.usage?.prompt_tokens, 200);
  const b = await client.completions.create({ model: "llmd/sim-8b", prompt, max_tokens: 4 });
  const cached = (b.usage as { prompt_tokens_details?: { cached_tokens?: number } }).prompt_tokens_details
    ?.cached_tokens;
  assert.ok(
    (cached ?? 0) >= 192,
    `prefix-aware routing sends the repeat to the server that cached it (cached ${cached})`,
  );
});
