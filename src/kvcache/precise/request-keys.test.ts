import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { hashesToBigInts } from "../events/types.js";
import {
  chainKeysInto,
  chainKeysIntoJs,
  encodeCanonicalCbor,
  fnv64a,
  initHash,
  modelRootKey,
  PromptKeyCache,
  promptKeys,
  requestKey,
} from "./request-keys.js";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

describe("FNV-64a", () => {
  it("matches the published test vectors", () => {
    const enc = new TextEncoder();
    assert.equal(fnv64a(enc.encode("")), 0xcbf29ce484222325n);
    assert.equal(fnv64a(enc.encode("a")), 0xaf63dc4c8601ec8cn);
    assert.equal(fnv64a(enc.encode("foobar")), 0x85944171f73967e8n);
  });
});

describe("canonical CBOR", () => {
  it("encodes [parent, tokens, nil] with shortest-form uints (hand-derived bytes)", () => {
    // 0x83 = array(3); 0x00 = uint 0; 0x83 = array(3); 01 02 03; 0xf6 = null
    assert.equal(hex(encodeCanonicalCbor([0, [1, 2, 3], null])), "830083010203f6");
    // uint boundaries: 23 → 17; 24 → 18 18; 255 → 18 ff; 256 → 19 0100; 65535 → 19 ffff;
    // 65536 → 1a 00010000; 2^32−1 → 1a ffffffff; 2^32+5 → 1b 0000000100000005
    assert.equal(
      hex(encodeCanonicalCbor([2n ** 32n + 5n, [23, 24, 255, 256, 65535, 65536, 4294967295], null])),
      "831b00000001000000058717181818ff19010019ffff1a000100001affffffff" + "f6",
    );
    // text string "m" = 0x61 0x6d; negative −1 = 0x20; bytes h'01' = 0x41 0x01
    assert.equal(hex(encodeCanonicalCbor(["m", -1, Uint8Array.from([1])])), "83616d204101");
    // map keys sorted length-first: {"bb":1,"a":2} → a2 61 61 02 62 62 62 01
    assert.equal(hex(encodeCanonicalCbor({ bb: 1, a: 2 })), "a261610262626201");
  });
});

describe("request keys", () => {
  it("H over the hand-derived CBOR bytes", () => {
    // FNV-64a(83 00 83 01 02 03 f6), computed independently
    assert.equal(requestKey(0n, [1, 2, 3]), 0xd0b868566d44a0b5n);
    assert.equal(
      requestKey(2n ** 32n + 5n, [23, 24, 255, 256, 65535, 65536, 4294967295]),
      0xb5a11c0a29c59ef8n,
    );
  });

  it("getInitHash(model) = H(FNV-64a(seed), nil, model)", () => {
    assert.equal(initHash(), 0xcbf29ce484222325n);
    // FNV-64a(83 1b cbf29ce484222325 f6 61 6d)
    assert.equal(modelRootKey("m"), 0x9ddb2db69f3f452cn);
    assert.equal(initHash("42"), 0x07ee7e07b4b19223n);
    assert.equal(modelRootKey("m", "42"), 0xbdc1bd2ff312d827n);
  });

  it("chains full blocks from the model root and drops the trailing partial block", () => {
    const root = modelRootKey("m");
    const keys = hashesToBigInts(promptKeys([1, 2, 3, 4, 5], 2, root));
    assert.deepEqual(keys, [0x286ffb1f39334ad6n, 0x77966feee0bb9389n]);
    assert.equal(keys[0], requestKey(root, [1, 2]));
    assert.equal(keys[1], requestKey(keys[0]!, [3, 4]));
    assert.equal(promptKeys([1], 2, root).length, 0);
  });

  it("fast path equals the generic encoder for large token ids and 64-bit parents", () => {
    const toks = Array.from({ length: 64 }, (_, i) => (i * 2654435761) >>> 0);
    const root = 0xfedcba9876543210n;
    const fast = hashesToBigInts(promptKeys(toks, 16, root));
    let p = root;
    for (let i = 0; i < 4; i++) {
      p = requestKey(p, toks.slice(i * 16, i * 16 + 16));
      assert.equal(fast[i], p);
    }
  });
  it("the WebAssembly and JS paths agree with the generic encoder on every CBOR head size", () => {
    let x = 0x9e3779b9;
    const rnd = () => {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      return x >>> 0;
    };
    // token values around every head boundary (1, 2, 3, 5 bytes), and random ones
    const edges = [0, 1, 23, 24, 255, 256, 65535, 65536, 0xffffffff];
    const parents = [
      0n,
      5n,
      23n,
      24n,
      200n,
      255n,
      256n,
      65535n,
      65536n,
      0xffffffffn,
      2n ** 32n,
      2n ** 64n - 1n,
    ];
    for (const bs of [1, 3, 23, 24, 255, 256, 300]) {
      for (const parent of parents) {
        const n = bs > 100 ? 2 : 5;
        // n full blocks and a trailing partial one (dropped)
        const toks = Array.from({ length: n * bs + bs - 1 }, (_, i) =>
          i % 3 === 0 ? edges[rnd() % edges.length]! : rnd() >>> (rnd() % 32),
        );
        const ph = Number(parent >> 32n);
        const pl = Number(parent & 0xffffffffn);
        const a = new Uint32Array(2 * n + 2);
        const b = new Uint32Array(2 * n + 2);
        assert.equal(chainKeysInto(ph, pl, toks, toks.length, bs, a, 1), n);
        assert.equal(chainKeysIntoJs(ph, pl, toks, toks.length, bs, b, 1), n);
        assert.deepEqual(a, b);
        // the same tokens at an offset inside a larger typed array
        const padded = new Uint32Array(7 + toks.length + 5);
        padded.set(toks, 7);
        const c = new Uint32Array(2 * n + 2);
        assert.equal(chainKeysInto(ph, pl, padded, toks.length, bs, c, 1, 7), n);
        assert.deepEqual(c, a);
        let p = parent;
        const got = hashesToBigInts(a.subarray(2));
        for (let i = 0; i < n; i++) {
          p = requestKey(p, toks.slice(i * bs, i * bs + bs));
          assert.equal(got[i], p, `bs ${bs} parent ${parent} block ${i}`);
        }
      }
    }
  });
});

describe("PromptKeyCache", () => {
  it("reuses the keys of a shared prefix and equals a cold computation", () => {
    const root = modelRootKey("m");
    const [rh, rl] = [Number(root >> 32n), Number(root & 0xffffffffn)];
    const cache = new PromptKeyCache(2);
    const a = Uint32Array.from({ length: 100 }, (_, i) => 70_000 + i);
    const r1 = cache.keys("m", rh, rl, a, 16);
    assert.equal(r1.reused, 0);
    assert.equal(r1.blocks, 6);
    assert.deepEqual(r1.keys, promptKeys(a, 16, root));
    const b = a.slice();
    b[40] = 1; // diverges in block 2
    const r2 = cache.keys("m", rh, rl, b, 16);
    assert.equal(r2.reused, 2);
    assert.deepEqual(r2.keys, promptKeys(b, 16, root));
    const longer = Uint32Array.from({ length: 130 }, (_, i) => 70_000 + i); // a + more blocks
    const r3 = cache.keys("m", rh, rl, longer, 16);
    assert.equal(r3.reused, 6);
    assert.deepEqual(r3.keys, promptKeys(longer, 16, root));
    // another model or block size never reuses
    const other = modelRootKey("other");
    const r4 = cache.keys("other", Number(other >> 32n), Number(other & 0xffffffffn), a, 16);
    assert.equal(r4.reused, 0);
    assert.deepEqual(r4.keys, promptKeys(a, 16, other));
    assert.equal(cache.keys("m", rh, rl, a, 4).reused, 0);
  });
});
