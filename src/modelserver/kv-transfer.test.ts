import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import {
  type KvLayout,
  KvLayoutMismatchError,
  KvSideChannel,
  KvTransferError,
  kvBytesPerToken,
  layoutDifferences,
} from "./kv-transfer.js";

const layout = (over: Partial<KvLayout> = {}): KvLayout => ({
  engine_id: "p0",
  model: "m",
  kv_connector: "NixlConnector",
  block_size: 16,
  kv_cache_dtype: "bf16",
  num_layers: 32,
  num_kv_heads: 8,
  head_dim: 128,
  attention_backend: "FLASH_ATTN",
  tp_size: 1,
  bytes_per_token: 131072,
  side_channel_host: "127.0.0.1",
  side_channel_port: 8000,
  ...over,
});

test("bytes per token follow the KV geometry (reference/engine.md §8 table)", () => {
  assert.equal(kvBytesPerToken(32, 8, 128, "bf16"), 131072, "Llama-3.1-8B");
  assert.equal(kvBytesPerToken(28, 4, 128, "bf16"), 57344, "Qwen2.5-7B");
  assert.equal(kvBytesPerToken(80, 8, 128, "bf16"), 327680, "Llama-3.1-70B");
  assert.equal(kvBytesPerToken(32, 8, 128, "fp8"), 65536);
  assert.throws(() => kvBytesPerToken(1, 1, 1, "int3"), /unknown KV cache dtype/);
});

test("layout differences name each field with both values; engine id and host do not matter", () => {
  assert.deepEqual(
    layoutDifferences(layout(), layout({ engine_id: "d0", side_channel_host: "10.0.0.2" })),
    [],
  );
  assert.deepEqual(layoutDifferences(layout(), layout({ kv_cache_dtype: "fp8", block_size: 64 })), [
    "block_size: prefill 16 ≠ decode 64",
    "kv_cache_dtype: prefill bf16 ≠ decode fp8",
  ]);
});

test("the side channel: handshake cached per engine, mismatch refused naming both layouts, pull and release", async () => {
  let layoutCalls = 0;
  const released: string[] = [];
  const server = createServer((req, res) => {
    if (req.url === "/llmd/kv/layout") {
      layoutCalls++;
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(layout()));
    } else if (req.url === "/llmd/kv/blocks/r1") {
      res.writeHead(200, { "content-type": "application/octet-stream" }).end(Buffer.from([1, 2, 3]));
    } else if (req.url?.startsWith("/llmd/kv/release/") && req.method === "POST") {
      released.push(req.url.slice("/llmd/kv/release/".length));
      res.writeHead(204).end();
    } else {
      res.writeHead(404).end("no such blocks");
    }
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as AddressInfo).port;
  const sc = new KvSideChannel(2000);
  try {
    await sc.checkLayout("127.0.0.1", port, "p0", layout({ engine_id: "d0" }));
    await sc.checkLayout("127.0.0.1", port, "p0", layout({ engine_id: "d0" }));
    assert.equal(layoutCalls, 1, "handshake once per remote engine");
    await assert.rejects(
      sc.checkLayout("127.0.0.1", port, "p0", layout({ engine_id: "d1", kv_cache_dtype: "fp8" })),
      (e: unknown) =>
        e instanceof KvLayoutMismatchError &&
        /prefill bf16 ≠ decode fp8/.test(e.message) &&
        /p0 \{/.test(e.message) &&
        /d1 \{/.test(e.message),
    );
    assert.deepEqual([...(await sc.pull("127.0.0.1", port, "r1"))], [1, 2, 3]);
    await assert.rejects(
      sc.pull("127.0.0.1", port, "gone"),
      (e: unknown) => e instanceof KvTransferError && e.status === 404,
    );
    await sc.release("127.0.0.1", port, "r1");
    assert.deepEqual(released, ["r1"]);
  } finally {
    await sc.close();
    server.close();
  }
  await assert.rejects(new KvSideChannel(500).layout("127.0.0.1", port), KvTransferError);
});
