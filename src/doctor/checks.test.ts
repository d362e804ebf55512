import assert from "node:assert/strict";
import { test } from "node:test";
import {
  type Evidence,
  type KvEventsEvidence,
  type KvFeedEvidence,
  type KvLayout,
  KV_EVENT_CHECK_IDS,
  runChecks,
  type ServerEvidence,
} from "./checks.js";

const layout = (over: Partial<KvLayout> = {}): KvLayout => ({
  model: "m",
  block_size: 16,
  kv_cache_dtype: "bf16",
  num_layers: 32,
  num_kv_heads: 8,
  head_dim: 128,
  attention_backend: "FLASH_ATTN",
  tp_size: 1,
  side_channel_host: "127.0.0.1",
  ...over,
});
const server = (id: string, role: string | null, over: Partial<ServerEvidence> = {}): ServerEvidence => ({
  id,
  url: `http://${id}`,
  role,
  ready: true,
  reachable: true,
  layout: layout(),
  ttftSum: 0,
  ttftCount: 0,
  kvTransfers: 0,
  kvBytes: 0,
  kvFailedTransfers: 0,
  requests: 0,
  ...over,
});
const feed = (endpointId: string, over: Partial<KvFeedEvidence> = {}): KvFeedEvidence => ({
  endpointId,
  events: 40,
  batches: 20,
  gaps: 0,
  replays: 0,
  resyncs: 0,
  lastSeq: 19,
  drops: { unknown_parent: 0, block_size_mismatch: 0, bad_topic: 0 },
  models: ["m"],
  lookupHits: 5,
  matchedBlocks: 100,
  ...over,
});
const preciseOk = (ids: string[]): KvEventsEvidence => ({
  configured: true,
  producers: [
    {
      name: "precise-prefix-cache-producer",
      blockSize: 16,
      lookups: 20,
      lookupHits: 10,
      unusableTokenRequests: 0,
      unknownModelRequests: 0,
      endpoints: ids.map((id) => feed(id)),
    },
  ],
});
const healthy = (): Evidence => ({
  router: {
    url: "http://r",
    reachable: true,
    pdConfigured: true,
    profileHandler: "disagg-profile-handler",
    decisions: { "prefill-decode": 20, "decode-only": 5 },
    requests: 25,
  },
  servers: [
    server("p0", "prefill", { ttftSum: 20 * 0.3, ttftCount: 20 }),
    server("d0", "decode", { ttftSum: 25 * 0.02, ttftCount: 25, kvTransfers: 20, kvBytes: 1e9 }),
  ],
  kvEvents: preciseOk(["p0", "d0"]),
});
const status = (e: Evidence, id: string) => runChecks(e).find((r) => r.id === id)!.status;

test("a healthy P/D stack passes every check", () => {
  const r = runChecks(healthy());
  assert.deepEqual(
    r.filter((c) => c.status !== "pass").map((c) => `${c.id}:${c.status}`),
    [],
  );
});

test("prefill servers down → fail naming them", () => {
  const e = healthy();
  e.servers[0]!.ready = false;
  const c = runChecks(e).find((r) => r.id === "prefill-endpoints")!;
  assert.equal(c.status, "fail");
  assert.match(c.evidence, /p0 NOT READY/);
});

test("decider disabled: only decode-only decisions → fail; no transfers check skipped", () => {
  const e = healthy();
  e.router.decisions = { "decode-only": 30 };
  e.servers[1]!.kvTransfers = 0;
  assert.equal(status(e, "pd-decisions"), "fail");
  assert.equal(status(e, "kv-transfers"), "skip");
});

test("P/D decided but no KV transfers → fail", () => {
  const e = healthy();
  e.servers[1]!.kvTransfers = 0;
  assert.equal(status(e, "kv-transfers"), "fail");
});

test("decode TTFT equal to prefill TTFT → no transfer in the path", () => {
  const e = healthy();
  e.servers[1]!.ttftSum = 25 * 0.3;
  assert.equal(status(e, "ttft-split"), "fail");
});

test("mismatched KV layouts → fail naming both values", () => {
  const e = healthy();
  e.servers[1]!.layout = layout({ kv_cache_dtype: "fp8", block_size: 64 });
  const c = runChecks(e).find((r) => r.id === "kv-layout")!;
  assert.equal(c.status, "fail");
  assert.match(c.evidence, /block_size 16≠64/);
  assert.match(c.evidence, /kv_cache_dtype bf16≠fp8/);
});

test("side-channel host 0.0.0.0 → fail", () => {
  const e = healthy();
  e.servers[0]!.layout = layout({ side_channel_host: "0.0.0.0" });
  assert.equal(status(e, "side-channel-host"), "fail");
});

test("an aggregated stack skips the P/D checks", () => {
  const e = healthy();
  e.router.pdConfigured = false;
  const r = runChecks(e);
  assert.ok(r.every((c) => c.status === "pass" || c.status === "skip"));
  assert.equal(r.find((c) => c.id === "pd-configured")!.status, "skip");
});

// ------------------------------------------------------------------ precise routing (KV events)

const kvCheck = (e: Evidence, id: string) => runChecks(e).find((r) => r.id === id)!;
const aggregatedPrecise = (): Evidence => {
  const e = healthy();
  e.router.pdConfigured = false;
  e.servers = [
    server("s0", null, { requests: 10, prefixCacheHits: 3000 }),
    server("s1", null, { requests: 12, prefixCacheHits: 2000 }),
  ];
  e.kvEvents = preciseOk(["s0", "s1"]);
  return e;
};

test("precise routing not configured → every KV-event check is skip", () => {
  const e = healthy();
  e.kvEvents = { configured: false, producers: [] };
  for (const id of KV_EVENT_CHECK_IDS) assert.equal(kvCheck(e, id).status, "skip", id);
  e.kvEvents = undefined;
  for (const id of KV_EVENT_CHECK_IDS) assert.equal(kvCheck(e, id).status, "skip", id);
});

test("precise routing healthy → every KV-event check passes, evidence has numbers", () => {
  const e = aggregatedPrecise();
  for (const id of KV_EVENT_CHECK_IDS) assert.equal(kvCheck(e, id).status, "pass", id);
  assert.match(kvCheck(e, "kv-events-flowing").evidence, /s0 40 events \(last seq 19\)/);
  assert.match(kvCheck(e, "precise-hits").evidence, /^10\/20 requests matched/);
  assert.match(kvCheck(e, "precise-hits").evidence, /5000 prompt tokens/);
});

test("a server that serves traffic but publishes no KV events → fail naming it", () => {
  const e = aggregatedPrecise();
  e.kvEvents!.producers[0]!.endpoints[1] = feed("s1", { events: 0, batches: 0, lastSeq: -1, models: [] });
  const c = kvCheck(e, "kv-events-flowing");
  assert.equal(c.status, "fail");
  assert.match(c.evidence, /no KV events from s1 \(s1\): 12 requests served, 0 KV events received/);
  assert.doesNotMatch(c.evidence, /s0 \(/);
  assert.match(c.fix, /--kv-events-config/);
  // no subscriber at all for it
  e.kvEvents!.producers[0]!.endpoints.pop();
  assert.match(
    kvCheck(e, "kv-events-flowing").evidence,
    /s1 \(s1\): 12 requests served, no KV-event subscriber/,
  );
});

test("no traffic yet and no events → warn, not fail", () => {
  const e = aggregatedPrecise();
  for (const s of e.servers) s.requests = 0;
  e.kvEvents!.producers[0]!.endpoints = [feed("s0", { events: 0 }), feed("s1", { events: 0 })];
  assert.equal(kvCheck(e, "kv-events-flowing").status, "warn");
});

test("topic/model mismatch and block-size mismatch → fail from the drop counters", () => {
  const e = aggregatedPrecise();
  e.kvEvents!.producers[0]!.unknownModelRequests = 7;
  e.kvEvents!.producers[0]!.endpoints[0] = feed("s0", { models: ["Qwen/Qwen3-0.6B"] });
  const m = kvCheck(e, "kv-events-model");
  assert.equal(m.status, "fail");
  assert.match(m.evidence, /^7 requests for a model no endpoint publishes/);
  assert.match(m.evidence, /Qwen\/Qwen3-0\.6B/);
  const e2 = aggregatedPrecise();
  e2.kvEvents!.producers[0]!.endpoints[1] = feed("s1", {
    drops: { block_size_mismatch: 33, bad_topic: 0, unknown_parent: 0 },
  });
  const b = kvCheck(e2, "kv-events-block-size");
  assert.equal(b.status, "fail");
  assert.match(b.evidence, /index blockSize 16\): s1 33/);
  const e3 = aggregatedPrecise();
  e3.kvEvents!.producers[0]!.endpoints[0] = feed("s0", { drops: { bad_topic: 4 } });
  assert.match(kvCheck(e3, "kv-events-model").evidence, /unparsable topics from s0 \(4\)/);
});

test("estimate tokens → tokens check fails; gaps → warn", () => {
  const e = aggregatedPrecise();
  e.kvEvents!.producers[0]!.unusableTokenRequests = 9;
  assert.equal(kvCheck(e, "kv-events-tokens").status, "fail");
  e.kvEvents!.producers[0]!.endpoints[0] = feed("s0", { gaps: 2, replays: 2 });
  const g = kvCheck(e, "kv-events-gaps");
  assert.equal(g.status, "warn");
  assert.match(g.evidence, /s0: 2 gaps, 2 replays, 0 resyncs/);
});

test("zero precise hits while the servers reuse prefixes → fail; without reuse → warn", () => {
  const e = aggregatedPrecise();
  const p = e.kvEvents!.producers[0]!;
  p.lookupHits = 0;
  p.endpoints = p.endpoints.map((f) => ({ ...f, lookupHits: 0, matchedBlocks: 0 }));
  assert.equal(kvCheck(e, "precise-hits").status, "fail");
  for (const s of e.servers) s.prefixCacheHits = 0;
  assert.equal(kvCheck(e, "precise-hits").status, "warn");
  // hit ratio histogram at 0 with server hits also fails when the producer has not scored
  const e2 = aggregatedPrecise();
  e2.kvEvents!.producers[0]!.lookupHits = 0;
  e2.kvEvents!.producers[0]!.lookups = 0;
  e2.router.prefixHitRatio = { sum: 0, count: 12 };
  assert.equal(kvCheck(e2, "precise-hits").status, "fail");
});
