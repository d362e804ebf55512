/**
 * EPP error codes and their HTTP mapping (llm-d-router `pkg/common/error/error.go`,
 * reference/epp.md §1.6). The router turns an {@link EppError} into an OpenAI-shaped error
 * with the mapped status and, where given, `x-llm-d-request-dropped-reason`.
 */

/** Internal EPP error codes. */
export type EppErrorCode =
  | "BadRequest"
  | "Unauthorized"
  | "Forbidden"
  | "NotFound"
  | "PreconditionFailed"
  | "ResourceExhausted"
  | "Internal"
  | "ServiceUnavailable";

/** HTTP status of each code. */
export const EPP_ERROR_STATUS: Readonly<Record<EppErrorCode, number>> = {
  BadRequest: 400,
  Unauthorized: 401,
  Forbidden: 403,
  NotFound: 404,
  PreconditionFailed: 412,
  ResourceExhausted: 429,
  Internal: 500,
  ServiceUnavailable: 503,
};

/** Values of `x-llm-d-request-dropped-reason` (reference/epp.md §1.6). */
export type DropReason =
  | "rejected-saturated"
  | "rejected-no-endpoints"
  | "rejected-ttl-expired"
  | "rejected-context-cancelled"
  | "rejected-shutting-down"
  | "evicted"
  | "evicted-queue-pressure"
  | "evicted-priority";

/** An error of the scheduling/request-control path. Message text as the EPP's: `inference error: <Code> - <msg>`. */
export class EppError extends Error {
  readonly code: EppErrorCode;
  readonly dropReason?: DropReason;
  constructor(code: EppErrorCode, message: string, dropReason?: DropReason) {
    super(`inference error: ${code} - ${message}`);
    this.name = "EppError";
    this.code = code;
    this.dropReason = dropReason;
  }
  /** HTTP status for this error */
  get status(): number {
    return EPP_ERROR_STATUS[this.code];
  }
}

/** A config that cannot be loaded; the message names the offending field or plugin type. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}
