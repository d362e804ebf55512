import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { FixedDetector, fakeRequest, flush, harness, type Tracked } from "./test-helpers.js";

type Op =
  | { k: "enqueue"; tenant: number; priority: number; bytes: number; abortable: boolean }
  | { k: "advance"; ms: number }
  | { k: "saturation"; value: number }
  | { k: "abort"; index: number }
  | { k: "dispatch" };

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    k: fc.constant("enqueue" as const),
    tenant: fc.integer({ min: 0, max: 3 }),
    priority: fc.integer({ min: -2, max: 2 }),
    bytes: fc.integer({ min: 0, max: 400 }),
    abortable: fc.boolean(),
  }),
  fc.record({ k: fc.constant("advance" as const), ms: fc.integer({ min: 0, max: 1500 }) }),
  fc.record({ k: fc.constant("saturation" as const), value: fc.constantFrom(0, 0.5, 1, 2) }),
  fc.record({ k: fc.constant("abort" as const), index: fc.nat(60) }),
  fc.record({ k: fc.constant("dispatch" as const) }),
);

describe("flow control invariants (property)", () => {
  it("every request resolves exactly once; counts match; one pass dispatches in priority order; limits hold", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 60 }), async (ops) => {
        const det = new FixedDetector(1);
        const h = harness({
          detector: det,
          retryIntervalMs: 50,
          section: { defaultRequestTTL: "3s", maxRequests: 12, defaultPriorityBand: { maxBytes: 1500 } },
        });
        const all: { t: Tracked; ac: AbortController }[] = [];
        let resolved = 0;
        for (const o of ops) {
          if (o.k === "enqueue") {
            const ac = new AbortController();
            const t = h.enqueue(
              fakeRequest(`t${o.tenant}`, o.priority, o.bytes),
              o.abortable ? ac.signal : undefined,
            );
            all.push({ t, ac });
          } else if (o.k === "advance") h.clock.advance(o.ms);
          else if (o.k === "saturation") det.value = o.value;
          else if (o.k === "abort") all[o.index % Math.max(1, all.length)]?.ac.abort();
          else {
            const before = h.done.length;
            const n = h.fc.dispatch();
            await flush();
            const dispatched = h.done.slice(before).filter((x) => x.result?.outcome === "Dispatched");
            assert.ok(dispatched.length >= n);
            const prios = dispatched.map((x) => x.request.objectives.priority);
            for (let i = 1; i < prios.length; i++) assert.ok(prios[i - 1]! >= prios[i]!, `order ${prios}`);
          }
          await flush();
          assert.ok(h.fc.queued <= 12, "global maxRequests");
          for (const b of h.fc.stats()) assert.ok(b.bytes <= 1500, "band maxBytes");
          const stats = h.fc.stats();
          assert.equal(
            stats.reduce((s, b) => s + b.requests, 0),
            h.fc.queued,
          );
          assert.equal(
            stats.reduce((s, b) => s + b.flows.reduce((x, f) => x + f.requests, 0), 0),
            h.fc.queued,
          );
          resolved = all.filter((x) => x.t.result !== undefined).length;
          assert.equal(all.length - resolved, h.fc.queued, "unresolved = queued");
          assert.equal(h.done.length, resolved, "each resolves once");
        }
        h.fc.shutdown();
        await flush();
        assert.ok(all.every((x) => x.t.result !== undefined));
        assert.equal(h.done.length, all.length);
        assert.equal(h.clock.pending, 0);
      }),
      { numRuns: 150, seed: 42 },
    );
  });
});
