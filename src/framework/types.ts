/**
 * Shared types of the EPP: endpoints, requests, scheduling results.
 *
 * Shapes follow llm-d-router `pkg/epp/framework/interface/...` (reference/epp.md §2.1, §5.1–5.2),
 * rendered in TypeScript. The scheduler reads these as snapshots and never does I/O.
 */

/**
 * Metrics scraped from one endpoint (reference/epp.md §5.2, `Metrics{...}`).
 * Units: counts are requests; `kvCacheUsagePercent` is a fraction 0..1; `updateTime` is
 * ms since the epoch of the last successful scrape (0 = never scraped).
 */
export interface EndpointMetrics {
  /** `vllm:num_requests_waiting` */
  waitingQueueSize: number;
  /** `vllm:num_requests_running` */
  runningRequestsSize: number;
  /** `vllm:kv_cache_usage_perc`, fraction 0..1 */
  kvCacheUsagePercent: number;
  /** `vllm:cache_config_info{block_size}`, tokens per block (0 = unknown) */
  cacheBlockSize: number;
  /** `vllm:cache_config_info{num_gpu_blocks}` (0 = unknown) */
  cacheNumBlocks: number;
  /** running LoRA adapters (`vllm:lora_requests_info{running_lora_adapters}`) */
  activeModels: string[];
  /** waiting LoRA adapters */
  waitingModels: string[];
  /** `max_lora` (0 = unknown) */
  maxActiveModels: number;
  /** ms since the epoch of the last successful scrape; 0 = never */
  updateTime: number;
}

/** Empty metrics for an endpoint that was never scraped. */
export function emptyMetrics(): EndpointMetrics {
  return {
    waitingQueueSize: 0,
    runningRequestsSize: 0,
    kvCacheUsagePercent: 0,
    cacheBlockSize: 0,
    cacheNumBlocks: 0,
    activeModels: [],
    waitingModels: [],
    maxActiveModels: 0,
    updateTime: 0,
  };
}

/** Identity of one endpoint (reference/epp.md §5.1 "Endpoint metadata"). */
export interface EndpointMetadata {
  /** unique id, e.g. `default/server-0` or `127.0.0.1:8100` */
  id: string;
  name: string;
  namespace: string;
  /** IPv4 address or host name the proxy connects to */
  address: string;
  port: number;
  /** `address:port`, also the metrics host */
  hostPort: string;
  labels: Record<string, string>;
}

/**
 * A model server as the scheduler sees it: identity, a metrics snapshot, models it serves,
 * and an attribute map that data producers write for scorers to read
 * (e.g. {@link PREFIX_CACHE_MATCH_INFO}).
 */
export interface Endpoint {
  readonly metadata: EndpointMetadata;
  metrics: EndpointMetrics;
  /** model ids from the endpoint's `/v1/models` (base models and LoRA adapters); empty = unknown */
  models: ReadonlySet<string>;
  /** per-request attributes written by producers; cleared by the producer that owns the key */
  readonly attributes: Map<string, unknown>;
}

/** Token ids of a request's prompt, as produced by `token-producer`. */
export interface TokenizedPrompt {
  /** token ids (or packed-byte pseudo tokens for the `estimate` backend) */
  tokenIds: Uint32Array;
  /** which backend produced them: `estimate` ids are not engine token ids */
  source: "estimate" | "vllm";
}

/** Request attribute key of the {@link TokenizedPrompt}. */
export const TOKENIZED_PROMPT = "tokenized-prompt";

/**
 * Prefix-cache match for one endpoint, written by a prefix producer under
 * `prefix-match-info/<producer name>` (reference/epp.md §3.3, §3.5).
 */
export interface PrefixCacheMatchInfo {
  /** consecutive matched blocks from the start of the prompt */
  matchBlocks: number;
  /** blocks in the prompt */
  totalBlocks: number;
  /** tokens per block */
  blockSizeTokens: number;
}

/** Endpoint attribute key prefix of {@link PrefixCacheMatchInfo}, followed by the producer name. */
export const PREFIX_CACHE_MATCH_INFO = "prefix-match-info/";

/** Priority and objective of a request (reference/epp.md §1.3, §5.3). */
export interface RequestObjectives {
  /** higher = more important; < 0 = sheddable; default 0 */
  priority: number;
}

/**
 * One inference request inside the EPP. The body is parsed once by the router/ext_proc and
 * shared read-only; producers put typed attributes on it.
 */
export interface InferenceRequest {
  requestId: string;
  /** model the client asked for */
  incomingModel: string;
  /** model after rewrites, the one sent upstream */
  targetModel: string;
  /** request path, e.g. `/v1/chat/completions` */
  path: string;
  /** parsed JSON body */
  body: Record<string, unknown>;
  /** lower-cased request headers (client-supplied internal headers already removed) */
  headers: Record<string, string>;
  objectives: RequestObjectives;
  /** flow key for fairness (reference/epp.md §1.3) */
  fairnessId: string;
  /** bytes of the request body */
  requestSizeBytes: number;
  /** typed attributes (e.g. {@link TOKENIZED_PROMPT}, `peer-endpoint`) */
  readonly attributes: Map<string, unknown>;
}

/** An endpoint with its weighted score in one profile run. */
export interface ScoredEndpoint {
  endpoint: Endpoint;
  /** Σ clamp(score,0,1) × weight over the profile's scorers */
  score: number;
}

/** Result of one scheduling profile (reference/epp.md §2.1 `ProfileRunResult`). */
export interface ProfileRunResult {
  /** picked endpoints, best first (length ≤ picker `maxNumOfEndpoints`) */
  targetEndpoints: Endpoint[];
  /** every candidate with its score, as the picker saw them */
  scoredCandidates: ScoredEndpoint[];
}

/** Result of a scheduling cycle: per-profile results (null = the profile failed) and the primary. */
export interface SchedulingResult {
  profileResults: Record<string, ProfileRunResult | null>;
  primaryProfileName: string;
}

/**
 * In-flight load of one endpoint as tracked by `inflight-load-producer` (reference/epp.md §3.5):
 * requests sent to it and not yet complete, and their estimated tokens (prompt tokens, plus
 * estimated output tokens when `addEstimatedOutputTokens`; prompt tokens are released on the
 * first streamed chunk).
 */
export interface InflightLoad {
  /** requests in flight */
  requests: number;
  /** tokens in flight */
  tokens: number;
}

/** Endpoint attribute key of the {@link InflightLoad}, written by `inflight-load-producer`. */
export const INFLIGHT_LOAD = "inflight-load";

/** Request attribute: the endpoint the decode profile picked, published for the prefill stage (reference/epp.md §3.1). */
export const PEER_ENDPOINT = "peer-endpoint";

/** P/D decision types, as `disagg_decision_total{decision_type}` names them (reference/epp.md §7). */
export type DisaggDecisionType = "decode-only" | "prefill-decode" | "encode-decode" | "encode-prefill-decode";

/** Request attribute written by a disaggregating profile handler: what it decided, for metrics and the coordinator. */
export const DISAGG_DECISION = "disagg-decision";

/** Value of {@link DISAGG_DECISION}. */
export interface DisaggDecision {
  decisionType: DisaggDecisionType;
  /** name and type of the plugin that decided */
  pluginName: string;
  pluginType: string;
}

/**
 * The endpoint pool as a notification source sees it: `EndpointStore` (src/datalayer/store.ts)
 * satisfies it (`added` / `removed` events carrying the {@link Endpoint}).
 */
export interface EndpointEventSource {
  /** every endpoint currently in the pool */
  all(): Endpoint[];
  on(event: "added" | "removed", listener: (endpoint: Endpoint) => void): unknown;
  off(event: "added" | "removed", listener: (endpoint: Endpoint) => void): unknown;
}

/**
 * A data-layer extractor notified when endpoints join or leave the pool (llm-d
 * `EndpointExtractor`, reference/epp.md §5.2), e.g. `precise-prefix-cache-producer`, which
 * starts and stops a KV-event subscriber per endpoint.
 */
export interface EndpointExtractor {
  readonly name: string;
  endpointAdded(endpoint: Endpoint): void;
  endpointRemoved(endpoint: Endpoint): void;
}

/**
 * A data-layer source that follows the pool and notifies its extractors
 * (`endpoint-notification-source`, reference/epp.md §5.2). The runtime wires it from
 * `dataLayer.sources`: `addExtractor` for each extractor plugin listed under the source, then
 * `attachEndpointSource(store)` once; existing endpoints are replayed as `added`.
 */
export interface EndpointNotificationSource {
  readonly name: string;
  addExtractor(extractor: EndpointExtractor): void;
  attachEndpointSource(source: EndpointEventSource): void;
  /** stops following the pool */
  detach(): void;
}

/** Whether a plugin is an {@link EndpointExtractor}. */
export const isEndpointExtractor = (p: object): p is EndpointExtractor =>
  typeof (p as EndpointExtractor).endpointAdded === "function" &&
  typeof (p as EndpointExtractor).endpointRemoved === "function";

/** Whether a plugin is an {@link EndpointNotificationSource}. */
export const isEndpointNotificationSource = (p: object): p is EndpointNotificationSource =>
  typeof (p as EndpointNotificationSource).attachEndpointSource === "function" &&
  typeof (p as EndpointNotificationSource).addExtractor === "function";

/**
 * A plugin with Prometheus metrics of its own: the runtime calls `registerMetrics` once with
 * the EPP's registry.
 */
export interface MetricsRegistrant {
  registerMetrics(registry: import("prom-client").Registry): void;
}

/** Whether a plugin is a {@link MetricsRegistrant}. */
export const isMetricsRegistrant = (p: object): p is MetricsRegistrant =>
  typeof (p as MetricsRegistrant).registerMetrics === "function";

/** A plugin holding sockets or timers: the runtime calls `close` on shutdown. */
export interface ClosablePlugin {
  close(): Promise<void>;
}

/** Whether a plugin is a {@link ClosablePlugin}. */
export const isClosablePlugin = (p: object): p is ClosablePlugin =>
  typeof (p as ClosablePlugin).close === "function";
