/**
 * Data-layer plugins whose work is done by the runtime's metrics scraper:
 * `metrics-data-source` (its parameters configure the scraper) and `core-metrics-extractor`
 * (reference/epp.md §5.2). The notification source is in `../precise/`.
 */
import type { PluginRegistry } from "../../framework/plugin.js";
import { CORE_METRICS_EXTRACTOR_TYPE, coreMetricsExtractorFactory } from "./core-metrics-extractor.js";
import { METRICS_DATA_SOURCE_TYPE, metricsDataSourceFactory } from "./metrics-data-source.js";

export {
  CORE_METRICS_EXTRACTOR_TYPE,
  CoreMetricsExtractorPlugin,
  decodeCoreMetricsParams,
} from "./core-metrics-extractor.js";
export {
  decodeMetricsSourceParams,
  METRICS_DATA_SOURCE_TYPE,
  MetricsDataSourcePlugin,
  type ScrapeSettings,
  scraperOptionsFromConfig,
} from "./metrics-data-source.js";

/** Registers `metrics-data-source` and `core-metrics-extractor`. @throws Error when already registered */
export function registerDataLayerPlugins(registry: PluginRegistry): void {
  registry.register(METRICS_DATA_SOURCE_TYPE, metricsDataSourceFactory);
  registry.register(CORE_METRICS_EXTRACTOR_TYPE, coreMetricsExtractorFactory);
}
