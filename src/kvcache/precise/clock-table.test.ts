import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ClockTable } from "./clock-table.js";

/** LCG for reproducible keys. */
function lcg(seed: number): () => number {
  let x = seed;
  return () => {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    return x;
  };
}

const key = (k: bigint): [number, number] => [Number(k >> 32n), Number(k & 0xffffffffn)];

describe("ClockTable", () => {
  it("agrees with a Map reference under random adds and removes, through growth", () => {
    const t = new ClockTable(4, 4);
    const ref = new Map<bigint, number>(); // key → record
    const rnd = lcg(12345);
    for (let i = 0; i < 30_000; i++) {
      // few distinct high words, keys > 2^63 too
      const k = (BigInt(rnd() % 4 === 0 ? 0xfedcba98 : rnd() % 4) << 32n) | BigInt(rnd() % 5000);
      const [hi, lo] = key(k);
      const s = ref.get(k);
      if (s !== undefined) {
        assert.equal(t.find(hi, lo), s);
        if (rnd() % 2 === 0) {
          t.remove(s);
          ref.delete(k);
          assert.equal(t.find(hi, lo), -1);
        }
      } else {
        assert.equal(t.find(hi, lo), -1);
        let r = t.add(hi, lo);
        if (r === -1) {
          t.growTo(t.cap * 2);
          r = t.add(hi, lo);
        }
        t.d[t.stride * r + 3] = i; // payload
        ref.set(k, r);
        assert.deepEqual([t.hi(r), t.lo(r)], [hi >>> 0, lo >>> 0]);
      }
    }
    assert.equal(t.count, ref.size);
    for (const [k, s] of ref) assert.equal(t.find(...key(k)), s);
  });

  for (const CAP of [7, 40, 3000]) {
    it(`stays exact under CLOCK churn at its bound (${CAP} keys), with overflowing groups`, () => {
      const t = new ClockTable(CAP, 3);
      const live = new Map<number, [number, number]>(); // record → key
      const rnd = lcg(4242 + CAP);
      for (let i = 0; i < 40_000; i++) {
        const hi = rnd() % 3;
        const lo = rnd();
        if (t.find(hi, lo) !== -1) continue;
        if (t.count >= CAP) {
          // the CLOCK victim, or now and then an arbitrary record
          let v = t.victim();
          if (rnd() % 4 === 0) v = [...live.keys()][rnd() % live.size]!;
          const [vh, vl] = live.get(v)!;
          t.remove(v);
          live.delete(v);
          assert.equal(t.find(vh, vl), -1);
        }
        const s = t.add(hi, lo);
        assert.ok(s >= 0 && s < CAP);
        assert.ok(!live.has(s));
        live.set(s, [hi, lo]);
        if (i % 211 === 0) for (const [r, [h, l]] of live) assert.equal(t.find(h, l), r);
      }
      assert.equal(t.count, live.size);
      for (const [r, [h, l]] of live) assert.equal(t.find(h, l), r);
      for (let i = 0; i < 2000; i++) assert.equal(t.find(7 + (rnd() % 3), rnd()), -1);
    });
  }

  it("evicts in CLOCK order: oldest first, a touched record gets a second chance", () => {
    const t = new ClockTable(4, 3);
    for (let i = 0; i < 4; i++) t.add(0, i);
    assert.equal(t.lo(t.victim()), 0);
    t.remove(0);
    t.add(0, 4); // takes record 0
    t.touch(1); // key 1 was cleared by the first sweep: touching it protects it
    const v = t.victim();
    assert.equal(t.lo(v), 2);
  });

  it("keeps keys and payloads through restride", () => {
    const t = new ClockTable(8, 4);
    for (let i = 0; i < 8; i++) t.d[t.stride * t.add(1, i) + 3] = 100 + i;
    t.restride(6);
    for (let i = 0; i < 8; i++) {
      const s = t.find(1, i);
      assert.equal(t.d[t.stride * s + 3], 100 + i);
      assert.equal(t.d[t.stride * s + 5], 0);
    }
  });
});
