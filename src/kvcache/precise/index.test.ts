import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { blockStored } from "../events/codec.js";
import { U64 } from "../events/msgpack.js";
import { hashesFromBigInts, hashesToBigInts } from "../events/types.js";
import { KvBlockIndex } from "./index.js";
import { modelRootKey, promptKeys } from "./request-keys.js";

const M = "model-a";
const toks = (n: number, start = 1) => Uint32Array.from({ length: n }, (_, i) => start + i);

/** BlockStored of engine hashes `hs` (one per block) over `tokens`. */
function stored(
  hs: bigint[],
  tokens: Uint32Array,
  blockSize: number,
  parent: bigint | null = null,
  medium = "GPU",
) {
  return blockStored({
    blockHashes: hashesFromBigInts(hs),
    tokenIds: tokens,
    blockSize,
    parentBlockHash: parent === null ? null : U64.fromBigInt(parent),
    medium,
  });
}

function match(idx: KvBlockIndex, prompt: Uint32Array, ep: string, model = M) {
  const keys = promptKeys(prompt, idx.blockSize, modelRootKey(model, idx.hashSeed));
  const r = idx.longestPrefix(keys);
  const s = idx.findEndpoint(ep);
  return s === undefined ? { blocks: 0, score: 0 } : { blocks: r.blocks[s]!, score: r.score[s]! };
}

describe("KvBlockIndex", () => {
  it("indexes a stored chain for its endpoint only, and continues it through the parent's engine key", () => {
    const idx = new KvBlockIndex({ blockSize: 4 });
    const a = idx.endpointSlot("10.0.0.1:8000");
    idx.endpointSlot("10.0.0.2:8000");
    const p = toks(16);
    assert.equal(idx.apply(a, M, stored([101n, 102n], p.subarray(0, 8), 4)), null);
    assert.deepEqual(match(idx, p, "10.0.0.1:8000"), { blocks: 2, score: 2 });
    assert.equal(idx.apply(a, M, stored([103n, 104n], p.subarray(8, 16), 4, 102n)), null);
    assert.deepEqual(match(idx, p, "10.0.0.1:8000"), { blocks: 4, score: 4 });
    assert.deepEqual(match(idx, p, "10.0.0.2:8000"), { blocks: 0, score: 0 });
    // a prompt that diverges in block 2 matches 2 blocks
    const q = p.slice();
    q[9] = 999;
    assert.equal(match(idx, q, "10.0.0.1:8000").blocks, 2);
    // another model does not match
    assert.equal(match(idx, p, "10.0.0.1:8000", "model-b").blocks, 0);
    const st = idx.stats();
    assert.equal(st.keys, 4);
    assert.equal(st.engineKeys, 4);
    assert.equal(st.blocksStored, 4);
  });

  it("drops a BlockStored whose parent engine key is unknown and counts it", () => {
    const idx = new KvBlockIndex({ blockSize: 4 });
    const a = idx.endpointSlot("a");
    assert.equal(idx.apply(a, M, stored([7n], toks(4, 50), 4, 0xdeadn)), "unknown_parent");
    assert.equal(idx.stats().drops.unknown_parent, 1);
    assert.equal(idx.stats().keys, 0);
  });

  it("BlockRemoved breaks the prefix at the removed block; AllBlocksCleared clears the endpoint", () => {
    const idx = new KvBlockIndex({ blockSize: 2 });
    const a = idx.endpointSlot("a");
    const b = idx.endpointSlot("b");
    const p = toks(8);
    idx.apply(a, M, stored([1n, 2n, 3n, 4n], p, 2));
    idx.apply(b, M, stored([1n, 2n, 3n, 4n], p, 2));
    assert.equal(
      idx.apply(a, M, {
        type: "BlockRemoved",
        blockHashes: hashesFromBigInts([2n]),
        medium: "GPU",
        groupIdx: null,
      }),
      null,
    );
    assert.equal(match(idx, p, "a").blocks, 1);
    assert.equal(match(idx, p, "b").blocks, 4);
    idx.apply(b, M, { type: "AllBlocksCleared" });
    assert.equal(match(idx, p, "b").blocks, 0);
    assert.equal(match(idx, p, "a").blocks, 1);
    // re-storing after a clear works
    idx.apply(b, M, stored([1n, 2n], p.subarray(0, 4), 2));
    assert.equal(match(idx, p, "b").blocks, 2);
    // removing an engine key never seen is counted, not fatal
    assert.equal(
      idx.apply(a, M, {
        type: "BlockRemoved",
        blockHashes: hashesFromBigInts([77n]),
        medium: null,
        groupIdx: null,
      }),
      "unknown_engine_key",
    );
  });

  it("purges an endpoint that leaves the pool; a new endpoint reusing its slot starts empty", () => {
    const idx = new KvBlockIndex({ blockSize: 2 });
    const a = idx.endpointSlot("a");
    const p = toks(4);
    idx.apply(a, M, stored([1n, 2n], p, 2));
    idx.removeEndpoint("a");
    assert.equal(idx.findEndpoint("a"), undefined);
    const c = idx.endpointSlot("c");
    assert.equal(c, a);
    assert.equal(match(idx, p, "c").blocks, 0);
    assert.deepEqual(idx.endpoints(), ["c"]);
  });

  it("weights tiers (gpu 1.0, cpu 0.8) and takes the max when a block is in both", () => {
    const idx = new KvBlockIndex({ blockSize: 2 });
    const a = idx.endpointSlot("a");
    const p = toks(6);
    idx.apply(a, M, stored([1n, 2n], p.subarray(0, 4), 2));
    idx.apply(a, M, stored([3n], p.subarray(4, 6), 2, 2n, "CPU"));
    let m = match(idx, p, "a");
    assert.equal(m.blocks, 3);
    assert.ok(Math.abs(m.score - 2.8) < 1e-9);
    // tokenless CPU store of known engine keys (offload) adds the cpu tier; gpu stays max
    assert.equal(idx.apply(a, M, stored([1n], new Uint32Array(0), 2, null, "CPU")), null);
    m = match(idx, p, "a");
    assert.ok(Math.abs(m.score - 2.8) < 1e-9);
    assert.deepEqual(idx.entriesOf(...keyPair(p, idx, 0), "a").sort(), ["cpu", "gpu"]);
    // removing the gpu copy of block 0 leaves the cpu copy: 0.8 + 1 + 0.8
    idx.apply(a, M, {
      type: "BlockRemoved",
      blockHashes: hashesFromBigInts([1n]),
      medium: "GPU",
      groupIdx: null,
    });
    m = match(idx, p, "a");
    assert.equal(m.blocks, 3);
    assert.ok(Math.abs(m.score - 2.6) < 1e-9);
    assert.equal(idx.apply(a, M, stored([99n], new Uint32Array(0), 2, null, "CPU")), "unknown_engine_key");
  });

  it("maps one engine block to several request blocks (engine 4 tokens, index 2)", () => {
    const idx = new KvBlockIndex({ blockSize: 2 });
    const a = idx.endpointSlot("a");
    const p = toks(12);
    idx.apply(a, M, stored([10n, 11n], p.subarray(0, 8), 4));
    assert.equal(match(idx, p, "a").blocks, 4);
    idx.apply(a, M, stored([12n], p.subarray(8, 12), 4, 11n));
    assert.equal(match(idx, p, "a").blocks, 6);
    idx.apply(a, M, {
      type: "BlockRemoved",
      blockHashes: hashesFromBigInts([11n]),
      medium: "GPU",
      groupIdx: null,
    });
    assert.equal(match(idx, p, "a").blocks, 2);
  });

  it("drops engine block sizes that are not a multiple of the index block size", () => {
    const idx = new KvBlockIndex({ blockSize: 4 });
    const a = idx.endpointSlot("a");
    assert.equal(idx.apply(a, M, stored([1n], toks(2), 2)), "block_size_mismatch");
    assert.equal(idx.apply(a, M, stored([1n, 2n], toks(5), 0)), "token_count_mismatch");
    assert.equal(idx.stats().drops.block_size_mismatch, 1);
    assert.equal(idx.stats().drops.token_count_mismatch, 1);
  });

  it("uses lora_name as the model of the chain", () => {
    const idx = new KvBlockIndex({ blockSize: 2 });
    const a = idx.endpointSlot("a");
    const p = toks(4);
    idx.apply(a, M, { ...stored([1n, 2n], p, 2), loraName: "my-lora" });
    assert.equal(match(idx, p, "a", "my-lora").blocks, 2);
    assert.equal(match(idx, p, "a", M).blocks, 0);
  });

  it("bounds request keys with an LRU (oldest evicted) and entries per key with podCacheSize", () => {
    const idx = new KvBlockIndex({ blockSize: 1, maxKeys: 4, podCacheSize: 2 });
    const a = idx.endpointSlot("a");
    const p = toks(6);
    idx.apply(a, M, stored([1n, 2n, 3n, 4n, 5n, 6n], p, 1));
    const st = idx.stats();
    assert.equal(st.keys, 4);
    assert.equal(st.keysEvicted, 2);
    assert.equal(match(idx, p, "a").blocks, 0); // blocks 0 and 1 evicted
    const idx2 = new KvBlockIndex({ blockSize: 1, podCacheSize: 2 });
    const eps = ["x", "y", "z"].map((e) => idx2.endpointSlot(e));
    for (const e of eps) idx2.apply(e, M, stored([1n], toks(1), 1));
    assert.equal(match(idx2, toks(1), "x").blocks, 0); // oldest replaced
    assert.equal(match(idx2, toks(1), "y").blocks, 1);
    assert.equal(match(idx2, toks(1), "z").blocks, 1);
  });

  it("BlockRemoved finds a request key that was evicted and stored again under another engine key", () => {
    const idx = new KvBlockIndex({ blockSize: 1, maxKeys: 2, maxEngineKeys: 100 });
    const a = idx.endpointSlot("a");
    idx.apply(a, M, stored([1n], Uint32Array.of(5), 1)); // key of [5]
    idx.apply(a, M, stored([2n], Uint32Array.of(6), 1));
    idx.apply(a, M, stored([3n], Uint32Array.of(7), 1)); // evicts the key of [5]
    idx.apply(a, M, stored([4n], Uint32Array.of(5), 1)); // the key of [5] again (evicts [6])
    assert.equal(match(idx, Uint32Array.of(5), "a").blocks, 1);
    assert.equal(match(idx, Uint32Array.of(7), "a").blocks, 1);
    // engine key 1 still maps to the key of [5]: removing it removes that entry, not another
    idx.apply(a, M, {
      type: "BlockRemoved",
      blockHashes: hashesFromBigInts([1n]),
      medium: "GPU",
      groupIdx: null,
    });
    assert.equal(match(idx, Uint32Array.of(5), "a").blocks, 0);
    assert.equal(match(idx, Uint32Array.of(7), "a").blocks, 1);
    assert.equal(idx.stats().blocksRemoved, 1);
    assert.equal(idx.stats().keys, 1);
  });

  it("honours the hash seed on both sides", () => {
    const idx = new KvBlockIndex({ blockSize: 2, hashSeed: "42" });
    const a = idx.endpointSlot("a");
    idx.apply(a, M, stored([1n], toks(2), 2));
    assert.equal(match(idx, toks(2), "a").blocks, 1);
    const keys = promptKeys(toks(2), 2, modelRootKey(M)); // unseeded keys do not match
    assert.equal(idx.longestPrefix(keys).blocks[a], 0);
  });
});

function keyPair(p: Uint32Array, idx: KvBlockIndex, i: number): [number, number] {
  const k = hashesToBigInts(promptKeys(p, idx.blockSize, modelRootKey(M)))[i]!;
  return [Number(k >> 32n), Number(k & 0xffffffffn)];
}
