/**
 * Bad input to the router and to the model server gets the OpenAI error shape with the right
 * 4xx, and both processes keep serving afterwards.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { freePort, type LlmdChild, runLlmd } from "./helpers.js";

let up: LlmdChild;
let routerUrl: string;
let serverUrl: string;

before(async () => {
  const port = await freePort();
  const first = await freePort();
  up = runLlmd([
    "up",
    "--port",
    String(port),
    "--replicas",
    "1",
    "--first-server-port",
    String(first),
    "--server-arg=--time-scale",
    "--server-arg=20",
  ]);
  const line = await up.waitForLine(/router ready at (\S+) with 1 sim servers \(([^)]+)\)/);
  const m = /ready at (\S+) with 1 sim servers \(([^)]+)\)/.exec(line)!;
  routerUrl = m[1]!;
  serverUrl = `http://${m[2]}`;
});

after(async () => {
  await up?.stop();
});

interface Case {
  name: string;
  path: string;
  body?: string | Buffer;
  method?: string;
  contentType?: string;
  status: number;
  param?: string;
}

const MODEL = "llmd/sim-8b";
const cases: Case[] = [
  { name: "malformed JSON", path: "/v1/chat/completions", body: '{"model": "x", "messages": [', status: 400 },
  { name: "non-object JSON", path: "/v1/completions", body: "[1,2,3]", status: 400 },
  { name: "empty body", path: "/v1/completions", body: "", status: 400 },
  {
    name: "missing model",
    path: "/v1/completions",
    body: JSON.stringify({ prompt: "hi" }),
    status: 400,
    param: "model",
  },
  {
    name: "unknown model",
    path: "/v1/chat/completions",
    body: JSON.stringify({ model: "no-such-model", messages: [{ role: "user", content: "hi" }] }),
    status: 404,
    param: "model",
  },
  {
    name: "wrong type: max_tokens as string",
    path: "/v1/completions",
    body: JSON.stringify({ model: MODEL, prompt: "hi", max_tokens: "5" }),
    status: 400,
    param: "max_tokens",
  },
  {
    name: "wrong type: messages not an array",
    path: "/v1/chat/completions",
    body: JSON.stringify({ model: MODEL, messages: "hi" }),
    status: 400,
    param: "messages",
  },
  {
    name: "stream_options without stream",
    path: "/v1/completions",
    body: JSON.stringify({ model: MODEL, prompt: "hi", stream_options: { include_usage: true } }),
    status: 400,
    param: "stream_options",
  },
  { name: "unknown path", path: "/v1/nope", body: "{}", status: 404 },
  { name: "wrong method on an inference path", path: "/v1/completions", method: "GET", status: 405 },
];

async function send(base: string, c: Case): Promise<Response> {
  return fetch(base + c.path, {
    method: c.method ?? "POST",
    headers: c.body !== undefined ? { "content-type": c.contentType ?? "application/json" } : {},
    body: c.body,
  });
}

function assertErrorShape(body: unknown, c: Case): void {
  const e = (body as { error?: Record<string, unknown> }).error;
  assert.ok(e, `${c.name}: body has an error object: ${JSON.stringify(body)}`);
  assert.equal(typeof e.message, "string");
  assert.ok((e.message as string).length > 0);
  assert.equal(typeof e.type, "string");
  assert.ok("param" in e && "code" in e, `${c.name}: error has param and code`);
  if (c.param) assert.equal(e.param, c.param, `${c.name}: param`);
}

for (const target of ["router", "server"] as const) {
  describe(`bad input to the ${target}`, () => {
    for (const c of cases) {
      test(`${c.name} → ${c.status}`, async () => {
        const base = target === "router" ? routerUrl : serverUrl;
        const r = await send(base, c);
        assert.equal(r.status, c.status, `${c.name}: status`);
        assertErrorShape(await r.json(), c);
      });
    }

    test("an oversized body → 413 without reading it all", async () => {
      const base = target === "router" ? routerUrl : serverUrl;
      const big = Buffer.alloc(9 * 1024 * 1024, 0x61);
      const r = await fetch(`${base}/v1/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: big,
      }).catch((e: Error) => e);
      // The server may close the connection after answering; either way it must not be a 2xx/5xx.
      if (r instanceof Error)
        return assert.match(String(r.cause ?? r.message), /ECONNRESET|EPIPE|other side closed|terminated/);
      assert.equal(r.status, 413);
      assertErrorShape(await r.json(), { name: "oversized", path: "", status: 413 });
    });

    test("still serving after all of that", async () => {
      const base = target === "router" ? routerUrl : serverUrl;
      const r = await fetch(`${base}/v1/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: MODEL, prompt: "still alive?", max_tokens: 2 }),
      });
      assert.equal(r.status, 200);
      const j = (await r.json()) as { choices: unknown[] };
      assert.equal(j.choices.length, 1);
    });
  });
}
