import assert from "node:assert/strict";
import { test } from "node:test";
import { xxh64 } from "@node-rs/xxhash";
import { prefixBlockHashes, prefixSeedHash } from "./prefix-hash.js";

/** Independent reference: builds the bytes explicitly with DataView, no shared buffers. */
function reference(tokens: number[], bs: number, model: string, salt = ""): bigint[] {
  let prev = xxh64(new TextEncoder().encode(model + salt), 0n);
  const out: bigint[] = [];
  for (let s = 0; s < tokens.length; s += bs) {
    const blk = tokens.slice(s, s + bs);
    const tb = new DataView(new ArrayBuffer(blk.length * 4));
    for (let i = 0; i < blk.length; i++) tb.setUint32(i * 4, blk[i], true);
    const inner = xxh64(new Uint8Array(tb.buffer), 0n);
    const cb = new DataView(new ArrayBuffer(16));
    cb.setBigUint64(0, inner, true);
    cb.setBigUint64(8, prev, true);
    prev = xxh64(new Uint8Array(cb.buffer), 0n);
    out.push(prev);
  }
  return out;
}

test("h0 is xxhash64 of model ‖ salt", () => {
  assert.equal(prefixSeedHash("m"), xxh64(Buffer.from("m"), 0n));
  assert.equal(prefixSeedHash("m", "salt"), xxh64(Buffer.from("msalt"), 0n));
  assert.notEqual(prefixSeedHash("m"), prefixSeedHash("m2"));
  // a known xxhash64 vector of the empty input (seed 0)
  assert.equal(xxh64(Buffer.alloc(0), 0n), 0xef46db3751d8e999n);
});

test("block hashes match the formula, partial last block included", () => {
  const tokens = Array.from({ length: 150 }, (_, i) => (i * 2654435761) >>> 0);
  const got = prefixBlockHashes(Uint32Array.from(tokens), 64, prefixSeedHash("llama", "s"));
  const want = reference(tokens, 64, "llama", "s");
  assert.equal(got.length, 3); // 64 + 64 + 22
  assert.deepEqual(got, want);
});

test("chain: equal prefixes share hashes, a change diverges from that block on", () => {
  const a = Uint32Array.from({ length: 256 }, (_, i) => i);
  const b = a.slice();
  b[130] = 99999;
  const seed = prefixSeedHash("m");
  const ha = prefixBlockHashes(a, 64, seed);
  const hb = prefixBlockHashes(b, 64, seed);
  assert.equal(ha[0], hb[0]);
  assert.equal(ha[1], hb[1]);
  assert.notEqual(ha[2], hb[2]);
  assert.notEqual(ha[3], hb[3]); // chained: later blocks differ though equal in content
});

test("model seed changes every hash", () => {
  const t = Uint32Array.from({ length: 128 }, (_, i) => i);
  const x = prefixBlockHashes(t, 64, prefixSeedHash("a"));
  const y = prefixBlockHashes(t, 64, prefixSeedHash("b"));
  assert.notEqual(x[0], y[0]);
  assert.notEqual(x[1], y[1]);
});

test("maxBlocks caps, subarray views hash like copies, empty input gives none", () => {
  const big = Uint32Array.from({ length: 1000 }, (_, i) => i * 7);
  const seed = prefixSeedHash("m");
  assert.equal(prefixBlockHashes(big, 64, seed, 3).length, 3);
  assert.deepEqual(prefixBlockHashes(big.subarray(64), 64, seed), prefixBlockHashes(big.slice(64), 64, seed));
  assert.deepEqual(prefixBlockHashes(new Uint32Array(0), 64, seed), []);
  assert.throws(() => prefixBlockHashes(big, 0, seed), RangeError);
});
