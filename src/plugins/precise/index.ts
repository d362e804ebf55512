/**
 * Registration of the precise prefix-cache family: `endpoint-notification-source`,
 * `precise-prefix-cache-producer` and the deprecated `precise-prefix-cache-scorer`.
 *
 * Runtime wiring the integrator must do after loading a config — one call:
 * `const w = wireEndpointNotifications(loaded, endpointStore, eppMetrics.registry)` and
 * `await w.close()` on shutdown. What it does (see docs/precise-routing.md):
 * 1. for each `dataLayer.sources[i]` whose plugin `isEndpointNotificationSource`, call
 *    `addExtractor(p)` for every plugin `p` of `extractors[].pluginRef` with
 *    `isEndpointExtractor(p)`, then `attachEndpointSource(endpointStore)`;
 * 2. `registerMetrics(registry)` on every plugin with `isMetricsRegistrant`;
 * 3. on shutdown, `close()` on every plugin with `isClosablePlugin`.
 * (guards in `src/framework/types.ts`.)
 */
import type { PluginRegistry } from "../../framework/plugin.js";
import {
  ENDPOINT_NOTIFICATION_SOURCE_TYPE,
  EndpointNotificationSourcePlugin,
  endpointNotificationSourceFactory,
} from "./endpoint-notification-source.js";
import {
  PRECISE_PREFIX_CACHE_PRODUCER_TYPE,
  PrecisePrefixCacheProducer,
  precisePrefixCacheProducerFactory,
} from "./precise-prefix-cache-producer.js";
import {
  PRECISE_PREFIX_CACHE_SCORER_TYPE,
  PrecisePrefixCacheScorer,
  precisePrefixCacheScorerFactory,
} from "./precise-prefix-cache-scorer.js";

export { EndpointNotificationSourcePlugin, PrecisePrefixCacheProducer, PrecisePrefixCacheScorer };
export {
  ENDPOINT_NOTIFICATION_SOURCE_TYPE,
  PRECISE_PREFIX_CACHE_PRODUCER_TYPE,
  PRECISE_PREFIX_CACHE_SCORER_TYPE,
};

/** Registers the family. @throws Error when a type is already registered */
export function registerPrecisePlugins(registry: PluginRegistry): void {
  registry.register(ENDPOINT_NOTIFICATION_SOURCE_TYPE, endpointNotificationSourceFactory);
  registry.register(PRECISE_PREFIX_CACHE_PRODUCER_TYPE, precisePrefixCacheProducerFactory);
  registry.register(PRECISE_PREFIX_CACHE_SCORER_TYPE, precisePrefixCacheScorerFactory, {
    deprecatedReplacement: `${PRECISE_PREFIX_CACHE_PRODUCER_TYPE} + prefix-cache-scorer`,
  });
}

export { type NotificationWiring, wireEndpointNotifications } from "./wiring.js";
