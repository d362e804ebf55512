/**
 * Final outcomes of a request in flow control and their HTTP mapping (reference/epp.md §1.6, §6
 * "Outcomes → HTTP").
 *
 * | outcome | HTTP | drop reason |
 * |---|---|---|
 * | `Dispatched` | — (continues to scheduling) | — |
 * | `RejectedCapacity` | 429 ResourceExhausted | `rejected-saturated` |
 * | `RejectedNoEndpoints`, `EvictedNoEndpoints` | 503 ServiceUnavailable | `rejected-no-endpoints` |
 * | `EvictedTTL` | 429 ResourceExhausted (503 when the candidate list is empty) | `rejected-ttl-expired` |
 * | `EvictedContextCancelled` | 503 ServiceUnavailable | `rejected-context-cancelled` |
 * | `RejectedOther`, `EvictedOther` (shutdown) | 503 ServiceUnavailable | `rejected-shutting-down` |
 */
import { EppError } from "../framework/errors.js";

/** Every final outcome (the `outcome` label of `flow_control_requests_total`). */
export const QUEUE_OUTCOMES = [
  "Dispatched",
  "RejectedCapacity",
  "RejectedNoEndpoints",
  "RejectedOther",
  "EvictedTTL",
  "EvictedNoEndpoints",
  "EvictedContextCancelled",
  "EvictedOther",
] as const;
export type QueueOutcome = (typeof QUEUE_OUTCOMES)[number];

/** Message of the legacy-admission rejection (reference/epp.md §6). */
export const LEGACY_SATURATED_MESSAGE = "system saturated, sheddable request dropped";

/**
 * The error a non-dispatched outcome turns into.
 * @param poolEmpty the request's candidate list was empty when it was evicted (TTL → 503)
 * @returns undefined for `Dispatched`
 */
export function outcomeError(outcome: QueueOutcome, poolEmpty = false): EppError | undefined {
  switch (outcome) {
    case "Dispatched":
      return undefined;
    case "RejectedCapacity":
      return new EppError("ResourceExhausted", "flow control queue capacity exceeded", "rejected-saturated");
    case "RejectedNoEndpoints":
      return new EppError(
        "ServiceUnavailable",
        "no endpoints available for the request",
        "rejected-no-endpoints",
      );
    case "EvictedNoEndpoints":
      return new EppError(
        "ServiceUnavailable",
        "no endpoints became available while the request was queued",
        "rejected-no-endpoints",
      );
    case "EvictedTTL":
      return new EppError(
        poolEmpty ? "ServiceUnavailable" : "ResourceExhausted",
        "request timed out in the flow control queue",
        "rejected-ttl-expired",
      );
    case "EvictedContextCancelled":
      return new EppError(
        "ServiceUnavailable",
        "client disconnected while the request was queued",
        "rejected-context-cancelled",
      );
    case "RejectedOther":
    case "EvictedOther":
      return new EppError("ServiceUnavailable", "flow control is shutting down", "rejected-shutting-down");
  }
}
