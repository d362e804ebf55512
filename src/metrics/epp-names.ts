/**
 * EPP Prometheus metric names: the canonical `llm_d_epp_*` names and their deprecated twins,
 * which are still emitted alongside (dual emission).
 *
 * Source: llm-d-router `docs/metrics.md`, `pkg/epp/metrics/metrics.go` (reference/epp.md §7).
 * Counter names carry `_total` as exposed.
 */

/** Canonical prefix of every EPP metric. */
export const EPP_PREFIX = "llm_d_epp_";

// ── request / latency (labels model_name, target_model_name, fairness_id, priority) ──
export const REQUEST_TOTAL = "llm_d_epp_request_total";
export const REQUEST_TOTAL_DEPRECATED = "inference_objective_request_total";
export const REQUEST_ERROR_TOTAL = "llm_d_epp_request_error_total";
export const REQUEST_ERROR_TOTAL_DEPRECATED = "inference_objective_request_error_total";
export const REQUEST_DURATION_SECONDS = "llm_d_epp_request_duration_seconds";
export const REQUEST_DURATION_SECONDS_DEPRECATED = "inference_objective_request_duration_seconds";
export const REQUEST_SIZE_BYTES = "llm_d_epp_request_size_bytes";
export const REQUEST_SIZE_BYTES_DEPRECATED = "inference_objective_request_sizes";
export const RESPONSE_SIZE_BYTES = "llm_d_epp_response_size_bytes";
export const RESPONSE_SIZE_BYTES_DEPRECATED = "inference_objective_response_sizes";
export const REQUEST_INPUT_TOKENS = "llm_d_epp_request_input_tokens";
export const REQUEST_INPUT_TOKENS_DEPRECATED = "inference_objective_input_tokens";
export const REQUEST_OUTPUT_TOKENS = "llm_d_epp_request_output_tokens";
export const REQUEST_OUTPUT_TOKENS_DEPRECATED = "inference_objective_output_tokens";
export const REQUEST_CACHED_TOKENS = "llm_d_epp_request_cached_tokens";
export const REQUEST_CACHED_TOKENS_DEPRECATED = "inference_objective_prompt_cached_tokens";
export const REQUEST_RUNNING = "llm_d_epp_request_running";
export const REQUEST_RUNNING_DEPRECATED = "inference_objective_running_requests";
export const REQUEST_NTPOT_SECONDS = "llm_d_epp_request_ntpot_seconds";
export const REQUEST_NTPOT_SECONDS_DEPRECATED =
  "inference_objective_normalized_time_per_output_token_seconds";
export const REQUEST_TTFT_SECONDS = "llm_d_epp_request_ttft_seconds";
export const REQUEST_STREAMING_TTFT_SECONDS = "llm_d_epp_request_streaming_ttft_seconds";
export const REQUEST_STREAMING_TPOT_SECONDS = "llm_d_epp_request_streaming_tpot_seconds";
export const REQUEST_STREAMING_ITL_SECONDS = "llm_d_epp_request_streaming_itl_seconds";

// ── pool gauges (label name = pool name) ──
export const READY_ENDPOINTS = "llm_d_epp_ready_endpoints";
export const READY_ENDPOINTS_DEPRECATED = "inference_pool_ready_pods";
export const AVERAGE_KV_CACHE_UTILIZATION = "llm_d_epp_average_kv_cache_utilization";
export const AVERAGE_KV_CACHE_UTILIZATION_DEPRECATED = "inference_pool_average_kv_cache_utilization";
export const AVERAGE_QUEUE_SIZE = "llm_d_epp_average_queue_size";
export const AVERAGE_QUEUE_SIZE_DEPRECATED = "inference_pool_average_queue_size";
export const AVERAGE_RUNNING_REQUESTS = "llm_d_epp_average_running_requests";
export const AVERAGE_RUNNING_REQUESTS_DEPRECATED = "inference_pool_average_running_requests";

// ── scheduler / plugins ──
export const SCHEDULER_E2E_DURATION_SECONDS = "llm_d_epp_scheduler_e2e_duration_seconds";
export const SCHEDULER_E2E_DURATION_SECONDS_DEPRECATED = "inference_extension_scheduler_e2e_duration_seconds";
export const SCHEDULER_ATTEMPTS_TOTAL = "llm_d_epp_scheduler_attempts_total";
export const SCHEDULER_ATTEMPTS_TOTAL_DEPRECATED = "inference_extension_scheduler_attempts_total";
export const PLUGIN_DURATION_SECONDS = "llm_d_epp_plugin_duration_seconds";
export const PLUGIN_DURATION_SECONDS_DEPRECATED = "inference_extension_plugin_duration_seconds";
export const REQUEST_PROCESSING_DURATION_SECONDS = "llm_d_epp_request_processing_duration_seconds";
export const RESPONSE_PROCESSING_DURATION_SECONDS = "llm_d_epp_response_processing_duration_seconds";

// ── info ──
export const INFO = "llm_d_epp_info";
export const INFO_DEPRECATED = "inference_extension_info";

// ── prefix indexer (labels plugin_name, plugin_type) ──
export const PREFIX_INDEXER_SIZE = "llm_d_epp_prefix_indexer_size";
export const PREFIX_INDEXER_SIZE_DEPRECATED = "inference_extension_prefix_indexer_size";
export const PREFIX_INDEXER_HIT_RATIO = "llm_d_epp_prefix_indexer_hit_ratio";
export const PREFIX_INDEXER_HIT_RATIO_DEPRECATED = "inference_extension_prefix_indexer_hit_ratio";
export const PREFIX_INDEXER_HIT_BYTES = "llm_d_epp_prefix_indexer_hit_bytes";
export const PREFIX_INDEXER_HIT_BYTES_DEPRECATED = "inference_extension_prefix_indexer_hit_bytes";

// ── disaggregation decisions ──
export const DISAGG_DECISION_TOTAL = "llm_d_epp_disagg_decision_total";
export const DISAGG_DECISION_TOTAL_DEPRECATED = "llm_d_inference_scheduler_disagg_decision_total";
export const PD_DECISION_TOTAL = "llm_d_epp_pd_decision_total";
export const PD_DECISION_TOTAL_DEPRECATED = "llm_d_inference_scheduler_pd_decision_total";

// ── label keys ──
export const LABEL_MODEL_NAME = "model_name";
export const LABEL_TARGET_MODEL_NAME = "target_model_name";
export const LABEL_FAIRNESS_ID = "fairness_id";
export const LABEL_PRIORITY = "priority";
export const LABEL_ERROR_CODE = "error_code";
export const LABEL_STATUS = "status";
export const LABEL_ENDPOINT_NAME = "endpoint_name";
/** Deprecated twin of {@link LABEL_ENDPOINT_NAME} on `inference_extension_scheduler_attempts_total`. */
export const LABEL_POD_NAME = "pod_name";
export const LABEL_NAMESPACE = "namespace";
export const LABEL_PORT = "port";
export const LABEL_EXTENSION_POINT = "extension_point";
export const LABEL_PLUGIN_TYPE = "plugin_type";
export const LABEL_PLUGIN_NAME = "plugin_name";
export const LABEL_POOL_NAME = "name";
export const LABEL_DECISION_TYPE = "decision_type";
export const LABEL_COMMIT = "commit";
export const LABEL_BUILD_REF = "build_ref";

/** Values of `decision_type` on `disagg_decision_total` (reference/epp.md §7). */
export const DISAGG_DECISION_TYPES = [
  "decode-only",
  "prefill-decode",
  "encode-decode",
  "encode-prefill-decode",
] as const;
export type DisaggDecisionType = (typeof DISAGG_DECISION_TYPES)[number];

/** Distinct values kept per capped label (`model_name`, `target_model_name`, `fairness_id`). */
export const LABEL_CARDINALITY_CAP = 1000;
/** Value that replaces a capped label's value past {@link LABEL_CARDINALITY_CAP}. */
export const LABEL_OVERFLOW_VALUE = "other";
