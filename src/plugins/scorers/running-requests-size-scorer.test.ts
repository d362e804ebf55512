import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { emptyMetrics, type Endpoint, type InferenceRequest } from "../../framework/types.js";
import {
  RunningRequestsSizeScorer,
  runningRequestsSizeScorerFactory,
} from "./running-requests-size-scorer.js";

const ep = (id: string, running: number, waiting = 0): Endpoint => ({
  metadata: {
    id,
    name: id,
    namespace: "default",
    address: "10.0.0.1",
    port: 8000,
    hostPort: "10.0.0.1:8000",
    labels: {},
  },
  metrics: { ...emptyMetrics(), runningRequestsSize: running, waitingQueueSize: waiting },
  models: new Set(),
  attributes: new Map(),
});
const req = {} as InferenceRequest;
const handle = { plugin: () => undefined, addPlugin: () => {}, allPlugins: () => [] };

describe("running-requests-size-scorer", () => {
  const cases: { name: string; running: number[]; want: number[] }[] = [
    { name: "min-max spread", running: [0, 8, 16], want: [1, 0.5, 0] },
    { name: "all equal → 1.0", running: [4, 4], want: [1, 1] },
    { name: "uneven", running: [10, 30, 50], want: [1, 0.5, 0] },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const eps = c.running.map((r, i) => ep(`e${i}`, r, 100 - i));
      const scores = new RunningRequestsSizeScorer().score(req, eps);
      assert.deepEqual(
        eps.map((e) => scores.get(e)),
        c.want,
      );
    });
  }
  it("factory rejects unknown parameters", () => {
    assert.throws(() => runningRequestsSizeScorerFactory("r", { x: 1 }, handle), /x: unknown field/);
    assert.equal(runningRequestsSizeScorerFactory("r", null, handle).type, "running-requests-size-scorer");
  });
});
