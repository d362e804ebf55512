/**
 * `precise-prefix-cache-producer` — a DataProducer that writes, on every candidate endpoint,
 * the {@link PrefixCacheMatchInfo} of the request's prompt computed from the endpoints' **real
 * KV-cache contents**, learnt from their vLLM KV events over ZMQ (reference/epp.md §3.5,
 * reference/engine.md §3–4). Read by `prefix-cache-scorer` with
 * `prefixMatchInfoProducerName: <this plugin's name>`.
 *
 * How: it is an extractor of `endpoint-notification-source`; for every endpoint in the pool it
 * runs a ZMQ SUB on `tcp://<endpoint address>:<port>` (topic filter `kv@`, seq-gap replay or
 * resync — see `src/kvcache/events/subscriber.ts`) into a dual-key {@link KvBlockIndex}; an
 * endpoint leaving the pool is unsubscribed and purged. Per request it reads the
 * `TokenizedPrompt`, computes llm-d request keys (FNV-64a/CBOR chain rooted at the request's
 * target model), scores each endpoint with LongestPrefix (gpu 1.0, cpu 0.8 per block) and writes
 * `{matchBlocks: <weighted consecutive matched blocks>, totalBlocks, blockSizeTokens}` under
 * `prefix-match-info/<name>`.
 *
 * Loud failures (the seeds' "precise scoring silently returned 0"):
 * - tokens from the `estimate` backend are not engine token ids: every endpoint gets 0 matched
 *   blocks, an error is logged once (with the fix) and
 *   `llm_d_epp_kv_cache_unusable_tokens_requests_total` counts each such request;
 * - when no `endpoint-notification-source` feeds it (config without the `dataLayer.sources`
 *   entry, or a runtime that does not wire it), every endpoint seen in a request gets a
 *   subscriber on first sight, with a one-time warning (removals will not purge it); once a
 *   source announced endpoints, the source alone decides;
 * - a request model for which no endpoint publishes events (topic model / `lora_name` differ
 *   from the request's target model, e.g. served-model-name vs. repo id) is named in a one-time
 *   error, and such requests are counted (`unknownModelRequests` in {@link health});
 * - an endpoint whose scraped KV block size (`vllm:cache_config_info{block_size}`) is not a
 *   multiple of `blockSize` is named in a one-time error (its events would be dropped as
 *   `block_size_mismatch`);
 * - per-endpoint counters (events, batches, gaps, replays, resyncs, drops by reason, last seq,
 *   lag) are exported as `llm_d_epp_kv_cache_*` metrics and returned by {@link health}.
 *
 * Parameters (decoded strictly):
 * - `tokenProcessorConfig.blockSize` (int ≥ 1, tokens, default 16; alias `blockSizeTokens`):
 *   request-key block size; set it to vLLM's `--block-size` (or a divisor of it).
 * - `tokenProcessorConfig.hashSeed` (string, default ""): seed of the key chain.
 * - `indexerConfig.kvBlockIndexConfig.enableMetrics` (bool, default false): export index size,
 *   evictions and lookups (ingestion health metrics are always exported).
 * - `indexerConfig.kvBlockIndexConfig.inMemoryConfig.size` (int, default 1e8 request keys, LRU)
 *   and `.podCacheSize` (int 1..255, default 10 endpoint entries per key).
 * - `kvEventsConfig.socketPort` (int, default 5557): publisher port when the endpoint has no
 *   `llm-d.ai/kv-events-port` label. `kvEventsConfig.replayPort` (int, default none): replay
 *   ROUTER port when the endpoint has no `llm-d.ai/kv-events-replay-port` label.
 *   `kvEventsConfig.topicFilter` (default `kv@`), `kvEventsConfig.replayOnJoin` (default true),
 *   `kvEventsConfig.engineType` (`vllm` only; `sglang` is rejected as unsupported).
 * - `speculativeIndexing` (bool, default false): at routing time (PreRequest) the request's keys
 *   are remembered for its primary target (and its `prefill` target) for
 *   {@link SPECULATIVE_TTL_MS} (2 s, llm-d's TTL), so that requests arriving before the
 *   target's `BlockStored` events match it too; an endpoint scores max(index, speculative).
 *   Speculative matches are counted apart (`speculativeHits`), never as index hits.
 *
 * Source: reference/epp.md §3.5, §5.2; reference/engine.md §3.1–3.4, §4.2–4.4.
 */
import type { Registry } from "prom-client";
import { Counter, Gauge } from "prom-client";
import { z } from "zod";
import { decodeParams, ParamsError } from "../../framework/config/params.js";
import { KV_EVENTS_PORT_LABEL, KV_EVENTS_REPLAY_PORT_LABEL } from "../../framework/labels.js";
import type { DataProducer, PluginFactory, PreRequest } from "../../framework/plugin.js";
import { KV_EVENTS_PORT } from "../../framework/ports.js";
import {
  type ClosablePlugin,
  type Endpoint,
  type EndpointExtractor,
  type InferenceRequest,
  type MetricsRegistrant,
  PREFIX_CACHE_MATCH_INFO,
  type PrefixCacheMatchInfo,
  type SchedulingResult,
  TOKENIZED_PROMPT,
  type TokenizedPrompt,
} from "../../framework/types.js";
import { KvEventSubscriber, type SubscriberStats } from "../../kvcache/events/subscriber.js";
import { KV_TOPIC_PREFIX } from "../../kvcache/events/types.js";
import {
  DEFAULT_BLOCK_SIZE,
  DEFAULT_MAX_KEYS,
  DEFAULT_POD_CACHE_SIZE,
  KvBlockIndex,
} from "../../kvcache/precise/index.js";
import { PromptKeyCache } from "../../kvcache/precise/request-keys.js";
import { logger } from "../../log.js";
import * as N from "./metrics.js";

export const PRECISE_PREFIX_CACHE_PRODUCER_TYPE = "precise-prefix-cache-producer";
/** Lifetime of a speculative entry, ms (llm-d `speculativeIndexing` TTL 2 s, reference/epp.md §3.5). */
export const SPECULATIVE_TTL_MS = 2000;
/** Most speculative entries kept per endpoint (oldest dropped first). */
const SPECULATIVE_MAX_PER_ENDPOINT = 64;
/** Profile whose target is also recorded (as llm-d's approximate producer does). */
const PREFILL_PROFILE = "prefill";

const schema = z
  .object({
    tokenProcessorConfig: z
      .object({
        blockSize: z.number().int().min(1).optional(),
        blockSizeTokens: z.number().int().min(1).optional(),
        hashSeed: z.string().default(""),
      })
      .strict()
      .default({ hashSeed: "" }),
    indexerConfig: z
      .object({
        kvBlockIndexConfig: z
          .object({
            enableMetrics: z.boolean().default(false),
            inMemoryConfig: z
              .object({
                size: z.number().int().min(1).default(DEFAULT_MAX_KEYS),
                podCacheSize: z.number().int().min(1).max(255).default(DEFAULT_POD_CACHE_SIZE),
              })
              .strict()
              .optional(),
          })
          .strict()
          .default({ enableMetrics: false }),
      })
      .strict()
      .default({ kvBlockIndexConfig: { enableMetrics: false } }),
    kvEventsConfig: z
      .object({
        socketPort: z.number().int().min(1).max(65535).default(KV_EVENTS_PORT),
        replayPort: z.number().int().min(1).max(65535).optional(),
        topicFilter: z.string().default(KV_TOPIC_PREFIX),
        replayOnJoin: z.boolean().default(true),
        engineType: z.enum(["vllm", "sglang"]).default("vllm"),
      })
      .strict()
      .default({
        socketPort: KV_EVENTS_PORT,
        topicFilter: KV_TOPIC_PREFIX,
        replayOnJoin: true,
        engineType: "vllm",
      }),
    speculativeIndexing: z.boolean().default(false),
  })
  .strict();

export type PrecisePrefixCacheParams = z.input<typeof schema>;

/** Decoded, defaulted parameters. */
export interface PreciseConfig {
  blockSize: number;
  hashSeed: string;
  enableMetrics: boolean;
  maxKeys: number;
  podCacheSize: number;
  socketPort: number;
  replayPort?: number;
  topicFilter: string;
  replayOnJoin: boolean;
  speculativeIndexing: boolean;
}

/**
 * Decodes the parameters (see file header).
 * @throws ParamsError naming the field (unknown field, bad value, `blockSize` ≠
 *   `blockSizeTokens`, `engineType: sglang`)
 */
export function decodePreciseParams(raw: unknown): PreciseConfig {
  const p = decodeParams(schema, raw);
  const tp = p.tokenProcessorConfig;
  if (tp.blockSize !== undefined && tp.blockSizeTokens !== undefined && tp.blockSize !== tp.blockSizeTokens) {
    throw new ParamsError(
      "tokenProcessorConfig.blockSizeTokens",
      "conflicts with tokenProcessorConfig.blockSize",
    );
  }
  if (p.kvEventsConfig.engineType !== "vllm") {
    throw new ParamsError("kvEventsConfig.engineType", "only vllm KV events are supported");
  }
  const kb = p.indexerConfig.kvBlockIndexConfig;
  return {
    blockSize: tp.blockSize ?? tp.blockSizeTokens ?? DEFAULT_BLOCK_SIZE,
    hashSeed: tp.hashSeed,
    enableMetrics: kb.enableMetrics,
    maxKeys: kb.inMemoryConfig?.size ?? DEFAULT_MAX_KEYS,
    podCacheSize: kb.inMemoryConfig?.podCacheSize ?? DEFAULT_POD_CACHE_SIZE,
    socketPort: p.kvEventsConfig.socketPort,
    replayPort: p.kvEventsConfig.replayPort,
    topicFilter: p.kvEventsConfig.topicFilter,
    replayOnJoin: p.kvEventsConfig.replayOnJoin,
    speculativeIndexing: p.speculativeIndexing,
  };
}

const log = logger.child({ component: PRECISE_PREFIX_CACHE_PRODUCER_TYPE });

function portLabel(ep: Endpoint, key: string): number | undefined {
  const v = ep.metadata.labels[key];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 65535) {
    log.warn({ endpoint: ep.metadata.hostPort, label: key, value: v }, "invalid port label ignored");
    return undefined;
  }
  return n;
}

/** Health of one endpoint's KV-event feed, for `llmd doctor` and tests. */
export interface EndpointKvHealth extends SubscriberStats {
  /** whether the endpoint came from an endpoint-notification-source (false = lazily subscribed) */
  announced: boolean;
  /** requests scored where this endpoint held ≥ 1 leading block of the prompt */
  lookupHits: number;
  /** Σ matched blocks (tier-weighted) of this endpoint over the requests scored */
  matchedBlocks: number;
}

/** Health of the whole producer. */
export interface PreciseHealth {
  endpoints: EndpointKvHealth[];
  /** requests whose tokens were not engine tokens (estimate backend) or missing */
  unusableTokenRequests: number;
  /** requests for a model no endpoint publishes events for (while others publish) */
  unknownModelRequests: number;
  /** requests scored */
  lookups: number;
  /** requests where at least one endpoint matched ≥ 1 block */
  lookupHits: number;
  /** requests where some endpoint matched more through speculative entries than the index */
  speculativeHits: number;
  index: ReturnType<KvBlockIndex["stats"]>;
}

/** The precise prefix-cache producer (see file header). */
export class PrecisePrefixCacheProducer
  implements DataProducer, PreRequest, EndpointExtractor, MetricsRegistrant, ClosablePlugin
{
  readonly type: string = PRECISE_PREFIX_CACHE_PRODUCER_TYPE;
  readonly index: KvBlockIndex;
  readonly config: PreciseConfig;
  /** endpoint attribute key written */
  readonly matchInfoKey: string;
  readonly produces: readonly string[];
  readonly consumes: readonly string[] = [TOKENIZED_PROMPT];
  private readonly subs = new Map<string, { sub: KvEventSubscriber; announced: boolean }>();
  /** per endpoint (`ip:port`): requests with ≥ 1 matched block, Σ matched blocks */
  private readonly endpointHits = new Map<string, { requests: number; blocks: number }>();
  /** request keys of recent prompts (shared prefixes are hashed once) */
  private readonly keyCache = new PromptKeyCache(8);
  /** speculative entries per endpoint (`ip:port`): request keys routed there, with expiry (ms) */
  private readonly spec = new Map<string, { keys: Uint32Array; n: number; expires: number }[]>();
  private speculativeHits = 0;
  /** request attribute holding the request's keys between produce and preRequest */
  private readonly specKey: string;
  private unusable = 0;
  private lookups = 0;
  private lookupHits = 0;
  private warnedEstimate = false;
  private warnedUnannounced = false;
  private readonly warnedBlockSize = new Set<string>();
  private readonly modelsWarned = new Set<string>();
  private unknownModel = 0;
  /** an endpoint-notification-source announced endpoints: it is authoritative for the pool */
  private wired = false;
  private closed = false;

  constructor(
    readonly name: string = PRECISE_PREFIX_CACHE_PRODUCER_TYPE,
    config: Partial<PreciseConfig> = {},
  ) {
    this.config = { ...decodePreciseParams({}), ...config };
    this.index = new KvBlockIndex({
      blockSize: this.config.blockSize,
      hashSeed: this.config.hashSeed,
      maxKeys: this.config.maxKeys,
      podCacheSize: this.config.podCacheSize,
    });
    this.matchInfoKey = PREFIX_CACHE_MATCH_INFO + name;
    this.specKey = `precise-spec-keys/${name}`;
    this.produces = [this.matchInfoKey];

  }

  // ---------------------------------------------------------------- pool

  /** Starts following an endpoint's KV events (idempotent). */
  endpointAdded(ep: Endpoint): void {
    this.wired = true;
    this.subscribe(ep, true);
  }

  /** Stops following an endpoint and purges it from the index. */
  endpointRemoved(ep: Endpoint): void {
    const id = ep.metadata.hostPort;
    const s = this.subs.get(id);
    this.subs.delete(id);
    this.endpointHits.delete(id);
    this.spec.delete(id);
    this.index.removeEndpoint(id);
    if (s) {
      s.sub.close().catch((err) => log.warn({ err, endpoint: id }, "closing KV-event subscriber failed"));
      log.info({ endpoint: id }, "KV-event subscriber stopped; endpoint purged from the precise index");
    }
  }

  private subscribe(ep: Endpoint, announced: boolean): void {
    const id = ep.metadata.hostPort;
    const cur = this.subs.get(id);
    if (cur) {
      if (announced) cur.announced = true;
      return;
    }
    if (this.closed) return;
    const port = portLabel(ep, KV_EVENTS_PORT_LABEL) ?? this.config.socketPort;
    const replayPort = portLabel(ep, KV_EVENTS_REPLAY_PORT_LABEL) ?? this.config.replayPort;
    const host = ep.metadata.address.includes(":") ? `[${ep.metadata.address}]` : ep.metadata.address;
    const sub = new KvEventSubscriber(this.index, {
      endpointId: id,
      address: `tcp://${host}:${port}`,
      replayAddress: replayPort === undefined ? null : `tcp://${host}:${replayPort}`,
      topicFilter: this.config.topicFilter,
      replayOnJoin: this.config.replayOnJoin,
    });
    sub.on("error", (err) => log.error({ err, endpoint: id }, "KV-event subscriber failed"));
    sub.on("gap", (expected, got) =>
      log.warn(
        { endpoint: id, expected, got, replay: sub.stats.replayAddress !== null },
        "KV-event sequence gap",
      ),
    );
    sub.on("resync", (reason) =>
      log.warn({ endpoint: id, reason }, "KV-event resync: endpoint's index entries cleared"),
    );
    sub.on("replay-failed", (err) => log.warn({ err, endpoint: id }, "KV-event replay failed"));
    sub.on("decode-error", (err) => log.warn({ err, endpoint: id }, "undecodable KV-event batch dropped"));
    this.subs.set(id, { sub, announced });
    sub.start();
    log.info(
      { endpoint: id, address: sub.stats.address, replay: sub.stats.replayAddress },
      "KV-event subscriber started",
    );
  }

  // ---------------------------------------------------------------- per request

  /** Writes the match info on every endpoint (synchronous). */
  produce(request: InferenceRequest, endpoints: Endpoint[]): void {
    const bs = this.config.blockSize;
    const tp = request.attributes.get(TOKENIZED_PROMPT) as TokenizedPrompt | undefined;
    const n = tp ? tp.tokenIds.length : 0;
    const totalBlocks = Math.floor(n / bs);
    for (const ep of this.wired ? [] : endpoints) {
      if (!this.subs.has(ep.metadata.hostPort)) {
        if (!this.warnedUnannounced) {
          this.warnedUnannounced = true;
          log.warn(
            { plugin: this.name, endpoint: ep.metadata.hostPort },
            "endpoint was not announced by an endpoint-notification-source: subscribing to its KV events on first sight. " +
              "List this plugin as an extractor of endpoint-notification-source in dataLayer.sources so that endpoints leaving the pool are purged.",
          );
        }
        this.subscribe(ep, false);
      }
    }
    for (const ep of endpoints) {
      const ebs = ep.metrics.cacheBlockSize;
      if (ebs > 0 && ebs % bs !== 0 && !this.warnedBlockSize.has(ep.metadata.hostPort)) {
        this.warnedBlockSize.add(ep.metadata.hostPort);
        log.error(
          { plugin: this.name, endpoint: ep.metadata.hostPort, engineBlockSize: ebs, blockSize: bs },
          "the endpoint's KV block size is not a multiple of tokenProcessorConfig.blockSize: its KV events are dropped " +
            "(block_size_mismatch) and it always scores 0. Set blockSize to vLLM's --block-size or a divisor of it.",
        );
      }
    }
    if (tp?.source !== "vllm") {
      this.unusable++;
      if (!this.warnedEstimate) {
        this.warnedEstimate = true;
        log.error(
          { plugin: this.name, tokenSource: tp?.source ?? "none" },
          "precise prefix-cache scoring needs engine token ids, but the request's tokens come from " +
            `${tp ? `the '${tp.source}' token-producer backend` : "no token-producer"}: every endpoint scores 0. ` +
            "Configure token-producer with `vllm: {url: <a vLLM server with /v1/completions/render>}`.",
        );
      }
      this.writeZero(endpoints, totalBlocks);
      return;
    }
    this.checkModel(request.targetModel);
    const [rh, rl] = this.index.rootKey(request.targetModel);
    const { keys } = this.keyCache.keys(request.targetModel, rh, rl, tp.tokenIds, bs);
    const r = this.index.longestPrefix(keys, totalBlocks);
    this.lookups++;
    let hit = false;
    let specHit = false;
    const now = this.config.speculativeIndexing ? Date.now() : 0;
    if (this.config.speculativeIndexing && totalBlocks > 0)
      request.attributes.set(this.specKey, keys.slice(0, 2 * totalBlocks));
    for (const ep of endpoints) {
      const s = this.index.findEndpoint(ep.metadata.hostPort);
      const indexed = s === undefined ? 0 : r.score[s]!;
      let score = indexed;
      if (this.config.speculativeIndexing) {
        const sp = this.speculativeMatch(ep.metadata.hostPort, keys, totalBlocks, now);
        if (sp > score) {
          score = sp;
          specHit = true;
        }
      }
      // index hits only (what KV events proved); speculative ones are counted apart
      if (indexed > 0) {
        hit = true;
        const h = this.endpointHits.get(ep.metadata.hostPort);
        if (h) {
          h.requests++;
          h.blocks += indexed;
        } else this.endpointHits.set(ep.metadata.hostPort, { requests: 1, blocks: indexed });
      }
      ep.attributes.set(this.matchInfoKey, {
        matchBlocks: score,
        totalBlocks,
        blockSizeTokens: bs,
      } satisfies PrefixCacheMatchInfo);
    }
    if (hit) this.lookupHits++;
    if (specHit) this.speculativeHits++;
  }

  /** Longest common leading run (blocks) of `keys` with a live speculative entry of `id`. */
  private speculativeMatch(id: string, keys: Uint32Array, n: number, now: number): number {
    const list = this.spec.get(id);
    if (!list) return 0;
    let best = 0;
    for (const e of list) {
      if (e.expires <= now) continue;
      const m = Math.min(n, e.n);
      let i = 0;
      while (i < m && e.keys[2 * i] === keys[2 * i] && e.keys[2 * i + 1] === keys[2 * i + 1]) i++;
      if (i > best) best = i;
    }
    return best;
  }

  /**
   * With `speculativeIndexing`: remembers the request's keys for its primary target and its
   * `prefill` target for {@link SPECULATIVE_TTL_MS}. A no-op otherwise.
   */
  preRequest(request: InferenceRequest, result: SchedulingResult): void {
    const keys = request.attributes.get(this.specKey) as Uint32Array | undefined;
    if (!keys) return;
    request.attributes.delete(this.specKey);
    const targets = [result.profileResults[result.primaryProfileName]?.targetEndpoints[0]];
    if (result.primaryProfileName !== PREFILL_PROFILE)
      targets.push(result.profileResults[PREFILL_PROFILE]?.targetEndpoints[0]);
    const now = Date.now();
    for (const ep of targets) {
      if (!ep) continue;
      const id = ep.metadata.hostPort;
      const list = (this.spec.get(id) ?? []).filter((e) => e.expires > now);
      list.push({ keys, n: keys.length >>> 1, expires: now + SPECULATIVE_TTL_MS });
      if (list.length > SPECULATIVE_MAX_PER_ENDPOINT) list.shift();
      this.spec.set(id, list);
    }
  }

  /**
   * Request keys are rooted at the request's target model, event keys at the topic's model (or
   * the event's LoRA): when they differ nothing can ever match. Warns once per model when the
   * endpoints publish events but none for this model, and counts such requests.
   */
  private checkModel(model: string): void {
    let any = false;
    for (const { sub } of this.subs.values()) {
      const ms = sub.stats.models;
      if (ms.length > 0) any = true;
      if (ms.includes(model)) return;
    }
    if (!any) return;
    this.unknownModel++;
    if (this.modelsWarned.has(model)) return;
    this.modelsWarned.add(model);
    const seen = new Set<string>();
    for (const { sub } of this.subs.values()) for (const m of sub.stats.models) seen.add(m);
    log.error(
      { plugin: this.name, model, publishedModels: [...seen] },
      "requests for this model can never match: the endpoints publish KV events for other model names. " +
        "The topic's model (kv@<ip:port>@<model>) or the event's lora_name must equal the request's target model.",
    );
  }

  private writeZero(endpoints: Endpoint[], totalBlocks: number): void {
    for (const ep of endpoints) {
      ep.attributes.set(this.matchInfoKey, {
        matchBlocks: 0,
        totalBlocks,
        blockSizeTokens: this.config.blockSize,
      } satisfies PrefixCacheMatchInfo);
    }
  }

  // ---------------------------------------------------------------- health and metrics

  /** Per-endpoint feed health and index counters (for `llmd doctor`). */
  health(): PreciseHealth {
    return {
      endpoints: [...this.subs.values()].map(({ sub, announced }) => ({
        ...sub.stats,
        drops: { ...sub.stats.drops },
        announced,
        lookupHits: this.endpointHits.get(sub.stats.endpointId)?.requests ?? 0,
        matchedBlocks: this.endpointHits.get(sub.stats.endpointId)?.blocks ?? 0,
      })),
      unusableTokenRequests: this.unusable,
      unknownModelRequests: this.unknownModel,
      lookups: this.lookups,
      lookupHits: this.lookupHits,
      speculativeHits: this.speculativeHits,
      index: this.index.stats(),
    };
  }

  /** The subscriber of an endpoint (`ip:port`), if any (tests). */
  subscriber(endpointId: string): KvEventSubscriber | undefined {
    return this.subs.get(endpointId)?.sub;
  }

  /** Registers the `llm_d_epp_kv_cache_*` metrics on `registry` (values read at scrape time). */
  registerMetrics(registry: Registry): void {
    const plugin = this.name;
    const self = this;
    const reg = [registry];
    // counters are exported by adding the delta since the previous scrape
    const lastSeen = new Map<string, number>();
    const counterIds = new Map<Counter<string>, number>();
    const bump = (c: Counter<string>, labels: Record<string, string>, value: number) => {
      let id = counterIds.get(c);
      if (id === undefined) {
        id = counterIds.size;
        counterIds.set(c, id);
      }
      const k = `${id}|${JSON.stringify(labels)}`;
      const prev = lastSeen.get(k);
      const d = value - (prev ?? 0);
      // a first scrape creates the series even at 0, so that alerts can see it
      if (d > 0 || prev === undefined) c.inc(labels, Math.max(0, d));
      lastSeen.set(k, value);
    };
    const perEndpoint = (name: string, help: string, get: (s: SubscriberStats) => number): Counter<string> =>
      new Counter({
        name,
        help,
        labelNames: ["plugin_name", "endpoint"],
        registers: reg,
        collect() {
          for (const { sub } of self.subs.values())
            bump(this, { plugin_name: plugin, endpoint: sub.stats.endpointId }, get(sub.stats));
        },
      });
    perEndpoint(
      N.KV_CACHE_EVENTS_INGESTED_TOTAL,
      "KV events applied to the precise index, per endpoint.",
      (s) => s.events,
    );
    perEndpoint(N.KV_CACHE_EVENT_BATCHES_TOTAL, "KV-event batches applied, per endpoint.", (s) => s.batches);
    perEndpoint(N.KV_CACHE_EVENT_GAPS_TOTAL, "KV-event sequence gaps, per endpoint.", (s) => s.gaps);
    perEndpoint(N.KV_CACHE_EVENT_REPLAYS_TOTAL, "KV-event replay requests, per endpoint.", (s) => s.replays);
    perEndpoint(
      N.KV_CACHE_EVENT_REPLAY_FAILURES_TOTAL,
      "KV-event replays that failed or timed out, per endpoint.",
      (s) => s.replayFailures,
    );
    perEndpoint(
      N.KV_CACHE_EVENT_RESTARTS_TOTAL,
      "Publisher restarts seen (sequence went backwards), per endpoint.",
      (s) => s.restarts,
    );
    perEndpoint(
      N.KV_CACHE_EVENT_RESYNCS_TOTAL,
      "Times an endpoint's index entries were cleared to recover from lost KV events.",
      (s) => s.resyncs,
    );
    new Counter({
      name: N.KV_CACHE_EVENT_DROPS_TOTAL,
      help: "KV events (or messages) not indexed, per endpoint and reason.",
      labelNames: ["plugin_name", "endpoint", "reason"],
      registers: reg,
      collect() {
        for (const { sub } of self.subs.values()) {
          for (const [reason, v] of Object.entries(sub.stats.drops)) {
            bump(this, { plugin_name: plugin, endpoint: sub.stats.endpointId, reason }, v);
          }
        }
      },
    });
    const gauge = (name: string, help: string, get: (s: SubscriberStats) => number | null) =>
      new Gauge({
        name,
        help,
        labelNames: ["plugin_name", "endpoint"],
        registers: reg,
        collect() {
          this.reset();
          for (const { sub } of self.subs.values()) {
            const v = get(sub.stats);
            if (v !== null) this.set({ plugin_name: plugin, endpoint: sub.stats.endpointId }, v);
          }
        },
      });
    gauge(
      N.KV_CACHE_EVENT_LAG_SECONDS,
      "Receive time minus batch timestamp of the last KV-event batch.",
      (s) => (s.lastBatchAt > 0 ? s.lagMs / 1000 : null),
    );
    gauge(N.KV_CACHE_EVENT_LAST_SEQ, "Sequence number of the last applied KV-event batch.", (s) =>
      s.lastSeq >= 0 ? s.lastSeq : null,
    );
    gauge(
      N.KV_CACHE_EVENT_SECONDS_SINCE_LAST_BATCH,
      "Seconds since the last KV-event batch of the endpoint (-1 = never received one).",
      (s) => (s.lastBatchAt > 0 ? (Date.now() - s.lastBatchAt) / 1000 : -1),
    );
    new Counter({
      name: N.KV_CACHE_UNUSABLE_TOKENS_TOTAL,
      help: "Requests the precise producer could not score because their tokens were not engine token ids (estimate backend) or missing.",
      labelNames: ["plugin_name"],
      registers: reg,
      collect() {
        bump(this, { plugin_name: plugin }, self.unusable);
      },
    });
    if (!this.config.enableMetrics) return;
    new Gauge({
      name: N.KV_CACHE_INDEX_KEYS,
      help: "Request keys in the precise KV block index.",
      labelNames: ["plugin_name"],
      registers: reg,
      collect() {
        this.set({ plugin_name: plugin }, self.index.stats().keys);
      },
    });
    new Gauge({
      name: N.KV_CACHE_INDEX_ENGINE_KEYS,
      help: "Engine-key to request-key mappings in the precise KV block index.",
      labelNames: ["plugin_name"],
      registers: reg,
      collect() {
        this.set({ plugin_name: plugin }, self.index.stats().engineKeys);
      },
    });
    new Counter({
      name: N.KV_CACHE_INDEX_EVICTIONS_TOTAL,
      help: "Request keys evicted from the precise index by its size bound.",
      labelNames: ["plugin_name"],
      registers: reg,
      collect() {
        bump(this, { plugin_name: plugin }, self.index.stats().keysEvicted);
      },
    });
    new Counter({
      name: N.KV_CACHE_INDEX_LOOKUPS_TOTAL,
      help: "Requests scored against the precise index.",
      labelNames: ["plugin_name"],
      registers: reg,
      collect() {
        bump(this, { plugin_name: plugin }, self.lookups);
      },
    });
    new Counter({
      name: N.KV_CACHE_INDEX_LOOKUP_HITS_TOTAL,
      help: "Requests where at least one endpoint held ≥ 1 prefix block.",
      labelNames: ["plugin_name"],
      registers: reg,
      collect() {
        bump(this, { plugin_name: plugin }, self.lookupHits);
      },
    });
  }

  /** Stops every subscriber. */
  async close(): Promise<void> {
    this.closed = true;
    const subs = [...this.subs.values()];
    this.subs.clear();
    await Promise.all(subs.map((s) => s.sub.close()));
  }
}

/** Factory. @throws ParamsError naming the offending field */
export const precisePrefixCacheProducerFactory: PluginFactory = (name, params) =>
  new PrecisePrefixCacheProducer(name, decodePreciseParams(params));
