/**
 * `llmd up --routing precise` helpers: the shipped precise configs load with the built-in
 * registry once their token-producer points at a server, and each server's
 * `--kv-events-config` binds 127.0.0.1 with a literal topic.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { loadConfig } from "../framework/config/index.js";
import { parseKvEventsConfig } from "../modelserver/kv-events/config.js";
import { builtinRegistry } from "../plugins/builtins.js";
import { PD_PRECISE_CONFIG_PATH, PRECISE_CONFIG_PATH, preciseConfigText, upKvEventsConfig } from "./up.js";

const quiet = { warn: () => {} };

describe("llmd up --routing precise", () => {
  it("config/precise.yaml: token-producer → the given server, precise producer (block 16) feeds prefix-cache-scorer", () => {
    const text = preciseConfigText(PRECISE_CONFIG_PATH, "http://127.0.0.1:9123");
    const c = loadConfig(text, builtinRegistry(), quiet);
    const tp = c.resolved.plugins as { type: string; parameters?: { vllm?: { url: string } } }[];
    assert.equal(tp.find((p) => p.type === "token-producer")!.parameters!.vllm!.url, "http://127.0.0.1:9123");
    const prod = c.plugins.find((p) => p.type === "precise-prefix-cache-producer") as unknown as {
      config: { blockSize: number };
    };
    assert.equal(prod.config.blockSize, 16);
    assert.deepEqual(
      c.profiles.get("default")!.scorers.map((s) => [s.scorer.type, s.weight]),
      [
        ["prefix-cache-scorer", 2],
        ["kv-cache-utilization-scorer", 1],
        ["queue-scorer", 1],
      ],
    );
  });

  it("config/pd-precise.yaml: both profiles and the decider read the precise producer", () => {
    const c = loadConfig(
      preciseConfigText(PD_PRECISE_CONFIG_PATH, "http://127.0.0.1:9124"),
      builtinRegistry(),
      quiet,
    );
    assert.deepEqual([...c.profiles.keys()].sort(), ["decode", "prefill"]);
    for (const name of ["decode", "prefill"]) {
      const s = c.profiles.get(name)!.scorers.find((x) => x.scorer.type === "prefix-cache-scorer");
      assert.ok(s, `${name}: no prefix-cache-scorer`);
    }
    const resolved = c.resolved.plugins as { type: string; parameters?: Record<string, unknown> }[];
    assert.equal(
      resolved.find((p) => p.type === "prefix-based-pd-decider")!.parameters!.prefixMatchInfoProducerName,
      "precise-prefix-cache-producer",
    );
    assert.ok(!c.plugins.some((p) => p.type === "approx-prefix-cache-producer"));
  });

  it("a config without token-producer is refused", () => {
    assert.throws(
      () => preciseConfigText(new URL("../../config/pd.yaml", import.meta.url).pathname, "http://x:1"),
      /no token-producer/,
    );
  });

  it("each server's --kv-events-config binds 127.0.0.1 and names its http port and model in the topic", () => {
    const o = parseKvEventsConfig(upKvEventsConfig("127.0.0.1", 8001, 9001, 9002, "llmd/sim-8b"));
    assert.equal(o.enable_kv_cache_events, true);
    assert.equal(o.endpoint, "tcp://127.0.0.1:9001");
    assert.equal(o.replay_endpoint, "tcp://127.0.0.1:9002");
    assert.equal(o.bind, true);
    assert.equal(o.topic, "kv@127.0.0.1:8001@llmd/sim-8b");
  });
});
