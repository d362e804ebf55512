import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { loadConfig } from "../../framework/config/index.js";
import { ParamsError } from "../../framework/config/params.js";
import { builtinRegistry } from "../builtins.js";
import { decodeCoreMetricsParams } from "./core-metrics-extractor.js";
import { decodeMetricsSourceParams, scraperOptionsFromConfig } from "./metrics-data-source.js";

const quiet = { warn: () => {} };
const cfg = (params: string) =>
  `apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\nplugins:\n- type: metrics-data-source\n  name: m\n${params}- type: core-metrics-extractor\n- type: queue-scorer\ndataLayer:\n  sources:\n  - pluginRef: m\n    extractors: [{pluginRef: core-metrics-extractor}]\n`;

describe("metrics-data-source", () => {
  it("defaults: http, /metrics, insecureSkipVerify true, no interval", () => {
    assert.deepEqual(decodeMetricsSourceParams(undefined), {
      scheme: "http",
      path: "/metrics",
      insecureSkipVerify: true,
    });
  });

  it("interval takes Go durations or ms; errors name the field", () => {
    assert.equal(decodeMetricsSourceParams({ interval: "1s" }).intervalMs, 1000);
    assert.equal(decodeMetricsSourceParams({ interval: 120 }).intervalMs, 120);
    assert.throws(() => decodeMetricsSourceParams({ interval: "soon" }), /^ParamsError: interval: /);
    assert.throws(() => decodeMetricsSourceParams({ path: "metrics" }), ParamsError);
    assert.throws(() => decodeMetricsSourceParams({ clientCertPath: "/c" }), /clientKeyPath/);
    assert.throws(() => decodeMetricsSourceParams({ schema: "http" }), /schema: unknown field/);
  });

  it("configures the scraper: path, and interval rounded to the tick (≥ 1 tick)", () => {
    const c = loadConfig(cfg("  parameters: {path: /stats, interval: 120ms}\n"), builtinRegistry(), quiet);
    const s = scraperOptionsFromConfig(c, 50);
    assert.equal(s.path, "/stats");
    assert.equal(s.intervalMs, 100);
    assert.equal(s.source, "m");
    const tiny = loadConfig(cfg("  parameters: {interval: 10ms}\n"), builtinRegistry(), quiet);
    assert.equal(scraperOptionsFromConfig(tiny, 50).intervalMs, 50);
  });

  it("without a configured source: defaults, every tick", () => {
    const c = loadConfig(null, builtinRegistry(), quiet);
    assert.deepEqual(scraperOptionsFromConfig(c, 20), {
      scheme: "http",
      path: "/metrics",
      intervalMs: 20,
      insecureSkipVerify: true,
      source: null,
    });
  });
});

describe("core-metrics-extractor", () => {
  it("defaults and strict decoding", () => {
    assert.deepEqual(decodeCoreMetricsParams({}), {
      engineLabelKey: "llm-d.ai/engine-type",
      defaultEngine: "vllm",
      engineConfigs: [],
    });
    assert.throws(() => decodeCoreMetricsParams({ engine: "x" }), /engine: unknown field/);
    assert.throws(
      () => decodeCoreMetricsParams({ defaultEngine: "sglang" }),
      /defaultEngine: .*not supported/,
    );
    assert.throws(
      () => decodeCoreMetricsParams({ engineConfigs: [{ name: "vllm", kvUsageSpec: "x" }] }),
      /engineConfigs\[0\]: custom engine metric specs are not supported/,
    );
  });
});
