/**
 * The flow-control engine (gate `featureGates: [flowControl]`): every request is enqueued into a
 * flow keyed `{fairnessId, priority}` and waits in {@link FlowController.enqueueAndWait} until it
 * is dispatched or finalized.
 *
 * - Bands: strict priority, higher first. A priority without a configured band gets one on
 *   demand from `defaultPriorityBand` (≥ 0) or `defaultNegativePriorityBand` (< 0).
 * - Within a band the fairness policy picks the flow, the ordering policy the item.
 * - A dispatch cycle takes the head item of the highest non-empty band and checks the
 *   saturation detector on that request's candidates against the usage-limit ceiling
 *   (`saturation < ceiling(priority)`); when it is not below, nothing is released this cycle
 *   (head-of-line blocking keeps lower bands behind higher ones) and requests stay queued.
 *   A request whose candidate list is empty cannot dispatch either.
 * - Dispatch runs when something can change: enqueue, {@link FlowController.onRequestDone},
 *   {@link FlowController.kick} (metrics refresh), TTL timers, and — while requests are blocked —
 *   a re-check every `retryIntervalMs` (default 50 ms, the scrape tick). Never a busy loop.
 * - Limits at enqueue: global `maxRequests`/`maxBytes`, band `maxRequests`/`maxBytes` →
 *   `RejectedCapacity`. TTL (`defaultRequestTTL`, 0 = none) → `EvictedTTL`; requests that
 *   arrive with no candidates wait at most `noEndpointRequestTTL` (0 = rejected at once with
 *   `RejectedNoEndpoints`) → `EvictedNoEndpoints`. Client abort → `EvictedContextCancelled`.
 *   {@link FlowController.shutdown} finalizes everything (`EvictedOther` / `RejectedOther`).
 * - `enableEviction`: while a request is held by saturation, one in-flight sheddable request
 *   (priority < 0, lower than the held one) is evicted at a time through
 *   {@link FlowController.evictionSignal} (429 `evicted`, "request evicted by flow control").
 *
 * Source: reference/epp.md §6 (llm-d-router `pkg/epp/flowcontrol/README.md`).
 */
import { performance } from "node:perf_hooks";
import { ConfigError, EppError } from "../framework/errors.js";
import type {
  FairnessBandState,
  FairnessPolicy,
  FlowKey,
  FlowView,
  ItemComparator,
  OrderingPolicy,
  QueueItem,
  SaturationDetector,
  UsageLimitPolicy,
} from "../framework/flow-control.js";
import type { Endpoint, InferenceRequest } from "../framework/types.js";
import { logger } from "../log.js";
import { type Clock, systemClock, type TimerHandle } from "./clock.js";
import type { BandConfig, FlowControlConfig } from "./config.js";
import { Heap } from "./heap.js";
import { outcomeError, type QueueOutcome } from "./outcomes.js";

const log = logger.child({ component: "flow-control" });

/** ms after which an eviction never confirmed by `onRequestDone` no longer blocks the next one. */
export const EVICTION_CONFIRM_TIMEOUT_MS = 5000;

/** Fairness id used when a request has none (reference/epp.md §1.3). */
export const DEFAULT_FAIRNESS_ID = "default-flow";

/** Candidate endpoints of a request, re-read at every dispatch attempt. */
export type CandidatesProvider = () => Endpoint[];

/** What {@link FlowController.enqueueAndWait} resolves to (it never rejects). */
export interface FlowControlResult {
  outcome: QueueOutcome;
  /** ms between enqueue and the outcome (engine clock) */
  queueTimeMs: number;
  /** the error to return to the client; undefined when dispatched */
  error?: EppError;
  /** the candidates the dispatch decision was taken on (dispatched only) */
  candidates?: Endpoint[];
}

/**
 * Receives engine events; `src/metrics/flow-control.ts` implements it with prom-client.
 * Durations in seconds.
 */
export interface FlowControlObserver {
  /** A request reached a final outcome after `queueSeconds` in the queue. */
  requestFinished(key: FlowKey, outcome: QueueOutcome, queueSeconds: number): void;
  /** An `enqueueAndWait` call finished its synchronous part (admission checks + insert). */
  enqueueDuration(key: FlowKey, outcome: QueueOutcome | "Queued", seconds: number): void;
  /** Queued requests and bytes of one flow changed. */
  queueChanged(key: FlowKey, size: number, bytes: number): void;
  /** Saturation read by a dispatch decision (`stage` = `effective`). */
  poolSaturation(stage: "prefill" | "decode" | "effective", value: number): void;
  /** One dispatch pass took `seconds`. */
  dispatchCycle(seconds: number): void;
}

/** Engine options. */
export interface FlowControllerOptions {
  config: FlowControlConfig;
  detector: SaturationDetector;
  usageLimit: UsageLimitPolicy;
  /** fairness policies by config ref (every ref the config names must be present) */
  fairnessPolicies: ReadonlyMap<string, FairnessPolicy>;
  /** ordering policies by config ref */
  orderingPolicies: ReadonlyMap<string, OrderingPolicy>;
  /** default {@link systemClock} */
  clock?: Clock;
  /**
   * How a dispatch pass is scheduled after `kick()`; default `queueMicrotask`. Tests pass a
   * function that stores `run` and call `dispatch()` themselves.
   */
  schedule?: (run: () => void) => void;
  /** ms between re-checks while queued requests are blocked; 0 = only on kicks (default 50) */
  retryIntervalMs?: number;
  observer?: FlowControlObserver;
}

interface Item extends QueueItem {
  state: "queued" | "done";
  readonly band: Band;
  readonly flowRef: Flow;
  readonly candidates: CandidatesProvider;
  /** enqueue + noEndpointRequestTTL when it arrived with no candidates; else Infinity */
  noEndpointDeadline: number;
  /** next time the TTL sweep must look at it */
  expiry: number;
  resolve: (r: FlowControlResult) => void;
  detach?: () => void;
}

interface Flow {
  readonly key: FlowKey;
  readonly id: number;
  readonly heap: Heap<Item>;
  length: number;
  bytes: number;
  readonly view: FlowView;
}

interface Band {
  readonly priority: number;
  readonly cfg: BandConfig;
  readonly compare: ItemComparator;
  readonly fairness: FairnessBandState;
  readonly flows: Map<string, Flow>;
  nextFlowId: number;
  length: number;
  bytes: number;
}

/** Per-band queue statistics. */
export interface BandStats {
  priority: number;
  requests: number;
  bytes: number;
  flows: { fairnessId: string; requests: number; bytes: number }[];
}

/** The flow-control engine (see file header). */
export class FlowController {
  private readonly cfg: FlowControlConfig;
  private readonly clock: Clock;
  private readonly schedule: (run: () => void) => void;
  private readonly retryMs: number;
  /** bands, highest priority first */
  private readonly bands: Band[] = [];
  private readonly expiries = new Heap<Item>((a, b) => a.expiry - b.expiry || a.seq - b.seq);
  private seq = 0;
  private total = 0;
  private totalBytes = 0;
  private scheduled = false;
  private dispatching = false;
  private closed = false;
  /** `enableEviction`: dispatched sheddable requests still in flight, by request id (insertion = dispatch order) */
  private readonly sheddableInflight = new Map<string, { priority: number; ac: AbortController }>();
  /** request ids evicted and not yet reported done → eviction time, ms (one eviction at a time) */
  private readonly evicting = new Map<string, number>();
  private timer: TimerHandle | undefined;
  private timerAt = Number.POSITIVE_INFINITY;
  /** true when the last dispatch pass left requests blocked */
  private blocked = false;

  /** @throws ConfigError when a band names a fairness/ordering policy that is not provided */
  constructor(private readonly opts: FlowControllerOptions) {
    this.cfg = opts.config;
    this.clock = opts.clock ?? systemClock;
    this.schedule = opts.schedule ?? queueMicrotask;
    this.retryMs = opts.retryIntervalMs ?? 50;
    const check = (b: BandConfig, at: string) => {
      if (!opts.fairnessPolicies.has(b.fairnessPolicyRef))
        throw new ConfigError(
          `${at}.fairnessPolicyRef: no fairness policy ${JSON.stringify(b.fairnessPolicyRef)}`,
        );
      if (!opts.orderingPolicies.has(b.orderingPolicyRef))
        throw new ConfigError(
          `${at}.orderingPolicyRef: no ordering policy ${JSON.stringify(b.orderingPolicyRef)}`,
        );
    };
    check(this.cfg.defaultPriorityBand, "flowControl.defaultPriorityBand");
    check(this.cfg.defaultNegativePriorityBand, "flowControl.defaultNegativePriorityBand");
    this.cfg.priorityBands.forEach((b, i) => {
      check(b, `flowControl.priorityBands[${i}]`);
      this.band(b.priority);
    });
  }

  /** Requests queued now. */
  get queued(): number {
    return this.total;
  }

  /** Bytes queued now. */
  get queuedBytes(): number {
    return this.totalBytes;
  }

  /** Snapshot of every band (highest priority first). */
  stats(): BandStats[] {
    return this.bands.map((b) => ({
      priority: b.priority,
      requests: b.length,
      bytes: b.bytes,
      flows: [...b.flows.values()].map((f) => ({
        fairnessId: f.key.fairnessId,
        requests: f.length,
        bytes: f.bytes,
      })),
    }));
  }

  /**
   * Enqueues a request and waits until it is dispatched or finalized. Never rejects: the
   * outcome carries the {@link EppError} to return (see `outcomes.ts`).
   *
   * @param request its `objectives.priority` selects the band, `fairnessId` the flow,
   *   `requestSizeBytes` counts against the byte limits
   * @param candidates the request's candidate endpoints (a provider is re-read at each attempt)
   * @param signal client disconnect → `EvictedContextCancelled`
   * @param options `ttlMs`: this request's TTL in ms instead of `defaultRequestTTL` (0 = none);
   *   it also sets the request's EDF deadline
   */
  enqueueAndWait(
    request: InferenceRequest,
    candidates: Endpoint[] | CandidatesProvider,
    signal?: AbortSignal,
    options: { ttlMs?: number } = {},
  ): Promise<FlowControlResult> {
    const t0 = performance.now();
    const key: FlowKey = {
      fairnessId: request.fairnessId || DEFAULT_FAIRNESS_ID,
      priority: request.objectives.priority,
    };
    const immediate = (outcome: QueueOutcome): Promise<FlowControlResult> => {
      this.opts.observer?.requestFinished(key, outcome, 0);
      this.opts.observer?.enqueueDuration(key, outcome, (performance.now() - t0) / 1000);
      return Promise.resolve({ outcome, queueTimeMs: 0, error: outcomeError(outcome) });
    };
    if (this.closed) return immediate("RejectedOther");
    if (signal?.aborted) return immediate("EvictedContextCancelled");
    const provider: CandidatesProvider = typeof candidates === "function" ? candidates : () => candidates;
    const now = this.clock.now();
    let noEndpointDeadline = Number.POSITIVE_INFINITY;
    let initial: Endpoint[];
    try {
      initial = provider();
    } catch {
      initial = [];
    }
    if (initial.length === 0) {
      if (this.cfg.noEndpointRequestTTLMs <= 0) return immediate("RejectedNoEndpoints");
      noEndpointDeadline = now + this.cfg.noEndpointRequestTTLMs;
    }
    const bytes = Math.max(0, request.requestSizeBytes);
    const band = this.band(key.priority);
    if (
      this.total + 1 > this.cfg.maxRequests ||
      this.totalBytes + bytes > this.cfg.maxBytes ||
      band.length + 1 > band.cfg.maxRequests ||
      band.bytes + bytes > band.cfg.maxBytes
    ) {
      return immediate("RejectedCapacity");
    }
    const flow = this.flow(band, key);
    const ttl = options.ttlMs ?? this.cfg.defaultRequestTTLMs;
    const deadline = ttl > 0 ? now + ttl : Number.POSITIVE_INFINITY;
    return new Promise<FlowControlResult>((resolve) => {
      const item: Item = {
        request,
        flow: key,
        enqueueTime: now,
        deadline,
        byteSize: bytes,
        seq: this.seq++,
        state: "queued",
        band,
        flowRef: flow,
        candidates: provider,
        noEndpointDeadline,
        expiry: Math.min(deadline, noEndpointDeadline),
        resolve,
      };
      flow.heap.push(item);
      flow.length++;
      flow.bytes += bytes;
      band.length++;
      band.bytes += bytes;
      this.total++;
      this.totalBytes += bytes;
      if (Number.isFinite(item.expiry)) this.expiries.push(item);
      if (signal) {
        const onAbort = () => {
          this.finish(item, "EvictedContextCancelled");
          this.kick();
        };
        signal.addEventListener("abort", onAbort, { once: true });
        item.detach = () => signal.removeEventListener("abort", onAbort);
      }
      this.opts.observer?.queueChanged(key, flow.length, flow.bytes);
      this.opts.observer?.enqueueDuration(key, "Queued", (performance.now() - t0) / 1000);
      this.kick();
    });
  }

  /** Schedules a dispatch pass (coalesced). Call it when endpoint metrics were refreshed. */
  kick(): void {
    if (this.scheduled || this.closed) return;
    this.scheduled = true;
    this.schedule(() => {
      this.scheduled = false;
      this.dispatch();
    });
  }

  /**
   * A dispatched request ended — response complete, upstream failure or a scheduling error —
   * so capacity may have freed: drops the detector's reservation for it (when given) and
   * schedules a dispatch pass.
   */
  onRequestDone(request?: InferenceRequest): void {
    if (request) {
      this.opts.detector.release?.(request);
      this.sheddableInflight.delete(request.requestId);
      this.evicting.delete(request.requestId);
    }
    this.kick();
  }

  /**
   * Runs one dispatch pass now: evicts expired requests, then releases requests while the
   * gate allows. Bounded by the number of requests queued at the start.
   * @returns the number of requests dispatched
   */
  dispatch(): number {
    if (this.dispatching || this.closed) return 0;
    this.dispatching = true;
    const t0 = performance.now();
    let n = 0;
    try {
      const now = this.clock.now();
      this.sweep(now);
      const bound = this.total;
      this.blocked = false;
      while (n < bound && this.total > 0) {
        if (!this.dispatchOne(now)) {
          this.blocked = this.total > 0;
          break;
        }
        n++;
      }
    } catch (err) {
      // a throwing detector/provider/policy must not kill the process or lose requests:
      // they stay queued (TTL still applies) and the pass is retried on the next trigger
      this.blocked = this.total > 0;
      log.warn(
        { err: err instanceof Error ? err.message : String(err) },
        "flow-control dispatch pass failed",
      );
    } finally {
      this.dispatching = false;
    }
    this.opts.observer?.dispatchCycle((performance.now() - t0) / 1000);
    this.rearm();
    return n;
  }

  /** Finalizes every queued request (`EvictedOther`, 503 `rejected-shutting-down`); later enqueues get `RejectedOther`. */
  shutdown(): void {
    if (this.closed) return;
    this.closed = true;
    this.timer?.cancel();
    this.timer = undefined;
    for (const band of this.bands) {
      for (const flow of [...band.flows.values()]) {
        for (let it = flow.heap.pop(); it !== undefined; it = flow.heap.pop()) {
          if (it.state === "queued") this.finish(it, "EvictedOther");
        }
      }
    }
  }

  private band(priority: number): Band {
    let b = this.bands.find((x) => x.priority === priority);
    if (b) return b;
    const cfg =
      this.cfg.priorityBands.find((x) => x.priority === priority) ??
      (priority < 0 ? this.cfg.defaultNegativePriorityBand : this.cfg.defaultPriorityBand);
    const ordering = this.opts.orderingPolicies.get(cfg.orderingPolicyRef)!;
    b = {
      priority,
      cfg,
      compare: ordering.compare,
      fairness: this.opts.fairnessPolicies.get(cfg.fairnessPolicyRef)!.newBandState(),
      flows: new Map(),
      nextFlowId: 0,
      length: 0,
      bytes: 0,
    };
    const i = this.bands.findIndex((x) => x.priority < priority);
    if (i < 0) this.bands.push(b);
    else this.bands.splice(i, 0, b);
    return b;
  }

  private flow(band: Band, key: FlowKey): Flow {
    let f = band.flows.get(key.fairnessId);
    if (f) return f;
    const id = band.nextFlowId++;
    const flow: Flow = {
      key,
      id,
      heap: new Heap<Item>(band.compare),
      length: 0,
      bytes: 0,
      view: {
        key,
        id,
        get length() {
          return flow.length;
        },
        head: () => this.head(flow),
      },
    };
    f = flow;
    band.flows.set(key.fairnessId, f);
    return f;
  }

  private head(flow: Flow): Item | undefined {
    for (let top = flow.heap.peek(); top !== undefined; top = flow.heap.peek()) {
      if (top.state === "queued") return top;
      flow.heap.pop();
    }
    return undefined;
  }

  private dispatchOne(now: number): boolean {
    for (const band of this.bands) {
      if (band.length === 0) continue;
      const views: FlowView[] = [];
      for (const f of band.flows.values()) if (f.length > 0) views.push(f.view);
      const view = band.fairness.pick(views, band.compare);
      const flow = view ? band.flows.get(view.key.fairnessId) : undefined;
      const item = flow ? this.head(flow) : undefined;
      if (!flow || !item || !view) continue;
      const candidates = this.candidatesOf(item);
      const sat = this.opts.detector.saturation(candidates, now);
      this.opts.observer?.poolSaturation("effective", sat);
      if (candidates.length === 0 || !(sat < this.opts.usageLimit.ceiling(band.priority))) {
        if (candidates.length > 0) this.maybeEvict(band.priority);
        return false;
      }
      flow.heap.pop();
      band.fairness.dispatched?.(view);
      this.opts.detector.onDispatched?.(item.request, now);
      this.finish(item, "Dispatched", candidates);
      if (this.cfg.enableEviction && band.priority < 0) {
        this.sheddableInflight.set(item.request.requestId, {
          priority: band.priority,
          ac: new AbortController(),
        });
      }
      return true;
    }
    return false;
  }

  /**
   * With `enableEviction`: the signal that fires when flow control evicts this dispatched
   * sheddable request from the pool. Its `reason` is an {@link EppError} 429
   * "request evicted by flow control" with drop reason `evicted`; the host aborts the
   * upstream request, answers the client with that error (or ends the stream), and calls
   * {@link onRequestDone}. Undefined for other requests or when eviction is off.
   */
  evictionSignal(request: InferenceRequest): AbortSignal | undefined {
    return this.sheddableInflight.get(request.requestId)?.ac.signal;
  }

  /**
   * A request of `priority` is held by saturation: evict one in-flight sheddable request of a
   * lower priority — lowest priority first, then the most recently dispatched — unless an
   * eviction is still unconfirmed (`onRequestDone` not yet called for it).
   */
  private maybeEvict(priority: number): void {
    if (!this.cfg.enableEviction || this.sheddableInflight.size === 0) return;
    const now = this.clock.now();
    for (const [id, at] of this.evicting)
      if (now - at >= EVICTION_CONFIRM_TIMEOUT_MS) this.evicting.delete(id);
    if (this.evicting.size > 0) return;
    let victim: string | undefined;
    let victimPriority = Number.POSITIVE_INFINITY;
    for (const [id, v] of this.sheddableInflight) {
      // later entries were dispatched later: `<=` keeps the newest among equal priorities
      if (v.priority < priority && v.priority <= victimPriority) {
        victim = id;
        victimPriority = v.priority;
      }
    }
    if (victim === undefined) return;
    const v = this.sheddableInflight.get(victim)!;
    this.sheddableInflight.delete(victim);
    this.evicting.set(victim, now);
    v.ac.abort(new EppError("ResourceExhausted", "request evicted by flow control", "evicted"));
  }

  /** The item's current candidates; a throwing provider reads as none (logged). */
  private candidatesOf(item: Item): Endpoint[] {
    try {
      return item.candidates();
    } catch (err) {
      log.warn({ err: err instanceof Error ? err.message : String(err) }, "candidates provider failed");
      return [];
    }
  }

  /** Evicts requests whose TTL (or no-endpoint wait) has run out. */
  private sweep(now: number): void {
    for (let it = this.expiries.peek(); it !== undefined && it.expiry <= now; it = this.expiries.peek()) {
      this.expiries.pop();
      if (it.state !== "queued") continue;
      if (it.deadline <= now) {
        this.finish(it, "EvictedTTL", undefined, this.candidatesOf(it).length === 0);
        continue;
      }
      // the no-endpoint wait ran out first
      if (this.candidatesOf(it).length === 0) {
        this.finish(it, "EvictedNoEndpoints");
        continue;
      }
      it.noEndpointDeadline = Number.POSITIVE_INFINITY;
      it.expiry = it.deadline;
      if (Number.isFinite(it.expiry)) this.expiries.push(it);
    }
  }

  private finish(item: Item, outcome: QueueOutcome, candidates?: Endpoint[], poolEmpty = false): void {
    if (item.state !== "queued") return;
    item.state = "done";
    item.detach?.();
    const flow = item.flowRef;
    const band = item.band;
    flow.length--;
    flow.bytes -= item.byteSize;
    band.length--;
    band.bytes -= item.byteSize;
    this.total--;
    this.totalBytes -= item.byteSize;
    if (flow.length === 0 && band.flows.get(flow.key.fairnessId) === flow)
      band.flows.delete(flow.key.fairnessId);
    const queueTimeMs = this.clock.now() - item.enqueueTime;
    this.opts.observer?.queueChanged(flow.key, flow.length, flow.bytes);
    this.opts.observer?.requestFinished(flow.key, outcome, queueTimeMs / 1000);
    const error = outcomeError(outcome, poolEmpty);
    item.resolve(
      outcome === "Dispatched" ? { outcome, queueTimeMs, candidates } : { outcome, queueTimeMs, error },
    );
    if (outcome !== "Dispatched" && this.total === 0) this.rearm();
  }

  /** Arms the one wake-up timer at the next TTL expiry or, while blocked, the next re-check. */
  private rearm(): void {
    if (this.closed) return;
    let at = Number.POSITIVE_INFINITY;
    for (let it = this.expiries.peek(); it !== undefined; it = this.expiries.peek()) {
      if (it.state === "queued") {
        at = it.expiry;
        break;
      }
      this.expiries.pop();
    }
    const now = this.clock.now();
    if (this.blocked && this.total > 0 && this.retryMs > 0) at = Math.min(at, now + this.retryMs);
    if (this.total === 0) at = Number.POSITIVE_INFINITY;
    if (at === this.timerAt) return;
    this.timer?.cancel();
    this.timer = undefined;
    this.timerAt = at;
    if (!Number.isFinite(at)) return;
    this.timer = this.clock.setTimeout(
      () => {
        this.timer = undefined;
        this.timerAt = Number.POSITIVE_INFINITY;
        this.dispatch();
      },
      Math.max(0, at - now),
    );
  }
}
