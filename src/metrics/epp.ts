/**
 * EPP Prometheus metrics with typed handles and dual emission of the deprecated twins.
 *
 * Every handle writes the canonical `llm_d_epp_*` series and, where reference/epp.md §7 lists
 * one, the deprecated twin (`inference_objective_*`, `inference_pool_*`,
 * `inference_extension_*`, `llm_d_inference_scheduler_*`) with the same value.
 * `model_name`, `target_model_name` and `fairness_id` are capped at 1000 distinct values each;
 * later values are reported as `other`.
 *
 * Source: llm-d-router `docs/metrics.md`, `pkg/epp/metrics/metrics.go` (reference/epp.md §7).
 */
import { Gauge, Registry } from "prom-client";
import { FastCounter, FastGauge } from "./fast-counter.js";
import { FastHistogram, type FastSeries } from "./fast-histogram.js";
import * as N from "./epp-names.js";

/** Labels of the request/latency family. `priority` is the objective priority (integer). */
export interface RequestLabels {
  modelName: string;
  targetModelName: string;
  fairnessId: string;
  priority: number;
}

/** A counter over request labels. */
export interface RequestCounter {
  inc(labels: RequestLabels, n?: number): void;
}

/** A histogram over request labels. */
export interface RequestHistogram {
  observe(labels: RequestLabels, value: number): void;
}

/** One series (and its deprecated twin, when there is one) of a request label set. */
export interface SeriesObserver {
  observe(value: number): void;
}

/**
 * Every request-labelled series of one label set, resolved once per request by the hot path
 * (`src/requestcontrol/pipeline.ts`) instead of a label lookup per observation; each handle
 * writes the canonical series and its deprecated twin like the labelled methods do.
 */
export interface RequestSeries {
  total: { inc(): void };
  sizeBytes: SeriesObserver;
  responseSizeBytes: SeriesObserver;
  duration: SeriesObserver;
  inputTokens: SeriesObserver;
  outputTokens: SeriesObserver;
  cachedTokens: SeriesObserver;
  ntpot: SeriesObserver;
  ttft: SeriesObserver;
  streamingTtft: SeriesObserver;
  streamingItl: SeriesObserver;
  running: { inc(): void; dec(): void };
}

/** A pool-level gauge, labelled with the pool name (`name`). */
export interface PoolGauge {
  set(poolName: string, value: number): void;
}

/** Where a scheduling attempt landed (labels of `scheduler_attempts_total`). */
export interface SchedulerAttemptTarget {
  targetModelName: string;
  endpointName: string;
  namespace: string;
  port: number | string;
}

/** Typed handles of every EPP metric; see {@link createEppMetrics}. */
export interface EppMetrics {
  readonly registry: Registry;
  /** Prometheus text exposition of {@link registry}. */
  metricsText(): Promise<string>;

  /** the request series of `labels` (see {@link RequestSeries}) */
  requestSeries(labels: RequestLabels): RequestSeries;
  requestTotal: RequestCounter;
  /** error_code: an EppErrorCode or `ModelServerError`… */
  requestErrorTotal: { inc(labels: RequestLabels, errorCode: string): void };
  /** seconds, end to end */
  requestDuration: RequestHistogram;
  /** bytes */
  requestSizeBytes: RequestHistogram;
  /** bytes */
  responseSizeBytes: RequestHistogram;
  /** tokens */
  requestInputTokens: RequestHistogram;
  requestOutputTokens: RequestHistogram;
  requestCachedTokens: RequestHistogram;
  /** seconds per output token (normalized) */
  requestNtpot: RequestHistogram;
  /** seconds to first token (every request) */
  requestTtft: RequestHistogram;
  /** seconds to first token, streaming requests */
  requestStreamingTtft: RequestHistogram;
  /** seconds per output token, streaming */
  requestStreamingTpot: RequestHistogram;
  /** seconds between streamed tokens */
  requestStreamingItl: RequestHistogram;
  /** requests in flight */
  requestRunning: { inc(labels: RequestLabels): void; dec(labels: RequestLabels): void };

  readyEndpoints: PoolGauge;
  /** fraction 0..1 */
  averageKvCacheUtilization: PoolGauge;
  averageQueueSize: PoolGauge;
  averageRunningRequests: PoolGauge;

  /** seconds for one `Scheduler.schedule` */
  schedulerE2eDuration: { observe(seconds: number): void };
  /** status `success` | `failure`; target labels empty on failure */
  schedulerAttemptsTotal: { inc(status: "success" | "failure", target?: SchedulerAttemptTarget): void };
  /** seconds for one plugin call at an extension point (`Filter`, `Scorer`, `DataProducer`…) */
  pluginDuration: {
    observe(extensionPoint: string, pluginType: string, pluginName: string, seconds: number): void;
    /** the series of one plugin at one extension point, for callers that time it on every request */
    series(extensionPoint: string, pluginType: string, pluginName: string): SeriesObserver;
  };
  /** seconds of EPP overhead on the request / response path */
  requestProcessingDuration: { observe(seconds: number): void };
  responseProcessingDuration: { observe(seconds: number): void };

  /** entries in a prefix index; `set` for a value, `track` for a callback read at each scrape */
  prefixIndexerSize: {
    set(pluginName: string, pluginType: string, size: number): void;
    track(pluginName: string, pluginType: string, size: () => number): void;
  };
  /** matched / total blocks, 0..1 */
  prefixIndexerHitRatio: { observe(pluginName: string, pluginType: string, ratio: number): void };
  /** matched bytes (≈ tokens × 4) */
  prefixIndexerHitBytes: { observe(pluginName: string, pluginType: string, bytes: number): void };

  disaggDecisionTotal: {
    inc(l: {
      pluginName: string;
      pluginType: string;
      modelName: string;
      decisionType: N.DisaggDecisionType;
    }): void;
  };
  pdDecisionTotal: { inc(modelName: string, decisionType: string): void };

  /** sets `info{commit,build_ref} 1` */
  info: { set(commit: string, buildRef: string): void };
}

/**
 * Keeps at most `cap` distinct values of a label; later new values map to `other`.
 * The first `cap` values seen are kept forever (no eviction), as the EPP does.
 */
export class LabelCapper {
  private readonly seen = new Set<string>();
  constructor(private readonly cap: number = N.LABEL_CARDINALITY_CAP) {}
  /** The value to emit for `v`. */
  map(v: string): string {
    if (this.seen.has(v)) return v;
    if (this.seen.size >= this.cap) return N.LABEL_OVERFLOW_VALUE;
    this.seen.add(v);
    return v;
  }
}

// Buckets (reference/epp.md §7; GIE/llm-d metrics.go).
const DURATION_BUCKETS = [
  0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 45, 60, 120,
  180, 240, 300, 360, 480, 600, 900, 1200, 1800, 2700, 3600,
];
const SIZE_BUCKETS = [
  64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072, 262144, 524288, 1048576, 2097152,
  4194304, 8388608, 16777216, 33554432, 67108864, 134217728, 268435456, 536870912, 1073741824,
];
const TOKEN_BUCKETS = [
  1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072, 262144, 524288,
  1048576,
];
const NTPOT_BUCKETS = [
  0.001, 0.002, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.125, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1, 1.5,
  2, 3, 4.5, 6, 10,
];
const SCHEDULER_BUCKETS = [0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1];
const RATIO_BUCKETS = [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1];
const HIT_BYTES_BUCKETS = [
  0, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072, 262144, 524288, 1048576,
];

const REQ_LABELS = [N.LABEL_MODEL_NAME, N.LABEL_TARGET_MODEL_NAME, N.LABEL_FAIRNESS_ID, N.LABEL_PRIORITY];
/** Deprecated `inference_objective_*` twins carry no fairness_id (reference/epp.md §7). */
const REQ_LABELS_DEPRECATED = [N.LABEL_MODEL_NAME, N.LABEL_TARGET_MODEL_NAME, N.LABEL_PRIORITY];
const PLUGIN_LABELS = [N.LABEL_EXTENSION_POINT, N.LABEL_PLUGIN_TYPE, N.LABEL_PLUGIN_NAME];
const INDEXER_LABELS = [N.LABEL_PLUGIN_NAME, N.LABEL_PLUGIN_TYPE];

type Labels = Record<string, string>;

/** Cached labelled children beyond this many keys are dropped (bounds memory under label churn). */
const CHILD_CACHE_LIMIT = 4096;

/**
 * Memoises `make(labels)` by a string key: prom-client hashes (sorts and joins) the label
 * object on every `observe(labels, v)`, which dominated the router's per-request cost; a
 * labelled child is looked up once per label set instead.
 */
function childCache<C>(make: (labels: Labels) => C): (key: string, labels: () => Labels) => C {
  let map = new Map<string, C>();
  return (key, labels) => {
    let c = map.get(key);
    if (c === undefined) {
      if (map.size >= CHILD_CACHE_LIMIT) map = new Map();
      c = make(labels());
      map.set(key, c);
    }
    return c;
  };
}

const reqKey = (l: RequestLabels): string =>
  `${l.modelName}\u0000${l.targetModelName}\u0000${l.fairnessId}\u0000${l.priority}`;

/** {@link childCache} keyed by request labels: `make` gets the capped label values. */
function requestChildCache<C>(
  make: (labels: Labels) => C,
  reqLabels: (l: RequestLabels) => Labels,
): (l: RequestLabels) => C {
  let map = new Map<string, C>();
  return (l) => {
    const key = reqKey(l);
    let c = map.get(key);
    if (c === undefined) {
      if (map.size >= CHILD_CACHE_LIMIT) map = new Map();
      c = make(reqLabels(l));
      map.set(key, c);
    }
    return c;
  };
}

/**
 * Creates every EPP metric on `registry` (a fresh `Registry` when omitted).
 * Throws if the registry already holds a metric of the same name (prom-client).
 */
export function createEppMetrics(registry: Registry = new Registry()): EppMetrics {
  const models = new LabelCapper();
  const targets = new LabelCapper();
  const fairness = new LabelCapper();
  const regs = [registry];

  const reqLabels = (l: RequestLabels): Labels => ({
    [N.LABEL_MODEL_NAME]: models.map(l.modelName),
    [N.LABEL_TARGET_MODEL_NAME]: targets.map(l.targetModelName),
    [N.LABEL_FAIRNESS_ID]: fairness.map(l.fairnessId),
    [N.LABEL_PRIORITY]: String(l.priority),
  });
  const depLabels = (full: Labels): Labels => ({
    [N.LABEL_MODEL_NAME]: full[N.LABEL_MODEL_NAME],
    [N.LABEL_TARGET_MODEL_NAME]: full[N.LABEL_TARGET_MODEL_NAME],
    [N.LABEL_PRIORITY]: full[N.LABEL_PRIORITY],
  });

  const gauge = (name: string, help: string, labelNames: string[]) =>
    new Gauge({ name, help, labelNames, registers: regs });
  const hist = (name: string, help: string, labelNames: string[], buckets: number[]) =>
    new FastHistogram(name, help, buckets, labelNames, regs);
  // hot-path counters and gauges (every request): series looked up once per label set
  const fastCounter = (name: string, help: string, labelNames: string[]) =>
    new FastCounter(name, help, labelNames, regs);
  const fastGauge = (name: string, help: string, labelNames: string[]) =>
    new FastGauge(name, help, labelNames, regs);

  const reqHist = (
    name: string,
    dep: string | undefined,
    help: string,
    buckets: number[],
  ): RequestHistogram & { seriesOf(full: Labels): SeriesObserver } => {
    const cur = hist(name, help, REQ_LABELS, buckets);
    const old = dep
      ? hist(dep, `${help} (deprecated, use ${name})`, REQ_LABELS_DEPRECATED, buckets)
      : undefined;
    const seriesOf = (full: Labels): SeriesObserver => {
      const c = cur.labels(full);
      const o = old?.labels(depLabels(full));
      return o
        ? {
            observe(v) {
              c.observe(v);
              o.observe(v);
            },
          }
        : c;
    };
    const series = requestChildCache(seriesOf, reqLabels);
    return {
      seriesOf,
      observe(l, v) {
        series(l).observe(v);
      },
    };
  };
  const poolGauge = (name: string, dep: string, help: string): PoolGauge => {
    const cur = gauge(name, help, [N.LABEL_POOL_NAME]);
    const old = gauge(dep, `${help} (deprecated, use ${name})`, [N.LABEL_POOL_NAME]);
    return {
      set(pool, v) {
        cur.set({ [N.LABEL_POOL_NAME]: pool }, v);
        old.set({ [N.LABEL_POOL_NAME]: pool }, v);
      },
    };
  };

  // request_total / errors
  const reqTotal = fastCounter(N.REQUEST_TOTAL, "Requests received by the EPP.", REQ_LABELS);
  const reqTotalDep = fastCounter(
    N.REQUEST_TOTAL_DEPRECATED,
    "Deprecated twin of llm_d_epp_request_total.",
    REQ_LABELS_DEPRECATED,
  );
  const reqTotalChildrenOf = (full: Labels) => ({
    cur: reqTotal.labels(full),
    old: reqTotalDep.labels(depLabels(full)),
  });
  const reqTotalChildren = requestChildCache(reqTotalChildrenOf, reqLabels);
  const errTotal = fastCounter(N.REQUEST_ERROR_TOTAL, "Requests that failed, by error code.", [
    ...REQ_LABELS,
    N.LABEL_ERROR_CODE,
  ]);
  const errTotalDep = fastCounter(
    N.REQUEST_ERROR_TOTAL_DEPRECATED,
    "Deprecated twin of llm_d_epp_request_error_total.",
    [...REQ_LABELS_DEPRECATED, N.LABEL_ERROR_CODE],
  );
  const errChildren = childCache((full) => ({
    cur: errTotal.labels(full),
    old: errTotalDep.labels({ ...depLabels(full), [N.LABEL_ERROR_CODE]: full[N.LABEL_ERROR_CODE]! }),
  }));
  const running = fastGauge(N.REQUEST_RUNNING, "Requests in flight.", REQ_LABELS);
  const runningDep = fastGauge(
    N.REQUEST_RUNNING_DEPRECATED,
    "Deprecated twin of llm_d_epp_request_running.",
    [N.LABEL_MODEL_NAME],
  );

  const runningChildrenOf = (full: Labels) => ({
    cur: running.labels(full),
    old: runningDep.labels({ [N.LABEL_MODEL_NAME]: full[N.LABEL_MODEL_NAME]! }),
  });
  const runningChildren = requestChildCache(runningChildrenOf, reqLabels);

  // scheduler / plugins
  const schedE2e = hist(
    N.SCHEDULER_E2E_DURATION_SECONDS,
    "Scheduling latency in seconds.",
    [],
    SCHEDULER_BUCKETS,
  );
  const schedE2eDep = hist(
    N.SCHEDULER_E2E_DURATION_SECONDS_DEPRECATED,
    "Deprecated twin of llm_d_epp_scheduler_e2e_duration_seconds.",
    [],
    SCHEDULER_BUCKETS,
  );
  // label order as written: status, target_model_name, namespace, port, endpoint/pod name
  const attempts = fastCounter(N.SCHEDULER_ATTEMPTS_TOTAL, "Scheduling attempts by status.", [
    N.LABEL_STATUS,
    N.LABEL_TARGET_MODEL_NAME,
    N.LABEL_NAMESPACE,
    N.LABEL_PORT,
    N.LABEL_ENDPOINT_NAME,
  ]);
  const attemptsDep = fastCounter(
    N.SCHEDULER_ATTEMPTS_TOTAL_DEPRECATED,
    "Deprecated twin of llm_d_epp_scheduler_attempts_total.",
    [N.LABEL_STATUS, N.LABEL_TARGET_MODEL_NAME, N.LABEL_NAMESPACE, N.LABEL_PORT, N.LABEL_POD_NAME],
  );
  const attemptChildren = childCache((l) => ({
    cur: attempts.labels(l),
    old: attemptsDep.labels({ ...l, [N.LABEL_POD_NAME]: l[N.LABEL_ENDPOINT_NAME]! }),
  }));
  const pluginDur = hist(
    N.PLUGIN_DURATION_SECONDS,
    "Plugin latency in seconds.",
    PLUGIN_LABELS,
    SCHEDULER_BUCKETS,
  );
  const pluginDurDep = hist(
    N.PLUGIN_DURATION_SECONDS_DEPRECATED,
    "Deprecated twin of llm_d_epp_plugin_duration_seconds.",
    PLUGIN_LABELS,
    SCHEDULER_BUCKETS,
  );
  const pluginChildren = childCache((l) => ({ cur: pluginDur.labels(l), old: pluginDurDep.labels(l) }));
  // extension point → plugin type → plugin name → series: no key string built per observation
  const pluginSeries = new Map<string, Map<string, Map<string, ReturnType<typeof pluginChildren>>>>();
  const pluginSeriesOf = (ep: string, type: string, name: string) => {
    let byType = pluginSeries.get(ep);
    if (byType === undefined) {
      byType = new Map();
      pluginSeries.set(ep, byType);
    }
    let byName = byType.get(type);
    if (byName === undefined) {
      byName = new Map();
      byType.set(type, byName);
    }
    let c = byName.get(name);
    if (c === undefined) {
      c = pluginChildren(`${ep}\u0000${type}\u0000${name}`, () => ({
        [N.LABEL_EXTENSION_POINT]: ep,
        [N.LABEL_PLUGIN_TYPE]: type,
        [N.LABEL_PLUGIN_NAME]: name,
      }));
      // bounded like the child cache: plugins are configured, so this stays small
      if (byName.size < CHILD_CACHE_LIMIT) byName.set(name, c);
    }
    return c;
  };
  const reqProc = hist(
    N.REQUEST_PROCESSING_DURATION_SECONDS,
    "EPP processing time on the request path in seconds.",
    [],
    SCHEDULER_BUCKETS,
  );
  const respProc = hist(
    N.RESPONSE_PROCESSING_DURATION_SECONDS,
    "EPP processing time on the response path in seconds.",
    [],
    SCHEDULER_BUCKETS,
  );

  // prefix indexer
  const sizeProviders = new Map<string, { labels: Labels; size: () => number }>();
  const collectSizes = (g: Gauge) => {
    for (const { labels, size } of sizeProviders.values()) g.set(labels, size());
  };
  const idxSize: Gauge = new Gauge({
    name: N.PREFIX_INDEXER_SIZE,
    help: "Entries in the prefix index.",
    labelNames: INDEXER_LABELS,
    registers: regs,
    collect() {
      collectSizes(idxSize);
    },
  });
  const idxSizeDep: Gauge = new Gauge({
    name: N.PREFIX_INDEXER_SIZE_DEPRECATED,
    help: "Deprecated twin of llm_d_epp_prefix_indexer_size.",
    labelNames: INDEXER_LABELS,
    registers: regs,
    collect() {
      collectSizes(idxSizeDep);
    },
  });
  const hitRatio = hist(
    N.PREFIX_INDEXER_HIT_RATIO,
    "Prefix cache hit ratio (matched/total blocks).",
    INDEXER_LABELS,
    RATIO_BUCKETS,
  );
  const hitRatioDep = hist(
    N.PREFIX_INDEXER_HIT_RATIO_DEPRECATED,
    "Deprecated twin of llm_d_epp_prefix_indexer_hit_ratio.",
    INDEXER_LABELS,
    RATIO_BUCKETS,
  );
  const hitBytes = hist(
    N.PREFIX_INDEXER_HIT_BYTES,
    "Prefix cache hit length in bytes.",
    INDEXER_LABELS,
    HIT_BYTES_BUCKETS,
  );
  const hitBytesDep = hist(
    N.PREFIX_INDEXER_HIT_BYTES_DEPRECATED,
    "Deprecated twin of llm_d_epp_prefix_indexer_hit_bytes.",
    INDEXER_LABELS,
    HIT_BYTES_BUCKETS,
  );

  // plugin name → plugin type → hit series (observed on every request by prefix producers)
  const indexerSeries = new Map<
    string,
    Map<string, { ratio: FastSeries; ratioDep: FastSeries; bytes: FastSeries; bytesDep: FastSeries }>
  >();
  const indexerSeriesOf = (name: string, type: string) => {
    let byType = indexerSeries.get(name);
    if (byType === undefined) {
      byType = new Map();
      indexerSeries.set(name, byType);
    }
    let c = byType.get(type);
    if (c === undefined) {
      const l = { [N.LABEL_PLUGIN_NAME]: name, [N.LABEL_PLUGIN_TYPE]: type };
      c = {
        ratio: hitRatio.labels(l),
        ratioDep: hitRatioDep.labels(l),
        bytes: hitBytes.labels(l),
        bytesDep: hitBytesDep.labels(l),
      };
      // bounded like the child cache: plugins are configured, so this stays small
      if (byType.size < CHILD_CACHE_LIMIT) byType.set(type, c);
    }
    return c;
  };

  // disaggregation
  const DISAGG = [N.LABEL_PLUGIN_NAME, N.LABEL_PLUGIN_TYPE, N.LABEL_MODEL_NAME, N.LABEL_DECISION_TYPE];
  const disagg = fastCounter(N.DISAGG_DECISION_TOTAL, "Disaggregation decisions.", DISAGG);
  const disaggDep = fastCounter(
    N.DISAGG_DECISION_TOTAL_DEPRECATED,
    "Deprecated twin of llm_d_epp_disagg_decision_total.",
    DISAGG,
  );
  const PD = [N.LABEL_MODEL_NAME, N.LABEL_DECISION_TYPE];
  const pd = fastCounter(N.PD_DECISION_TOTAL, "P/D decisions.", PD);
  const pdDep = fastCounter(
    N.PD_DECISION_TOTAL_DEPRECATED,
    "Deprecated twin of llm_d_epp_pd_decision_total.",
    PD,
  );
  const disaggChildren = childCache((l) => ({ cur: disagg.labels(l), old: disaggDep.labels(l) }));
  const pdChildren = childCache((l) => ({ cur: pd.labels(l), old: pdDep.labels(l) }));

  // info
  const INFO = [N.LABEL_COMMIT, N.LABEL_BUILD_REF];
  const info = gauge(N.INFO, "EPP build information.", INFO);
  const infoDep = gauge(N.INFO_DEPRECATED, "Deprecated twin of llm_d_epp_info.", INFO);

  const requestDuration = reqHist(
    N.REQUEST_DURATION_SECONDS,
    N.REQUEST_DURATION_SECONDS_DEPRECATED,
    "Request end-to-end latency in seconds.",
    DURATION_BUCKETS,
  );
  const requestSizeBytes = reqHist(
    N.REQUEST_SIZE_BYTES,
    N.REQUEST_SIZE_BYTES_DEPRECATED,
    "Request size in bytes.",
    SIZE_BUCKETS,
  );
  const requestInputTokens = reqHist(
    N.REQUEST_INPUT_TOKENS,
    N.REQUEST_INPUT_TOKENS_DEPRECATED,
    "Input (prompt) tokens per request.",
    TOKEN_BUCKETS,
  );
  const requestOutputTokens = reqHist(
    N.REQUEST_OUTPUT_TOKENS,
    N.REQUEST_OUTPUT_TOKENS_DEPRECATED,
    "Output tokens per request.",
    TOKEN_BUCKETS,
  );
  const requestCachedTokens = reqHist(
    N.REQUEST_CACHED_TOKENS,
    N.REQUEST_CACHED_TOKENS_DEPRECATED,
    "Prompt tokens served from the prefix cache per request.",
    TOKEN_BUCKETS,
  );
  const requestNtpot = reqHist(
    N.REQUEST_NTPOT_SECONDS,
    N.REQUEST_NTPOT_SECONDS_DEPRECATED,
    "Normalized time per output token in seconds.",
    NTPOT_BUCKETS,
  );
  const requestTtft = reqHist(
    N.REQUEST_TTFT_SECONDS,
    undefined,
    "Time to first token in seconds.",
    DURATION_BUCKETS,
  );
  const requestStreamingTtft = reqHist(
    N.REQUEST_STREAMING_TTFT_SECONDS,
    undefined,
    "Time to first token of streaming requests in seconds.",
    DURATION_BUCKETS,
  );
  const requestStreamingTpot = reqHist(
    N.REQUEST_STREAMING_TPOT_SECONDS,
    undefined,
    "Time per output token of streaming requests in seconds.",
    NTPOT_BUCKETS,
  );
  const requestStreamingItl = reqHist(
    N.REQUEST_STREAMING_ITL_SECONDS,
    undefined,
    "Inter-token latency of streaming requests in seconds.",
    NTPOT_BUCKETS,
  );
  const responseSizeBytes = reqHist(
    N.RESPONSE_SIZE_BYTES,
    N.RESPONSE_SIZE_BYTES_DEPRECATED,
    "Response size in bytes.",
    SIZE_BUCKETS,
  );
  // one bundle per label set: the per-request path resolves it once (RequestSeries)
  const requestSeriesOf = requestChildCache((full): RequestSeries => {
    const total = reqTotalChildrenOf(full);
    const running = runningChildrenOf(full);
    return {
      total: {
        inc() {
          total.cur.inc();
          total.old.inc();
        },
      },
      sizeBytes: requestSizeBytes.seriesOf(full),
      responseSizeBytes: responseSizeBytes.seriesOf(full),
      duration: requestDuration.seriesOf(full),
      inputTokens: requestInputTokens.seriesOf(full),
      outputTokens: requestOutputTokens.seriesOf(full),
      cachedTokens: requestCachedTokens.seriesOf(full),
      ntpot: requestNtpot.seriesOf(full),
      ttft: requestTtft.seriesOf(full),
      streamingTtft: requestStreamingTtft.seriesOf(full),
      streamingItl: requestStreamingItl.seriesOf(full),
      running: {
        inc() {
          running.cur.inc();
          running.old.inc();
        },
        dec() {
          running.cur.dec();
          running.old.dec();
        },
      },
    };
  }, reqLabels);

  const m: EppMetrics = {
    registry,
    requestSeries: requestSeriesOf,
    metricsText: () => registry.metrics(),
    requestTotal: {
      inc(l, n = 1) {
        const c = reqTotalChildren(l);
        c.cur.inc(n ?? 1);
        c.old.inc(n ?? 1);
      },
    },
    requestErrorTotal: {
      inc(l, code) {
        const c = errChildren(`${reqKey(l)}\u0000${code}`, () => ({
          ...reqLabels(l),
          [N.LABEL_ERROR_CODE]: code,
        }));
        c.cur.inc();
        c.old.inc();
      },
    },
    requestDuration,
    requestSizeBytes,
    responseSizeBytes,
    requestInputTokens,
    requestOutputTokens,
    requestCachedTokens,
    requestNtpot,
    requestTtft,
    requestStreamingTtft,
    requestStreamingTpot,
    requestStreamingItl,
    requestRunning: {
      inc(l) {
        const c = runningChildren(l);
        c.cur.inc();
        c.old.inc();
      },
      dec(l) {
        const c = runningChildren(l);
        c.cur.dec();
        c.old.dec();
      },
    },
    readyEndpoints: poolGauge(
      N.READY_ENDPOINTS,
      N.READY_ENDPOINTS_DEPRECATED,
      "Ready endpoints in the pool.",
    ),
    averageKvCacheUtilization: poolGauge(
      N.AVERAGE_KV_CACHE_UTILIZATION,
      N.AVERAGE_KV_CACHE_UTILIZATION_DEPRECATED,
      "Average KV-cache utilization of the pool (0..1).",
    ),
    averageQueueSize: poolGauge(
      N.AVERAGE_QUEUE_SIZE,
      N.AVERAGE_QUEUE_SIZE_DEPRECATED,
      "Average waiting queue size.",
    ),
    averageRunningRequests: poolGauge(
      N.AVERAGE_RUNNING_REQUESTS,
      N.AVERAGE_RUNNING_REQUESTS_DEPRECATED,
      "Average running requests per endpoint.",
    ),
    schedulerE2eDuration: {
      observe(s) {
        schedE2e.observe(s);
        schedE2eDep.observe(s);
      },
    },
    schedulerAttemptsTotal: {
      inc(status, t) {
        const key = t
          ? `${status}\u0000${t.targetModelName}\u0000${t.namespace}\u0000${t.port}\u0000${t.endpointName}`
          : status;
        const c = attemptChildren(key, () => ({
          [N.LABEL_STATUS]: status,
          [N.LABEL_TARGET_MODEL_NAME]: t ? targets.map(t.targetModelName) : "",
          [N.LABEL_NAMESPACE]: t?.namespace ?? "",
          [N.LABEL_PORT]: t ? String(t.port) : "",
          [N.LABEL_ENDPOINT_NAME]: t?.endpointName ?? "",
        }));
        c.cur.inc();
        c.old.inc();
      },
    },
    pluginDuration: {
      observe(ep, type, name, s) {
        const c = pluginSeriesOf(ep, type, name);
        c.cur.observe(s);
        c.old.observe(s);
      },
      series(ep, type, name) {
        const c = pluginSeriesOf(ep, type, name);
        return {
          observe(s) {
            c.cur.observe(s);
            c.old.observe(s);
          },
        };
      },
    },
    requestProcessingDuration: { observe: (s) => reqProc.observe(s) },
    responseProcessingDuration: { observe: (s) => respProc.observe(s) },
    prefixIndexerSize: {
      set(name, type, size) {
        const l = { [N.LABEL_PLUGIN_NAME]: name, [N.LABEL_PLUGIN_TYPE]: type };
        idxSize.set(l, size);
        idxSizeDep.set(l, size);
      },
      track(name, type, size) {
        sizeProviders.set(`${name}\u0000${type}`, {
          labels: { [N.LABEL_PLUGIN_NAME]: name, [N.LABEL_PLUGIN_TYPE]: type },
          size,
        });
      },
    },
    prefixIndexerHitRatio: {
      observe(name, type, r) {
        const c = indexerSeriesOf(name, type);
        c.ratio.observe(r);
        c.ratioDep.observe(r);
      },
    },
    prefixIndexerHitBytes: {
      observe(name, type, b) {
        const c = indexerSeriesOf(name, type);
        c.bytes.observe(b);
        c.bytesDep.observe(b);
      },
    },
    disaggDecisionTotal: {
      inc(d) {
        const key = `${d.pluginName}\u0000${d.pluginType}\u0000${d.modelName}\u0000${d.decisionType}`;
        const c = disaggChildren(key, () => ({
          [N.LABEL_PLUGIN_NAME]: d.pluginName,
          [N.LABEL_PLUGIN_TYPE]: d.pluginType,
          [N.LABEL_MODEL_NAME]: models.map(d.modelName),
          [N.LABEL_DECISION_TYPE]: d.decisionType,
        }));
        c.cur.inc();
        c.old.inc();
      },
    },
    pdDecisionTotal: {
      inc(model, type) {
        const c = pdChildren(`${model}\u0000${type}`, () => ({
          [N.LABEL_MODEL_NAME]: models.map(model),
          [N.LABEL_DECISION_TYPE]: type,
        }));
        c.cur.inc();
        c.old.inc();
      },
    },
    info: {
      set(commit, buildRef) {
        const l = { [N.LABEL_COMMIT]: commit, [N.LABEL_BUILD_REF]: buildRef };
        info.set(l, 1);
        infoDep.set(l, 1);
      },
    },
  };
  return m;
}
