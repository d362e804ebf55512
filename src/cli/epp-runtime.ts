/**
 * Wiring of the EPP core shared by `llmd router` and `llmd epp`: registry → config →
 * admission (legacy or flow control) → scheduler → Director, with the EPP metrics. One place,
 * so both hosts run the same scheduling and request-control path.
 */
import { readFileSync } from "node:fs";
import { MetricsScraper, type ScraperOptions } from "../datalayer/scraper.js";
import type { EndpointStore } from "../datalayer/store.js";
import { loadConfig } from "../framework/config/index.js";
import type { LoadedConfig } from "../framework/plugin.js";
import { type Admission, createAdmission } from "../flowcontrol/index.js";
import { loadObjectivesFile, ObjectiveStore } from "../flowcontrol/objectives.js";
import { createEppMetrics, type EppMetrics } from "../metrics/epp.js";
import { createFlowControlMetrics } from "../metrics/flow-control.js";
import { builtinRegistry } from "../plugins/builtins.js";
import { type ScrapeSettings, scraperOptionsFromConfig } from "../plugins/datalayer/index.js";
import {
  type NotificationWiring,
  PrecisePrefixCacheProducer,
  wireEndpointNotifications,
} from "../plugins/precise/index.js";
import type { PreciseHealth } from "../plugins/precise/precise-prefix-cache-producer.js";
import { buildInferenceRequest, Director, pluginDurationRecorder } from "../requestcontrol/index.js";
import type { RequestPolicies } from "../requestcontrol/pipeline.js";
import { Scheduler } from "../scheduler/scheduler.js";

/** What `GET /llmd/config` shows: enough for `llmd doctor` to know whether P/D is configured. */
export interface ConfigView {
  profileHandler: { type: string; name: string };
  profiles: string[];
  /** true when the profile handler disaggregates (a prefill profile exists) */
  pd: boolean;
  featureGates: string[];
  /** `legacy` (saturation shedding of sheddable requests) or `flow-control` */
  admission: string;
  resolved: Record<string, unknown>;
}

/** Summarises a loaded config for `GET /llmd/config`. */
export function configView(config: LoadedConfig, admission?: Admission): ConfigView {
  const h = config.profileHandler;
  const profiles = [...config.profiles.keys()];
  return {
    profileHandler: { type: h.type, name: h.name },
    profiles,
    pd: (h.type === "disagg-profile-handler" || h.type === "pd-profile-handler") && profiles.length > 1,
    featureGates: [...config.featureGates],
    admission: admission?.mode ?? "none",
    resolved: config.resolved,
  };
}

/** The EPP core, ready to serve requests. */
export interface EppRuntime {
  config: LoadedConfig;
  scheduler: Scheduler;
  director: Director;
  admission: Admission;
  metrics: EppMetrics;
  objectives: ObjectiveStore;
  /** request policies from the objectives (model rewrites come from Kubernetes CRDs) */
  policies: RequestPolicies;
  buildRequest: (
    input: Parameters<typeof buildInferenceRequest>[0],
    lookupObjective?: Parameters<typeof buildInferenceRequest>[1],
  ) => ReturnType<typeof buildInferenceRequest>;
}

/** Options of {@link createEppRuntime}. */
export interface EppRuntimeOptions {
  /** EndpointPickerConfig YAML file; none = the built-in default config */
  configFile?: string;
  /** InferenceObjective YAML file (priorities for `x-llm-d-inference-objective`) */
  objectivesFile?: string;
}

/**
 * Builds the EPP core.
 * @throws ConfigError naming the offending field or plugin type; Error for an unreadable file
 */
export function createEppRuntime(o: EppRuntimeOptions | string = {}): EppRuntime {
  const opts = typeof o === "string" ? { configFile: o } : o;
  const text = opts.configFile ? readFileSync(opts.configFile, "utf8") : null;
  const registry = builtinRegistry();
  const config = loadConfig(text, registry);
  const metrics = createEppMetrics();
  const { admission } = createAdmission(config, registry, {
    observer: createFlowControlMetrics(metrics.registry),
  });
  const scheduler = new Scheduler(config, { onPluginDuration: pluginDurationRecorder(metrics) });
  const director = new Director(config, scheduler, metrics, { admission });
  const objectives = new ObjectiveStore();
  if (opts.objectivesFile) loadObjectivesFile(opts.objectivesFile, objectives);
  const policies: RequestPolicies = {
    objective: (name) => objectives.objective(name),
    rewriteModel: () => undefined,
  };
  return {
    config,
    scheduler,
    director,
    admission,
    metrics,
    objectives,
    policies,
    buildRequest: (input, lookup) => buildInferenceRequest(input, lookup),
  };
}

/** The running data layer of an EPP: metrics scraper and endpoint notifications (KV events). */
export interface DataLayer {
  scraper: MetricsScraper;
  /** the scrape settings taken from `metrics-data-source` (or the defaults) */
  scrape: ScrapeSettings;
  notifications: NotificationWiring;
  /** the config's precise prefix-cache producers (empty = precise routing not configured) */
  precise: PrecisePrefixCacheProducer[];
  /** stops the scraper and the notification wiring (ZMQ subscribers) */
  close(): Promise<void>;
}

/** What `GET /llmd/kv-events` shows (for `llmd doctor`). */
export interface KvEventsView {
  /** true when the config has a `precise-prefix-cache-producer` */
  configured: boolean;
  producers: ({ name: string; blockSize: number } & PreciseHealth)[];
}

/** `GET /llmd/kv-events`: every precise producer's {@link PrecisePrefixCacheProducer.health}. */
export function kvEventsView(dl: Pick<DataLayer, "precise">): KvEventsView {
  return {
    configured: dl.precise.length > 0,
    producers: dl.precise.map((p) => ({ name: p.name, blockSize: p.config.blockSize, ...p.health() })),
  };
}

/**
 * Starts the data layer of `epp` over `store`: the metrics scraper configured by the config's
 * `metrics-data-source` (path, scheme, TLS, interval rounded to `tickMs`), and the
 * `endpoint-notification-source` wiring (KV-event subscribers of precise producers), with their
 * metrics on `epp.metrics.registry`.
 * @param tickMs base scrape tick, ms (`--refresh-metrics-interval`, default 50)
 * @throws ConfigError when a notification source lists an extractor that cannot take endpoint
 *   notifications; Error when a TLS file cannot be read
 */
export function startDataLayer(
  epp: Pick<EppRuntime, "config" | "metrics">,
  store: EndpointStore,
  opts: { tickMs?: number; onPollError?: ScraperOptions["onPollError"] } = {},
): DataLayer {
  const scrape = scraperOptionsFromConfig(epp.config, opts.tickMs ?? 50);
  const pem = (f?: string) => (f ? readFileSync(f, "utf8") : undefined);
  const scraper = new MetricsScraper(store, {
    intervalMs: scrape.intervalMs,
    metricsPath: scrape.path,
    scheme: scrape.scheme,
    ...(scrape.scheme === "https"
      ? {
          tls: {
            rejectUnauthorized: !scrape.insecureSkipVerify,
            ca: pem(scrape.caCertPath),
            cert: pem(scrape.clientCertPath),
            key: pem(scrape.clientKeyPath),
          },
        }
      : {}),
    onPollError: opts.onPollError,
  });
  const notifications = wireEndpointNotifications(epp.config, store, epp.metrics.registry);
  scraper.start();
  const precise = epp.config.plugins.filter(
    (p): p is PrecisePrefixCacheProducer => p instanceof PrecisePrefixCacheProducer,
  );
  return {
    scraper,
    scrape,
    notifications,
    precise,
    async close() {
      await scraper.stop();
      await notifications.close();
    },
  };
}
