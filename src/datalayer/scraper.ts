/**
 * Metrics scraper: one polling loop per endpoint that GETs `/metrics` every interval
 * (default 50 ms, llm-d's `--refresh-metrics-interval`; reference/epp.md §5.2) and writes
 * the extracted snapshot on the endpoint, and reads `/v1/models` (the models data source)
 * until it succeeds and then every `modelsIntervalMs`.
 *
 * Loops never overlap: the next poll is scheduled after the previous one ends. Upstream
 * connections are kept alive (one undici Pool per endpoint).
 */
import { Pool } from "undici";
import type { Endpoint } from "../framework/types.js";
import { logger } from "../log.js";
import { extractVllmMetrics } from "./prometheus.js";
import type { EndpointStore } from "./store.js";

const log = logger.child({ component: "scraper" });

/** Scraper options. Durations in ms. */
export interface ScraperOptions {
  /** metrics poll interval, ms (default 50) */
  intervalMs?: number;
  /** `/v1/models` poll interval once known, ms (default 2000) */
  modelsIntervalMs?: number;
  /** per-request timeout, ms (default 1000) */
  timeoutMs?: number;
  /** metrics path (default `/metrics`; `metrics-data-source` `path`) */
  metricsPath?: string;
  /** `http` (default) or `https` (`metrics-data-source` `scheme`) */
  scheme?: "http" | "https";
  /** TLS client options for https (`insecureSkipVerify` → `rejectUnauthorized: false`; PEM contents) */
  tls?: { rejectUnauthorized: boolean; ca?: string; cert?: string; key?: string };
  /** called on a failed poll (for `datalayer_poll_errors_total`) */
  onPollError?: (endpoint: Endpoint, error: string) => void;
}

interface Loop {
  pool: Pool;
  timer?: NodeJS.Timeout;
  stopped: boolean;
  nextModelsAt: number;
}

/** Follows the store's endpoints and keeps their metrics fresh. */
export class MetricsScraper {
  private readonly loops = new Map<string, Loop>();
  private readonly intervalMs: number;
  private readonly modelsIntervalMs: number;
  private readonly timeoutMs: number;
  private readonly onAdded = (ep: Endpoint) => this.startLoop(ep);
  private readonly onRemoved = (ep: Endpoint) => this.stopLoop(ep.metadata.id);

  constructor(
    private readonly store: EndpointStore,
    private readonly opts: ScraperOptions = {},
  ) {
    this.intervalMs = opts.intervalMs ?? 50;
    this.modelsIntervalMs = opts.modelsIntervalMs ?? 2000;
    this.timeoutMs = opts.timeoutMs ?? 1000;
  }

  /** Starts polling every endpoint in the store, and those added later. */
  start(): void {
    this.store.on("added", this.onAdded);
    this.store.on("removed", this.onRemoved);
    for (const ep of this.store.all()) this.startLoop(ep);
  }

  /** Stops every loop and closes connections. */
  async stop(): Promise<void> {
    this.store.off("added", this.onAdded);
    this.store.off("removed", this.onRemoved);
    await Promise.all([...this.loops.keys()].map((id) => this.stopLoop(id)));
  }

  /** Polls one endpoint once, now (tests and `llmd up` readiness use it). */
  async pollOnce(ep: Endpoint): Promise<void> {
    const loop = this.loops.get(ep.metadata.id);
    if (loop) await this.poll(ep, loop);
  }

  private startLoop(ep: Endpoint): void {
    if (this.loops.has(ep.metadata.id)) return;
    const scheme = this.opts.scheme ?? "http";
    const pool = new Pool(`${scheme}://${ep.metadata.hostPort}`, {
      connections: 2,
      keepAliveTimeout: 30_000,
      ...(scheme === "https" && this.opts.tls ? { connect: { ...this.opts.tls } } : {}),
    });
    const loop: Loop = { pool, stopped: false, nextModelsAt: 0 };
    this.loops.set(ep.metadata.id, loop);
    const tick = async () => {
      if (loop.stopped) return;
      await this.poll(ep, loop);
      if (!loop.stopped) loop.timer = setTimeout(tick, this.intervalMs);
    };
    loop.timer = setTimeout(tick, 0);
  }

  private async stopLoop(id: string): Promise<void> {
    const loop = this.loops.get(id);
    if (!loop) return;
    loop.stopped = true;
    if (loop.timer) clearTimeout(loop.timer);
    this.loops.delete(id);
    await loop.pool.close().catch(() => {});
  }

  private async get(loop: Loop, path: string): Promise<string> {
    const res = await loop.pool.request({
      method: "GET",
      path,
      headersTimeout: this.timeoutMs,
      bodyTimeout: this.timeoutMs,
    });
    const text = await res.body.text();
    if (res.statusCode !== 200) throw new Error(`GET ${path}: HTTP ${res.statusCode}`);
    return text;
  }

  private async poll(ep: Endpoint, loop: Loop): Promise<void> {
    const id = ep.metadata.id;
    try {
      const now = Date.now();
      if (now >= loop.nextModelsAt) {
        const body = JSON.parse(await this.get(loop, "/v1/models")) as { data?: { id?: unknown }[] };
        const ids = (body.data ?? []).map((m) => m.id).filter((x): x is string => typeof x === "string");
        this.store.setModels(id, ids);
        loop.nextModelsAt = now + this.modelsIntervalMs;
      }
      const m = extractVllmMetrics(await this.get(loop, this.opts.metricsPath ?? "/metrics"));
      const t = Date.now();
      ep.metrics = { ...ep.metrics, ...m, updateTime: t };
      this.store.markScrapeOk(id, t);
    } catch (e) {
      if (loop.stopped) return;
      const msg = (e as Error).message;
      const h = this.store.health(id);
      if (h && h.consecutiveFailures === 0) log.warn({ endpoint: id, err: msg }, "metrics scrape failed");
      this.store.markScrapeFailed(id, msg);
      loop.nextModelsAt = 0;
      this.opts.onPollError?.(ep, msg);
    }
  }
}
