/**
 * The built-in registry against the real fixture configs, and the default config end to end
 * through the scheduler.
 */
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { loadConfig, loadConfigFile } from "../framework/config/index.js";
import { ConfigError } from "../framework/errors.js";
import { isDataProducer } from "../framework/plugin.js";
import {
  type Endpoint,
  emptyMetrics,
  type InferenceRequest,
  PREFIX_CACHE_MATCH_INFO,
  type PrefixCacheMatchInfo,
} from "../framework/types.js";
import { Scheduler } from "../scheduler/scheduler.js";
import { builtinRegistry } from "./builtins.js";

const FIXTURES = fileURLToPath(new URL("../../../shared/fixtures/epp-configs", import.meta.url));
const fixture = (f: string) => readFileSync(`${FIXTURES}/${f}`, "utf8");
const quiet = { warn: () => {} };

describe("builtinRegistry", () => {
  it("registers every built-in scheduling type and the producer family", () => {
    const types = builtinRegistry().types();
    for (const t of [
      "single-profile-handler",
      "decode-filter",
      "prefill-filter",
      "label-selector-filter",
      "by-label-selector",
      "by-label",
      "queue-scorer",
      "kv-cache-utilization-scorer",
      "running-requests-size-scorer",
      "load-aware-scorer",
      "max-score-picker",
      "random-picker",
      "weighted-random-picker",
      "prefix-cache-scorer",
      "approx-prefix-cache-producer",
      "token-producer",
      "utilization-detector",
      "fcfs-ordering-policy",
    ]) {
      assert.ok(types.includes(t), `${t} not registered`);
    }
    assert.equal(
      builtinRegistry().get("by-label-selector")!.opts.deprecatedReplacement,
      "label-selector-filter",
    );
    assert.equal(builtinRegistry().get("by-label")!.opts.deprecatedReplacement, "label-selector-filter");
  });
});

describe("fixtures", () => {
  it("epp-config.yaml loads: decode-filter, prefix-cache-scorer w2, max-score-picker, single handler", () => {
    const c = loadConfig(fixture("epp-config.yaml"), builtinRegistry(), quiet);
    const p = c.profiles.get("default")!;
    assert.deepEqual(
      p.filters.map((f) => f.type),
      ["decode-filter"],
    );
    assert.deepEqual(
      p.scorers.map((s) => [s.scorer.type, s.weight]),
      [["prefix-cache-scorer", 2]],
    );
    assert.equal(p.picker.type, "max-score-picker");
    assert.equal(c.profileHandler.type, "single-profile-handler");
    // the scorer's producer and the producer's token source are created by default
    assert.ok(c.plugins.some((x) => x.type === "approx-prefix-cache-producer" && isDataProducer(x)));
    assert.ok(c.plugins.some((x) => x.type === "token-producer"));
  });

  it("epp-config.yaml also loads from the file", () => {
    const c = loadConfigFile(`${FIXTURES}/epp-config.yaml`, builtinRegistry(), quiet);
    assert.equal(c.profiles.size, 1);
  });

  it("sim-epp-config.yaml loads with its producer parameters", () => {
    const c = loadConfig(fixture("sim-epp-config.yaml"), builtinRegistry(), quiet);
    assert.equal(c.plugins.filter((x) => x.type === "approx-prefix-cache-producer").length, 1);
    const plugins = c.resolved.plugins as { name: string; parameters?: unknown }[];
    assert.deepEqual(plugins.find((x) => x.name === "approx-prefix-cache-producer")!.parameters, {
      maxPrefixTokensToMatch: 16384,
      lruCapacityPerServer: 31250,
    });
    assert.deepEqual(
      c.profiles.get("default")!.scorers.map((s) => [s.scorer.type, s.weight]),
      [["prefix-cache-scorer", 2]],
    );
  });

  it("pd-epp-config.yaml loads: disagg handler with its decider, prefill and decode profiles", () => {
    const c = loadConfig(fixture("pd-epp-config.yaml"), builtinRegistry(), quiet);
    assert.equal(c.profileHandler.type, "disagg-profile-handler");
    assert.deepEqual([...c.profiles.keys()].sort(), ["decode", "prefill"]);
    assert.deepEqual(
      c.profiles.get("prefill")!.filters.map((f) => f.type),
      ["prefill-filter"],
    );
    assert.deepEqual(
      c.profiles.get("decode")!.scorers.map((s) => [s.scorer.type, s.weight]),
      [
        ["prefix-cache-scorer", 2],
        ["queue-scorer", 1],
      ],
    );
    const decider = c.plugins.find((p) => p.type === "prefix-based-pd-decider") as unknown as {
      params: { nonCachedTokens: number };
    };
    assert.equal(decider.params.nonCachedTokens, 16);
  });

  it("epp-precise-prefix-cache-config.yaml loads: precise producer (blockSize 64) feeds prefix-cache-scorer, data-layer sources as given", () => {
    const c = loadConfig(fixture("epp-precise-prefix-cache-config.yaml"), builtinRegistry(), quiet);
    const byType = new Map(c.plugins.map((p) => [p.type, p]));
    for (const t of [
      "token-producer",
      "endpoint-notification-source",
      "metrics-data-source",
      "core-metrics-extractor",
      "precise-prefix-cache-producer",
    ])
      assert.ok(byType.has(t), `${t} not instantiated`);
    const producer = byType.get("precise-prefix-cache-producer") as unknown as {
      config: { blockSize: number; enableMetrics: boolean };
    };
    assert.equal(producer.config.blockSize, 64);
    assert.equal(producer.config.enableMetrics, true);
    assert.ok(!c.plugins.some((p) => p.type === "approx-prefix-cache-producer"));
    const p = c.profiles.get("default")!;
    assert.deepEqual(
      p.scorers.map((s) => [s.scorer.type, s.weight]),
      [
        ["prefix-cache-scorer", 2],
        ["kv-cache-utilization-scorer", 1],
        ["queue-scorer", 1],
      ],
    );
    // the configured metrics source is kept, not injected a second time
    assert.deepEqual((c.resolved.dataLayer as { sources: unknown }).sources, [
      { pluginRef: "metrics-data-source", extractors: [{ pluginRef: "core-metrics-extractor" }] },
      {
        pluginRef: "endpoint-notification-source",
        extractors: [{ pluginRef: "precise-prefix-cache-producer" }],
      },
    ]);
  });

  it("registers the precise and data-layer families", () => {
    const types = builtinRegistry().types();
    for (const t of [
      "endpoint-notification-source",
      "precise-prefix-cache-producer",
      "precise-prefix-cache-scorer",
      "metrics-data-source",
      "core-metrics-extractor",
    ])
      assert.ok(types.includes(t), `${t} not registered`);
    assert.throws(
      () =>
        loadConfig(
          "apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\nplugins:\n- type: metrics-data-source\n  parameters: {pathh: /m}\n- type: queue-scorer\n",
          builtinRegistry(),
          quiet,
        ),
      /plugins\[0\]\.parameters\.pathh: unknown field/,
    );
  });
});

describe("built-in default config", () => {
  it("null text → queue-scorer w2, kv-cache-utilization-scorer w2, prefix-cache-scorer w3, max-score-picker, single handler", () => {
    for (const text of [null, "", "  \n"]) {
      const c = loadConfig(text, builtinRegistry(), quiet);
      const p = c.profiles.get("default")!;
      assert.deepEqual(
        p.scorers.map((s) => [s.scorer.type, s.weight]),
        [
          ["queue-scorer", 2],
          ["kv-cache-utilization-scorer", 2],
          ["prefix-cache-scorer", 3],
        ],
      );
      assert.equal(p.picker.type, "max-score-picker");
      assert.equal(c.profileHandler.type, "single-profile-handler");
    }
  });

  it("schedules by Σ clamp(score) × weight with the real scorers", () => {
    const c = loadConfig(null, builtinRegistry(), quiet);
    const mk = (id: string, waiting: number, kv: number, matchBlocks: number): Endpoint => {
      const e: Endpoint = {
        metadata: {
          id,
          name: id,
          namespace: "default",
          address: "10.0.0.1",
          port: 8000,
          hostPort: `${id}:8000`,
          labels: {},
        },
        metrics: { ...emptyMetrics(), waitingQueueSize: waiting, kvCacheUsagePercent: kv },
        models: new Set(),
        attributes: new Map(),
      };
      const info: PrefixCacheMatchInfo = { matchBlocks, totalBlocks: 10, blockSizeTokens: 64 };
      e.attributes.set(`${PREFIX_CACHE_MATCH_INFO}approx-prefix-cache-producer`, info);
      return e;
    };
    // queue: a=0,b=4,c=8 → 1, 0.5, 0 (×2); kv: 0.5, 0.1, 0.0 → 0.5, 0.9, 1 (×2); prefix: 2/10, 0, 10/10 (×3)
    const eps = [mk("a", 0, 0.5, 2), mk("b", 4, 0.1, 0), mk("c", 8, 0, 10)];
    const want = { a: 2 + 1 + 0.6, b: 1 + 1.8 + 0, c: 0 + 2 + 3 };
    const r = new Scheduler(c).schedule(
      { requestId: "r", attributes: new Map() } as unknown as InferenceRequest,
      eps,
    );
    const got = Object.fromEntries(
      r.profileResults.default!.scoredCandidates.map((s) => [s.endpoint.metadata.id, s.score]),
    ) as Record<string, number>;
    for (const [id, w] of Object.entries(want))
      assert.ok(Math.abs(got[id]! - w) < 1e-9, `${id}: ${got[id]} ≠ ${w}`);
    assert.equal(r.primaryProfileName, "default");
    assert.deepEqual(
      r.profileResults.default!.targetEndpoints.map((e) => e.metadata.id),
      ["c"],
    );
  });

  it("resolved plugins carry decoded parameters with defaults", () => {
    const c = loadConfig(
      "apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\nplugins:\n- type: load-aware-scorer\n- type: by-label\n  parameters: {label: gpu, validValues: [a100]}\n",
      builtinRegistry(),
      quiet,
    );
    const byName = Object.fromEntries(
      (c.resolved.plugins as { name: string; parameters?: unknown }[]).map((p) => [p.name, p.parameters]),
    );
    assert.deepEqual(byName["load-aware-scorer"], { threshold: 128 });
    assert.deepEqual(byName["by-label"], { label: "gpu", validValues: ["a100"], allowsNoLabel: false });
    assert.deepEqual(byName["max-score-picker"], { maxNumOfEndpoints: 1 });
    assert.equal(byName["single-profile-handler"], undefined);
  });

  it("deprecated filter types load with a warning", () => {
    const warnings: string[] = [];
    loadConfig(
      "apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\nplugins:\n- type: by-label-selector\n  parameters:\n    matchLabels: {a: b}\n- type: queue-scorer\n",
      builtinRegistry(),
      { warn: (m) => warnings.push(m) },
    );
    assert.deepEqual(warnings, [
      'plugins[0].type: "by-label-selector" is deprecated; use "label-selector-filter"',
    ]);
  });

  it("plugin parameter errors carry the plugin's path", () => {
    assert.throws(
      () =>
        loadConfig(
          "apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\nplugins:\n- type: queue-scorer\n- type: decode-filter\n- type: load-aware-scorer\n  parameters:\n    foo: 1\n",
          builtinRegistry(),
          quiet,
        ),
      /^ConfigError: plugins\[2\]\.parameters\.foo: unknown field$/,
    );
  });
});
