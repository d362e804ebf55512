import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Endpoint, InferenceRequest, ScoredEndpoint } from "../../framework/types.js";
import { emptyHandle as handle, makeEndpoint as ep, seededRng as seeded } from "../testing.js";
import { MaxScorePicker, maxScorePickerFactory } from "./max-score-picker.js";

/** mulberry32: deterministic RNG for tests */
const req = {} as InferenceRequest;
const scored = (scores: number[]): ScoredEndpoint[] =>
  scores.map((score, i) => ({ endpoint: ep(`e${i}`), score }));
const ids = (eps: Endpoint[]) => eps.map((e) => e.metadata.id);

describe("max-score-picker", () => {
  const cases: { name: string; scores: number[]; max: number; want: string[] }[] = [
    { name: "highest wins", scores: [0.2, 2.5, 1.0], max: 1, want: ["e1"] },
    { name: "top 2 best first", scores: [0.2, 2.5, 1.0, 0.1], max: 2, want: ["e1", "e2"] },
    { name: "N larger than candidates", scores: [1, 3], max: 5, want: ["e1", "e0"] },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const r = new MaxScorePicker("m", c.max, seeded(1)).pick(req, scored(c.scores));
      assert.deepEqual(ids(r.targetEndpoints), c.want);
      assert.equal(r.scoredCandidates.length, c.scores.length);
      const s = r.scoredCandidates.map((x) => x.score);
      assert.deepEqual(
        s,
        [...c.scores].sort((a, b) => b - a),
      );
    });
  }
  it("breaks ties uniformly at random", () => {
    const picker = new MaxScorePicker("m", 1, seeded(42));
    const counts = new Map<string, number>();
    for (let i = 0; i < 3000; i++) {
      const r = picker.pick(req, scored([1, 3, 3, 0, 3]));
      const id = r.targetEndpoints[0]!.metadata.id;
      counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    assert.deepEqual([...counts.keys()].sort(), ["e1", "e2", "e4"]);
    for (const n of counts.values()) assert.ok(n > 850 && n < 1150, `tie count ${n} not ≈ 1000`);
  });
  it("factory: maxNumOfEndpoints default 1, strict", () => {
    assert.equal((maxScorePickerFactory("m", undefined, handle) as MaxScorePicker).maxNumOfEndpoints, 1);
    assert.equal(
      (maxScorePickerFactory("m", { maxNumOfEndpoints: 3 }, handle) as MaxScorePicker).maxNumOfEndpoints,
      3,
    );
    assert.throws(() => maxScorePickerFactory("m", { maxNumOfEndpoints: 0 }, handle), /maxNumOfEndpoints: /);
    assert.throws(
      () => maxScorePickerFactory("m", { maxNumOfEndpoint: 2 }, handle),
      /maxNumOfEndpoint: unknown field/,
    );
  });
});
