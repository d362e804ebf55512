/**
 * Failure injection of the model server, after llm-d-inference-sim (reference/engine.md §6.1
 * header `X-Return-Error`, §6.2 flags `failure-injection-rate`, `failure-types`):
 *
 * | type | status | message |
 * |---|---|---|
 * | `rate_limit` | 429 | Rate limit reached for `<model>`… |
 * | `invalid_api_key` | 401 | Incorrect API key provided. |
 * | `context_length` | 400 (param `messages`) | This model's maximum context length is … |
 * | `server_error` | 503 | The server is overloaded or not ready yet. |
 * | `invalid_request` | 400 (param `model`) | Invalid request: … |
 * | `model_not_found` | 404 (param `model`) | The model `<model>` does not exist. |
 *
 * Statuses and the `server_error` message are the sim's; the other messages are ours, in
 * OpenAI's style. `X-Return-Error: <status>` answers that status deterministically (with the
 * message of the matching type, or a generic one). A `midStreamRate` (ours, for chaos tests)
 * cuts a streamed response after its first chunk by destroying the socket.
 */
import { ApiError } from "../api/errors.js";

/** Failure types of `--failure-types`. */
export const FAILURE_TYPES = [
  "rate_limit",
  "invalid_api_key",
  "context_length",
  "server_error",
  "invalid_request",
  "model_not_found",
] as const;

/** One failure type. */
export type FailureType = (typeof FAILURE_TYPES)[number];

/** Header that forces an error status (llm-d-inference-sim). */
export const RETURN_ERROR_HEADER = "x-return-error";

/** Failure injection settings (rates are percentages 0..100). */
export interface FailureInjection {
  /** % of inference requests answered with an injected error */
  rate: number;
  /** types drawn from (uniformly); empty = all */
  types: FailureType[];
  /** % of streamed responses cut after their first chunk */
  midStreamRate: number;
}

/**
 * Parses `--failure-types` (comma-separated).
 * @throws Error naming an unknown type
 */
export function parseFailureTypes(v: string): FailureType[] {
  const out: FailureType[] = [];
  for (const t of v
    .split(",")
    .map((x) => x.trim())
    .filter((x) => x !== "")) {
    if (!(FAILURE_TYPES as readonly string[]).includes(t)) {
      throw new Error(`unknown failure type ${JSON.stringify(t)}: expected ${FAILURE_TYPES.join(", ")}`);
    }
    out.push(t as FailureType);
  }
  return out;
}

/** The error of a failure type, for a request naming `model`. */
export function failureError(type: FailureType, model: string, maxModelLen = 8192): ApiError {
  switch (type) {
    case "rate_limit":
      return new ApiError(429, `Rate limit reached for ${model}: too many requests, please retry later.`);
    case "invalid_api_key":
      return new ApiError(401, "Incorrect API key provided.");
    case "context_length":
      return new ApiError(
        400,
        `This model's maximum context length is ${maxModelLen} tokens. However, you requested ${maxModelLen + 1} tokens. Please reduce the length of the messages or completion.`,
        { param: "messages" },
      );
    case "server_error":
      return new ApiError(503, "The server is overloaded or not ready yet.");
    case "invalid_request":
      return new ApiError(
        400,
        `Invalid request: the model parameter ${JSON.stringify(model)} is not valid here.`,
        {
          param: "model",
        },
      );
    case "model_not_found":
      return new ApiError(404, `The model \`${model}\` does not exist.`, { param: "model" });
  }
}

/**
 * The error an `X-Return-Error: <status>` header asks for: the message of the first failure
 * type with that status, else a generic one.
 * @returns null when the header is not an HTTP error status (400..599)
 */
export function errorForStatus(status: number, model: string, maxModelLen?: number): ApiError | null {
  if (!Number.isInteger(status) || status < 400 || status > 599) return null;
  for (const t of FAILURE_TYPES) {
    const e = failureError(t, model, maxModelLen);
    if (e.status === status) return e;
  }
  return new ApiError(status, `Injected error (X-Return-Error: ${status})`);
}

/**
 * Draws an injected failure for one request.
 * @param rand uniform [0,1) source (default Math.random)
 * @returns the error to answer, or null
 */
export function drawFailure(
  fi: FailureInjection,
  model: string,
  maxModelLen?: number,
  rand: () => number = Math.random,
): ApiError | null {
  if (!(fi.rate > 0) || rand() * 100 >= fi.rate) return null;
  const types = fi.types.length > 0 ? fi.types : FAILURE_TYPES;
  const t = types[Math.min(types.length - 1, Math.floor(rand() * types.length))]!;
  return failureError(t, model, maxModelLen);
}
