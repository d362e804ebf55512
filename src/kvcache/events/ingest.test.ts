import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type DropReason, KvBlockIndex } from "../precise/index.js";
import { modelRootKey, promptKeys } from "../precise/request-keys.js";
import {
  decodeBatch,
  decodeBatchFlat,
  type EncodeOptions,
  encodeBatch,
  FlatBatch,
  KvEventDecodeError,
} from "./codec.js";
import { encodeMsgpack, U64 } from "./msgpack.js";
import { BatchIngester } from "./ingest.js";
import type { BlockStoredEvent, EventBatch, KvEvent } from "./types.js";

const BS = 4;
const MODEL = "m/base";
const EPS = ["10.0.0.1:1", "10.0.0.2:1"];

function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 0x100000000;
  };
}

interface Chain {
  model: string;
  lora: string | null;
  tokens: number[];
  last: [number, number];
}

/** Random batches of every event shape the index handles, with the chains they build. */
function makeBatches(
  seed: number,
  nBatches: number,
): { batches: { ep: number; batch: EventBatch }[]; chains: Chain[] } {
  const r = rng(seed);
  const int = (n: number) => Math.floor(r() * n);
  const chains: Chain[] = [];
  const known: [number, number][] = [];
  const hash = (): [number, number] =>
    r() < 0.3 ? [0, int(1e6) + 1] : [(int(0x7fffffff) | 0x40000000) >>> 0, int(0x100000000)];
  const medium = () => [null, "GPU", "CPU", "cpu"][int(4)]!;
  const lora = () => (r() < 0.25 ? ["lora-a", "lora-b"][int(2)]! : null);
  const batches: { ep: number; batch: EventBatch }[] = [];
  for (let b = 0; b < nBatches; b++) {
    const events: KvEvent[] = [];
    const n = 1 + int(20);
    for (let k = 0; k < n; k++) {
      const x = r();
      if (x < 0.55) {
        const span = r() < 0.8 ? 1 : r() < 0.7 ? 2 : 3; // 3 × BS is beyond maxSpan 2: block_size_mismatch
        const ebs = BS * span;
        const nb = 1 + int(3);
        const hs = Array.from({ length: nb }, hash);
        let parent: U64 | null = null;
        let ch: Chain;
        if (chains.length > 0 && r() < 0.6) {
          ch = chains[int(chains.length)]!;
          parent = r() < 0.9 ? new U64(ch.last[0], ch.last[1]) : new U64(...hash()); // sometimes unknown
        } else {
          const l = lora();
          ch = { model: MODEL, lora: l, tokens: [], last: [0, 0] };
          chains.push(ch);
        }
        let toks = Array.from({ length: nb * ebs }, () => (r() < 0.1 ? int(200) : int(150_000)));
        let blockSize = r() < 0.1 ? 0 : ebs;
        if (r() < 0.05) toks = toks.slice(1); // token_count_mismatch
        if (r() < 0.03) blockSize = ebs + 1; // token_count_mismatch
        const ev: BlockStoredEvent = {
          type: "BlockStored",
          blockHashes: Uint32Array.from(hs.flat()),
          parentBlockHash: parent,
          tokenIds: Uint32Array.from(toks),
          blockSize,
          loraId: r() < 0.2 ? int(4) : null,
          medium: medium(),
          loraName: ch.lora,
          extraKeys: r() < 0.03 ? [["mm", 1]] : null,
          groupIdx: r() < 0.1 ? int(3) : null,
          kvCacheSpecKind: r() < 0.1 ? "full_attention" : null,
          kvCacheSpecSlidingWindow: r() < 0.05 ? 128 : null,
        };
        if (parent === null || (parent.hi === ch.last[0] && parent.lo === ch.last[1])) {
          ch.tokens.push(...toks);
          ch.last = hs[hs.length - 1]!;
        }
        known.push(...hs);
        events.push(ev);
      } else if (x < 0.65 && known.length > 0) {
        // tier-only store (CPU offload): known and sometimes unknown engine keys
        const hs = Array.from({ length: 1 + int(3) }, () =>
          r() < 0.85 ? known[int(known.length)]! : hash(),
        );
        events.push({
          type: "BlockStored",
          blockHashes: Uint32Array.from(hs.flat()),
          parentBlockHash: null,
          tokenIds: new Uint32Array(0),
          blockSize: 0,
          loraId: null,
          medium: "CPU",
          loraName: null,
          extraKeys: null,
          groupIdx: null,
          kvCacheSpecKind: null,
          kvCacheSpecSlidingWindow: null,
        });
      } else if (x < 0.95 && known.length > 0) {
        const hs = Array.from({ length: 1 + int(2) }, () => (r() < 0.8 ? known[int(known.length)]! : hash()));
        events.push({
          type: "BlockRemoved",
          blockHashes: Uint32Array.from(hs.flat()),
          medium: medium(),
          groupIdx: null,
        });
      } else if (x < 0.97) {
        events.push({ type: "AllBlocksCleared" });
      }
    }
    batches.push({
      ep: int(EPS.length),
      batch: { ts: 1_750_000_000 + b / 8, events, dataParallelRank: r() < 0.5 ? 0 : null },
    });
  }
  return { batches, chains };
}

function emptyDrops(): Record<DropReason | "decode_error", number> {
  return {
    unknown_parent: 0,
    block_size_mismatch: 0,
    token_count_mismatch: 0,
    unknown_engine_key: 0,
    decode_error: 0,
  };
}

/** What the subscriber did before the fused path: decodeBatch, then index.apply per event. */
class Reference {
  drops = emptyDrops();
  models: string[] = [];
  events = 0;
  ts: number[] = [];
  constructor(readonly index: KvBlockIndex) {}
  ingest(ep: number, payload: Uint8Array): void {
    let batch: EventBatch;
    try {
      batch = decodeBatch(payload).batch;
    } catch {
      this.drops.decode_error++;
      return;
    }
    for (const ev of batch.events) {
      if (ev.type === "BlockStored" && ev.loraName !== null && !this.models.includes(ev.loraName)) {
        this.models.push(ev.loraName);
      }
      const r = this.index.apply(ep, MODEL, ev);
      if (r !== null) this.drops[r]++;
    }
    this.events += batch.events.length;
    this.ts.push(batch.ts);
  }
}

class Fused {
  drops = emptyDrops();
  models: string[] = [];
  events = 0;
  ts: number[] = [];
  readonly ing: BatchIngester;
  constructor(readonly index: KvBlockIndex) {
    this.ing = new BatchIngester(index);
  }
  ingest(ep: number, payload: Uint8Array): void {
    try {
      this.ing.ingest(ep, MODEL, payload, this.drops, this.models);
    } catch (err) {
      assert.ok(err instanceof KvEventDecodeError, `unexpected ${String(err)}`);
      this.drops.decode_error++;
      return;
    }
    this.events += this.ing.events;
    this.ts.push(this.ing.ts);
  }
}

function newIndex(): KvBlockIndex {
  const idx = new KvBlockIndex({ blockSize: BS, maxSpan: 2, maxKeys: 400, podCacheSize: 3 });
  for (const e of EPS) idx.endpointSlot(e);
  return idx;
}

/** Payload variants: plain array encoding mostly, plus map shapes, truncation and corruption. */
function payloadOf(batch: EventBatch, r: () => number): Uint8Array {
  const x = r();
  const opts: EncodeOptions = x < 0.08 ? { events: "map" } : x < 0.12 ? { batch: "map" } : {};
  let p = encodeBatch(batch, opts);
  const y = r();
  if (y < 0.06)
    p = p.subarray(0, Math.floor(r() * p.length)); // truncated
  else if (y < 0.09) {
    p = Uint8Array.from(p);
    p[Math.floor(r() * p.length)] = Math.floor(r() * 256); // one corrupted byte
  } else if (y < 0.1) p = Uint8Array.from([...p, 0xc0]); // trailing bytes
  return p;
}

function assertSame(a: Reference, b: Fused, chains: Chain[]): void {
  assert.deepEqual(b.drops, a.drops);
  assert.deepEqual(b.models, a.models);
  assert.equal(b.events, a.events);
  assert.deepEqual(b.ts, a.ts);
  assert.deepEqual(b.index.stats(), a.index.stats());
  for (const ch of chains) {
    const keys = promptKeys(ch.tokens, BS, modelRootKey(ch.lora ?? ch.model));
    for (const n of [1, keys.length >>> 2, keys.length >>> 1]) {
      const sa = a.index.longestPrefix(keys, n);
      const ra = {
        score: Array.from(sa.score.subarray(0, sa.slots)),
        blocks: Array.from(sa.blocks.subarray(0, sa.slots)),
      };
      const sb = b.index.longestPrefix(keys, n);
      const rb = {
        score: Array.from(sb.score.subarray(0, sb.slots)),
        blocks: Array.from(sb.blocks.subarray(0, sb.slots)),
      };
      assert.deepEqual(rb, ra);
    }
  }
}

describe("BatchIngester (fused decode + index) against decodeBatch + apply", () => {
  for (const seed of [1, 2, 3, 4, 5, 6]) {
    it(`gives identical drops, stats, models and lookups (seed ${seed})`, () => {
      const { batches, chains } = makeBatches(seed, 300);
      const a = new Reference(newIndex());
      const b = new Fused(newIndex());
      const r = rng(seed * 7919);
      for (const { ep, batch } of batches) {
        const p = payloadOf(batch, r);
        a.ingest(ep, p);
        b.ingest(ep, p);
      }
      assert.ok(a.drops.decode_error > 0 && a.drops.unknown_parent > 0 && a.drops.unknown_engine_key > 0);
      assert.ok(a.drops.token_count_mismatch > 0 && a.drops.block_size_mismatch > 0 && a.models.length > 1);
      assertSame(a, b, chains);
      assert.ok(a.index.stats().blocksStored > 0);
    });
  }

  it("takes the flat path for plain array batches and declines other shapes", () => {
    const { batches } = makeBatches(11, 50);
    const f = new FlatBatch();
    let flat = 0;
    for (const { batch } of batches) {
      const ok = decodeBatchFlat(encodeBatch(batch), f);
      // extra_keys other than nil are left to decodeBatch
      if (batch.events.every((e) => e.type !== "BlockStored" || e.extraKeys === null)) {
        assert.ok(ok);
        flat++;
        assert.equal(f.n, batch.events.length);
        assert.equal(f.ts, batch.ts);
      } else assert.equal(ok, false);
      assert.equal(decodeBatchFlat(encodeBatch(batch, { events: "map" }), f), batch.events.length === 0);
      assert.equal(decodeBatchFlat(encodeBatch(batch, { batch: "map" }), f), false);
    }
    assert.ok(flat > 0);
  });

  it("turns every truncation of a payload into a decode error that changes nothing", () => {
    const { batches } = makeBatches(21, 5);
    const batch: EventBatch = {
      ...batches[0]!.batch,
      events: batches.flatMap((x) => x.batch.events).slice(0, 12),
    };
    const p = encodeBatch(batch);
    for (let n = 0; n < p.length; n++) {
      const idx = newIndex();
      const before = idx.stats();
      const ing = new BatchIngester(idx);
      const drops = emptyDrops();
      assert.throws(() => ing.ingest(0, MODEL, p.subarray(0, n), drops, []), KvEventDecodeError);
      assert.deepEqual(idx.stats(), before);
      assert.deepEqual(drops, emptyDrops());
    }
  });
});

describe("FlatBatch", () => {
  it("keeps what decodeBatch decodes (hashes as uint64, small ints and bytes)", () => {
    const ev: BlockStoredEvent = {
      type: "BlockStored",
      blockHashes: Uint32Array.from([0xfedcba98, 0x76543210, 0, 5]),
      parentBlockHash: new U64(0xffffffff, 0xffffffff),
      tokenIds: Uint32Array.from([1, 200, 70000, 0xffffffff, 3, 4, 5, 6]),
      blockSize: 4,
      loraId: null,
      medium: "GPU",
      loraName: "lora-x",
      extraKeys: null,
      groupIdx: 1,
      kvCacheSpecKind: "full_attention",
      kvCacheSpecSlidingWindow: null,
    };
    const batch: EventBatch = { ts: 1.5, events: [ev, { type: "AllBlocksCleared" }], dataParallelRank: 3 };
    const f = new FlatBatch();
    assert.ok(decodeBatchFlat(encodeBatch(batch), f));
    assert.equal(f.n, 2);
    assert.deepEqual(Array.from(f.hashes.subarray(0, 4)), Array.from(ev.blockHashes));
    assert.deepEqual(Array.from(f.tokens.subarray(0, 8)), Array.from(ev.tokenIds));
    assert.deepEqual([f.hasParent[0], f.parentHi[0], f.parentLo[0]], [1, 0xffffffff, 0xffffffff]);
    assert.deepEqual([f.blockSize[0], f.medium[0], f.loraName[0], f.kind[1]], [4, "GPU", "lora-x", 2]);
    // hashes as bytes (last 8 bytes, big-endian, left-padded)
    const p = encodeMsgpack([
      2,
      [
        [
          "BlockStored",
          [Uint8Array.from([9, 9, 1, 2, 3, 4, 5, 6, 7, 8]), Uint8Array.from([1, 2])],
          null,
          [1, 2, 3, 4, 5, 6, 7, 8],
          4,
          null,
          "CPU",
          null,
        ],
      ],
    ]);
    assert.ok(decodeBatchFlat(p, f));
    const ref = decodeBatch(p).batch.events[0] as BlockStoredEvent;
    assert.deepEqual(Array.from(f.hashes.subarray(0, 4)), Array.from(ref.blockHashes));
    assert.deepEqual([f.ts, f.medium[0], f.hasParent[0]], [2, "CPU", 0]);
  });
});
