/**
 * Wiring of the EPP core shared by `llmd router` (and later `llmd epp`): registry → config →
 * scheduler → Director, with the EPP metrics. One place, so both hosts run the same
 * scheduling and request-control path.
 */
import { readFileSync } from "node:fs";
import { loadConfig } from "../framework/config/index.js";
import type { LoadedConfig } from "../framework/plugin.js";
import { createEppMetrics, type EppMetrics } from "../metrics/epp.js";
import { builtinRegistry } from "../plugins/builtins.js";
import { buildInferenceRequest, Director, pluginDurationRecorder } from "../requestcontrol/index.js";
import { Scheduler } from "../scheduler/scheduler.js";

/** What `GET /llmd/config` shows: enough for `llmd doctor` to know whether P/D is configured. */
export interface ConfigView {
  profileHandler: { type: string; name: string };
  profiles: string[];
  /** true when the profile handler disaggregates (a prefill profile exists) */
  pd: boolean;
  featureGates: string[];
  resolved: Record<string, unknown>;
}

/** Summarises a loaded config for `GET /llmd/config`. */
export function configView(config: LoadedConfig): ConfigView {
  const h = config.profileHandler;
  const profiles = [...config.profiles.keys()];
  return {
    profileHandler: { type: h.type, name: h.name },
    profiles,
    pd: (h.type === "disagg-profile-handler" || h.type === "pd-profile-handler") && profiles.length > 1,
    featureGates: [...config.featureGates],
    resolved: config.resolved,
  };
}

/** The EPP core, ready to serve requests. */
export interface EppRuntime {
  config: LoadedConfig;
  scheduler: Scheduler;
  director: Director;
  metrics: EppMetrics;
  buildRequest: (
    input: Parameters<typeof buildInferenceRequest>[0],
  ) => ReturnType<typeof buildInferenceRequest>;
}

/**
 * Builds the EPP core from a config file (or the built-in default config when none).
 * @throws ConfigError naming the offending field or plugin type
 */
export function createEppRuntime(configFile?: string): EppRuntime {
  const text = configFile ? readFileSync(configFile, "utf8") : null;
  const config = loadConfig(text, builtinRegistry());
  const metrics = createEppMetrics();
  const scheduler = new Scheduler(config, {
    onPluginDuration: (point, type, name, seconds) =>
      metrics.pluginDuration.observe(point, type, name, seconds),
  });
  const director = new Director(config, scheduler, metrics);
  return { config, scheduler, director, metrics, buildRequest: (input) => buildInferenceRequest(input) };
}
