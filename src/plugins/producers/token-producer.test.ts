import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { xxh64 } from "@node-rs/xxhash";
import { TOKENIZED_PROMPT, type TokenizedPrompt } from "../../framework/types.js";
import { estimateTokens, MULTIMODAL_PLACEHOLDER_TOKENS, packBytes } from "../../kvcache/estimate-tokens.js";
import { makeRequest } from "../testing.js";
import { parseRenderAnswer, TokenProducer, tokenProducerFactory } from "./token-producer.js";

const handle = { plugin: () => undefined, addPlugin() {}, allPlugins: () => [] };
const tok = (r: ReturnType<typeof makeRequest>) => r.attributes.get(TOKENIZED_PROMPT) as TokenizedPrompt;
/** Reference packing: explicit little-endian arithmetic over zero-padded bytes. */
const ref = (s: string) => {
  const b = [...Buffer.from(s, "utf8")];
  while (b.length % 4) b.push(0);
  const out: number[] = [];
  for (let i = 0; i < b.length; i += 4)
    out.push((b[i] + b[i + 1] * 256 + b[i + 2] * 65536 + b[i + 3] * 16777216) >>> 0);
  return out;
};

test("estimate: 4 bytes → 1 little-endian uint32, zero-padded", () => {
  assert.deepEqual([...packBytes(Buffer.from("abcdE"))], [0x64636261, 0x45]);
  assert.deepEqual([...packBytes(new Uint8Array(0))], []);
  const p = new TokenProducer();
  const r = makeRequest({ prompt: "héllo wörld!" });
  assert.equal(p.produce(r), undefined); // synchronous
  assert.deepEqual([...tok(r).tokenIds], ref("héllo wörld!"));
  assert.equal(tok(r).source, "estimate");
});

test("completions: string[] joined with a space, token ids as given", () => {
  assert.deepEqual([...estimateTokens({ body: { prompt: ["ab", "cd"] } })], ref("ab cd"));
  assert.deepEqual([...estimateTokens({ body: { prompt: [5, 6, 7] } })], [5, 6, 7]);
  assert.deepEqual([...estimateTokens({ body: { prompt: [[1, 2], [3]] } })], [1, 2, 3]);
});

test("chat: tools JSON, then role+content per message; text parts concatenated", () => {
  const tools = [{ type: "function", function: { name: "f" } }];
  const body = {
    tools,
    messages: [
      { role: "system", content: "be brief" },
      {
        role: "user",
        content: [
          { type: "text", text: "hi " },
          { type: "text", text: "there" },
        ],
      },
    ],
  };
  assert.deepEqual([...estimateTokens({ body })], ref(`${JSON.stringify(tools)}systembe briefuserhi there`));
});

test("chat: multimodal part pads to 4 bytes then adds placeholder tokens", () => {
  const url = "http://x/img.png";
  const t = estimateTokens({
    body: {
      messages: [
        {
          role: "user",
          content: [
            { type: "text", text: "a" },
            { type: "image_url", image_url: { url } },
          ],
        },
      ],
    },
  });
  const ph = Number(xxh64(Buffer.from(url), 0n) & 0xffffffffn);
  assert.deepEqual([...t], [...ref("usera"), ...new Array(MULTIMODAL_PLACEHOLDER_TOKENS).fill(ph)]);
});

test("render answers: completions array, chat object", () => {
  assert.deepEqual([...parseRenderAnswer([{ token_ids: [1, 2] }], false)], [1, 2]);
  assert.deepEqual([...parseRenderAnswer({ token_ids: [3] }, true)], [3]);
  assert.throws(() => parseRenderAnswer({ nope: 1 }, true));
});

async function withServer(
  handler: (req: IncomingMessage, body: string, res: ServerResponse) => void,
  fn: (url: string) => Promise<void>,
) {
  const srv = createServer((req, res) => {
    let b = "";
    req.on("data", (c) => {
      b += c;
    });
    req.on("end", () => handler(req, b, res));
  });
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  try {
    await fn(`http://127.0.0.1:${(srv.address() as AddressInfo).port}`);
  } finally {
    srv.closeAllConnections();
    await new Promise((r) => srv.close(r));
  }
}

test("vllm backend: posts to the render endpoints and uses the token ids", async () => {
  const seen: { url: string; body: Record<string, unknown> }[] = [];
  await withServer(
    (req, body, res) => {
      seen.push({ url: req.url ?? "", body: JSON.parse(body) });
      res.setHeader("content-type", "application/json");
      res.end(req.url === "/v1/chat/completions/render" ? '{"token_ids":[7,8,9]}' : '[{"token_ids":[1,2]}]');
    },
    async (url) => {
      const p = tokenProducerFactory("tp", { modelName: "served", vllm: { url } }, handle) as TokenProducer;
      const r = makeRequest({ prompt: "hello" });
      await p.produce(r);
      assert.deepEqual([...tok(r).tokenIds], [1, 2]);
      assert.equal(tok(r).source, "vllm");
      const c = makeRequest({ messages: [{ role: "user", content: "x" }] });
      await p.produce(c);
      assert.deepEqual([...tok(c).tokenIds], [7, 8, 9]);
    },
  );
  assert.deepEqual(seen[0], { url: "/v1/completions/render", body: { model: "served", prompt: "hello" } });
  assert.deepEqual(seen[1].body, { model: "served", messages: [{ role: "user", content: "x" }] });
});

test("vllm backend: failure falls back to estimate", async () => {
  await withServer(
    (_req, _b, res) => {
      res.statusCode = 500;
      res.end("{}");
    },
    async (url) => {
      const p = new TokenProducer("tp", { vllm: { url } });
      const r = makeRequest({ prompt: "abcd" });
      await p.produce(r);
      assert.equal(tok(r).source, "estimate");
      assert.deepEqual([...tok(r).tokenIds], ref("abcd"));
    },
  );
});

test("parameters are strict", () => {
  assert.throws(() => tokenProducerFactory("t", { vllm: { url: "http://x", extra: 1 } }, handle), /extra/);
  assert.throws(() => tokenProducerFactory("t", { backend: "x" }, handle), /backend/);
  assert.throws(() => tokenProducerFactory("t", { vllm: { url: "not a url" } }, handle), /vllm\.url/);
});

test("property: packed tokens are the zero-padded bytes read as little-endian uint32", async () => {
  const fc = await import("fast-check");
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
      const t = packBytes(bytes);
      assert.equal(t.length, Math.ceil(bytes.length / 4));
      const back = new Uint8Array(t.length * 4);
      const view = new DataView(back.buffer);
      t.forEach((v, i) => {
        view.setUint32(i * 4, v, true);
      });
      assert.deepEqual([...back.subarray(0, bytes.length)], [...bytes]);
      assert.ok(back.subarray(bytes.length).every((x) => x === 0));
    }),
  );
});
