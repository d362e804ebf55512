import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { emptyMetrics, type Endpoint, type InferenceRequest } from "../../framework/types.js";
import { QueueScorer, queueScorerFactory } from "./queue-scorer.js";

const ep = (id: string, waiting: number): Endpoint => ({
  metadata: {
    id,
    name: id,
    namespace: "default",
    address: "10.0.0.1",
    port: 8000,
    hostPort: "10.0.0.1:8000",
    labels: {},
  },
  metrics: { ...emptyMetrics(), waitingQueueSize: waiting },
  models: new Set(),
  attributes: new Map(),
});
const req = {} as InferenceRequest;
const handle = { plugin: () => undefined, addPlugin: () => {}, allPlugins: () => [] };

describe("queue-scorer", () => {
  const cases: { name: string; queues: number[]; want: number[] }[] = [
    { name: "min-max spread", queues: [0, 5, 10], want: [1, 0.5, 0] },
    { name: "all equal → 1.0", queues: [3, 3, 3], want: [1, 1, 1] },
    { name: "single endpoint → 1.0", queues: [7], want: [1] },
    { name: "uneven", queues: [2, 4, 10], want: [1, 0.75, 0] },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const eps = c.queues.map((q, i) => ep(`e${i}`, q));
      const scores = new QueueScorer().score(req, eps);
      assert.deepEqual(
        eps.map((e) => scores.get(e)),
        c.want,
      );
    });
  }
  it("factory rejects unknown parameters and has Distribution category", () => {
    assert.throws(() => queueScorerFactory("q", { foo: 1 }, handle), /foo: unknown field/);
    const s = queueScorerFactory("q", undefined, handle) as QueueScorer;
    assert.equal(s.name, "q");
    assert.equal(s.type, "queue-scorer");
    assert.equal(s.category, "Distribution");
  });
});
