/**
 * In-memory {@link PluginRegistry}: plugin factories by type name, as llm-d's
 * `fwkplugin.Register(type, factory)` / `RegisterDeprecated(...)` (reference/epp.md §10).
 */
import type { PluginFactory, PluginRegistry, RegisterOptions } from "./plugin.js";

/**
 * Creates an empty registry.
 *
 * `register` throws an `Error` when the type is empty or already registered;
 * `types()` returns every registered type, sorted.
 */
export function createRegistry(): PluginRegistry {
  const entries = new Map<string, { factory: PluginFactory; opts: RegisterOptions }>();
  return {
    register(type: string, factory: PluginFactory, opts: RegisterOptions = {}): void {
      if (type === "") throw new Error("plugin type must not be empty");
      if (entries.has(type)) throw new Error(`plugin type ${JSON.stringify(type)} is already registered`);
      entries.set(type, { factory, opts });
    },
    get(type: string) {
      return entries.get(type);
    },
    types(): string[] {
      return [...entries.keys()].sort();
    },
  };
}
