import assert from "node:assert/strict";
import { test } from "node:test";
import { PrefixLruIndex } from "./lru-index.js";

test("per-endpoint LRU evicts the least recently inserted hash", () => {
  const idx = new PrefixLruIndex(3);
  idx.add("a", [1n, 2n, 3n]);
  idx.add("a", [1n]); // refresh 1 → order 2,3,1
  idx.add("a", [4n]); // evicts 2
  assert.equal(idx.has("a", 2n), false);
  assert.equal(idx.has("a", 1n), true);
  assert.equal(idx.has("a", 3n), true);
  assert.equal(idx.has("a", 4n), true);
  assert.equal(idx.endpointSize("a"), 3);
  assert.equal(idx.size(), 3);
});

test("shared hashes survive eviction on one endpoint", () => {
  const idx = new PrefixLruIndex(2);
  idx.add("a", [1n, 2n]);
  idx.add("b", [1n, 2n]);
  assert.equal(idx.size(), 2);
  idx.add("a", [3n, 4n]); // a evicts 1,2
  assert.deepEqual(idx.match([1n, 2n], ["a", "b"]), [0, 2]);
  assert.equal(idx.size(), 4);
  idx.removeEndpoint("b");
  assert.equal(idx.size(), 2);
  assert.deepEqual(idx.match([3n, 4n], ["a", "b"]), [2, 0]);
});

test("match counts consecutive blocks from block 0 only", () => {
  const idx = new PrefixLruIndex(100);
  idx.add("a", [1n, 2n, 3n]);
  idx.add("b", [1n, 3n]); // hole at block 1
  idx.add("c", [2n, 3n]); // no block 0
  assert.deepEqual(idx.match([1n, 2n, 3n, 4n], ["a", "b", "c", "d"]), [3, 1, 0, 0]);
  assert.deepEqual(idx.match([], ["a"]), [0]);
});

test("a smaller capacity on a later add shrinks the LRU", () => {
  const idx = new PrefixLruIndex(10);
  idx.add("a", [1n, 2n, 3n, 4n, 5n]);
  idx.add("a", [6n], 2);
  assert.equal(idx.endpointSize("a"), 2);
  assert.deepEqual(
    [5n, 6n].map((h) => idx.has("a", h)),
    [true, true],
  );
});

test("property: index agrees with a naive per-endpoint LRU model", async () => {
  const fc = await import("fast-check");
  const op = fc.oneof(
    fc.record({
      kind: fc.constant("add" as const),
      ep: fc.integer({ min: 0, max: 3 }),
      hashes: fc.array(fc.bigInt({ min: 0n, max: 20n }), { maxLength: 6 }),
    }),
    fc.record({ kind: fc.constant("remove" as const), ep: fc.integer({ min: 0, max: 3 }) }),
  );
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 5 }), fc.array(op, { maxLength: 40 }), (cap, ops) => {
      const idx = new PrefixLruIndex(cap);
      const model = new Map<string, bigint[]>(); // least recent first
      for (const o of ops) {
        const id = `e${o.ep}`;
        if (o.kind === "remove") {
          idx.removeEndpoint(id);
          model.delete(id);
          continue;
        }
        idx.add(id, o.hashes);
        const list = model.get(id) ?? [];
        for (const h of o.hashes) {
          const i = list.indexOf(h);
          if (i >= 0) list.splice(i, 1);
          list.push(h);
        }
        while (list.length > cap) list.shift();
        model.set(id, list);
      }
      const all = new Set<bigint>();
      for (const [id, list] of model) {
        assert.equal(idx.endpointSize(id), list.length);
        for (const h of list) {
          assert.ok(idx.has(id, h));
          all.add(h);
        }
      }
      assert.equal(idx.size(), all.size);
      const probe = [0n, 1n, 2n, 3n];
      const ids = ["e0", "e1", "e2", "e3"];
      const want = ids.map((id) => {
        let n = 0;
        while (n < probe.length && (model.get(id) ?? []).includes(probe[n])) n++;
        return n;
      });
      assert.deepEqual(idx.match(probe, ids), want);
    }),
    { numRuns: 300 },
  );
});
