/**
 * `metrics-data-source` — the data-layer source that GETs each endpoint's Prometheus text
 * (`/metrics`) on a timer (llm-d-router `datalayer/source/metrics`, reference/epp.md §5.2). In
 * llmd-ts the polling itself is the runtime's {@link MetricsScraper}
 * (`src/datalayer/scraper.ts`); this plugin carries its parameters, and the EPP runtime reads
 * them with {@link scraperOptionsFromConfig}.
 *
 * Parameters (decoded strictly):
 * - `scheme` (`http` | `https`, default `http`)
 * - `path` (string starting with `/`, default `/metrics`)
 * - `insecureSkipVerify` (bool, default true): https without certificate verification
 * - `caCertPath` (file path, optional): CA bundle to verify the servers' certificates
 * - `clientCertPath`, `clientKeyPath` (file paths, optional, both or neither): client
 *   certificate for mutual TLS (names are ours: the reference only says "client cert")
 * - `interval` (Go duration like `50ms`/`1s`, or a number of ms; default: every base tick, the
 *   router's `--refresh-metrics-interval`, 50 ms): rounded to a multiple of the tick, ≥ 1 tick
 *
 * Source: reference/epp.md §5.2 ("`metrics-data-source` (`scheme` http, `path` /metrics,
 * `insecureSkipVerify` true, `caCertPath`, client cert, `interval`) … base tick 50 ms;
 * `interval` rounded to tick multiples; omitted = every tick").
 */
import { z } from "zod";
import { decodeParams, ParamsError } from "../../framework/config/params.js";
import { parseDurationMs } from "../../framework/duration.js";
import type { LoadedConfig, Plugin, PluginFactory } from "../../framework/plugin.js";

export const METRICS_DATA_SOURCE_TYPE = "metrics-data-source";

const schema = z
  .object({
    scheme: z.enum(["http", "https"]).default("http"),
    path: z.string().startsWith("/").default("/metrics"),
    insecureSkipVerify: z.boolean().default(true),
    caCertPath: z.string().min(1).optional(),
    clientCertPath: z.string().min(1).optional(),
    clientKeyPath: z.string().min(1).optional(),
    interval: z.union([z.string(), z.number().nonnegative()]).optional(),
  })
  .strict();

/** Decoded parameters of {@link MetricsDataSourcePlugin}. */
export interface MetricsSourceParams {
  scheme: "http" | "https";
  /** path of the Prometheus text endpoint, e.g. `/metrics` */
  path: string;
  insecureSkipVerify: boolean;
  caCertPath?: string;
  clientCertPath?: string;
  clientKeyPath?: string;
  /** poll interval, ms; undefined = every base tick */
  intervalMs?: number;
}

/**
 * Decodes the parameters (see file header).
 * @throws ParamsError naming the field (unknown field, bad duration, a lone client cert/key)
 */
export function decodeMetricsSourceParams(raw: unknown): MetricsSourceParams {
  const p = decodeParams(schema, raw);
  let intervalMs: number | undefined;
  if (p.interval !== undefined) {
    try {
      intervalMs = parseDurationMs(p.interval);
    } catch (e) {
      throw new ParamsError("interval", (e as Error).message);
    }
  }
  if ((p.clientCertPath === undefined) !== (p.clientKeyPath === undefined)) {
    throw new ParamsError(
      p.clientCertPath === undefined ? "clientCertPath" : "clientKeyPath",
      "clientCertPath and clientKeyPath go together",
    );
  }
  const { interval: _i, ...rest } = p;
  return { ...rest, ...(intervalMs !== undefined ? { intervalMs } : {}) };
}

/** The source plugin: its decoded parameters, for the runtime's scraper. */
export class MetricsDataSourcePlugin implements Plugin {
  readonly type = METRICS_DATA_SOURCE_TYPE;
  constructor(
    readonly name: string,
    readonly params: MetricsSourceParams,
  ) {}

  /** The resolved parameters in config terms (`llmd config check` shows them). */
  get parameters(): Record<string, unknown> {
    const { intervalMs, ...rest } = this.params;
    return { ...rest, ...(intervalMs !== undefined ? { interval: `${intervalMs}ms` } : {}) };
  }
}

/** Factory. @throws ParamsError naming the offending field */
export const metricsDataSourceFactory: PluginFactory = (name, params) =>
  new MetricsDataSourcePlugin(name, decodeMetricsSourceParams(params));

/** What the runtime's scraper needs from the config. */
export interface ScrapeSettings {
  scheme: "http" | "https";
  /** metrics path */
  path: string;
  /** poll interval, ms (a multiple of the tick, ≥ the tick) */
  intervalMs: number;
  insecureSkipVerify: boolean;
  caCertPath?: string;
  clientCertPath?: string;
  clientKeyPath?: string;
  /** the source plugin's name, or null when the config uses the injected default source */
  source: string | null;
}

/**
 * The scrape settings of a loaded config: the first `dataLayer.sources[]` entry whose plugin is
 * a `metrics-data-source`; defaults (http, `/metrics`, every tick) when the config has none
 * (the loader injects a reference to the default source without instantiating it).
 * @param tickMs the base tick, ms (`--refresh-metrics-interval`, default 50); must be > 0
 */
export function scraperOptionsFromConfig(config: LoadedConfig, tickMs = 50): ScrapeSettings {
  const byName = new Map(config.plugins.map((p) => [p.name, p]));
  const dl = (config.resolved.dataLayer ?? {}) as { sources?: { pluginRef: string }[] };
  let src: MetricsDataSourcePlugin | undefined;
  for (const s of dl.sources ?? []) {
    const p = byName.get(s.pluginRef);
    if (p instanceof MetricsDataSourcePlugin) {
      src = p;
      break;
    }
  }
  const tick = tickMs > 0 ? tickMs : 50;
  const p = src?.params ?? decodeMetricsSourceParams({});
  const intervalMs =
    p.intervalMs === undefined ? tick : Math.max(tick, Math.round(p.intervalMs / tick) * tick);
  return {
    scheme: p.scheme,
    path: p.path,
    intervalMs,
    insecureSkipVerify: p.insecureSkipVerify,
    ...(p.caCertPath ? { caCertPath: p.caCertPath } : {}),
    ...(p.clientCertPath ? { clientCertPath: p.clientCertPath, clientKeyPath: p.clientKeyPath } : {}),
    source: src?.name ?? null,
  };
}
