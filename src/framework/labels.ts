/**
 * Endpoint label keys and role values (reference/epp.md §3.2, §4.1, §5.2).
 */

/** Pod/endpoint role label: `prefill`, `decode`, `prefill-decode`, `encode`, … (`both` deprecated). */
export const ROLE_LABEL = "llm-d.ai/role";
/** Engine type label read by `core-metrics-extractor` (default engine `vllm`). */
export const ENGINE_TYPE_LABEL = "llm-d.ai/engine-type";
/** Fallback engine type label. */
export const ENGINE_TYPE_LABEL_FALLBACK = "inference.networking.k8s.io/engine-type";

export const ROLE_PREFILL = "prefill";
export const ROLE_DECODE = "decode";
export const ROLE_PREFILL_DECODE = "prefill-decode";
export const ROLE_BOTH = "both";
export const ROLE_ENCODE = "encode";
export const ROLE_ENCODE_PREFILL = "encode-prefill";
export const ROLE_ENCODE_PREFILL_DECODE = "encode-prefill-decode";

/**
 * Endpoint label overriding the ZMQ port of its KV-event publisher (default
 * `KV_EVENTS_PORT` 5557), read by `precise-prefix-cache-producer` (our label; llm-d uses a
 * per-deployment `socketPort`).
 */
export const KV_EVENTS_PORT_LABEL = "llm-d.ai/kv-events-port";
/** Endpoint label giving the ZMQ port of its KV-event replay ROUTER (no label = no replay). */
export const KV_EVENTS_REPLAY_PORT_LABEL = "llm-d.ai/kv-events-replay-port";
