/** Request control: the Director and the request builder (transport-independent). */
export {
  DEFAULT_PRODUCE_TIMEOUT_MS,
  Director,
  type DirectorOptions,
  type DirectorResult,
  pluginDurationRecorder,
  producerLevels,
  RC_EXTENSION_POINT,
  type SchedulerLike,
} from "./director.js";
export {
  type BuildRequestInput,
  buildInferenceRequest,
  DEFAULT_FAIRNESS_ID,
  OBJECTIVE_ATTRIBUTE,
  type ObjectiveLookup,
} from "./request.js";
