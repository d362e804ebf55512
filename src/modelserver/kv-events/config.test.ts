/**
 * `--kv-events-config` parsing, and a running model server's KV events seen by a real ZMQ
 * subscriber on 127.0.0.1: BlockStored for a request's prompt blocks, BlockRemoved on eviction,
 * AllBlocksCleared on `POST /reset_prefix_cache`.
 */
import assert from "node:assert/strict";
import { type AddressInfo, createServer } from "node:net";
import { after, describe, it } from "node:test";
import { Subscriber } from "zeromq";
import { decodeBatch } from "../../kvcache/events/codec.js";
import { decodeSeq, hashesToBigInts, type KvEvent } from "../../kvcache/events/types.js";
import { startModelServer } from "../server.js";
import { deferKvEvents, defaultKvTopic, parseKvEventsConfig } from "./config.js";

const T = { timeout: 30_000 };
const cleanups: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const p = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return p;
}

describe("parseKvEventsConfig", () => {
  it("accepts vLLM's JSON and fills buffer_steps/hwm defaults", () => {
    const o = parseKvEventsConfig(
      '{"enable_kv_cache_events":true,"publisher":"zmq","endpoint":"tcp://*:5557","topic":"kv@10.0.0.1:8000@m"}',
    );
    assert.equal(o.endpoint, "tcp://*:5557");
    assert.equal(o.topic, "kv@10.0.0.1:8000@m");
    assert.equal(o.buffer_steps, 10000);
    assert.equal(o.hwm, 100000);
  });

  it("rejects bad JSON, unknown keys, wrong types and unexpanded placeholders, naming them", () => {
    assert.throws(() => parseKvEventsConfig("{"), /not JSON/);
    assert.throws(() => parseKvEventsConfig("[]"), /expected a JSON object/);
    assert.throws(() => parseKvEventsConfig('{"enable":true}'), /unknown key "enable"/);
    assert.throws(() => parseKvEventsConfig('{"hwm":"x"}'), /hwm must be a non-negative integer/);
    assert.throws(() => parseKvEventsConfig('{"publisher":"kafka"}'), /publisher "kafka"/);
    assert.throws(
      // biome-ignore lint/suspicious/noTemplateCurlyInString: vLLM's placeholder, literally
      () => parseKvEventsConfig('{"topic":"kv@${POD_IP}:8000@${MODEL}"}'),
      /unexpanded placeholder/,
    );
  });

  it("default topic is kv@<host>:<port>@<model>", () => {
    assert.equal(defaultKvTopic({ host: "127.0.0.1", port: 8001, model: "m" }), "kv@127.0.0.1:8001@m");
    assert.equal(defaultKvTopic({ host: "::1", port: 8001, model: "m" }), "kv@[::1]:8001@m");
  });
});

describe("model server KV events over ZMQ", () => {
  it("BlockStored for the prompt, BlockRemoved on eviction, AllBlocksCleared on reset", T, async () => {
    const zport = await freePort();
    const kv = deferKvEvents(
      JSON.stringify({
        enable_kv_cache_events: true,
        publisher: "zmq",
        endpoint: `tcp://127.0.0.1:${zport}`,
        bind: true,
        topic: "",
      }),
    );
    // 8 blocks of 4 tokens: a 20-token prompt takes 5 blocks (+1 while decoding)
    const server = await startModelServer({
      sim: { blockSize: 4, numGpuBlocks: 8, timeScale: 100, maxModelLen: 32 },
      observers: [kv.observer],
      onPrefixCacheReset: () => kv.cleared(),
    });
    cleanups.push(() => server.close());
    const feed = await kv.start({ host: "127.0.0.1", port: server.port, model: "llmd/sim-8b" });
    cleanups.push(() => kv.close());
    assert.equal(feed.publisher.topic, `kv@127.0.0.1:${server.port}@llmd/sim-8b`);

    const sub = new Subscriber({ linger: 0 });
    cleanups.push(() => sub.close());
    sub.connect(`tcp://127.0.0.1:${zport}`);
    sub.subscribe("kv@");
    await feed.publisher.waitForSubscriber();

    const events: KvEvent[] = [];
    const seqs: number[] = [];
    const it = sub[Symbol.asyncIterator]();
    /** reads batches until `pred` holds on the collected events (bounded) */
    const until = async (pred: () => boolean) => {
      for (let i = 0; i < 200 && !pred(); i++) {
        const r = await it.next();
        if (r.done) throw new Error("subscriber closed");
        const [topic, seq, payload] = r.value as Buffer[];
        assert.equal(topic!.toString(), feed.publisher.topic);
        seqs.push(decodeSeq(seq!)!);
        events.push(...decodeBatch(payload!).batch.events);
      }
      assert.ok(pred(), "expected events not seen");
    };
    const complete = async (prompt: string) => {
      const r = await fetch(`${server.url}/v1/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "llmd/sim-8b", prompt, max_tokens: 2 }),
      });
      assert.equal(r.status, 200);
      await r.json();
    };
    const words = (base: number, n: number) => Array.from({ length: n }, (_, i) => `w${base + i}`).join(" ");

    await complete(words(0, 20));
    const stored = () => events.filter((e) => e.type === "BlockStored");
    await until(() => stored().reduce((n, e) => n + e.blockHashes.length / 2, 0) >= 5);
    const first = stored()[0]!;
    assert.equal(first.type === "BlockStored" && first.parentBlockHash, null);
    assert.equal(first.type === "BlockStored" && first.blockSize, 4);
    // the prompt's 20 tokens are the first 5 blocks' tokens
    const tokens = stored().flatMap((e) => (e.type === "BlockStored" ? [...e.tokenIds] : []));
    const render = (await (
      await fetch(`${server.url}/v1/completions/render`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "llmd/sim-8b", prompt: words(0, 20) }),
      })
    ).json()) as { token_ids: number[] }[];
    assert.deepEqual(tokens.slice(0, 20), render[0]!.token_ids);
    const storedHashes = new Set(
      stored().flatMap((e) => (e.type === "BlockStored" ? hashesToBigInts(e.blockHashes) : [])),
    );

    // a different 20-token prompt needs more blocks than are free: the first prompt's are evicted
    await complete(words(100, 20));
    await until(() => events.some((e) => e.type === "BlockRemoved"));
    const removed = events.flatMap((e) => (e.type === "BlockRemoved" ? hashesToBigInts(e.blockHashes) : []));
    assert.ok(removed.length > 0);
    for (const h of removed) assert.ok(storedHashes.has(h), `removed ${h} was never stored`);

    const r = await fetch(`${server.url}/reset_prefix_cache`, { method: "POST" });
    assert.equal(r.status, 200);
    assert.deepEqual(await r.json(), { reset: true });
    await until(() => events.some((e) => e.type === "AllBlocksCleared"));
    // one batch per step, numbered from 0 without gaps
    assert.deepEqual(
      seqs,
      seqs.map((_, i) => i),
    );
  });
});
