/**
 * Flow control: admission (legacy saturation check or the flow-control engine), the engine,
 * its config section and InferenceObjectives (reference/epp.md §6, §5.3).
 */
export {
  type Admission,
  type BuiltAdmission,
  type CreateAdmissionOptions,
  createAdmission,
  FLOW_CONTROL_GATE,
  FlowControlAdmission,
  LegacyAdmission,
} from "./admission.js";
export { type Clock, ManualClock, systemClock, type TimerHandle } from "./clock.js";
export {
  type BandConfig,
  FLOW_CONTROL_CONFIG_DEFAULTS,
  type FlowControlConfig,
  parseDurationMs,
  parseFlowControlConfig,
  parseQuantityBytes,
} from "./config.js";
export {
  type BandStats,
  type CandidatesProvider,
  DEFAULT_FAIRNESS_ID,
  FlowController,
  type FlowControllerOptions,
  type FlowControlObserver,
  type FlowControlResult,
} from "./controller.js";
export {
  decodeObjective,
  type InferenceObjective,
  loadObjectivesFile,
  OBJECTIVE_API_VERSION,
  ObjectiveStore,
  parseObjectivesYaml,
} from "./objectives.js";
export { LEGACY_SATURATED_MESSAGE, outcomeError, QUEUE_OUTCOMES, type QueueOutcome } from "./outcomes.js";
