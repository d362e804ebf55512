/**
 * Registration of the flow-control plugin family: fairness, ordering and usage-limit policies
 * and the saturation detectors (reference/epp.md §6). The integrating engineer calls
 * {@link registerFlowControlPlugins} from the builtins.
 */
import type { PluginRegistry } from "../../framework/plugin.js";
import { CONCURRENCY_DETECTOR_TYPE, concurrencyDetectorFactory } from "../saturation/concurrency-detector.js";
import { UTILIZATION_DETECTOR_TYPE, utilizationDetectorFactory } from "../saturation/utilization-detector.js";
import { EDF_ORDERING_POLICY_TYPE, edfOrderingPolicyFactory } from "./edf-ordering-policy.js";
import { FCFS_ORDERING_POLICY_TYPE, fcfsOrderingPolicyFactory } from "./fcfs-ordering-policy.js";
import {
  GLOBAL_STRICT_FAIRNESS_POLICY_TYPE,
  globalStrictFairnessPolicyFactory,
} from "./global-strict-fairness-policy.js";
import {
  ROUND_ROBIN_FAIRNESS_POLICY_TYPE,
  roundRobinFairnessPolicyFactory,
} from "./round-robin-fairness-policy.js";
import {
  STATIC_USAGE_LIMIT_POLICY_TYPE,
  staticUsageLimitPolicyFactory,
} from "./static-usage-limit-policy.js";

/** Every plugin type registered by {@link registerFlowControlPlugins}. */
export const FLOW_CONTROL_PLUGIN_TYPES = [
  GLOBAL_STRICT_FAIRNESS_POLICY_TYPE,
  ROUND_ROBIN_FAIRNESS_POLICY_TYPE,
  FCFS_ORDERING_POLICY_TYPE,
  EDF_ORDERING_POLICY_TYPE,
  STATIC_USAGE_LIMIT_POLICY_TYPE,
  UTILIZATION_DETECTOR_TYPE,
  CONCURRENCY_DETECTOR_TYPE,
] as const;

/**
 * Registers the flow-control policies and the saturation detectors.
 * @throws Error when one of the types is already registered
 */
export function registerFlowControlPlugins(registry: PluginRegistry): void {
  registry.register(GLOBAL_STRICT_FAIRNESS_POLICY_TYPE, globalStrictFairnessPolicyFactory);
  registry.register(ROUND_ROBIN_FAIRNESS_POLICY_TYPE, roundRobinFairnessPolicyFactory);
  registry.register(FCFS_ORDERING_POLICY_TYPE, fcfsOrderingPolicyFactory);
  registry.register(EDF_ORDERING_POLICY_TYPE, edfOrderingPolicyFactory);
  registry.register(STATIC_USAGE_LIMIT_POLICY_TYPE, staticUsageLimitPolicyFactory);
  registry.register(UTILIZATION_DETECTOR_TYPE, utilizationDetectorFactory);
  registry.register(CONCURRENCY_DETECTOR_TYPE, concurrencyDetectorFactory);
}

export {
  ConcurrencyDetector,
  InflightCounter,
} from "../saturation/concurrency-detector.js";
export { UtilizationDetector } from "../saturation/utilization-detector.js";
export { EdfOrderingPolicy } from "./edf-ordering-policy.js";
export { FcfsOrderingPolicy } from "./fcfs-ordering-policy.js";
export { GlobalStrictFairnessPolicy } from "./global-strict-fairness-policy.js";
export { RoundRobinFairnessPolicy } from "./round-robin-fairness-policy.js";
export { StaticUsageLimitPolicy } from "./static-usage-limit-policy.js";
