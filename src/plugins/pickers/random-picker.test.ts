import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Endpoint, InferenceRequest, ScoredEndpoint } from "../../framework/types.js";
import { emptyHandle as handle, makeEndpoint as ep, seededRng as seeded } from "../testing.js";
import { RandomPicker, randomPickerFactory } from "./random-picker.js";

const req = {} as InferenceRequest;
const scored = (scores: number[]): ScoredEndpoint[] =>
  scores.map((score, i) => ({ endpoint: ep(`e${i}`), score }));

describe("random-picker", () => {
  it("ignores scores: uniform over candidates", () => {
    const picker = new RandomPicker("r", 1, seeded(7));
    const counts = new Map<string, number>();
    for (let i = 0; i < 4000; i++) {
      const id = picker.pick(req, scored([10, 0, 0, 0])).targetEndpoints[0]!.metadata.id;
      counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    assert.equal(counts.size, 4);
    for (const n of counts.values()) assert.ok(n > 850 && n < 1150, `count ${n} not ≈ 1000`);
  });
  it("returns maxNumOfEndpoints distinct endpoints", () => {
    const r = new RandomPicker("r", 3, seeded(1)).pick(req, scored([1, 2, 3, 4, 5]));
    assert.equal(r.targetEndpoints.length, 3);
    assert.equal(new Set(r.targetEndpoints).size, 3);
    assert.equal(new RandomPicker("r", 9, seeded(1)).pick(req, scored([1, 2])).targetEndpoints.length, 2);
  });
  it("factory is strict", () => {
    assert.equal(
      (randomPickerFactory("r", { maxNumOfEndpoints: 2 }, handle) as RandomPicker).maxNumOfEndpoints,
      2,
    );
    assert.throws(() => randomPickerFactory("r", { maxNumOfEndpoints: -1 }, handle), /maxNumOfEndpoints: /);
    assert.throws(() => randomPickerFactory("r", { seed: 1 }, handle), /seed: unknown field/);
  });
});
