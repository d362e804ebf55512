/**
 * KvEventPublisher → ZMQ (real sockets on 127.0.0.1) → KvEventSubscriber → KvBlockIndex.
 */
import assert from "node:assert/strict";
import { type EventEmitter, once } from "node:events";
import { type AddressInfo, createServer } from "node:net";
import { after, describe, it } from "node:test";
import { Router, Subscriber } from "zeromq";
import { blockStored, decodeBatch, encodeBatch } from "../../kvcache/events/codec.js";
import { U64 } from "../../kvcache/events/msgpack.js";
import { KvEventSubscriber } from "../../kvcache/events/subscriber.js";
import {
  decodeSeq,
  encodeSeq,
  hashesFromBigInts,
  hashesToBigInts,
  kvTopic,
} from "../../kvcache/events/types.js";
import { KvBlockIndex } from "../../kvcache/precise/index.js";
import { modelRootKey, promptKeys } from "../../kvcache/precise/request-keys.js";
import { kvEventObserver } from "./observer.js";
import { KvEventPublisher, offsetPort, publisherBinds } from "./publisher.js";

const MODEL = "llmd/sim-8b";
const EP = "127.0.0.1:8100";
const BS = 4;
const PROMPT = Uint32Array.from({ length: 16 }, (_, i) => 1000 + i);
const T = { timeout: 15_000 };

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** Resolves when `emitter` emits `event` with args satisfying `pred` (no sleeping). */
function waitFor(emitter: EventEmitter, event: string, pred: (...a: unknown[]) => boolean = () => true) {
  return new Promise<unknown[]>((resolve) => {
    const f = (...a: unknown[]) => {
      if (pred(...a)) {
        emitter.off(event, f);
        resolve(a);
      }
    };
    emitter.on(event, f);
  });
}

async function setup(opts: {
  replay: boolean;
  encoding?: "array" | "map";
  startSub?: boolean;
  catchUpOnConnect?: boolean;
}) {
  const pub = await KvEventPublisher.create({
    enable_kv_cache_events: true,
    endpoint: "tcp://127.0.0.1:*",
    replay_endpoint: opts.replay ? "tcp://127.0.0.1:*" : null,
    topic: kvTopic(EP, MODEL),
    encoding: opts.encoding,
  });
  const index = new KvBlockIndex({ blockSize: BS });
  const sub = new KvEventSubscriber(index, {
    endpointId: EP,
    address: pub.endpoint!,
    replayAddress: pub.replayEndpoint,
    // the tests below exercise the other replay paths; the catch-up has its own test
    catchUpOnConnect: opts.catchUpOnConnect ?? false,
  });
  cleanups.push(
    () => sub.close(),
    () => pub.close(),
  );
  if (opts.startSub !== false) {
    sub.start();
    await pub.waitForSubscriber();
  }
  return { pub, index, sub };
}

/** Engine hash of block i of PROMPT (opaque to the index). */
const eh = (i: number) => 0xabc0000000000000n + BigInt(i);

function storeBlocks(pub: KvEventPublisher, from: number, to: number) {
  pub.blockStored({
    blockHashes: Array.from({ length: to - from }, (_, k) => eh(from + k)),
    parentHash: from === 0 ? null : eh(from - 1),
    tokenIds: PROMPT.subarray(from * BS, to * BS),
    blockSize: BS,
    medium: "GPU",
  });
}

function matched(index: KvBlockIndex, ep = EP): number {
  const r = index.longestPrefix(promptKeys(PROMPT, BS, modelRootKey(MODEL)));
  const s = index.findEndpoint(ep);
  return s === undefined ? 0 : r.blocks[s]!;
}

describe("publisher endpoint rules", () => {
  it("binds on wildcards, :: and ipc/inproc; connects otherwise; offsets tcp ports by DP rank", () => {
    assert.equal(publisherBinds("tcp://*:5557"), true);
    assert.equal(publisherBinds("tcp://[::]:5557"), true);
    assert.equal(publisherBinds("ipc:///tmp/kv"), true);
    assert.equal(publisherBinds("inproc://kv"), true);
    assert.equal(publisherBinds("tcp://10.0.0.5:5557"), false);
    assert.equal(offsetPort("tcp://*:5557", 2), "tcp://*:5559");
    assert.equal(offsetPort("tcp://*:5557", 0), "tcp://*:5557");
  });

  it("is a no-op when events are disabled", async () => {
    const pub = await KvEventPublisher.create({ endpoint: "tcp://127.0.0.1:*" });
    assert.equal(pub.enabled, false);
    pub.allCleared();
    assert.equal(await pub.flush(), null);
    await pub.close();
  });
});

describe("KV events over ZMQ", T, () => {
  it("sends 3 frames [topic, seq BE8 from 0, msgpack batch] and one batch per flush", async () => {
    const pub = await KvEventPublisher.create({
      enable_kv_cache_events: true,
      endpoint: "tcp://127.0.0.1:*",
      topic: kvTopic(EP, MODEL),
      dataParallelRank: 0,
    });
    const sub = new Subscriber({ linger: 0 });
    cleanups.push(
      async () => sub.close(),
      () => pub.close(),
    );
    sub.connect(pub.endpoint!);
    sub.subscribe("kv@");
    await pub.waitForSubscriber();
    assert.equal(await pub.flush(), null); // no events → nothing sent
    storeBlocks(pub, 0, 2);
    pub.blockRemoved([eh(1)], "GPU");
    assert.equal(pub.pendingEvents, 2);
    assert.equal(await pub.flush(), 0);
    const frames = await sub.receive();
    assert.equal(frames.length, 3);
    assert.equal(frames[0]!.toString(), `kv@${EP}@${MODEL}`);
    assert.equal(decodeSeq(frames[1]!), 0);
    const { batch } = decodeBatch(frames[2]!);
    assert.equal(batch.events.length, 2);
    assert.equal(batch.dataParallelRank, 0);
    const s = batch.events[0]!;
    assert.ok(s.type === "BlockStored");
    assert.deepEqual(hashesToBigInts(s.blockHashes), [eh(0), eh(1)]);
    assert.deepEqual(Array.from(s.tokenIds), Array.from(PROMPT.subarray(0, 8)));
    assert.equal(pub.seq, 1);
  });

  for (const encoding of ["array", "map"] as const) {
    it(`index follows stored / removed / cleared (${encoding} encoding)`, async () => {
      const { pub, index, sub } = await setup({ replay: false, encoding });
      storeBlocks(pub, 0, 2);
      let b = waitFor(sub, "batch", (s) => s === 0);
      await pub.flush();
      await b;
      assert.equal(matched(index), 2);
      storeBlocks(pub, 2, 4);
      b = waitFor(sub, "batch", (s) => s === 1);
      await pub.flush();
      await b;
      assert.equal(matched(index), 4);
      pub.blockRemoved([eh(2)], "GPU");
      b = waitFor(sub, "batch", (s) => s === 2);
      await pub.flush();
      await b;
      assert.equal(matched(index), 2);
      pub.allCleared();
      b = waitFor(sub, "batch", (s) => s === 3);
      await pub.flush();
      await b;
      assert.equal(matched(index), 0);
      assert.equal(sub.stats.batches, 4);
      assert.equal(sub.stats.events, 4);
      assert.equal(sub.stats.gaps, 0);
      assert.equal(sub.stats.lastSeq, 3);
      assert.ok(sub.stats.lastBatchAt > 0);
    });
  }

  it("a sequence gap triggers a replay that fills it", async () => {
    const { pub, index, sub } = await setup({ replay: true });
    storeBlocks(pub, 0, 1);
    const b0 = waitFor(sub, "batch", (s) => s === 0);
    await pub.flush();
    await b0;
    pub.loseNext(1); // seq 1 is buffered but never reaches the subscriber live
    storeBlocks(pub, 1, 2);
    await pub.flush();
    storeBlocks(pub, 2, 3);
    const gap = waitFor(sub, "gap");
    const done = waitFor(sub, "replay-done");
    await pub.flush();
    assert.deepEqual(await gap, [1, 2]);
    assert.deepEqual(await done, [2]); // seq 1 and 2 applied from the replay
    assert.equal(matched(index), 3);
    assert.equal(sub.stats.gaps, 1);
    assert.equal(sub.stats.replays, 1);
    assert.equal(sub.stats.resyncs, 0);
    assert.equal(sub.stats.drops.unknown_parent, 0);
    assert.equal(sub.stats.lastSeq, 2);
    assert.equal(pub.stats.replays, 1);
    // live flow continues after the replay
    storeBlocks(pub, 3, 4);
    const b3 = waitFor(sub, "batch", (s) => s === 3);
    await pub.flush();
    await b3;
    assert.equal(matched(index), 4);
  });

  it("without a replay endpoint a gap resyncs: the endpoint is cleared and orphans are dropped and counted", async () => {
    const { pub, index, sub } = await setup({ replay: false });
    storeBlocks(pub, 0, 1);
    const b0 = waitFor(sub, "batch", (s) => s === 0);
    await pub.flush();
    await b0;
    assert.equal(matched(index), 1);
    pub.loseNext(1);
    storeBlocks(pub, 1, 2);
    await pub.flush();
    storeBlocks(pub, 2, 3); // parent = block 1, which the EPP never saw
    const resync = waitFor(sub, "resync");
    const b2 = waitFor(sub, "batch", (s) => s === 2);
    await pub.flush();
    await resync;
    await b2;
    assert.equal(sub.stats.gaps, 1);
    assert.equal(sub.stats.resyncs, 1);
    assert.equal(sub.stats.replays, 0);
    assert.equal(sub.stats.drops.unknown_parent, 1);
    assert.equal(matched(index), 0);
  });

  it("joining late (first seq > 0) replays from 0", async () => {
    const { pub, index, sub } = await setup({ replay: true, startSub: false });
    storeBlocks(pub, 0, 2);
    await pub.flush(); // seq 0: nobody listens
    storeBlocks(pub, 2, 3);
    await pub.flush(); // seq 1
    sub.start();
    await pub.waitForSubscriber();
    storeBlocks(pub, 3, 4);
    const replay = waitFor(sub, "replay");
    const done = waitFor(sub, "replay-done");
    await pub.flush(); // seq 2: first seen → replay from 0
    assert.deepEqual(await replay, [0]);
    await done;
    assert.equal(sub.stats.lastSeq, 2);
    assert.equal(sub.stats.batches, 3);
    assert.equal(sub.stats.lateJoins, 0);
    assert.equal(matched(index), 4);
  });

  it("catch-up at connection: batches published before the subscription existed are replayed with no later batch", async () => {
    const { pub, index, sub } = await setup({ replay: true, startSub: false, catchUpOnConnect: true });
    storeBlocks(pub, 0, 2);
    await pub.flush(); // seq 0: nobody listens, and nothing follows it
    const done = waitFor(sub, "replay-done");
    sub.start();
    assert.deepEqual(await done, [1]);
    assert.equal(sub.stats.catchUps, 1);
    assert.equal(sub.stats.replays, 0);
    assert.equal(sub.stats.lastSeq, 0);
    assert.equal(matched(index), 2);
    // live flow continues
    storeBlocks(pub, 2, 3);
    const b1 = waitFor(sub, "batch", (s) => s === 1);
    await pub.flush();
    await b1;
    assert.equal(sub.stats.gaps, 0);
    assert.equal(matched(index), 3);
  });

  it("a replay buffer that no longer reaches the gap resyncs", async () => {
    const { pub, index, sub } = await setup({ replay: true });
    storeBlocks(pub, 0, 1);
    const b0 = waitFor(sub, "batch", (s) => s === 0);
    await pub.flush();
    await b0;
    pub.loseNext(2);
    storeBlocks(pub, 1, 2);
    await pub.flush(); // seq 1, lost
    await pub.flush(); // nothing pending → no batch
    pub.allCleared();
    await pub.flush(); // seq 2, lost
    pub.trimBuffer(3); // the publisher's buffer forgot seq 1 and 2
    storeBlocks(pub, 0, 1);
    const done = waitFor(sub, "replay-done");
    await pub.flush(); // seq 3
    await done;
    assert.equal(sub.stats.gaps, 1);
    assert.equal(sub.stats.replays, 1);
    assert.equal(sub.stats.resyncs, 1);
    assert.equal(sub.stats.lastSeq, 3);
    assert.equal(matched(index), 1);
  });

  it("a publisher restart (seq back to 0) clears the endpoint", async () => {
    const { pub, index, sub } = await setup({ replay: false });
    storeBlocks(pub, 0, 2);
    const b0 = waitFor(sub, "batch", (s) => s === 0);
    await pub.flush();
    await b0;
    const restart = waitFor(sub, "restart");
    const b = waitFor(sub, "batch", (s) => s === 0);
    await pub.publishWithSeq(0, [{ type: "AllBlocksCleared" }]);
    await restart;
    await b;
    assert.equal(sub.stats.restarts, 1);
    assert.equal(matched(index), 0);
  });

  it('accepts the older 2-frame replay answers ([seq, payload], end [END, ""])', async () => {
    const pub = await KvEventPublisher.create({
      enable_kv_cache_events: true,
      endpoint: "tcp://127.0.0.1:*",
      topic: kvTopic(EP, MODEL),
    });
    // an old-style replay server holding seq 1 (block 1, child of block 0)
    const router = new Router({ linger: 0 });
    await router.bind("tcp://127.0.0.1:*");
    const served = (async () => {
      const [id, , start] = await router.receive();
      assert.equal(decodeSeq(start!), 1);
      const payload = encodeBatch({
        ts: 1,
        dataParallelRank: null,
        events: [
          blockStored({
            blockHashes: hashesFromBigInts([eh(1)]),
            parentBlockHash: U64.fromBigInt(eh(0)),
            tokenIds: PROMPT.subarray(BS, 2 * BS),
            blockSize: BS,
          }),
        ],
      });
      await router.send([id!, "", encodeSeq(1), payload]);
      await router.send([id!, "", encodeSeq(0xffffffffffffffffn), ""]);
    })();
    const index = new KvBlockIndex({ blockSize: BS });
    const sub = new KvEventSubscriber(index, {
      endpointId: EP,
      address: pub.endpoint!,
      replayAddress: router.lastEndpoint!,
      catchUpOnConnect: false,
    });
    cleanups.push(
      () => sub.close(),
      async () => router.close(),
      () => pub.close(),
    );
    sub.start();
    await pub.waitForSubscriber();
    storeBlocks(pub, 0, 1);
    const b0 = waitFor(sub, "batch", (x) => x === 0);
    await pub.flush();
    await b0;
    pub.loseNext(1);
    storeBlocks(pub, 1, 2);
    await pub.flush(); // seq 1 lost live; the old-style server replays it
    storeBlocks(pub, 2, 3);
    const done = waitFor(sub, "replay-done");
    await pub.flush(); // seq 2 → gap → replay from 1
    assert.deepEqual(await done, [1]);
    await served;
    assert.equal(sub.stats.lastSeq, 2);
    assert.equal(sub.stats.resyncs, 0);
    assert.equal(sub.stats.replayFailures, 0);
    assert.equal(sub.stats.drops.unknown_parent, 0);
    assert.equal(matched(index), 3);
  });

  it("an unreachable replay endpoint fails the replay (counted) and resyncs", async () => {
    const pub = await KvEventPublisher.create({
      enable_kv_cache_events: true,
      endpoint: "tcp://127.0.0.1:*",
      topic: kvTopic(EP, MODEL),
    });
    const free = createServer();
    free.listen(0, "127.0.0.1");
    await once(free, "listening");
    const port = (free.address() as AddressInfo).port;
    await new Promise<void>((r) => free.close(() => r()));
    const index = new KvBlockIndex({ blockSize: BS });
    const sub = new KvEventSubscriber(index, {
      endpointId: EP,
      address: pub.endpoint!,
      replayAddress: `tcp://127.0.0.1:${port}`,
      replayTimeoutMs: 200,
      catchUpOnConnect: false,
    });
    cleanups.push(
      () => sub.close(),
      () => pub.close(),
    );
    sub.start();
    await pub.waitForSubscriber();
    storeBlocks(pub, 0, 1);
    const b0 = waitFor(sub, "batch", (x) => x === 0);
    await pub.flush();
    await b0;
    pub.loseNext(1);
    storeBlocks(pub, 1, 2);
    await pub.flush();
    storeBlocks(pub, 2, 3);
    const failed = waitFor(sub, "replay-failed");
    const done = waitFor(sub, "replay-done");
    await pub.flush();
    await failed;
    await done;
    assert.equal(sub.stats.replays, 1);
    assert.equal(sub.stats.replayFailures, 1);
    assert.equal(sub.stats.resyncs, 1);
    assert.equal(sub.stats.lastSeq, 2);
    assert.equal(sub.stats.drops.unknown_parent, 1); // block 2's parent was lost
    assert.equal(matched(index), 0);
  });

  it("connects (centralized EPP mode) when the endpoint has no wildcard", async () => {
    const sub = new Subscriber({ linger: 0 });
    await sub.bind("tcp://127.0.0.1:*");
    sub.subscribe("kv@");
    const pub = await KvEventPublisher.create({
      enable_kv_cache_events: true,
      endpoint: sub.lastEndpoint!, // tcp://127.0.0.1:<port>: no wildcard → connect
      topic: kvTopic(EP, MODEL),
    });
    cleanups.push(
      async () => sub.close(),
      () => pub.close(),
    );
    assert.equal(pub.endpoint, sub.lastEndpoint);
    await pub.waitForSubscriber(); // the connection handshake
    // the subscription reaches the XPUB shortly after the handshake: probe until one batch
    // arrives (bounded), then check that the next one follows in sequence
    const first = sub.receive();
    let arrived = false;
    void first.then(() => {
      arrived = true;
    });
    for (let i = 0; i < 100 && !arrived; i++) {
      pub.allCleared();
      await pub.flush();
      await Promise.race([first, new Promise((r) => setTimeout(r, 20))]);
    }
    const f0 = await first;
    pub.allCleared();
    await pub.flush();
    const frames = await sub.receive();
    assert.equal(decodeSeq(frames[1]!), decodeSeq(f0[1]!)! + 1);
    assert.deepEqual(decodeBatch(frames[2]!).batch.events, [{ type: "AllBlocksCleared" }]);
  });

  it("the engine-observer adapter publishes one batch per step", async () => {
    const { pub, index, sub } = await setup({ replay: false });
    const obs = kvEventObserver(pub);
    obs.onBlocksStored?.({
      blockHashes: [eh(0), eh(1)],
      parentHash: null,
      tokenIds: Array.from(PROMPT.subarray(0, 2 * BS)),
      blockSize: BS,
    });
    obs.onBlocksStored?.({
      blockHashes: [eh(2)],
      parentHash: eh(1),
      tokenIds: Array.from(PROMPT.subarray(2 * BS, 3 * BS)),
      blockSize: BS,
    });
    let b = waitFor(sub, "batch", (s) => s === 0);
    obs.onStepEnd?.();
    await b;
    assert.equal(sub.stats.events, 2);
    assert.equal(matched(index), 3);
    obs.onStepEnd?.(); // empty step: nothing sent
    obs.onBlocksRemoved?.([eh(1)]);
    b = waitFor(sub, "batch", (s) => s === 1);
    obs.onStepEnd?.();
    await b;
    assert.equal(matched(index), 1);
    obs.cleared();
    b = waitFor(sub, "batch", (s) => s === 2);
    obs.onStepEnd?.();
    await b;
    assert.equal(matched(index), 0);
    assert.equal(pub.stats.batches, 3);
  });
});
