/**
 * The fixture-shaped precise config through the real loader, wired to an EndpointStore.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Registry } from "prom-client";
import { loadConfig } from "../../framework/config/loader.js";
import { ConfigError } from "../../framework/errors.js";
import { KV_EVENTS_PORT_LABEL } from "../../framework/labels.js";
import { EndpointStore } from "../../datalayer/store.js";
import { builtinRegistry } from "../builtins.js";
import { registerPrecisePlugins } from "./index.js";
import { PrecisePrefixCacheProducer } from "./precise-prefix-cache-producer.js";
import { wireEndpointNotifications } from "./wiring.js";

const CONFIG = `
apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
  - type: token-producer
    parameters:
      modelName: hf-repo/model-name
      vllm:
        url: http://localhost:8000
  - type: endpoint-notification-source
  - type: single-profile-handler
  - type: decode-filter
  - type: precise-prefix-cache-producer
    parameters:
      tokenProcessorConfig:
        blockSize: 64
      indexerConfig:
        kvBlockIndexConfig:
          enableMetrics: true
  - type: prefix-cache-scorer
    parameters:
      prefixMatchInfoProducerName: precise-prefix-cache-producer
  - type: max-score-picker
dataLayer:
  injectDefaults: false
  sources:
    - pluginRef: endpoint-notification-source
      extractors:
        - pluginRef: precise-prefix-cache-producer
schedulingProfiles:
  - name: default
    plugins:
      - pluginRef: decode-filter
      - pluginRef: prefix-cache-scorer
        weight: 2.0
      - pluginRef: max-score-picker
`;

function registry() {
  const r = builtinRegistry();
  if (!r.get("precise-prefix-cache-producer")) registerPrecisePlugins(r);
  return r;
}

describe("precise config wiring", () => {
  it("loads the fixture-shaped config and attaches the producer to the endpoint pool", async () => {
    const loaded = loadConfig(CONFIG, registry(), { warn: () => {} });
    const producer = loaded.plugins.find((p) => p.name === "precise-prefix-cache-producer");
    assert.ok(producer instanceof PrecisePrefixCacheProducer);
    assert.equal(producer.config.blockSize, 64);
    // the scorer found the producer: no approximate producer was auto-created
    assert.equal(loaded.plugins.filter((p) => p.type === "approx-prefix-cache-producer").length, 0);
    const store = new EndpointStore();
    store.upsert({
      id: "a",
      name: "a",
      namespace: "default",
      address: "127.0.0.1",
      port: 8100,
      hostPort: "127.0.0.1:8100",
      labels: { [KV_EVENTS_PORT_LABEL]: "1" },
    });
    const metrics = new Registry();
    const w = wireEndpointNotifications(loaded, store, metrics);
    assert.equal(w.sources.length, 1);
    assert.deepEqual(
      producer.health().endpoints.map((e) => [e.endpointId, e.address, e.announced]),
      [["127.0.0.1:8100", "tcp://127.0.0.1:1", true]],
    );
    assert.match(
      await metrics.metrics(),
      /llm_d_epp_kv_cache_index_keys\{plugin_name="precise-prefix-cache-producer"\} 0/,
    );
    store.remove("a");
    assert.equal(producer.health().endpoints.length, 0);
    await w.close();
  });

  it("rejects an extractor that cannot receive endpoint notifications, naming the field", () => {
    const bad = CONFIG.replace(
      "        - pluginRef: precise-prefix-cache-producer",
      "        - pluginRef: decode-filter",
    );
    const loaded = loadConfig(bad, registry(), { warn: () => {} });
    assert.throws(
      () => wireEndpointNotifications(loaded, new EndpointStore()),
      (e: unknown) =>
        e instanceof ConfigError && /^dataLayer\.sources\[0\]\.extractors\[0\]\.pluginRef/.test(e.message),
    );
  });
});
