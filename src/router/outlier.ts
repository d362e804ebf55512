/**
 * Passive outlier detection (Envoy-style): an endpoint whose upstream calls fail
 * `consecutiveFailures` times in a row (connect errors, resets, 5xx before the first byte) is
 * ejected from the pool for `baseEjectionMs × times ejected` (capped at `maxEjectionMs`), then
 * comes back by itself; a success resets its failure count.
 */
import type { EndpointStore } from "../datalayer/store.js";
import type { Endpoint } from "../framework/types.js";
import { logger } from "../log.js";

const log = logger.child({ component: "outlier" });

/** Options. Durations in ms. */
export interface OutlierOptions {
  /** consecutive failures that eject (default 3) */
  consecutiveFailures?: number;
  /** first ejection, ms (default 5000) */
  baseEjectionMs?: number;
  /** longest ejection, ms (default 60 000) */
  maxEjectionMs?: number;
  /** clock, ms since the epoch */
  now?: () => number;
}

interface State {
  failures: number;
  ejections: number;
}

/** Tracks upstream outcomes per endpoint and ejects outliers through the store. */
export class OutlierDetector {
  private readonly state = new Map<string, State>();
  private readonly threshold: number;
  private readonly baseMs: number;
  private readonly maxMs: number;
  private readonly now: () => number;
  /** ejections so far (for metrics and tests) */
  ejectionsTotal = 0;

  constructor(
    private readonly store: EndpointStore,
    o: OutlierOptions = {},
  ) {
    this.threshold = o.consecutiveFailures ?? 3;
    this.baseMs = o.baseEjectionMs ?? 5000;
    this.maxMs = o.maxEjectionMs ?? 60_000;
    this.now = o.now ?? Date.now;
    store.on("removed", (ep: Endpoint) => this.state.delete(ep.metadata.id));
  }

  /** A call to `ep` succeeded. */
  success(ep: Endpoint): void {
    const s = this.state.get(ep.metadata.id);
    if (s) s.failures = 0;
  }

  /** A call to `ep` failed before a response; may eject it. */
  failure(ep: Endpoint, reason: string): void {
    const id = ep.metadata.id;
    let s = this.state.get(id);
    if (!s) {
      s = { failures: 0, ejections: 0 };
      this.state.set(id, s);
    }
    s.failures++;
    if (s.failures < this.threshold) return;
    s.failures = 0;
    s.ejections++;
    this.ejectionsTotal++;
    const ms = Math.min(this.maxMs, this.baseMs * s.ejections);
    this.store.eject(id, this.now() + ms);
    log.warn(
      { endpoint: id, ejectionMs: ms, reason },
      "endpoint ejected after consecutive upstream failures",
    );
  }
}
