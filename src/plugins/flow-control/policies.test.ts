import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { FlowView, QueueItem } from "../../framework/flow-control.js";
import { createRegistry } from "../../framework/registry.js";
import { EdfOrderingPolicy } from "./edf-ordering-policy.js";
import { FcfsOrderingPolicy } from "./fcfs-ordering-policy.js";
import { GlobalStrictFairnessPolicy } from "./global-strict-fairness-policy.js";
import { FLOW_CONTROL_PLUGIN_TYPES, registerFlowControlPlugins } from "./index.js";
import { RoundRobinFairnessPolicy } from "./round-robin-fairness-policy.js";
import { StaticUsageLimitPolicy } from "./static-usage-limit-policy.js";

const item = (seq: number, enqueueTime: number, deadline: number): QueueItem => ({
  request: {} as QueueItem["request"],
  flow: { fairnessId: "f", priority: 0 },
  enqueueTime,
  deadline,
  byteSize: 1,
  seq,
});
const flow = (id: number, items: QueueItem[]): FlowView => ({
  key: { fairnessId: `f${id}`, priority: 0 },
  id,
  length: items.length,
  head: () => items[0],
});
const handle = { plugin: () => undefined, addPlugin: () => {}, allPlugins: () => [] };

describe("ordering policies", () => {
  it("fcfs: enqueue time, then sequence", () => {
    const c = new FcfsOrderingPolicy().compare;
    const xs = [item(3, 10, 0), item(1, 20, 0), item(2, 10, 0)];
    assert.deepEqual(
      xs.sort(c).map((x) => x.seq),
      [2, 3, 1],
    );
  });
  it("edf: deadline first, no deadline (TTL 0) last, ties by sequence", () => {
    const c = new EdfOrderingPolicy().compare;
    const inf = Number.POSITIVE_INFINITY;
    const xs = [item(1, 0, inf), item(2, 5, 300), item(3, 9, 100), item(4, 1, inf), item(5, 2, 100)];
    assert.deepEqual(
      xs.sort(c).map((x) => x.seq),
      [3, 5, 2, 1, 4],
    );
  });
});

describe("fairness policies", () => {
  it("global-strict picks the flow with the best head under the ordering policy", () => {
    const s = new GlobalStrictFairnessPolicy().newBandState();
    const f0 = flow(0, [item(5, 50, 0)]);
    const f1 = flow(1, [item(2, 20, 0)]);
    const f2 = flow(2, []);
    assert.equal(s.pick([f0, f1, f2], new FcfsOrderingPolicy().compare), f1);
  });
  it("round-robin rotates over non-empty flows; only a real dispatch moves the cursor", () => {
    const s = new RoundRobinFairnessPolicy().newBandState();
    const c = new FcfsOrderingPolicy().compare;
    const f0 = flow(0, [item(1, 0, 0)]);
    const f1 = flow(1, []);
    const f2 = flow(2, [item(2, 0, 0)]);
    const f3 = flow(3, [item(3, 0, 0)]);
    const flows = [f0, f1, f2, f3];
    const picks: number[] = [];
    for (let i = 0; i < 6; i++) {
      const f = s.pick(flows, c)!;
      picks.push(f.id);
      s.dispatched?.(f);
    }
    assert.deepEqual(picks, [0, 2, 3, 0, 2, 3]);
    const again = s.pick(flows, c)!;
    assert.equal(s.pick(flows, c), again, "a blocked pick does not advance");
    // a flow removed after its turn: rotation continues with the next id
    s.dispatched?.(f0);
    assert.equal(s.pick([f0, f3], c), f3);
    assert.equal(s.pick([], c), undefined);
  });
  it("static usage limit: fixed ceiling for every priority", () => {
    const p = new StaticUsageLimitPolicy("u", 0.8);
    assert.equal(p.ceiling(-1), 0.8);
    assert.equal(p.ceiling(100), 0.8);
  });
});

describe("registration", () => {
  it("registers every type; factories decode strictly", () => {
    const r = createRegistry();
    registerFlowControlPlugins(r);
    assert.deepEqual(r.types(), [...FLOW_CONTROL_PLUGIN_TYPES].sort());
    for (const t of FLOW_CONTROL_PLUGIN_TYPES) {
      const p = r.get(t)!.factory(t, undefined, handle);
      assert.equal(p.type, t);
      assert.throws(() => r.get(t)!.factory(t, { nope: 1 }, handle), /nope: unknown field/);
    }
    const u = r
      .get("static-usage-limit-policy")!
      .factory("u", { threshold: 0.9 }, handle) as StaticUsageLimitPolicy;
    assert.equal(u.ceiling(0), 0.9);
    assert.throws(
      () => r.get("static-usage-limit-policy")!.factory("u", { threshold: 0 }, handle),
      /threshold/,
    );
  });
});
