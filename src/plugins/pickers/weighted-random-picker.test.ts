import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Endpoint, InferenceRequest, ScoredEndpoint } from "../../framework/types.js";
import { emptyHandle as handle, makeEndpoint as ep, seededRng as seeded } from "../testing.js";
import { WeightedRandomPicker, weightedRandomPickerFactory } from "./weighted-random-picker.js";

const req = {} as InferenceRequest;
const scored = (scores: number[]): ScoredEndpoint[] =>
  scores.map((score, i) => ({ endpoint: ep(`e${i}`), score }));
const tally = (picker: WeightedRandomPicker, scores: number[], n: number) => {
  const counts = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    for (const e of picker.pick(req, scored(scores)).targetEndpoints) {
      counts.set(e.metadata.id, (counts.get(e.metadata.id) ?? 0) + 1);
    }
  }
  return counts;
};

describe("weighted-random-picker", () => {
  it("picks in proportion to score; zero scores never picked", () => {
    const counts = tally(new WeightedRandomPicker("w", 1, seeded(3)), [0, 1, 3], 8000);
    assert.equal(counts.get("e0"), undefined);
    const p1 = (counts.get("e1") ?? 0) / 8000;
    const p2 = (counts.get("e2") ?? 0) / 8000;
    assert.ok(Math.abs(p1 - 0.25) < 0.02, `p(e1)=${p1}, want ≈ 0.25`);
    assert.ok(Math.abs(p2 - 0.75) < 0.02, `p(e2)=${p2}, want ≈ 0.75`);
  });
  it("all scores ≤ 0 → uniform random over all candidates", () => {
    const counts = tally(new WeightedRandomPicker("w", 1, seeded(5)), [0, 0, -1], 3000);
    assert.equal(counts.size, 3);
    for (const n of counts.values()) assert.ok(n > 850 && n < 1150, `count ${n} not ≈ 1000`);
  });
  it("maxNumOfEndpoints > positive candidates returns only positive ones", () => {
    const r = new WeightedRandomPicker("w", 3, seeded(9)).pick(req, scored([0, 2, 1]));
    assert.deepEqual(r.targetEndpoints.map((e) => e.metadata.id).sort(), ["e1", "e2"]);
    assert.equal(r.scoredCandidates.length, 3);
  });
  it("factory is strict", () => {
    assert.equal((weightedRandomPickerFactory("w", {}, handle) as WeightedRandomPicker).maxNumOfEndpoints, 1);
    assert.throws(
      () => weightedRandomPickerFactory("w", { maxNumOfEndpoints: "2" }, handle),
      /maxNumOfEndpoints: /,
    );
  });
});
