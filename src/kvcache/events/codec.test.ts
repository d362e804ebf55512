import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { blockStored, decodeBatch, decodeEvent, encodeBatch, KvEventDecodeError } from "./codec.js";
import { decodeMsgpack, encodeMsgpack, FixStr, MsgpackReader, U64 } from "./msgpack.js";
import {
  decodeSeq,
  type EventBatch,
  encodeSeq,
  hashesFromBigInts,
  hashesToBigInts,
  kvTopic,
  parseKvTopic,
} from "./types.js";

const BIG = 0xfedcba9876543210n; // > 2^63, not representable as a double
const MAX = 0xffffffffffffffffn;

function sample(): EventBatch {
  return {
    ts: 1750000000.25,
    dataParallelRank: 0,
    events: [
      blockStored({
        blockHashes: hashesFromBigInts([BIG, 7n]),
        parentBlockHash: U64.fromBigInt(MAX),
        tokenIds: Uint32Array.from([1, 2, 3, 70000]),
        blockSize: 2,
        medium: "GPU",
      }),
      { type: "BlockRemoved", blockHashes: hashesFromBigInts([BIG]), medium: "CPU", groupIdx: null },
      { type: "AllBlocksCleared" },
    ],
  };
}

describe("msgpack", () => {
  it("round-trips uint64 without precision loss and uses shortest integer forms", () => {
    const bytes = encodeMsgpack([BIG, 5, 300, 70000, 2 ** 40, -1, -200, 1.5, "GPU", null]);
    const v = decodeMsgpack(bytes) as unknown[];
    assert.ok(v[0] instanceof U64);
    assert.equal((v[0] as U64).toBigInt(), BIG);
    assert.deepEqual(v.slice(1, 4), [5, 300, 70000]);
    assert.equal((v[4] as U64).toBigInt(), 2n ** 40n);
    assert.deepEqual(v.slice(5), [-1, -200, 1.5, "GPU", null]);
    // 5 → positive fixint (1 byte), 300 → 0xcd, 70000 → 0xce, BIG → 0xcf
    assert.equal(bytes[1], 0xcf);
    assert.equal(bytes[10], 5);
    assert.equal(bytes[11], 0xcd);
  });

  it("decodes every fixed-size integer and float form", () => {
    const ints = [-100, -200, -40_000, -(2 ** 31), 200, 40_000, 2 ** 32 - 1];
    assert.deepEqual(decodeMsgpack(encodeMsgpack(ints)), ints);
    // float32 1.5 (0xca 3fc00000), float64 −0.25, uint16 bin length
    assert.equal(decodeMsgpack(Uint8Array.from([0xca, 0x3f, 0xc0, 0, 0])), 1.5);
    assert.equal(decodeMsgpack(encodeMsgpack(-0.25)), -0.25);
    const big = new Uint8Array(300).fill(7);
    assert.deepEqual(decodeMsgpack(encodeMsgpack(big)), big);
  });

  it("decodes short strings exactly through the intern cache (collisions and non-ASCII)", () => {
    const strs = Array.from({ length: 600 }, (_, i) => `s${i}`).concat([
      "GPU",
      "CPU",
      "é-lora",
      "x".repeat(32),
    ]);
    for (let round = 0; round < 2; round++) assert.deepEqual(decodeMsgpack(encodeMsgpack(strs)), strs);
  });

  it("reads runs of uint32s up to the end of the buffer and stops before any other shape", () => {
    const vals = [5, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 0xffffffff];
    for (let k = 0; k <= vals.length; k++) {
      // the run ends the buffer (values decoded by the short-tail loop) or is followed by "x"
      for (const tail of [[], ["x"]]) {
        const r = new MsgpackReader(encodeMsgpack([...vals.slice(0, k), ...tail]));
        assert.equal(r.arrayHeader(), k + tail.length);
        const out = new Uint32Array(k + 1);
        assert.equal(r.uint32sInto(out, 0, k + 1), k);
        assert.deepEqual(Array.from(out.subarray(0, k)), vals.slice(0, k));
        assert.equal(r.done, tail.length === 0);
      }
    }
    // −1 (negative fixint) is another shape
    const r = new MsgpackReader(encodeMsgpack([1, -1]));
    r.arrayHeader();
    assert.equal(r.uint32sInto(new Uint32Array(2), 0, 2), 1);
  });

  it("matches prepared fixstrs exactly", () => {
    const tag = new FixStr("BlockStored");
    for (const [s, ok] of [
      ["BlockStored", true],
      ["BlockStorex", false],
      ["BlockStore", false],
      ["XlockStored", false],
    ] as const) {
      const r = new MsgpackReader(encodeMsgpack(s));
      assert.equal(r.fixstr(tag), ok, s);
      assert.equal(r.pos, ok ? r.buf.length : 0);
    }
    assert.throws(() => new FixStr("é"), RangeError);
  });

  it("decodes int64 (0xd3) as its two's-complement uint64", () => {
    const bytes = Uint8Array.from([0xd3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe]);
    assert.equal((decodeMsgpack(bytes) as U64).toBigInt(), MAX - 1n);
  });

  it("rejects truncated input and trailing bytes", () => {
    assert.throws(() => decodeMsgpack(Uint8Array.from([0x92, 0x01])), /truncated/);
    assert.throws(() => decodeMsgpack(Uint8Array.from([0x01, 0x02])), /trailing/);
    assert.throws(() => decodeMsgpack(Uint8Array.from([0xdd, 0xff, 0xff, 0xff, 0xff])), /truncated/);
  });
});

describe("KV event batch codec", () => {
  for (const events of ["array", "map"] as const) {
    for (const batch of ["array", "map"] as const) {
      it(`round-trips events=${events} batch=${batch}`, () => {
        const b = sample();
        const d = decodeBatch(encodeBatch(b, { events, batch }));
        assert.equal(d.unknownEvents, 0);
        assert.deepEqual(d.batch, b);
        const s = d.batch.events[0];
        assert.equal(s?.type, "BlockStored");
        if (s?.type === "BlockStored") {
          assert.deepEqual(hashesToBigInts(s.blockHashes), [BIG, 7n]);
          assert.equal(s.parentBlockHash?.toBigInt(), MAX);
        }
      });
    }
  }

  it("array mode omits only trailing default fields and keeps lora_id/medium/lora_name", () => {
    const raw = decodeMsgpack(encodeBatch(sample())) as unknown[];
    assert.equal(raw.length, 3); // ts, events, rank
    const evs = raw[1] as unknown[][];
    assert.equal(evs[0]?.length, 8); // tag + 7 required fields (extra_keys… omitted)
    assert.deepEqual(evs[0]?.slice(4), [2, null, "GPU", null]);
    assert.deepEqual(evs[1]?.length, 3); // tag, hashes, medium (group_idx omitted)
    assert.deepEqual(evs[2], ["AllBlocksCleared"]);
    // a non-default group_idx forces extra_keys to be written as nil before it
    const b = sample();
    const s = b.events[0];
    if (s?.type === "BlockStored") s.groupIdx = 0;
    const evs2 = (decodeMsgpack(encodeBatch(b)) as unknown[])[1] as unknown[][];
    assert.equal(evs2[0]?.length, 10);
    assert.equal(evs2[0]?.[8], null);
    assert.equal(evs2[0]?.[9], 0);
    // no rank → 2-element batch
    b.dataParallelRank = null;
    assert.equal((decodeMsgpack(encodeBatch(b)) as unknown[]).length, 2);
  });

  it("map mode writes the type key and omits None defaults", () => {
    const raw = decodeMsgpack(encodeBatch(sample(), { events: "map" })) as unknown[];
    const ev = (raw[1] as Record<string, unknown>[])[0]!;
    assert.equal(ev.type, "BlockStored");
    assert.deepEqual(Object.keys(ev), [
      "type",
      "block_hashes",
      "parent_block_hash",
      "token_ids",
      "block_size",
      "lora_id",
      "medium",
      "lora_name",
    ]);
  });

  it("decodes the oldest (vLLM 0.9) shapes: [ts, events], BlockStored to lora_id, BlockRemoved [tag, hashes]", () => {
    const payload = encodeMsgpack([
      12.5,
      [
        ["BlockStored", [11, 12], null, [1, 2, 3, 4], 2, null],
        ["BlockRemoved", [11]],
      ],
    ]);
    const { batch } = decodeBatch(payload);
    assert.equal(batch.dataParallelRank, null);
    assert.equal(batch.ts, 12.5);
    const [s, r] = batch.events;
    assert.ok(s?.type === "BlockStored");
    assert.deepEqual(hashesToBigInts(s.blockHashes), [11n, 12n]);
    assert.equal(s.parentBlockHash, null);
    assert.deepEqual(Array.from(s.tokenIds), [1, 2, 3, 4]);
    assert.equal(s.medium, null);
    assert.equal(s.loraName, null);
    assert.ok(r?.type === "BlockRemoved");
    assert.equal(r.medium, null);
  });

  it("decodes a hand-written payload: uint64 hash as 0xcf and bytes hashes (last 8 bytes BE)", () => {
    // [1.0, [["BlockRemoved", [0xcf 8000000000000001, bin(32 bytes)], "GPU"]], 0]
    const bin = new Uint8Array(32);
    bin.set([0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08], 24);
    bin[0] = 0xaa; // ignored: only the last 8 bytes count
    const bytes = Uint8Array.from([
      0x93,
      0xcb,
      0x3f,
      0xf0,
      0,
      0,
      0,
      0,
      0,
      0,
      0x91,
      0x93,
      0xac,
      ..."BlockRemoved".split("").map((c) => c.charCodeAt(0)),
      0x92,
      0xcf,
      0x80,
      0,
      0,
      0,
      0,
      0,
      0,
      0x01,
      0xc4,
      32,
      ...bin,
      0xa3,
      0x47,
      0x50,
      0x55,
      0x00,
    ]);
    const { batch } = decodeBatch(bytes);
    const r = batch.events[0];
    assert.ok(r?.type === "BlockRemoved");
    assert.deepEqual(hashesToBigInts(r.blockHashes), [0x8000000000000001n, 0x0102030405060708n]);
    assert.equal(r.medium, "GPU");
    assert.equal(batch.dataParallelRank, 0);
  });

  it("left-pads short byte hashes and reinterprets negative ints", () => {
    const e = decodeEvent(["BlockRemoved", [Uint8Array.from([0x01, 0x00]), -1], "GPU"] as never);
    assert.ok(e?.type === "BlockRemoved");
    assert.deepEqual(hashesToBigInts(e.blockHashes), [0x100n, MAX]);
  });

  it("decodes token ids in every integer form, and rejects non-integers and truncation", () => {
    const toks = [0, 127, 128, 255, 256, 65535, 65536, 0xffffffff, -1, 5];
    const payload = (t: unknown[]) =>
      encodeMsgpack([1, [["BlockStored", [7], null, t, 10, null, "GPU", null]]] as never);
    const e = decodeBatch(payload(toks)).batch.events[0];
    assert.ok(e?.type === "BlockStored");
    assert.deepEqual(
      Array.from(e.tokenIds),
      [0, 127, 128, 255, 256, 65535, 65536, 0xffffffff, 0xffffffff, 5],
    );
    assert.equal(e.loraId, null);
    assert.equal(e.loraName, null);
    assert.equal(e.medium, "GPU");
    assert.throws(() => decodeBatch(payload([1, "x", 2])), KvEventDecodeError);
    const full = payload([70000, 70001]);
    for (let cut = 1; cut < full.length; cut++)
      assert.throws(() => decodeBatch(full.subarray(0, cut)), KvEventDecodeError, `cut at ${cut}`);
  });

  it("skips unknown event tags and counts them; rejects malformed events", () => {
    const d = decodeBatch(encodeMsgpack([1, [["FutureEvent", 1], ["AllBlocksCleared"]]]));
    assert.equal(d.unknownEvents, 1);
    assert.equal(d.batch.events.length, 1);
    assert.throws(() => decodeBatch(encodeMsgpack([1, [["BlockStored", "nope"]]])), KvEventDecodeError);
    assert.throws(() => decodeBatch(encodeMsgpack("x")), KvEventDecodeError);
    assert.throws(() => decodeBatch(Uint8Array.from([0x93])), KvEventDecodeError);
  });
});

describe("frames", () => {
  it("builds and parses topics", () => {
    assert.equal(kvTopic("10.0.0.1:8000", "Qwen/Qwen3-0.6B"), "kv@10.0.0.1:8000@Qwen/Qwen3-0.6B");
    assert.deepEqual(parseKvTopic("kv@10.0.0.1:8000@Qwen/Qwen3-0.6B"), {
      podId: "10.0.0.1:8000",
      model: "Qwen/Qwen3-0.6B",
    });
    assert.deepEqual(parseKvTopic("kv@10.0.0.1@m"), { podId: "10.0.0.1", model: "m" });
    assert.equal(parseKvTopic("kv@nomodel"), null);
    assert.equal(parseKvTopic("xx@a@b"), null);
  });

  it("encodes seq as 8-byte big-endian and decodes the end marker", () => {
    assert.deepEqual([...encodeSeq(258)], [0, 0, 0, 0, 0, 0, 1, 2]);
    assert.equal(decodeSeq(encodeSeq(2 ** 40 + 5)), 2 ** 40 + 5);
    assert.equal(decodeSeq(encodeSeq(0xffffffffffffffffn)), Number.POSITIVE_INFINITY);
    assert.equal(decodeSeq(Uint8Array.from([1, 2])), null);
  });
});
