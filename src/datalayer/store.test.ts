import assert from "node:assert/strict";
import { test } from "node:test";
import type { EndpointMetadata } from "../framework/types.js";
import { EndpointStore, NOT_READY_AFTER_FAILURES } from "./store.js";

const meta = (name: string, port: number, labels: Record<string, string> = {}): EndpointMetadata => ({
  id: `default/${name}`,
  name,
  namespace: "default",
  address: "127.0.0.1",
  port,
  hostPort: `127.0.0.1:${port}`,
  labels,
});

test("an endpoint is ready only after a scrape and its model list, until it fails repeatedly", () => {
  const s = new EndpointStore();
  const ep = s.upsert(meta("a", 1));
  assert.equal(s.ready().length, 0);
  s.markScrapeOk(ep.metadata.id, Date.now());
  assert.equal(s.ready().length, 0, "models unknown");
  s.setModels(ep.metadata.id, ["m1"]);
  assert.deepEqual(s.ready(), [ep]);
  assert.deepEqual([...s.readyModels()], ["m1"]);
  for (let i = 0; i < NOT_READY_AFTER_FAILURES - 1; i++) s.markScrapeFailed(ep.metadata.id, "boom");
  assert.equal(s.ready().length, 1, "tolerates transient failures");
  s.markScrapeFailed(ep.metadata.id, "boom");
  assert.equal(s.ready().length, 0);
  assert.equal(s.health(ep.metadata.id)?.lastError, "boom");
  s.markScrapeOk(ep.metadata.id, Date.now());
  assert.equal(s.ready().length, 1, "recovers");
});

test("replaceAll reconciles: removed endpoints emit `removed`, label edits keep the endpoint", () => {
  const s = new EndpointStore();
  const removed: string[] = [];
  const added: string[] = [];
  s.on("removed", (e) => removed.push(e.metadata.id));
  s.on("added", (e) => added.push(e.metadata.id));
  s.replaceAll([meta("a", 1), meta("b", 2)]);
  const a = s.get("default/a");
  s.replaceAll([meta("a", 1, { "llm-d.ai/role": "decode" }), meta("c", 3)]);
  assert.deepEqual(removed, ["default/b"]);
  assert.deepEqual(added, ["default/a", "default/b", "default/c"]);
  assert.equal(s.get("default/a"), a, "same object after a label change");
  assert.equal(a?.metadata.labels["llm-d.ai/role"], "decode");
  s.replaceAll([meta("a", 9)]);
  assert.notEqual(s.get("default/a"), a, "a new address is a new endpoint");
});
