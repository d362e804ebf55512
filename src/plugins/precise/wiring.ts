/**
 * Runtime wiring of notification data sources for a loaded EndpointPickerConfig, for the EPP
 * runtime to call once after `loadConfig` (reference/epp.md §2.3 `dataLayer.sources`, §5.2).
 *
 * - every `dataLayer.sources[i]` whose plugin is an {@link EndpointNotificationSource} gets its
 *   `extractors[j]` plugins (each must be an {@link EndpointExtractor}) and is attached to the
 *   endpoint pool;
 * - every plugin that is a {@link MetricsRegistrant} registers its metrics (when a registry is
 *   given);
 * - the returned `close()` detaches the sources and closes every {@link ClosablePlugin} of the
 *   config (plugin `close()` must be idempotent: the runtime may close them too).
 *
 * Sources of other kinds (`metrics-data-source`, …) are left to their own runtime.
 */
import type { Registry } from "prom-client";
import { ConfigError } from "../../framework/errors.js";
import type { LoadedConfig } from "../../framework/plugin.js";
import {
  type ClosablePlugin,
  type EndpointEventSource,
  type EndpointNotificationSource,
  isClosablePlugin,
  isEndpointExtractor,
  isEndpointNotificationSource,
  isMetricsRegistrant,
} from "../../framework/types.js";

/** Handle of a {@link wireEndpointNotifications} wiring. */
export interface NotificationWiring {
  /** the attached notification sources */
  readonly sources: readonly EndpointNotificationSource[];
  /** detaches sources, then closes every closable plugin (ZMQ subscribers…) */
  close(): Promise<void>;
}

interface SourceRef {
  pluginRef: string;
  extractors?: { pluginRef: string }[];
}

/**
 * Wires the notification sources of `loaded` to `pool` (see module doc).
 * @throws ConfigError naming `dataLayer.sources[i].extractors[j].pluginRef` when an extractor
 *   of a notification source cannot receive endpoint notifications
 */
export function wireEndpointNotifications(
  loaded: LoadedConfig,
  pool: EndpointEventSource,
  registry?: Registry,
): NotificationWiring {
  const byName = new Map(loaded.plugins.map((p) => [p.name, p]));
  const dl = (loaded.resolved.dataLayer ?? {}) as { sources?: SourceRef[] };
  const pending: { source: EndpointNotificationSource; extractors: string[]; at: number }[] = [];
  for (const [i, s] of (dl.sources ?? []).entries()) {
    const src = byName.get(s.pluginRef);
    if (!src || !isEndpointNotificationSource(src)) continue;
    const names = (s.extractors ?? []).map((x) => x.pluginRef);
    for (const [j, n] of names.entries()) {
      const x = byName.get(n);
      if (!x || !isEndpointExtractor(x)) {
        throw new ConfigError(
          `dataLayer.sources[${i}].extractors[${j}].pluginRef: plugin "${n}" cannot receive endpoint notifications from "${s.pluginRef}"`,
        );
      }
    }
    pending.push({ source: src, extractors: names, at: i });
  }
  if (registry) for (const p of loaded.plugins) if (isMetricsRegistrant(p)) p.registerMetrics(registry);
  for (const { source, extractors } of pending) {
    for (const n of extractors) {
      const x = byName.get(n);
      if (x && isEndpointExtractor(x)) source.addExtractor(x);
    }
    source.attachEndpointSource(pool);
  }
  return {
    sources: pending.map((p) => p.source),
    async close() {
      for (const { source } of pending) source.detach();
      const closables: ClosablePlugin[] = [];
      for (const p of loaded.plugins) if (isClosablePlugin(p)) closables.push(p);
      await Promise.all(closables.map((p) => p.close()));
    },
  };
}
