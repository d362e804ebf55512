import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { xxh64 } from "@node-rs/xxhash";
import { blockHashes, firstBlockExtra, hashBlock, KvCache } from "./kv-cache.js";

const range = (a: number, b: number) => Array.from({ length: b - a }, (_, i) => a + i);

describe("block hashes", () => {
  it("chains full blocks with xxh64(parent ‖ tokens u32le ‖ extra)", () => {
    const extra = firstBlockExtra("m", undefined);
    const toks = range(0, 10);
    const hs = blockHashes(toks, 4, extra);
    assert.equal(hs.length, 2, "only full blocks are hashed");
    const buf0 = Buffer.alloc(8 + 16 + Buffer.byteLength(extra));
    buf0.writeBigUInt64LE(0n, 0);
    for (let i = 0; i < 4; i++) buf0.writeUInt32LE(i, 8 + 4 * i);
    buf0.write(extra, 24, "utf8");
    assert.equal(hs[0], xxh64(buf0));
    assert.equal(hs[1], hashBlock(hs[0]!, [4, 5, 6, 7]));
    // same tokens, different parent → different hash
    assert.notEqual(hashBlock(1n, [4, 5, 6, 7]), hs[1]);
  });

  it("mixes model and cache_salt into every hash of the chain via the first block", () => {
    const toks = range(0, 12);
    const a = blockHashes(toks, 4, firstBlockExtra("m"));
    const b = blockHashes(toks, 4, firstBlockExtra("m", "salt"));
    const c = blockHashes(toks, 4, firstBlockExtra("other"));
    for (let i = 0; i < 3; i++) {
      assert.notEqual(a[i], b[i]);
      assert.notEqual(a[i], c[i]);
    }
    // continuing a chain gives the same result as hashing at once
    const part = blockHashes(toks.slice(0, 8), 4, firstBlockExtra("m"));
    assert.deepEqual(blockHashes(toks, 4, firstBlockExtra("m"), part), a);
  });
});

describe("KvCache", () => {
  it("allocates, reference-counts and reports usage (cached-unreferenced counts as free)", () => {
    const kv = new KvCache(8, 4);
    assert.equal(kv.usage(), 0);
    const a = kv.allocate(3)!;
    assert.equal(a.length, 3);
    assert.equal(kv.usage(), 3 / 8);
    assert.equal(kv.allocate(6), null, "not enough free blocks");
    assert.equal(kv.numFree, 5, "failed allocation changes nothing");
    const hs = blockHashes(range(0, 12), 4, "x");
    a.forEach((b, i) => {
      kv.commit(b, hs[i]!);
    });
    kv.acquire([a[0]!]);
    assert.equal(a[0]!.ref, 2);
    kv.free(a);
    assert.equal(a[0]!.ref, 1);
    assert.equal(kv.usage(), 1 / 8);
    kv.free([a[0]!]);
    assert.equal(kv.usage(), 0, "cached blocks with ref 0 count as free");
    assert.equal(kv.numEvictable, 3);
    assert.throws(() => kv.free([a[0]!]), /freed with ref 0/);
  });

  it("reuses a cached prefix and stops at the first miss", () => {
    const kv = new KvCache(16, 4);
    const hs = blockHashes(range(0, 16), 4, "x");
    const blocks = kv.allocate(4)!;
    blocks.forEach((b, i) => {
      kv.commit(b, hs[i]!);
    });
    kv.free(blocks);
    const other = blockHashes([...range(0, 8), 99, 98, 97, 96, ...range(12, 16)], 4, "x");
    const hit = kv.lookup(other);
    assert.deepEqual(
      hit.map((b) => b.id),
      blocks.slice(0, 2).map((b) => b.id),
    );
    assert.equal(kv.lookup(hs, 3).length, 3, "maxBlocks caps the lookup");
    kv.acquire(hit);
    assert.equal(kv.numEvictable, 2);
    assert.equal(kv.usage(), 2 / 16);
  });

  it("takes never-used blocks first, then evicts the least recently used cached block", () => {
    const kv = new KvCache(4, 2);
    const a = kv.allocate(2)!; // request A: 2 blocks
    const b = kv.allocate(2)!; // request B: 2 blocks
    const ha = blockHashes([1, 2, 3, 4], 2, "x");
    const hb = blockHashes([5, 6, 7, 8], 2, "x");
    a.forEach((x, i) => {
      kv.commit(x, ha[i]!);
    });
    b.forEach((x, i) => {
      kv.commit(x, hb[i]!);
    });
    kv.free(a); // A's blocks freed first (tail first), then B's
    kv.free(b);
    assert.deepEqual(kv.lruOrder(), [a[1]!.id, a[0]!.id, b[1]!.id, b[0]!.id]);
    // touching B's first block makes it most recent again
    kv.acquire([b[0]!]);
    kv.free([b[0]!]);
    assert.deepEqual(kv.lruOrder(), [a[1]!.id, a[0]!.id, b[1]!.id, b[0]!.id]);
    kv.acquire([a[0]!]);
    kv.free([a[0]!]);
    assert.deepEqual(kv.lruOrder(), [a[1]!.id, b[1]!.id, b[0]!.id, a[0]!.id]);
    const got = kv.allocate(2)!;
    assert.deepEqual(
      got.map((x) => x.id),
      [a[1]!.id, b[1]!.id],
      "evicts LRU first",
    );
    assert.equal(kv.evictions, 2);
    assert.equal(kv.has(ha[1]!), false, "evicted hash dropped");
    assert.equal(kv.has(hb[1]!), false);
    assert.equal(kv.has(ha[0]!), true);
    assert.equal(got[0]!.hash, null);
  });

  it("prefers clean blocks over evicting cached ones", () => {
    const kv = new KvCache(4, 2);
    const a = kv.allocate(1)!;
    kv.commit(a[0]!, 42n);
    kv.free(a);
    const got = kv.allocate(3)!;
    assert.ok(!got.some((x) => x.id === a[0]!.id), "cached block kept while clean ones remain");
    assert.equal(kv.has(42n), true);
    assert.equal(kv.evictions, 0);
  });

  it("does not register a duplicate hash; the duplicate returns to the clean pool", () => {
    const kv = new KvCache(4, 2);
    const [x] = kv.allocate(1)!;
    const [y] = kv.allocate(1)!;
    kv.commit(x!, 7n);
    kv.commit(y!, 7n);
    assert.equal(y!.hash, null);
    kv.free([x!, y!]);
    assert.equal(kv.numEvictable, 1);
    assert.equal(kv.lookup([7n])[0], x);
  });
});
