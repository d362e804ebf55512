/**
 * The registry of every built-in plugin type (llm-d-router `cmd/epp/runner/runner.go`
 * registrations, reference/epp.md §3).
 */
import type { PluginRegistry } from "../framework/plugin.js";
import { createRegistry } from "../framework/registry.js";
import { BY_LABEL_TYPE, byLabelFilterFactory } from "./filters/by-label-filter.js";
import { DECODE_FILTER_TYPE, decodeFilterFactory } from "./filters/decode-filter.js";
import {
  BY_LABEL_SELECTOR_TYPE,
  byLabelSelectorFilterFactory,
  LABEL_SELECTOR_FILTER_TYPE,
  labelSelectorFilterFactory,
} from "./filters/label-selector-filter.js";
import { PREFILL_FILTER_TYPE, prefillFilterFactory } from "./filters/prefill-filter.js";
import { registerDataLayerPlugins } from "./datalayer/index.js";
import { registerFlowControlPlugins } from "./flow-control/index.js";
import { MAX_SCORE_PICKER_TYPE, maxScorePickerFactory } from "./pickers/max-score-picker.js";
import { RANDOM_PICKER_TYPE, randomPickerFactory } from "./pickers/random-picker.js";
import {
  WEIGHTED_RANDOM_PICKER_TYPE,
  weightedRandomPickerFactory,
} from "./pickers/weighted-random-picker.js";
import { registerPrecisePlugins } from "./precise/index.js";
import { DEFAULT_PRODUCER_TYPES, registerProducerPlugins } from "./producers/index.js";
import {
  ALWAYS_DISAGG_PD_DECIDER_TYPE,
  alwaysDisaggPdDeciderFactory,
} from "./deciders/always-disagg-pd-decider.js";
import {
  PREFIX_BASED_PD_DECIDER_TYPE,
  prefixBasedPdDeciderFactory,
} from "./deciders/prefix-based-pd-decider.js";
import {
  DISAGG_PROFILE_HANDLER_TYPE,
  disaggPluginRefs,
  disaggProfileHandlerFactory,
  PD_PROFILE_HANDLER_TYPE,
  pdProfileHandlerFactory,
} from "./profile-handlers/disagg-profile-handler.js";
import {
  SINGLE_PROFILE_HANDLER_TYPE,
  singleProfileHandlerFactory,
} from "./profile-handlers/single-profile-handler.js";
import {
  KV_CACHE_UTILIZATION_SCORER_TYPE,
  kvCacheUtilizationScorerFactory,
} from "./scorers/kv-cache-utilization-scorer.js";
import { LOAD_AWARE_SCORER_TYPE, loadAwareScorerFactory } from "./scorers/load-aware-scorer.js";
import { QUEUE_SCORER_TYPE, queueScorerFactory } from "./scorers/queue-scorer.js";
import {
  RUNNING_REQUESTS_SIZE_SCORER_TYPE,
  runningRequestsSizeScorerFactory,
} from "./scorers/running-requests-size-scorer.js";

/** Registers the scheduling plugins of this folder (profile handler, filters, scorers, pickers). */
export function registerSchedulingPlugins(registry: PluginRegistry): void {
  registry.register(SINGLE_PROFILE_HANDLER_TYPE, singleProfileHandlerFactory);
  registry.register(DISAGG_PROFILE_HANDLER_TYPE, disaggProfileHandlerFactory, {
    pluginRefs: disaggPluginRefs,
  });
  registry.register(PD_PROFILE_HANDLER_TYPE, pdProfileHandlerFactory, {
    pluginRefs: disaggPluginRefs,
    deprecatedReplacement: DISAGG_PROFILE_HANDLER_TYPE,
  });
  registry.register(PREFIX_BASED_PD_DECIDER_TYPE, prefixBasedPdDeciderFactory);
  registry.register(ALWAYS_DISAGG_PD_DECIDER_TYPE, alwaysDisaggPdDeciderFactory);

  registry.register(DECODE_FILTER_TYPE, decodeFilterFactory);
  registry.register(PREFILL_FILTER_TYPE, prefillFilterFactory);
  registry.register(LABEL_SELECTOR_FILTER_TYPE, labelSelectorFilterFactory);
  registry.register(BY_LABEL_SELECTOR_TYPE, byLabelSelectorFilterFactory, {
    deprecatedReplacement: LABEL_SELECTOR_FILTER_TYPE,
  });
  registry.register(BY_LABEL_TYPE, byLabelFilterFactory, {
    deprecatedReplacement: LABEL_SELECTOR_FILTER_TYPE,
  });

  registry.register(QUEUE_SCORER_TYPE, queueScorerFactory);
  registry.register(KV_CACHE_UTILIZATION_SCORER_TYPE, kvCacheUtilizationScorerFactory);
  registry.register(RUNNING_REQUESTS_SIZE_SCORER_TYPE, runningRequestsSizeScorerFactory);
  registry.register(LOAD_AWARE_SCORER_TYPE, loadAwareScorerFactory);

  registry.register(MAX_SCORE_PICKER_TYPE, maxScorePickerFactory);
  registry.register(RANDOM_PICKER_TYPE, randomPickerFactory);
  registry.register(WEIGHTED_RANDOM_PICKER_TYPE, weightedRandomPickerFactory);
}

/**
 * Wraps a registry so that types named in `defaults` (data key → producer type) are registered
 * with `defaultProducerFor` (llm-d `RegisterAsDefaultProducer`), keeping any options given.
 */
function withDefaultProducers(
  registry: PluginRegistry,
  defaults: Readonly<Record<string, string>>,
): PluginRegistry {
  const keysByType = new Map<string, string[]>();
  for (const [key, type] of Object.entries(defaults))
    keysByType.set(type, [...(keysByType.get(type) ?? []), key]);
  return {
    register: (type, factory, opts = {}) => {
      const keys = keysByType.get(type);
      registry.register(
        type,
        factory,
        keys ? { ...opts, defaultProducerFor: [...(opts.defaultProducerFor ?? []), ...keys] } : opts,
      );
    },
    get: (type) => registry.get(type),
    types: () => registry.types(),
  };
}

/** A registry with every built-in plugin family registered. */
export function builtinRegistry(): PluginRegistry {
  const registry = createRegistry();
  registerSchedulingPlugins(registry);
  registerProducerPlugins(withDefaultProducers(registry, DEFAULT_PRODUCER_TYPES));
  registerFlowControlPlugins(registry);
  registerDataLayerPlugins(registry);
  registerPrecisePlugins(registry);
  return registry;
}
