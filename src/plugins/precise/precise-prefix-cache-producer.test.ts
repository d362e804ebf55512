/**
 * precise-prefix-cache-producer end to end on 127.0.0.1: EndpointStore → endpoint-notification-
 * source → producer (one ZMQ SUB per endpoint) ← KvEventPublisher per "server".
 */
import assert from "node:assert/strict";
import type { EventEmitter } from "node:events";
import { after, describe, it } from "node:test";
import { Registry } from "prom-client";
import { ParamsError } from "../../framework/config/params.js";
import { KV_EVENTS_PORT_LABEL, KV_EVENTS_REPLAY_PORT_LABEL } from "../../framework/labels.js";
import { createRegistry } from "../../framework/registry.js";
import {
  type Endpoint,
  type EndpointMetadata,
  emptyMetrics,
  type InferenceRequest,
  PREFIX_CACHE_MATCH_INFO,
  type PrefixCacheMatchInfo,
  TOKENIZED_PROMPT,
} from "../../framework/types.js";
import { EndpointStore } from "../../datalayer/store.js";
import { kvTopic } from "../../kvcache/events/types.js";
import { KvEventPublisher } from "../../modelserver/kv-events/publisher.js";
import { EndpointNotificationSourcePlugin } from "./endpoint-notification-source.js";
import { registerPrecisePlugins } from "./index.js";
import { decodePreciseParams, PrecisePrefixCacheProducer } from "./precise-prefix-cache-producer.js";
import { PrecisePrefixCacheScorer } from "./precise-prefix-cache-scorer.js";

const MODEL = "llmd/sim-8b";
const BS = 16;
const PROMPT = Uint32Array.from({ length: 100 }, (_, i) => 30_000 + i * 7); // 6 full blocks
const T = { timeout: 15_000 };

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

function waitFor(emitter: EventEmitter, event: string, pred: (...a: unknown[]) => boolean = () => true) {
  return new Promise<unknown[]>((resolve) => {
    const f = (...a: unknown[]) => {
      if (pred(...a)) {
        emitter.off(event, f);
        resolve(a);
      }
    };
    emitter.on(event, f);
  });
}

function request(source: "vllm" | "estimate" | null, model = MODEL): InferenceRequest {
  const attributes = new Map<string, unknown>();
  if (source) attributes.set(TOKENIZED_PROMPT, { tokenIds: PROMPT, source });
  return {
    requestId: "r",
    incomingModel: model,
    targetModel: model,
    path: "/v1/completions",
    body: {},
    headers: {},
    objectives: { priority: 0 },
    fairnessId: "default-flow",
    requestSizeBytes: 0,
    attributes,
  };
}

function meta(port: number, labels: Record<string, string>): EndpointMetadata {
  return {
    id: `127.0.0.1:${port}`,
    name: `s${port}`,
    namespace: "default",
    address: "127.0.0.1",
    port,
    hostPort: `127.0.0.1:${port}`,
    labels,
  };
}

async function server(httpPort: number, replay = false) {
  const pub = await KvEventPublisher.create({
    enable_kv_cache_events: true,
    endpoint: "tcp://127.0.0.1:*",
    replay_endpoint: replay ? "tcp://127.0.0.1:*" : null,
    topic: kvTopic(`127.0.0.1:${httpPort}`, MODEL),
  });
  cleanups.push(() => pub.close());
  const port = (e: string | null) => String(new URL(e!.replace("tcp://", "http://")).port);
  const labels: Record<string, string> = { [KV_EVENTS_PORT_LABEL]: port(pub.endpoint) };
  if (replay) labels[KV_EVENTS_REPLAY_PORT_LABEL] = port(pub.replayEndpoint);
  return { pub, meta: meta(httpPort, labels) };
}

const info = (ep: Endpoint, name = "precise-prefix-cache-producer") =>
  ep.attributes.get(PREFIX_CACHE_MATCH_INFO + name) as PrefixCacheMatchInfo | undefined;

describe("precise-prefix-cache-producer parameters", () => {
  it("decodes the fixture's parameters and defaults", () => {
    const c = decodePreciseParams({
      tokenProcessorConfig: { blockSize: 64 },
      indexerConfig: { kvBlockIndexConfig: { enableMetrics: true } },
    });
    assert.equal(c.blockSize, 64);
    assert.equal(c.hashSeed, "");
    assert.equal(c.enableMetrics, true);
    assert.equal(c.socketPort, 5557);
    assert.equal(c.replayPort, undefined);
    assert.equal(c.topicFilter, "kv@");
    assert.equal(c.maxKeys, 100_000_000);
    assert.equal(c.podCacheSize, 10);
    const d = decodePreciseParams(undefined);
    assert.equal(d.blockSize, 16);
    assert.equal(d.enableMetrics, false);
  });

  it("rejects unknown fields and unsupported values, naming the field", () => {
    assert.throws(
      () => decodePreciseParams({ tokenProcessorConfig: { blockSize: 16, bogus: 1 } }),
      (e: unknown) => e instanceof ParamsError && e.field === "tokenProcessorConfig.bogus",
    );
    assert.throws(
      () => decodePreciseParams({ kvEventsConfig: { engineType: "sglang" } }),
      (e: unknown) => e instanceof ParamsError && e.field === "kvEventsConfig.engineType",
    );
    assert.throws(
      () => decodePreciseParams({ tokenProcessorConfig: { blockSize: 0 } }),
      (e: unknown) => e instanceof ParamsError && e.field === "tokenProcessorConfig.blockSize",
    );
    assert.throws(
      () => decodePreciseParams({ tokenProcessorConfig: { blockSize: 16, blockSizeTokens: 64 } }),
      (e: unknown) => e instanceof ParamsError && e.field === "tokenProcessorConfig.blockSizeTokens",
    );
  });

  it("registers its three types, the scorer as deprecated", () => {
    const r = createRegistry();
    registerPrecisePlugins(r);
    assert.deepEqual(r.types(), [
      "endpoint-notification-source",
      "precise-prefix-cache-producer",
      "precise-prefix-cache-scorer",
    ]);
    assert.ok(r.get("precise-prefix-cache-scorer")?.opts.deprecatedReplacement);
    assert.throws(
      () => r.get("endpoint-notification-source")!.factory("x", { a: 1 }, null as never),
      ParamsError,
    );
  });
});

describe("precise-prefix-cache-producer over ZMQ", T, () => {
  it("scores the endpoint holding the prefix, zero elsewhere; purges an endpoint leaving the pool", async () => {
    const a = await server(8100);
    const b = await server(8101);
    const store = new EndpointStore();
    const source = new EndpointNotificationSourcePlugin();
    const producer = new PrecisePrefixCacheProducer("precise-prefix-cache-producer", { blockSize: BS });
    cleanups.push(
      () => producer.close(),
      () => source.close(),
    );
    source.addExtractor(producer);
    store.upsert(a.meta); // before attach: announced on attach
    source.attachEndpointSource(store);
    store.upsert(b.meta); // after attach: announced by the `added` event
    await Promise.all([a.pub.waitForSubscriber(), b.pub.waitForSubscriber()]);
    assert.equal(producer.health().endpoints.length, 2);
    assert.ok(producer.health().endpoints.every((e) => e.announced));

    // server A caches the first 4 blocks of the prompt (engine hashes are opaque)
    a.pub.blockStored({
      blockHashes: [11n, 12n, 13n, 14n],
      parentHash: null,
      tokenIds: PROMPT.subarray(0, 4 * BS),
      blockSize: BS,
      medium: "GPU",
    });
    const batch = waitFor(producer.subscriber("127.0.0.1:8100")!, "batch");
    await a.pub.flush();
    await batch;

    const eps = store.all();
    const [epA, epB] = [
      eps.find((e) => e.metadata.port === 8100)!,
      eps.find((e) => e.metadata.port === 8101)!,
    ];
    producer.produce(request("vllm"), eps);
    assert.deepEqual(info(epA), { matchBlocks: 4, totalBlocks: 6, blockSizeTokens: BS });
    assert.deepEqual(info(epB), { matchBlocks: 0, totalBlocks: 6, blockSizeTokens: BS });
    // another model's chain does not match
    producer.produce(request("vllm", "other-model"), eps);
    assert.equal(info(epA)?.matchBlocks, 0);
    assert.equal(producer.health().unknownModelRequests, 1); // loud: no endpoint publishes it
    assert.deepEqual(producer.subscriber("127.0.0.1:8100")?.stats.models, [MODEL]);
    assert.equal(producer.subscriber("127.0.0.1:8100")?.stats.topicPodId, "127.0.0.1:8100");
    assert.equal(producer.health().lookupHits, 1);

    // A leaves the pool: unsubscribed and purged
    store.remove(epA.metadata.id);
    assert.equal(producer.subscriber("127.0.0.1:8100"), undefined);
    assert.equal(producer.index.findEndpoint("127.0.0.1:8100"), undefined);
    producer.produce(request("vllm"), [epA, epB]);
    assert.equal(info(epA)?.matchBlocks, 0);
    assert.deepEqual(
      producer.health().endpoints.map((e) => e.endpointId),
      ["127.0.0.1:8101"],
    );
  });

  it("estimate tokens score 0 everywhere and are counted (loud, not silent)", async () => {
    const a = await server(8110);
    const producer = new PrecisePrefixCacheProducer("p", { blockSize: BS });
    cleanups.push(() => producer.close());
    const ep: Endpoint = {
      metadata: a.meta,
      metrics: emptyMetrics(),
      models: new Set(),
      attributes: new Map(),
    };
    producer.endpointAdded(ep);
    await a.pub.waitForSubscriber();
    a.pub.blockStored({
      blockHashes: [1n],
      parentHash: null,
      tokenIds: PROMPT.subarray(0, BS),
      blockSize: BS,
      medium: "GPU",
    });
    const batch = waitFor(producer.subscriber(a.meta.hostPort)!, "batch");
    await a.pub.flush();
    await batch;
    producer.produce(request("vllm"), [ep]);
    assert.equal(info(ep, "p")?.matchBlocks, 1);
    producer.produce(request("estimate"), [ep]);
    assert.deepEqual(info(ep, "p"), { matchBlocks: 0, totalBlocks: 6, blockSizeTokens: BS });
    producer.produce(request(null), [ep]);
    assert.deepEqual(info(ep, "p"), { matchBlocks: 0, totalBlocks: 0, blockSizeTokens: BS });
    assert.equal(producer.health().unusableTokenRequests, 2);

    const registry = new Registry();
    producer.registerMetrics(registry);
    const text = await registry.metrics();
    assert.match(text, /llm_d_epp_kv_cache_unusable_tokens_requests_total\{plugin_name="p"\} 2/);
    assert.match(
      text,
      /llm_d_epp_kv_cache_events_ingested_total\{plugin_name="p",endpoint="127.0.0.1:8110"\} 1/,
    );
    assert.match(text, /llm_d_epp_kv_cache_event_last_seq\{plugin_name="p",endpoint="127.0.0.1:8110"\} 0/);
    assert.match(
      text,
      /llm_d_epp_kv_cache_event_drops_total\{plugin_name="p",endpoint="127.0.0.1:8110",reason="unknown_parent"\} 0/,
    );
    // counters do not double count across scrapes
    assert.match(
      await registry.metrics(),
      /llm_d_epp_kv_cache_unusable_tokens_requests_total\{plugin_name="p"\} 2/,
    );
    assert.doesNotMatch(text, /llm_d_epp_kv_cache_index_keys/); // enableMetrics off
  });

  it("subscribes on first sight to endpoints never announced, and uses the replay port label", async () => {
    const a = await server(8120, true);
    const scorer = new PrecisePrefixCacheScorer("precise-prefix-cache-scorer", {
      blockSize: BS,
      enableMetrics: true,
    });
    cleanups.push(() => scorer.close());
    const ep: Endpoint = {
      metadata: a.meta,
      metrics: emptyMetrics(),
      models: new Set(),
      attributes: new Map(),
    };
    scorer.produce(request("vllm"), [ep]); // not announced: starts a subscriber
    assert.equal(scorer.health().endpoints[0]?.announced, false);
    assert.match(scorer.health().endpoints[0]?.replayAddress ?? "", /^tcp:\/\/127\.0\.0\.1:\d+$/);
    await a.pub.waitForSubscriber();
    a.pub.blockStored({
      blockHashes: [1n, 2n, 3n],
      parentHash: null,
      tokenIds: PROMPT.subarray(0, 3 * BS),
      blockSize: BS,
      medium: "GPU",
    });
    const batch = waitFor(scorer.subscriber(a.meta.hostPort)!, "batch");
    await a.pub.flush();
    await batch;
    const req = request("vllm");
    scorer.produce(req, [ep]);
    assert.equal(scorer.score(req, [ep]).get(ep), 3 / 6);
    const registry = new Registry();
    scorer.registerMetrics(registry);
    assert.match(
      await registry.metrics(),
      /llm_d_epp_kv_cache_index_keys\{plugin_name="precise-prefix-cache-scorer"\} 3/,
    );
  });
});

describe("speculativeIndexing", () => {
  const ep = (port: number): Endpoint => ({
    metadata: meta(port, {}),
    metrics: emptyMetrics(),
    models: new Set(),
    attributes: new Map(),
  });
  const match = (e: Endpoint, p: PrecisePrefixCacheProducer) =>
    (e.attributes.get(PREFIX_CACHE_MATCH_INFO + p.name) as PrefixCacheMatchInfo).matchBlocks;

  it("the routed target matches its request's blocks before any KV event, for 2 s; not counted as index hits", () => {
    const p = new PrecisePrefixCacheProducer("spec", { speculativeIndexing: true });
    const store = new EndpointStore();
    const a = ep(9901);
    const b = ep(9902);
    store.upsert(a.metadata);
    store.upsert(b.metadata);
    // announced as wired, without subscribing anywhere real
    (p as unknown as { wired: boolean }).wired = true;
    const r1 = request("vllm");
    p.produce(r1, [a, b]);
    assert.equal(match(a, p), 0);
    p.preRequest(r1, {
      primaryProfileName: "default",
      profileResults: { default: { targetEndpoints: [a] } as never },
    });
    const r2 = request("vllm");
    p.produce(r2, [a, b]);
    assert.equal(match(a, p), 6, "a matches the 6 full blocks of the routed prompt");
    assert.equal(match(b, p), 0);
    const h = p.health();
    assert.equal(h.speculativeHits, 1);
    assert.equal(h.lookupHits, 0, "speculative matches are not index hits");
    // after the TTL the entry is gone
    const realNow = Date.now;
    try {
      Date.now = () => realNow() + 2001;
      const r3 = request("vllm");
      p.produce(r3, [a, b]);
      assert.equal(match(a, p), 0);
    } finally {
      Date.now = realNow;
    }
  });

  it("off by default: preRequest records nothing", () => {
    const p = new PrecisePrefixCacheProducer("nospec");
    (p as unknown as { wired: boolean }).wired = true;
    const a = ep(9903);
    const r1 = request("vllm");
    p.produce(r1, [a]);
    p.preRequest(r1, {
      primaryProfileName: "default",
      profileResults: { default: { targetEndpoints: [a] } as never },
    });
    p.produce(request("vllm"), [a]);
    assert.equal(match(a, p), 0);
  });
});
