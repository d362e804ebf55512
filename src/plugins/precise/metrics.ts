/**
 * Prometheus metric names of the precise prefix-cache producer, under the `llm_d_epp_kv_cache_`
 * family (reference/epp.md §7 lists the family; the individual names are ours). Labels:
 * `plugin_name`, and `endpoint` (`ip:port`) on per-endpoint series; `reason` on drops.
 */
export const KV_CACHE_INDEX_KEYS = "llm_d_epp_kv_cache_index_keys";
export const KV_CACHE_INDEX_ENGINE_KEYS = "llm_d_epp_kv_cache_index_engine_keys";
export const KV_CACHE_INDEX_EVICTIONS_TOTAL = "llm_d_epp_kv_cache_index_evictions_total";
export const KV_CACHE_INDEX_LOOKUPS_TOTAL = "llm_d_epp_kv_cache_index_lookups_total";
export const KV_CACHE_INDEX_LOOKUP_HITS_TOTAL = "llm_d_epp_kv_cache_index_lookup_hits_total";
export const KV_CACHE_EVENTS_INGESTED_TOTAL = "llm_d_epp_kv_cache_events_ingested_total";
export const KV_CACHE_EVENT_BATCHES_TOTAL = "llm_d_epp_kv_cache_event_batches_total";
export const KV_CACHE_EVENT_DROPS_TOTAL = "llm_d_epp_kv_cache_event_drops_total";
export const KV_CACHE_EVENT_GAPS_TOTAL = "llm_d_epp_kv_cache_event_gaps_total";
export const KV_CACHE_EVENT_REPLAYS_TOTAL = "llm_d_epp_kv_cache_event_replays_total";
export const KV_CACHE_EVENT_REPLAY_FAILURES_TOTAL = "llm_d_epp_kv_cache_event_replay_failures_total";
export const KV_CACHE_EVENT_RESTARTS_TOTAL = "llm_d_epp_kv_cache_event_restarts_total";
export const KV_CACHE_EVENT_RESYNCS_TOTAL = "llm_d_epp_kv_cache_event_resyncs_total";
export const KV_CACHE_EVENT_LAG_SECONDS = "llm_d_epp_kv_cache_event_lag_seconds";
export const KV_CACHE_EVENT_LAST_SEQ = "llm_d_epp_kv_cache_event_last_seq";
export const KV_CACHE_EVENT_SECONDS_SINCE_LAST_BATCH = "llm_d_epp_kv_cache_event_seconds_since_last_batch";
/** requests scored with non-engine (`estimate`) token ids, which always match 0 */
export const KV_CACHE_UNUSABLE_TOKENS_TOTAL = "llm_d_epp_kv_cache_unusable_tokens_requests_total";
