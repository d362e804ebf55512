import assert from "node:assert/strict";
import { test } from "node:test";
import { INFLIGHT_LOAD } from "../../framework/types.js";
import { makeEndpoint, makeRequest } from "../testing.js";
import {
  ActiveRequestScorer,
  activeRequestScore,
  activeRequestScorerFactory,
} from "./active-request-scorer.js";

test("score formula table", () => {
  const rows: [number, number, number, number, number][] = [
    // count, max, idleThreshold, maxBusyScore, want
    [0, 10, 0, 1, 1],
    [10, 10, 0, 1, 0],
    [5, 10, 0, 1, 0.5],
    [5, 10, 0, 0.8, 0.4],
    [2, 10, 2, 1, 1],
    [3, 4, 2, 1, 0.25],
  ];
  for (const [c, m, t, b, want] of rows) assert.equal(activeRequestScore(c, m, t, b), want);
});

test("scorer reads INFLIGHT_LOAD; missing counts as 0", () => {
  const s = new ActiveRequestScorer();
  const [a, b, c] = ["a", "b", "c"].map((id) => makeEndpoint(id));
  a.attributes.set(INFLIGHT_LOAD, { requests: 4, tokens: 0 });
  b.attributes.set(INFLIGHT_LOAD, { requests: 1, tokens: 0 });
  const m = s.score(makeRequest({}), [a, b, c]);
  assert.deepEqual([m.get(a), m.get(b), m.get(c)], [0, 0.75, 1]);
});

test("factory: requestTimeout accepted and ignored; strict params", () => {
  const handle = { plugin: () => undefined, addPlugin() {}, allPlugins: () => [] };
  const s = activeRequestScorerFactory(
    "s",
    { requestTimeout: "2m", idleThreshold: 1, maxBusyScore: 0.5 },
    handle,
  ) as ActiveRequestScorer;
  assert.equal(s.idleThreshold, 1);
  assert.equal(s.maxBusyScore, 0.5);
  assert.deepEqual(s.consumes, [INFLIGHT_LOAD]);
  const d = activeRequestScorerFactory("d", undefined, handle) as ActiveRequestScorer;
  assert.deepEqual([d.idleThreshold, d.maxBusyScore], [0, 1]);
  assert.throws(() => activeRequestScorerFactory("s3", { nope: true }, handle), /nope/);
  assert.throws(() => activeRequestScorerFactory("s3", { maxBusyScore: 2 }, handle), /maxBusyScore/);
});
