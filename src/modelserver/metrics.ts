/**
 * `/metrics` of the model server: vLLM's metric families with vLLM's names, types, labels
 * and buckets (reference/engine.md §2, compared against
 * `shared/fixtures/vllm/metric-families-v0.26.0.txt`), one prom-client registry per server.
 *
 * - Gauges and cumulative counters are read from {@link Engine.stats} at scrape time.
 * - Histograms are {@link FastHistogram}s: fixed label set, an array of bucket counts, no label
 *   hashing or validation per observation (prom-client's labelled children re-hash their labels
 *   on every `observe`); prom-client only renders them. Latencies are **wall-clock seconds as a client sees them**; with the sim's
 *   `--time-scale` > 1 they shrink by that factor.
 * - Labels: `model_name` (first served model name) and `engine="0"` on every vLLM family;
 *   `vllm:cache_config_info` carries CacheConfig fields + `engine` (value 1);
 *   `vllm:lora_requests_info{max_lora,running_lora_adapters,waiting_lora_adapters}` is always
 *   emitted as the sim does (value = Unix seconds, no adapters).
 * - `vllm:request_success_total{finished_reason}` is pre-created for stop, length, abort.
 */
import { FastHistogram } from "../metrics/fast-histogram.js";
import { Counter, Gauge, Registry } from "prom-client";
import * as N from "../metrics/vllm-names.js";
import type { Engine, EngineFinish, EngineObserver, FinishReason } from "./engine.js";

/** TTFT buckets, seconds (reference/engine.md §2.4). */
export const TTFT_BUCKETS = [
  0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0,
  80.0, 160.0, 640.0, 2560.0,
];
/** ITL / TPOT buckets, seconds (reference/engine.md §2.4). */
export const ITL_BUCKETS = [
  0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
];
/** Request phase latency buckets, seconds (reference/engine.md §2.4). */
export const REQUEST_LATENCY_BUCKETS = [
  0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10, 15, 20, 30, 40, 50, 60, 120, 240, 480, 960, 1920, 7680,
];
/** `vllm:iteration_tokens_total` buckets (reference/engine.md §2.3). */
export const ITERATION_TOKENS_BUCKETS = [1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384];
/** `vllm:nixl_xfer_time_seconds` buckets, seconds (reference/engine.md §2.5). */
export const NIXL_XFER_TIME_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 5.0];
/** `vllm:nixl_post_time_seconds` buckets, seconds (the xfer buckets plus 0.001). */
export const NIXL_POST_TIME_BUCKETS = [0.001, ...NIXL_XFER_TIME_BUCKETS];
/** `vllm:nixl_bytes_transferred` buckets: 2 KiB … 8 GiB in ×4 steps (2^11 … 2^33). */
export const NIXL_BYTES_BUCKETS = Array.from({ length: 12 }, (_, i) => 2 ** (11 + 2 * i));
/** `vllm:nixl_num_descriptors` buckets. */
export const NIXL_DESCRIPTORS_BUCKETS = [10, 20, 30, 50, 75, 100, 200, 400, 1000, 2000, 4000, 10000, 20000, 50000];
/** `vllm:request_params_n` buckets. */
export const PARAMS_N_BUCKETS = [1, 2, 5, 10, 20];

/** vLLM `build_1_2_5_buckets(max)`: 1, 2, 5, 10, 20, 50, … up to `max` inclusive. */
export function buckets125(max: number): number[] {
  const out: number[] = [];
  for (let exp = 1; ; exp *= 10) {
    for (const m of [1, 2, 5]) {
      const v = m * exp;
      if (v > max) return out;
      out.push(v);
    }
  }
}

/** Options of {@link ModelServerMetrics}. */
export interface ModelServerMetricsOptions {
  /** `model_name` label value */
  modelName: string;
  /** `max_lora` label of `vllm:lora_requests_info` (default 1, as the sim) */
  maxLoras?: number;
}

type Child = { observe(v: number): void };

/** The metrics of one model server. */
export class ModelServerMetrics {
  readonly registry = new Registry();
  private readonly ttft: Child;
  private readonly itl: Child;
  private readonly tpot: Child;
  private readonly reqTpot: Child;
  private readonly e2e: Child;
  private readonly queue: Child;
  private readonly inference: Child;
  private readonly prefill: Child;
  private readonly decode: Child;
  private readonly promptTokens: Child;
  private readonly genTokens: Child;
  private readonly maxTokensParam: Child;
  private readonly paramsN: Child;
  private readonly prefillComputed: Child;
  private readonly maxGenTokens: Child;
  private readonly cachedTokens: { inc(v?: number): void };
  private readonly iteration: Child;
  private readonly success: Record<FinishReason, { inc(v?: number): void }>;
  /** engine observer feeding `vllm:iteration_tokens_total` (the server registers it) */
  readonly observer: EngineObserver;

  constructor(engine: Engine, opts: ModelServerMetricsOptions) {
    const reg = this.registry;
    const base = { model_name: opts.modelName, engine: "0" };
    const labelNames = ["model_name", "engine"] as const;
    const info = engine.info;

    const gauge = (name: string, help: string, read: () => number) => {
      const g = new Gauge({
        name,
        help,
        labelNames,
        registers: [reg],
        collect() {
          child.set(read());
        },
      });
      const child = g.labels(base);
    };
    gauge(
      N.VLLM_NUM_REQUESTS_RUNNING,
      "Number of requests in model execution batches.",
      () => engine.stats().running,
    );
    gauge(
      N.VLLM_NUM_REQUESTS_WAITING,
      "Number of requests waiting to be processed.",
      () => engine.stats().waiting,
    );
    gauge(
      N.VLLM_KV_CACHE_USAGE_PERC,
      "KV-cache usage. 1 means 100 percent usage.",
      () => engine.stats().kvCacheUsage,
    );

    const byReason = new Gauge({
      name: N.VLLM_NUM_REQUESTS_WAITING_BY_REASON,
      help: "Number of requests waiting, by reason (capacity: no room in the batch or KV cache).",
      labelNames: ["model_name", "engine", "reason"],
      registers: [reg],
      collect() {
        capacity.set(engine.stats().waiting);
        deferred.set(0);
      },
    });
    const capacity = byReason.labels({ ...base, reason: "capacity" });
    const deferred = byReason.labels({ ...base, reason: "deferred" });

    const cacheInfo = new Gauge({
      name: N.VLLM_CACHE_CONFIG_INFO,
      help: "Information of the LLMEngine CacheConfig",
      labelNames: [
        "block_size",
        "cache_dtype",
        "enable_prefix_caching",
        "engine",
        "gpu_memory_utilization",
        "num_cpu_blocks",
        "num_gpu_blocks",
        "prefix_caching_hash_algo",
      ],
      registers: [reg],
    });
    cacheInfo
      .labels({
        block_size: String(info.blockSize),
        cache_dtype: "auto",
        enable_prefix_caching: "True",
        engine: "0",
        gpu_memory_utilization: "0.9",
        num_cpu_blocks: "None",
        num_gpu_blocks: String(info.numGpuBlocks),
        prefix_caching_hash_algo: "xxhash",
      })
      .set(1);

    const maxLora = String(opts.maxLoras ?? 1);
    const lora = new Gauge({
      name: N.VLLM_LORA_REQUESTS_INFO,
      help: "Running stats on lora requests.",
      labelNames: ["max_lora", "running_lora_adapters", "waiting_lora_adapters"],
      registers: [reg],
      collect() {
        loraChild.set(Date.now() / 1000);
      },
    });
    const loraChild = lora.labels({
      max_lora: maxLora,
      running_lora_adapters: "",
      waiting_lora_adapters: "",
    });

    const counter = (name: string, help: string, read: () => number) => {
      let last = 0;
      const c = new Counter({
        name,
        help,
        labelNames,
        registers: [reg],
        collect() {
          const v = read();
          if (v > last) child.inc(v - last);
          last = v;
        },
      });
      const child = c.labels(base);
      child.inc(0);
    };
    counter(
      N.VLLM_PREFIX_CACHE_QUERIES_TOTAL,
      "Prefix cache queries, in terms of number of queried tokens.",
      () => engine.stats().prefixCacheQueries,
    );
    counter(
      N.VLLM_PREFIX_CACHE_HITS_TOTAL,
      "Prefix cache hits, in terms of number of cached tokens.",
      () => engine.stats().prefixCacheHits,
    );
    counter(
      N.VLLM_PROMPT_TOKENS_TOTAL,
      "Number of prefill tokens processed.",
      () => engine.stats().promptTokens,
    );
    counter(
      N.VLLM_GENERATION_TOKENS_TOTAL,
      "Number of generation tokens processed.",
      () => engine.stats().generationTokens,
    );
    counter(
      N.VLLM_NUM_PREEMPTIONS_TOTAL,
      "Cumulative number of preemption from the engine.",
      () => engine.stats().preemptions,
    );

    counter(
      N.VLLM_EXTERNAL_PREFIX_CACHE_QUERIES_TOTAL,
      "External prefix cache queries from KV connector cross-instance cache sharing, in terms of number of queried tokens.",
      () => 0,
    );
    counter(
      N.VLLM_EXTERNAL_PREFIX_CACHE_HITS_TOTAL,
      "External prefix cache hits from KV connector cross-instance cache sharing, in terms of number of cached tokens.",
      () => 0,
    );
    this.cachedTokens = new Counter({
      name: N.VLLM_PROMPT_TOKENS_CACHED_TOTAL,
      help: "Number of cached prompt tokens (local prefix cache hits), counted when a request finishes.",
      labelNames,
      registers: [reg],
    }).labels(base);
    this.cachedTokens.inc(0);

    const success = new Counter({
      name: N.VLLM_REQUEST_SUCCESS_TOTAL,
      help: "Count of successfully processed requests.",
      labelNames: ["model_name", "engine", "finished_reason"],
      registers: [reg],
    });
    this.success = {
      stop: success.labels({ ...base, finished_reason: "stop" }),
      length: success.labels({ ...base, finished_reason: "length" }),
      abort: success.labels({ ...base, finished_reason: "abort" }),
    };
    for (const c of Object.values(this.success)) c.inc(0);

    const hist = (name: string, help: string, buckets: number[]): Child => {
      // FastHistogram implements the registry's metric contract (see its doc).
      return new FastHistogram(name, help, buckets, Object.keys(base), [reg]).labels(base);
    };
    this.ttft = hist(
      N.VLLM_TIME_TO_FIRST_TOKEN_SECONDS,
      "Histogram of time to first token in seconds.",
      TTFT_BUCKETS,
    );
    this.itl = hist(
      N.VLLM_INTER_TOKEN_LATENCY_SECONDS,
      "Histogram of inter-token latency in seconds.",
      ITL_BUCKETS,
    );
    this.tpot = hist(
      N.VLLM_TIME_PER_OUTPUT_TOKEN_SECONDS,
      "Histogram of time per output token in seconds. DEPRECATED: use vllm:inter_token_latency_seconds.",
      ITL_BUCKETS,
    );
    this.reqTpot = hist(
      N.VLLM_REQUEST_TIME_PER_OUTPUT_TOKEN_SECONDS,
      "Histogram of time_per_output_token_seconds per request.",
      ITL_BUCKETS,
    );
    this.e2e = hist(
      N.VLLM_E2E_REQUEST_LATENCY_SECONDS,
      "Histogram of e2e request latency in seconds.",
      REQUEST_LATENCY_BUCKETS,
    );
    this.queue = hist(
      N.VLLM_REQUEST_QUEUE_TIME_SECONDS,
      "Histogram of time spent in WAITING phase for request.",
      REQUEST_LATENCY_BUCKETS,
    );
    this.inference = hist(
      N.VLLM_REQUEST_INFERENCE_TIME_SECONDS,
      "Histogram of time spent in RUNNING phase for request.",
      REQUEST_LATENCY_BUCKETS,
    );
    this.prefill = hist(
      N.VLLM_REQUEST_PREFILL_TIME_SECONDS,
      "Histogram of time spent in PREFILL phase for request.",
      REQUEST_LATENCY_BUCKETS,
    );
    this.decode = hist(
      N.VLLM_REQUEST_DECODE_TIME_SECONDS,
      "Histogram of time spent in DECODE phase for request.",
      REQUEST_LATENCY_BUCKETS,
    );
    const sizeBuckets = buckets125(info.maxModelLen);
    this.promptTokens = hist(
      N.VLLM_REQUEST_PROMPT_TOKENS,
      "Number of prefill tokens processed.",
      sizeBuckets,
    );
    this.genTokens = hist(
      N.VLLM_REQUEST_GENERATION_TOKENS,
      "Number of generation tokens processed.",
      sizeBuckets,
    );
    this.prefillComputed = hist(
      N.VLLM_REQUEST_PREFILL_KV_COMPUTED_TOKENS,
      "Histogram of new KV tokens computed during prefill (prompt tokens minus cached tokens).",
      sizeBuckets,
    );
    this.maxGenTokens = hist(
      N.VLLM_REQUEST_MAX_NUM_GENERATION_TOKENS,
      "Histogram of maximum number of requested generation tokens.",
      sizeBuckets,
    );
    this.maxTokensParam = hist(
      N.VLLM_REQUEST_PARAMS_MAX_TOKENS,
      "Histogram of the max_tokens request parameter.",
      sizeBuckets,
    );
    this.paramsN = hist(N.VLLM_REQUEST_PARAMS_N, "Histogram of the n request parameter.", PARAMS_N_BUCKETS);
    this.iteration = hist(
      N.VLLM_ITERATION_TOKENS_TOTAL,
      "Histogram of number of tokens per engine_step.",
      ITERATION_TOKENS_BUCKETS,
    );
    const xferTime = hist(
      N.VLLM_NIXL_XFER_TIME_SECONDS,
      "Histogram of transfer duration for KV cache transfers.",
      NIXL_XFER_TIME_BUCKETS,
    );
    const postTime = hist(
      N.VLLM_NIXL_POST_TIME_SECONDS,
      "Histogram of transfer post time for KV cache transfers.",
      NIXL_POST_TIME_BUCKETS,
    );
    const xferBytes = hist(
      N.VLLM_NIXL_BYTES_TRANSFERRED,
      "Number of bytes transferred per KV cache transfer.",
      NIXL_BYTES_BUCKETS,
    );
    const descriptors = hist(
      N.VLLM_NIXL_NUM_DESCRIPTORS,
      "Number of descriptors per KV cache transfer.",
      NIXL_DESCRIPTORS_BUCKETS,
    );
    const nixlCounter = (name: string, help: string) => {
      const c = new Counter({ name, help, labelNames, registers: [reg] }).labels(base);
      c.inc(0); // exposed at 0 from the start (dashboards show 0, not "No Data")
      return c;
    };
    const failed = nixlCounter(N.VLLM_NIXL_NUM_FAILED_TRANSFERS_TOTAL, "Number of failed NIXL KV cache transfers.");
    const failedNotify = nixlCounter(
      N.VLLM_NIXL_NUM_FAILED_NOTIFICATIONS_TOTAL,
      "Number of failed NIXL KV cache notifications.",
    );
    const expired = nixlCounter(
      N.VLLM_NIXL_NUM_KV_EXPIRED_REQS_TOTAL,
      "Number of requests whose KV held for a remote decode expired before it was read.",
    );
    this.observer = {
      onIteration: (t) => this.iteration.observe(t),
      onKvTransfer: (e) => {
        if (e.kind === "expired") expired.inc();
        else if (e.kind === "notify") {
          // notification outcome only
        } else if (!e.ok) failed.inc();
        else {
          xferTime.observe(e.xferS);
          postTime.observe(e.postS);
          xferBytes.observe(e.bytes);
          descriptors.observe(e.descriptors);
        }
        if (e.notifyFailed) failedNotify.inc();
      },
    };
  }

  /** First token of a request arrived, `s` seconds after the request. */
  observeTtft(s: number): void {
    this.ttft.observe(s);
  }

  /** A later token arrived `s` seconds after the previous one. */
  observeItl(s: number): void {
    this.itl.observe(s);
    this.tpot.observe(s);
  }

  /**
   * A request finished.
   * @param e2eS arrival → last output, seconds
   * @param decodeSpanS first → last token, seconds (for the per-request mean TPOT)
   * @param maxTokens the effective max_tokens parameter
   */
  observeFinish(fin: EngineFinish, e2eS: number, decodeSpanS: number, maxTokens: number): void {
    this.success[fin.reason].inc();
    this.e2e.observe(e2eS);
    const t = fin.timings;
    this.queue.observe(t.queueS);
    this.inference.observe(t.inferenceS);
    this.prefill.observe(t.prefillS);
    this.decode.observe(t.decodeS);
    this.promptTokens.observe(fin.usage.promptTokens);
    this.genTokens.observe(fin.usage.completionTokens);
    this.maxTokensParam.observe(maxTokens);
    this.maxGenTokens.observe(fin.usage.completionTokens);
    this.prefillComputed.observe(fin.usage.promptTokens - fin.usage.cachedTokens);
    this.cachedTokens.inc(fin.usage.cachedTokens);
    this.paramsN.observe(1);
    if (fin.usage.completionTokens > 1) this.reqTpot.observe(decodeSpanS / (fin.usage.completionTokens - 1));
  }

  /** Prometheus text exposition. */
  metrics(): Promise<string> {
    return this.registry.metrics();
  }

  /** Content type of {@link metrics}. */
  get contentType(): string {
    return this.registry.contentType;
  }
}
