import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { KV_LINK_PRESETS, kvLinkPreset, parseBandwidth, transferMs } from "./kv-link.js";
import { kvBytesPerToken } from "./kv-transfer.js";

describe("KV link model", () => {
  it("parses bandwidths in bits and bytes with decimal and binary prefixes", () => {
    assert.equal(parseBandwidth("25Gbps"), 3.125e9);
    assert.equal(parseBandwidth("25Gb/s"), 3.125e9);
    assert.equal(parseBandwidth("10GB/s"), 1e10);
    assert.equal(parseBandwidth("1GiB/s"), 1024 ** 3);
    assert.equal(parseBandwidth("3.2e9"), 3.2e9);
    assert.equal(parseBandwidth("100Mbit"), 12.5e6);
    assert.throws(() => parseBandwidth("fast"), /cannot parse bandwidth/);
    assert.throws(() => parseBandwidth("0"), /> 0/);
  });

  it("presets: derated line rate and fixed latency; transfer = latency + bytes / bandwidth", () => {
    assert.deepEqual(kvLinkPreset("rdma-100g"), { bandwidthBytesPerS: 1e10, latencyMs: 1 });
    assert.equal(KV_LINK_PRESETS["rdma-400g"].bandwidthBytesPerS, 4e10);
    assert.equal(KV_LINK_PRESETS["tcp-10g"].bandwidthBytesPerS, 7.5e8);
    assert.throws(() => kvLinkPreset("carrier-pigeon"), /rdma-25g, rdma-100g/);
    // Llama-3.1-8B bf16: 128 KiB per token; 4096 tokens = 512 MiB → 53.7 ms + 1 ms on rdma-100g
    const bytes = 4096 * kvBytesPerToken(32, 8, 128, "bf16");
    assert.equal(bytes, 512 * 1024 * 1024);
    assert.ok(Math.abs(transferMs(kvLinkPreset("rdma-100g"), bytes) - (1 + (bytes / 1e10) * 1000)) < 1e-9);
    assert.equal(transferMs(kvLinkPreset("rdma-100g"), 0), 0, "nothing to move: no latency either");
  });
});
