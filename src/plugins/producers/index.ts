/**
 * Registration of the data-producer family and the scorers that read producer attributes
 * (prefix-cache-scorer, active-request-scorer).
 */
import type { PluginRegistry } from "../../framework/plugin.js";

/** Registers every plugin of this family. */
export function registerProducerPlugins(_registry: PluginRegistry): void {
  // filled in by the producers work
}
