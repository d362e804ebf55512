/**
 * Default ports (reference/epp.md §1.1, §4.3; reference/engine.md §3.1, §6.2).
 */

/** `llmd router` HTTP port (and `llmd up`'s router). */
export const ROUTER_PORT = 8080;
/** vLLM / `llmd serve` HTTP port. */
export const MODEL_SERVER_PORT = 8000;
/** P/D sidecar listen port; the decode vLLM behind it listens on {@link SIDECAR_MODEL_SERVER_PORT}. */
export const SIDECAR_PORT = 8000;
export const SIDECAR_MODEL_SERVER_PORT = 8200;
/** EPP ext_proc gRPC port. */
export const EXTPROC_PORT = 9002;
/** EPP gRPC health port. */
export const GRPC_HEALTH_PORT = 9003;
/** EPP Prometheus port. */
export const EPP_METRICS_PORT = 9090;
/** vLLM KV events ZMQ PUB port. */
export const KV_EVENTS_PORT = 5557;
/** NIXL side-channel port. */
export const NIXL_SIDE_CHANNEL_PORT = 5600;
/** First port `llmd up` gives its model servers. */
export const UP_FIRST_SERVER_PORT = 8100;
