/**
 * Plugin interfaces of flow control: saturation detectors, fairness, ordering and usage-limit
 * policies, and the in-flight tracker the concurrency detector reads.
 *
 * The engine (`src/flowcontrol/`) and the plugins (`src/plugins/flow-control/`,
 * `src/plugins/saturation/`) both depend on this module only, so plugins never import the
 * engine. Source: llm-d-router `pkg/epp/flowcontrol/README.md`,
 * `pkg/epp/framework/plugins/flowcontrol/**` (reference/epp.md §6).
 */
import type { Filter, Plugin } from "./plugin.js";
import type { Endpoint, InferenceRequest } from "./types.js";

/**
 * Reads how saturated a set of candidate endpoints is. Saturation detectors are also
 * {@link Filter}s (they drop saturated endpoints in scheduling profiles).
 */
export interface SaturationDetector extends Plugin, Filter {
  /**
   * Pool saturation over `candidates`.
   * @param candidates endpoints the request could be sent to
   * @param now ms since the epoch (compared with `metrics.updateTime` for staleness)
   * @returns fraction ≥ 0; 1.0 = saturated (may exceed 1.0). An empty list reads 1.0.
   */
  saturation(candidates: Endpoint[], now: number): number;
  /**
   * Optional: flow control released `request` (synchronously, inside the dispatch pass). A
   * detector that counts in-flight work reserves it now, so the next gate check of the same
   * pass already sees it (no burst overshoot before PreRequest runs).
   * @param now ms since the epoch
   */
  onDispatched?(request: InferenceRequest, now: number): void;
  /** Optional: the request ended (any way); drops a reservation made by `onDispatched`. */
  release?(request: InferenceRequest): void;
}

/** Guard: the plugin is a {@link SaturationDetector}. */
export const isSaturationDetector = (p: Plugin): p is SaturationDetector =>
  typeof (p as SaturationDetector).saturation === "function" &&
  typeof (p as SaturationDetector).filter === "function";

/** Identity of a flow: requests of one fairness id at one priority. */
export interface FlowKey {
  readonly fairnessId: string;
  readonly priority: number;
}

/** A queued request as policies see it. Times are ms since the epoch (engine clock). */
export interface QueueItem {
  readonly request: InferenceRequest;
  readonly flow: FlowKey;
  /** when it was enqueued, ms */
  readonly enqueueTime: number;
  /** enqueue time + request TTL, ms; `Infinity` when the TTL is 0 (no eviction) */
  readonly deadline: number;
  /** bytes of the request body */
  readonly byteSize: number;
  /** global arrival sequence number (ties are broken by it) */
  readonly seq: number;
}

/** Orders two items: negative = `a` goes first, positive = `b` goes first. */
export type ItemComparator = (a: QueueItem, b: QueueItem) => number;

/** Picks the next item within a flow (`fcfs-ordering-policy`, `edf-ordering-policy`). */
export interface OrderingPolicy extends Plugin {
  /** Total order of items; must be consistent (ties broken by `seq`). */
  compare: ItemComparator;
}

/** Guard: the plugin is an {@link OrderingPolicy}. */
export const isOrderingPolicy = (p: Plugin): p is OrderingPolicy =>
  typeof (p as OrderingPolicy).compare === "function";

/** A flow as a fairness policy sees it. */
export interface FlowView {
  readonly key: FlowKey;
  /** creation sequence of this flow inside its band (stable, increasing) */
  readonly id: number;
  /** queued items */
  readonly length: number;
  /** the item the ordering policy would dispatch next; undefined when empty */
  head(): QueueItem | undefined;
}

/** Per-band state of a fairness policy (e.g. a round-robin cursor). */
export interface FairnessBandState {
  /**
   * Picks the flow to serve next.
   * @param flows non-empty flows of the band, in creation order
   * @param compare the band's ordering policy
   */
  pick(flows: readonly FlowView[], compare: ItemComparator): FlowView | undefined;
  /** Told when the head of `flow` was really dispatched (a blocked pick is not). */
  dispatched?(flow: FlowView): void;
}

/** Picks the flow within a band (`global-strict-fairness-policy`, `round-robin-fairness-policy`). */
export interface FairnessPolicy extends Plugin {
  newBandState(): FairnessBandState;
}

/** Guard: the plugin is a {@link FairnessPolicy}. */
export const isFairnessPolicy = (p: Plugin): p is FairnessPolicy =>
  typeof (p as FairnessPolicy).newBandState === "function";

/** Ceiling on pool saturation below which a band may dispatch (`static-usage-limit-policy`). */
export interface UsageLimitPolicy extends Plugin {
  /**
   * @param priority the band's priority
   * @returns saturation fraction; a request of this priority is dispatched only while the
   *   pool saturation is `< ceiling`
   */
  ceiling(priority: number): number;
}

/** Guard: the plugin is a {@link UsageLimitPolicy}. */
export const isUsageLimitPolicy = (p: Plugin): p is UsageLimitPolicy =>
  typeof (p as UsageLimitPolicy).ceiling === "function";

/** In-flight load of one endpoint (requests sent and not completed, and their tokens). */
export interface InflightCounts {
  requests: number;
  tokens: number;
}

/**
 * Counts requests in flight per endpoint id. The concurrency detector reads it; it is fed
 * from the request path (PreRequest → `start`, ResponseComplete → `finish`).
 */
export interface InflightTracker {
  /** A request of `tokens` tokens was sent to `endpointId`. */
  start(endpointId: string, tokens: number): void;
  /** A request of `tokens` tokens on `endpointId` completed or failed (never below 0). */
  finish(endpointId: string, tokens: number): void;
  /** Current counts of an endpoint (zeros when unknown). */
  get(endpointId: string): InflightCounts;
}
