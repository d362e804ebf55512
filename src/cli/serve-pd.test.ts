import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";
import { SIM_DEFAULTS } from "../modelserver/engines/sim/engine.js";
import { parseKvTransferConfig, type ServeFlags, serveOptionsFromFlags } from "./serve.js";

const base: ServeFlags = {
  engine: "sim",
  threads: 1,
  port: 0,
  host: "127.0.0.1",
  model: "m",
  maxModelLen: 8192,
  maxNumSeqs: 16,
  maxNumBatchedTokens: 2048,
  blockSize: 16,
  mode: "echo",
  seed: 0,
  latencyCalculator: "",
  timeToFirstToken: 0,
  prefillOverhead: 30,
  prefillTimePerToken: 0.25,
  interTokenLatency: 12,
  decodeBatchFactor: 0.02,
  stepOverhead: 0,
  timeScale: 1,
  kvCacheTransferLatency: 0,
  kvCacheTransferTimePerToken: 0,
  maxWaitingQueueLength: 1000,
  maxRequestBodySizeMb: 4,
  enablePromptTokensDetails: true,
  maxLoras: 1,
  numLayers: 32,
  numKvHeads: 8,
  headDim: 128,
  kvCacheDtype: "bf16",
  attentionBackend: "FLASH_ATTN",
  tensorParallelSize: 1,
  kvLink: "rdma-100g",
  kvLease: 30_000,
  failureInjectionRate: 0,
  failureMidStreamRate: 0,
};

describe("llmd serve P/D flags", () => {
  const saved = process.env.VLLM_NIXL_SIDE_CHANNEL_HOST;
  afterEach(() => {
    if (saved === undefined) delete process.env.VLLM_NIXL_SIDE_CHANNEL_HOST;
    else process.env.VLLM_NIXL_SIDE_CHANNEL_HOST = saved;
  });

  it("defaults: Llama-3.1-8B geometry, rdma-100g link, 30 s lease, fail policy, side channel = host", () => {
    delete process.env.VLLM_NIXL_SIDE_CHANNEL_HOST;
    const o = serveOptionsFromFlags(base);
    assert.equal(o.sim!.numLayers, 32);
    assert.equal(o.sim!.kvLinkBandwidthBytesPerS, 1e10);
    assert.equal(o.sim!.kvLinkLatencyMs, 1);
    assert.equal(o.sim!.kvLeaseMs, 30_000);
    assert.equal(o.sim!.kvLoadFailurePolicy, "fail");
    assert.equal(o.sideChannelHost, undefined, "the server falls back to --host");
    assert.equal(SIM_DEFAULTS.kvCacheDtype, "bf16");
  });

  it("--kv-transfer-config (NixlConnector), env side-channel host, link overrides, failure types", () => {
    process.env.VLLM_NIXL_SIDE_CHANNEL_HOST = "10.0.0.7";
    const o = serveOptionsFromFlags({
      ...base,
      kvTransferConfig:
        '{"kv_connector":"NixlConnector","kv_role":"kv_both","kv_load_failure_policy":"recompute","kv_connector_extra_config":{"kv_lease_duration":5}}',
      kvLink: "tcp-10g",
      kvLinkLatency: 3,
      failureInjectionRate: 10,
      failureTypes: "rate_limit,server_error",
    });
    assert.equal(o.sideChannelHost, "10.0.0.7");
    assert.equal(o.sim!.kvLoadFailurePolicy, "recompute");
    assert.equal(o.sim!.kvLeaseMs, 5000);
    assert.equal(o.sim!.kvLinkBandwidthBytesPerS, 7.5e8);
    assert.equal(o.sim!.kvLinkLatencyMs, 3);
    assert.deepEqual(o.failures, { rate: 10, types: ["rate_limit", "server_error"], midStreamRate: 0 });
    assert.equal(
      serveOptionsFromFlags({ ...base, sideChannelHost: "h" }).sideChannelHost,
      "h",
      "flag over env",
    );
  });

  it("refuses other connectors, unknown dtypes, links, policies and failure types", () => {
    assert.throws(() => parseKvTransferConfig('{"kv_connector":"LMCacheConnectorV1"}'), /NixlConnector only/);
    assert.throws(() => parseKvTransferConfig("{"), /not JSON/);
    assert.throws(() => serveOptionsFromFlags({ ...base, kvCacheDtype: "int3" }), /unknown KV cache dtype/);
    assert.throws(() => serveOptionsFromFlags({ ...base, kvLink: "warp" }), /unknown KV link/);
    assert.throws(
      () => serveOptionsFromFlags({ ...base, kvLoadFailurePolicy: "retry" }),
      /fail or recompute/,
    );
    assert.throws(() => serveOptionsFromFlags({ ...base, failureTypes: "oops" }), /unknown failure type/);
    assert.throws(() => serveOptionsFromFlags({ ...base, failureInjectionRate: 101 }), /0\.\.100/);
  });
});
