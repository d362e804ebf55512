/**
 * The Director: request control around the scheduler, shared by the HTTP router and the
 * Envoy ext_proc server (it knows nothing of HTTP).
 *
 * `handleRequest` runs, in the order of llm-d-router `Director.HandleRequest`
 * (`pkg/epp/requestcontrol/director.go`, reference/epp.md §1.3, §2.1):
 * 1. empty candidates → `EppError("ServiceUnavailable", …, "rejected-no-endpoints")` (503);
 * 2. **DataProducer** plugins — every configured plugin that `isDataProducer` — in dependency
 *    order (a producer whose `consumes` names a key another producer `produces` runs after it;
 *    otherwise config order). Producers of one level run together. A synchronous `produce`
 *    (returns no Promise) runs inline with no timer; an async one is awaited up to its
 *    `produceTimeoutMs` (default {@link DirectorOptions.produceTimeoutMs}, 400 ms). Failures and
 *    timeouts are logged and never fatal;
 * 3. `scheduler.schedule` — observes `scheduler_e2e_duration_seconds` and
 *    `scheduler_attempts_total{status}`; its `EppError` propagates unchanged (any other error
 *    becomes `Internal`);
 * 4. **PreRequest** plugins — all run, in config order; their errors are joined into one
 *    `EppError("Internal")`;
 * 5. returns the result and the primary profile's target endpoints (best first).
 *
 * Response hooks (`responseReceived`, `responseStreaming`, `responseComplete`) fan out to every
 * configured plugin implementing them; a throwing hook is logged and the others still run.
 * Every plugin call is timed into `plugin_duration_seconds` with the extension points
 * `DataProducer`, `PreRequest`, `ResponseReceived`, `ResponseStreaming`, `ResponseComplete`.
 *
 * Request-level metrics (`request_total`, durations, tokens…) belong to the transport (router,
 * ext_proc), which sees bytes and errors; the Director records scheduler, plugin and prefix
 * indexer metrics only. A plugin with `indexSize(): number` is tracked by
 * `prefix_indexer_size`; one with `setMatchObserver(fn)` feeds `prefix_indexer_hit_ratio` and
 * `prefix_indexer_hit_bytes`.
 */
import { performance } from "node:perf_hooks";
import { EppError } from "../framework/errors.js";
import {
  type DataProducer,
  isDataProducer,
  isPreRequest,
  isResponseComplete,
  isResponseReceived,
  isResponseStreaming,
  type LoadedConfig,
  type Plugin,
  type PreRequest,
  type ResponseComplete,
  type ResponseInfo,
  type ResponseReceived,
  type ResponseStreaming,
} from "../framework/plugin.js";
import {
  DISAGG_DECISION,
  type DisaggDecision,
  type Endpoint,
  type InferenceRequest,
  type SchedulingResult,
} from "../framework/types.js";
import { logger } from "../log.js";
import type { EppMetrics, SeriesObserver } from "../metrics/epp.js";

/** Extension-point labels of the request-control plugin calls (reference/epp.md §2.1, §7). */
export const RC_EXTENSION_POINT = {
  dataProducer: "DataProducer",
  preRequest: "PreRequest",
  responseReceived: "ResponseReceived",
  responseStreaming: "ResponseStreaming",
  responseComplete: "ResponseComplete",
} as const;

/** Default DataProducer timeout, ms (reference/epp.md §1.3). */
export const DEFAULT_PRODUCE_TIMEOUT_MS = 400;

/** What the Director needs of the scheduler (`src/scheduler/scheduler.ts`). */
export interface SchedulerLike {
  /** Synchronous; throws `EppError`. */
  schedule(request: InferenceRequest, candidates: Endpoint[]): SchedulingResult;
}

/** Options of {@link Director}. */
export interface DirectorOptions {
  /** default timeout of an async DataProducer without its own `produceTimeoutMs`, ms (400) */
  produceTimeoutMs?: number;
  /**
   * Admission (reference/epp.md §1.3 step 4, §6): legacy saturation shedding or the
   * flow-control queue (`src/flowcontrol`). None = admit everything.
   */
  admission?: DirectorAdmission;
}

/** What the Director needs of admission (`Admission` of `src/flowcontrol/admission.ts`). */
export interface DirectorAdmission {
  /**
   * Admits (possibly after queueing) or throws an EppError with its drop reason.
   * @param candidates re-read while the request is queued
   * @param signal aborted when the client goes away
   */
  admit(request: InferenceRequest, candidates: () => Endpoint[], signal?: AbortSignal): Promise<number>;
  /** a dispatched request ended (or failed after admission): capacity may have freed */
  onRequestDone(request?: InferenceRequest): void;
}

/** What {@link Director.handleRequest} returns. */
export interface DirectorResult {
  result: SchedulingResult;
  /** the primary profile's target endpoints, best first (never empty) */
  targets: Endpoint[];
}

/** Optional data-dependency declarations a producer may carry (llm-d `Produces`/`Consumes`). */
interface DataKeys {
  readonly produces?: readonly string[];
  readonly consumes?: readonly string[];
}

interface PrefixIndexerLike {
  indexSize(): number;
}
interface MatchObservable {
  setMatchObserver(fn: (matchedBytes: number, totalBytes: number) => void): void;
}

const log = logger.child({ component: "director" });

/**
 * The callback to pass as the Scheduler's `onPluginDuration` so scheduling plugin durations
 * land in `plugin_duration_seconds`.
 */
export function pluginDurationRecorder(
  metrics: EppMetrics,
): (extensionPoint: string, pluginType: string, pluginName: string, seconds: number) => void {
  return (ep, type, name, s) => metrics.pluginDuration.observe(ep, type, name, s);
}

/**
 * Orders producers into levels: a producer runs in a later level than every producer of a key
 * it consumes. Config order inside a level. Cycles (and self-dependencies) are broken by
 * ignoring the edge that closes them.
 */
export function producerLevels(producers: readonly DataProducer[]): DataProducer[][] {
  const producersOf = new Map<string, number[]>();
  producers.forEach((p, i) => {
    for (const k of (p as DataKeys).produces ?? []) {
      const list = producersOf.get(k) ?? [];
      list.push(i);
      producersOf.set(k, list);
    }
  });
  const level = new Array<number>(producers.length).fill(-1);
  const visiting = new Array<boolean>(producers.length).fill(false);
  const depth = (i: number): number => {
    if (level[i] >= 0) return level[i];
    if (visiting[i]) return 0;
    visiting[i] = true;
    let d = 0;
    for (const k of (producers[i] as DataKeys).consumes ?? []) {
      for (const j of producersOf.get(k) ?? []) if (j !== i && !visiting[j]) d = Math.max(d, depth(j) + 1);
    }
    visiting[i] = false;
    level[i] = d;
    return d;
  };
  const out: DataProducer[][] = [];
  producers.forEach((p, i) => {
    const d = depth(i);
    while (out.length <= d) out.push([]);
    out[d].push(p);
  });
  return out.filter((l) => l.length > 0);
}

/** Request control around the scheduler (see file header). */
export class Director {
  private readonly admission: DirectorAdmission | undefined;
  private readonly levels: DataProducer[][];
  private readonly preRequests: PreRequest[];
  private readonly received: ResponseReceived[];
  private readonly streaming: ResponseStreaming[];
  private readonly complete: ResponseComplete[];
  private readonly produceTimeoutMs: number;
  // plugin_duration_seconds series of each plugin at each of its extension points (on first use)
  private readonly timers = new Map<Plugin, Map<string, SeriesObserver>>();

  /**
   * @param config loaded config; every plugin in `config.plugins` implementing a
   *   request-control interface is wired
   * @param scheduler the scheduler (build it with `onPluginDuration: pluginDurationRecorder(metrics)`)
   */
  constructor(
    config: LoadedConfig,
    private readonly scheduler: SchedulerLike,
    private readonly metrics: EppMetrics,
    opts: DirectorOptions = {},
  ) {
    this.admission = opts.admission;
    const plugins = dedupe(config.plugins);
    this.levels = producerLevels(plugins.filter(isDataProducer));
    this.preRequests = plugins.filter(isPreRequest);
    this.received = plugins.filter(isResponseReceived);
    this.streaming = plugins.filter(isResponseStreaming);
    this.complete = plugins.filter(isResponseComplete);
    this.produceTimeoutMs = opts.produceTimeoutMs ?? DEFAULT_PRODUCE_TIMEOUT_MS;
    for (const p of plugins) {
      if (typeof (p as Partial<PrefixIndexerLike>).indexSize === "function") {
        const idx = p as Plugin & PrefixIndexerLike;
        metrics.prefixIndexerSize.track(p.name, p.type, () => idx.indexSize());
      }
      if (typeof (p as Partial<MatchObservable>).setMatchObserver === "function") {
        (p as Plugin & MatchObservable).setMatchObserver((matched, total) => {
          metrics.prefixIndexerHitRatio.observe(p.name, p.type, total > 0 ? matched / total : 0);
          metrics.prefixIndexerHitBytes.observe(p.name, p.type, matched);
        });
      }
    }
  }

  /**
   * Producers → scheduler → PreRequest (see file header).
   * @throws EppError ServiceUnavailable (no candidates), the scheduler's EppError, or Internal
   *   (PreRequest failures, unexpected scheduler errors)
   */
  async handleRequest(
    request: InferenceRequest,
    candidates: Endpoint[],
    opts: { signal?: AbortSignal; candidatesNow?: () => Endpoint[] } = {},
  ): Promise<DirectorResult> {
    if (candidates.length === 0) {
      throw new EppError("ServiceUnavailable", "no candidate endpoints", "rejected-no-endpoints");
    }
    const admission = this.admission;
    if (!admission) return this.schedule(request, candidates);
    await admission.admit(request, opts.candidatesNow ?? (() => candidates), opts.signal);
    try {
      // candidates may have changed while the request was queued
      const now = opts.candidatesNow?.() ?? candidates;
      return await this.schedule(request, now.length > 0 ? now : candidates);
    } catch (err) {
      admission.onRequestDone(request);
      throw err;
    }
  }

  /** Producers → scheduler → PreRequest, after admission. */
  private schedule(
    request: InferenceRequest,
    candidates: Endpoint[],
    fromLevel = 0,
  ): DirectorResult | Promise<DirectorResult> {
    // synchronous unless a producer level is async: no promise per request for the common case
    const levels = this.levels;
    for (let i = fromLevel; i < levels.length; i++) {
      const pending = this.runProducers(levels[i]!, request, candidates);
      if (pending) return pending.then(() => this.schedule(request, candidates, i + 1));
    }
    return this.pick(request, candidates);
  }

  /** Scheduler → PreRequest (throws synchronously). */
  private pick(request: InferenceRequest, candidates: Endpoint[]): DirectorResult {
    const t0 = performance.now();
    let result: SchedulingResult;
    try {
      result = this.scheduler.schedule(request, candidates);
    } catch (err) {
      this.metrics.schedulerE2eDuration.observe((performance.now() - t0) / 1000);
      this.metrics.schedulerAttemptsTotal.inc("failure");
      if (err instanceof EppError) throw err;
      throw new EppError("Internal", `scheduler failed: ${errText(err)}`);
    }
    this.metrics.schedulerE2eDuration.observe((performance.now() - t0) / 1000);
    const targets = result.profileResults[result.primaryProfileName]?.targetEndpoints ?? [];
    const first = targets[0];
    if (!first) {
      this.metrics.schedulerAttemptsTotal.inc("failure");
      throw new EppError(
        "ResourceExhausted",
        "no target endpoint in the primary profile",
        "rejected-saturated",
      );
    }
    this.metrics.schedulerAttemptsTotal.inc("success", {
      targetModelName: request.targetModel,
      endpointName: first.metadata.name,
      namespace: first.metadata.namespace,
      port: first.metadata.port,
    });

    const errors: string[] = [];
    for (const p of this.preRequests) {
      const s = performance.now();
      try {
        p.preRequest(request, result);
      } catch (err) {
        errors.push(`${p.name}: ${errText(err)}`);
      }
      this.observe(RC_EXTENSION_POINT.preRequest, p, s);
    }
    if (errors.length > 0) throw new EppError("Internal", `pre-request failed: ${errors.join("; ")}`);
    const decision = request.attributes.get(DISAGG_DECISION) as DisaggDecision | undefined;
    if (decision) {
      this.metrics.disaggDecisionTotal.inc({ ...decision, modelName: request.targetModel });
      this.metrics.pdDecisionTotal.inc(request.targetModel, decision.decisionType);
    }
    return { result, targets };
  }

  /** Response headers arrived. */
  responseReceived(request: InferenceRequest, info: ResponseInfo): void {
    const ep = RC_EXTENSION_POINT.responseReceived;
    for (const p of this.received) {
      const s = performance.now();
      try {
        p.responseReceived(request, info);
      } catch (err) {
        this.hookFailed(ep, p, err);
      }
      this.observe(ep, p, s);
    }
  }

  /** A streamed chunk arrived (the router calls this for the first one). */
  responseStreaming(request: InferenceRequest, info: ResponseInfo): void {
    const ep = RC_EXTENSION_POINT.responseStreaming;
    for (const p of this.streaming) {
      const s = performance.now();
      try {
        p.responseStreaming(request, info);
      } catch (err) {
        this.hookFailed(ep, p, err);
      }
      this.observe(ep, p, s);
    }
  }

  /** The response completed or terminated. */
  responseComplete(request: InferenceRequest, info: ResponseInfo): void {
    this.admission?.onRequestDone(request);
    const ep = RC_EXTENSION_POINT.responseComplete;
    for (const p of this.complete) {
      const s = performance.now();
      try {
        p.responseComplete(request, info);
      } catch (err) {
        this.hookFailed(ep, p, err);
      }
      this.observe(ep, p, s);
    }
  }

  /**
   * Runs one level of producers: synchronous ones inline; returns a promise only when some
   * producer was async (so the all-sync fast path awaits nothing but the caller's own await).
   */
  private runProducers(
    level: DataProducer[],
    request: InferenceRequest,
    eps: Endpoint[],
  ): Promise<void> | undefined {
    let pending: Promise<void>[] | undefined;
    for (const p of level) {
      const s = performance.now();
      let r: void | Promise<void>;
      try {
        r = p.produce(request, eps);
      } catch (err) {
        log.warn({ plugin: p.name, type: p.type, err: errText(err) }, "data producer failed");
        this.observe(RC_EXTENSION_POINT.dataProducer, p, s);
        continue;
      }
      if (r && typeof (r as Promise<void>).then === "function") {
        pending ??= [];
        pending.push(this.awaitProducer(p, r as Promise<void>, s));
      } else {
        this.observe(RC_EXTENSION_POINT.dataProducer, p, s);
      }
    }
    return pending ? Promise.all(pending).then(() => undefined) : undefined;
  }

  private async awaitProducer(p: DataProducer, r: Promise<void>, start: number): Promise<void> {
    const ms = p.produceTimeoutMs ?? this.produceTimeoutMs;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), ms);
    });
    try {
      const outcome = await Promise.race([r.then(() => "ok" as const), timeout]);
      if (outcome === "timeout")
        log.warn({ plugin: p.name, type: p.type, timeoutMs: ms }, "data producer timed out");
    } catch (err) {
      log.warn({ plugin: p.name, type: p.type, err: errText(err) }, "data producer failed");
    } finally {
      clearTimeout(timer);
      this.observe(RC_EXTENSION_POINT.dataProducer, p, start);
    }
  }

  private hookFailed(ep: string, p: Plugin, err: unknown): void {
    log.warn({ plugin: p.name, type: p.type, extensionPoint: ep, err: errText(err) }, "response hook failed");
  }

  private observe(ep: string, p: Plugin, start: number): void {
    const seconds = (performance.now() - start) / 1000;
    let byEp = this.timers.get(p);
    if (byEp === undefined) {
      byEp = new Map();
      this.timers.set(p, byEp);
    }
    let series = byEp.get(ep);
    if (series === undefined) {
      series = this.metrics.pluginDuration.series(ep, p.type, p.name);
      byEp.set(ep, series);
    }
    series.observe(seconds);
  }
}

/** The same plugin object listed twice (e.g. injected and configured) is wired once. */
function dedupe(plugins: readonly Plugin[]): Plugin[] {
  return [...new Set(plugins)];
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
