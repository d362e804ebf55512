/**
 * The endpoint store: the pool as the EPP sees it. Discovery writes endpoints into it; the
 * metrics scraper updates their metrics snapshots and model lists; the scheduler reads
 * {@link EndpointStore.ready} snapshots. Emits `added`/`removed` events for subscribers that
 * follow endpoints (KV-event subscribers, outlier detection).
 */
import { EventEmitter } from "node:events";
import type { Endpoint, EndpointMetadata } from "../framework/types.js";
import { emptyMetrics } from "../framework/types.js";

/** Health of one endpoint as the data layer sees it. */
export interface EndpointHealth {
  /** ms since the epoch of the last successful metrics scrape (0 = never) */
  lastScrapeOk: number;
  /** consecutive failed scrapes */
  consecutiveFailures: number;
  /** last scrape error message */
  lastError?: string;
  /** whether `/v1/models` has been read at least once */
  modelsKnown: boolean;
  /** ms since the epoch until which the endpoint is ejected by passive outlier detection (0 = not) */
  ejectedUntil: number;
}

/** Consecutive failed scrapes after which an endpoint stops being ready. */
export const NOT_READY_AFTER_FAILURES = 3;

interface Entry {
  endpoint: Endpoint;
  health: EndpointHealth;
}

/** Events: `added` (Endpoint), `removed` (Endpoint), `changed` (). */
export class EndpointStore extends EventEmitter {
  private readonly entries = new Map<string, Entry>();
  /** cached list of ready endpoints, rebuilt on change */
  private readyCache: Endpoint[] | null = null;
  /** earliest ejection expiry among ejected ready endpoints (0 = none) */
  private nextEjectionExpiry = 0;

  /** Adds or updates one endpoint (labels/address changes replace the metadata). */
  upsert(meta: EndpointMetadata): Endpoint {
    const cur = this.entries.get(meta.id);
    if (cur && cur.endpoint.metadata.hostPort === meta.hostPort) {
      Object.assign(cur.endpoint.metadata, {
        labels: meta.labels,
        name: meta.name,
        namespace: meta.namespace,
      });
      this.touch();
      return cur.endpoint;
    }
    if (cur) this.remove(meta.id);
    const endpoint: Endpoint = {
      metadata: { ...meta },
      metrics: emptyMetrics(),
      models: new Set(),
      attributes: new Map(),
    };
    this.entries.set(meta.id, {
      endpoint,
      health: { lastScrapeOk: 0, consecutiveFailures: 0, modelsKnown: false, ejectedUntil: 0 },
    });
    this.touch();
    this.emit("added", endpoint);
    return endpoint;
  }

  /** Removes an endpoint; no-op if unknown. */
  remove(id: string): void {
    const e = this.entries.get(id);
    if (!e) return;
    this.entries.delete(id);
    this.touch();
    this.emit("removed", e.endpoint);
  }

  /** Replaces the whole pool with `metas` (discovery reconcile). */
  replaceAll(metas: EndpointMetadata[]): void {
    const ids = new Set(metas.map((m) => m.id));
    for (const id of [...this.entries.keys()]) if (!ids.has(id)) this.remove(id);
    for (const m of metas) this.upsert(m);
  }

  /** Every endpoint, ready or not. */
  all(): Endpoint[] {
    return [...this.entries.values()].map((e) => e.endpoint);
  }

  /** Endpoint by id. */
  get(id: string): Endpoint | undefined {
    return this.entries.get(id)?.endpoint;
  }

  /** Health record of an endpoint. */
  health(id: string): EndpointHealth | undefined {
    return this.entries.get(id)?.health;
  }

  /**
   * Endpoints that can take traffic: scraped successfully, fewer than
   * {@link NOT_READY_AFTER_FAILURES} consecutive failures, and their model list known.
   * The returned array is shared; do not mutate it.
   */
  ready(): Endpoint[] {
    if (this.readyCache !== null && this.nextEjectionExpiry > 0 && Date.now() >= this.nextEjectionExpiry) {
      this.readyCache = null;
    }
    if (this.readyCache === null) {
      const now = Date.now();
      this.nextEjectionExpiry = 0;
      this.readyCache = [];
      for (const e of this.entries.values()) {
        if (!isReady(e.health)) continue;
        if (e.health.ejectedUntil > now) {
          if (this.nextEjectionExpiry === 0 || e.health.ejectedUntil < this.nextEjectionExpiry) {
            this.nextEjectionExpiry = e.health.ejectedUntil;
          }
          continue;
        }
        this.readyCache.push(e.endpoint);
      }
    }
    return this.readyCache;
  }

  /**
   * Ejects an endpoint from {@link ready} until `untilMs` (ms since the epoch; passive outlier
   * detection); it comes back by itself then.
   */
  eject(id: string, untilMs: number): void {
    const e = this.entries.get(id);
    if (!e) return;
    e.health.ejectedUntil = untilMs;
    this.touch();
  }

  /** Records a successful scrape (metrics already written on the endpoint). */
  markScrapeOk(id: string, now: number): void {
    const e = this.entries.get(id);
    if (!e) return;
    const wasReady = isReady(e.health);
    e.health.lastScrapeOk = now;
    e.health.consecutiveFailures = 0;
    e.health.lastError = undefined;
    if (!wasReady && isReady(e.health)) this.touch();
  }

  /** Records a failed scrape. */
  markScrapeFailed(id: string, error: string): void {
    const e = this.entries.get(id);
    if (!e) return;
    const wasReady = isReady(e.health);
    e.health.consecutiveFailures++;
    e.health.lastError = error;
    if (wasReady !== isReady(e.health)) this.touch();
  }

  /** Sets the models an endpoint serves (from `/v1/models`). */
  setModels(id: string, models: Iterable<string>): void {
    const e = this.entries.get(id);
    if (!e) return;
    e.endpoint.models = new Set(models);
    const changed = !e.health.modelsKnown;
    e.health.modelsKnown = true;
    if (changed) this.touch();
    else this.readyCache = null;
  }

  /** Union of models over ready endpoints. */
  readyModels(): Set<string> {
    const s = new Set<string>();
    for (const ep of this.ready()) for (const m of ep.models) s.add(m);
    return s;
  }

  private touch(): void {
    this.readyCache = null;
    this.emit("changed");
  }
}

function isReady(h: EndpointHealth): boolean {
  return h.lastScrapeOk > 0 && h.consecutiveFailures < NOT_READY_AFTER_FAILURES && h.modelsKnown;
}
