import assert from "node:assert/strict";
import { test } from "node:test";
import { type Evidence, type KvLayout, runChecks, type ServerEvidence } from "./checks.js";

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
