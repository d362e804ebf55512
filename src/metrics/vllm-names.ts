/**
 * vLLM Prometheus metric names (reference/engine.md §2; compare
 * `shared/fixtures/vllm/metric-families-v0.26.0.txt`). Names are as exposed; counters carry
 * `_total`. Every vLLM metric has labels `model_name` and `engine`.
 */
export const VLLM_NUM_REQUESTS_RUNNING = "vllm:num_requests_running";
export const VLLM_NUM_REQUESTS_WAITING = "vllm:num_requests_waiting";
export const VLLM_KV_CACHE_USAGE_PERC = "vllm:kv_cache_usage_perc";
export const VLLM_CACHE_CONFIG_INFO = "vllm:cache_config_info";
export const VLLM_LORA_REQUESTS_INFO = "vllm:lora_requests_info";
export const VLLM_PREFIX_CACHE_QUERIES_TOTAL = "vllm:prefix_cache_queries_total";
export const VLLM_PREFIX_CACHE_HITS_TOTAL = "vllm:prefix_cache_hits_total";
export const VLLM_PROMPT_TOKENS_TOTAL = "vllm:prompt_tokens_total";
export const VLLM_GENERATION_TOKENS_TOTAL = "vllm:generation_tokens_total";
export const VLLM_NUM_PREEMPTIONS_TOTAL = "vllm:num_preemptions_total";
export const VLLM_REQUEST_SUCCESS_TOTAL = "vllm:request_success_total";
export const VLLM_TIME_TO_FIRST_TOKEN_SECONDS = "vllm:time_to_first_token_seconds";
export const VLLM_INTER_TOKEN_LATENCY_SECONDS = "vllm:inter_token_latency_seconds";
export const VLLM_TIME_PER_OUTPUT_TOKEN_SECONDS = "vllm:time_per_output_token_seconds";
export const VLLM_REQUEST_TIME_PER_OUTPUT_TOKEN_SECONDS = "vllm:request_time_per_output_token_seconds";
export const VLLM_E2E_REQUEST_LATENCY_SECONDS = "vllm:e2e_request_latency_seconds";
export const VLLM_REQUEST_QUEUE_TIME_SECONDS = "vllm:request_queue_time_seconds";
export const VLLM_REQUEST_INFERENCE_TIME_SECONDS = "vllm:request_inference_time_seconds";
export const VLLM_REQUEST_PREFILL_TIME_SECONDS = "vllm:request_prefill_time_seconds";
export const VLLM_REQUEST_DECODE_TIME_SECONDS = "vllm:request_decode_time_seconds";
export const VLLM_REQUEST_PROMPT_TOKENS = "vllm:request_prompt_tokens";
export const VLLM_REQUEST_GENERATION_TOKENS = "vllm:request_generation_tokens";
export const VLLM_REQUEST_PARAMS_MAX_TOKENS = "vllm:request_params_max_tokens";
export const VLLM_ITERATION_TOKENS_TOTAL = "vllm:iteration_tokens_total";
export const VLLM_REQUEST_PARAMS_N = "vllm:request_params_n";
export const VLLM_NUM_REQUESTS_WAITING_BY_REASON = "vllm:num_requests_waiting_by_reason";
export const VLLM_PROMPT_TOKENS_CACHED_TOTAL = "vllm:prompt_tokens_cached_total";
export const VLLM_EXTERNAL_PREFIX_CACHE_QUERIES_TOTAL = "vllm:external_prefix_cache_queries_total";
export const VLLM_EXTERNAL_PREFIX_CACHE_HITS_TOTAL = "vllm:external_prefix_cache_hits_total";
export const VLLM_REQUEST_PREFILL_KV_COMPUTED_TOKENS = "vllm:request_prefill_kv_computed_tokens";
export const VLLM_REQUEST_MAX_NUM_GENERATION_TOKENS = "vllm:request_max_num_generation_tokens";
/**
 * NIXL KV-transfer metrics, recorded on the decode (pulling) side (reference/engine.md §2.5);
 * counters carry the `_total` suffix that Python's prometheus_client adds when exposing them.
 */
export const VLLM_NIXL_XFER_TIME_SECONDS = "vllm:nixl_xfer_time_seconds";
export const VLLM_NIXL_POST_TIME_SECONDS = "vllm:nixl_post_time_seconds";
export const VLLM_NIXL_BYTES_TRANSFERRED = "vllm:nixl_bytes_transferred";
export const VLLM_NIXL_NUM_DESCRIPTORS = "vllm:nixl_num_descriptors";
export const VLLM_NIXL_NUM_FAILED_TRANSFERS_TOTAL = "vllm:nixl_num_failed_transfers_total";
export const VLLM_NIXL_NUM_FAILED_NOTIFICATIONS_TOTAL = "vllm:nixl_num_failed_notifications_total";
export const VLLM_NIXL_NUM_KV_EXPIRED_REQS_TOTAL = "vllm:nixl_num_kv_expired_reqs_total";
