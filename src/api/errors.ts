/**
 * The error catalogue: every error a client can get from the router, the sidecar or the
 * model server, in the OpenAI/vLLM shape
 * `{"error":{"message","type","param","code"}}` (vLLM ≥ 0.10.1; reference/engine.md §0 item 9, §1.6).
 *
 * `type` uses vLLM's names (`BadRequestError`, `NotFoundError`, …). `code` is the integer
 * HTTP status as vLLM sends it, unless a well-known OpenAI string code applies
 * (`model_not_found`, …), which the router uses.
 */

/** vLLM error type name for an HTTP status (reference/engine.md §1.6). */
export function errorTypeForStatus(status: number): string {
  switch (status) {
    case 400:
      return "BadRequestError";
    case 401:
      return "AuthenticationError";
    case 403:
      return "PermissionDeniedError";
    case 404:
      return "NotFoundError";
    case 405:
      return "MethodNotAllowedError";
    case 408:
      return "TimeoutError";
    case 412:
      return "PreconditionFailedError";
    case 413:
      return "RequestTooLargeError";
    case 422:
      return "UnprocessableEntityError";
    case 429:
      return "RateLimitError";
    case 501:
      return "NotImplementedError";
    case 502:
      return "BadGatewayError";
    case 503:
      return "ServiceUnavailableError";
    case 504:
      return "GatewayTimeoutError";
    default:
      return status >= 500 ? "InternalServerError" : "BadRequestError";
  }
}

/** Body of an OpenAI-shaped error response. */
export interface ErrorBody {
  error: { message: string; type: string; param: string | null; code: number | string };
}

/**
 * An error that maps to one HTTP response. Throw it anywhere in request handling; the HTTP
 * layers turn it into the OpenAI shape with {@link ApiError.status}.
 */
export class ApiError extends Error {
  /** HTTP status code */
  readonly status: number;
  /** vLLM error type name */
  readonly type: string;
  /** offending request field, if any */
  readonly param: string | null;
  /** integer status (vLLM) or an OpenAI string code */
  readonly code: number | string;
  /** extra response headers, e.g. `x-llm-d-request-dropped-reason` */
  readonly headers: Record<string, string>;

  constructor(
    status: number,
    message: string,
    opts: {
      param?: string | null;
      code?: number | string;
      type?: string;
      headers?: Record<string, string>;
    } = {},
  ) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.type = opts.type ?? errorTypeForStatus(status);
    this.param = opts.param ?? null;
    this.code = opts.code ?? status;
    this.headers = opts.headers ?? {};
  }

  /** The JSON body for this error. */
  toBody(): ErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

/** 400 with the offending parameter. */
export function badRequest(message: string, param: string | null = null): ApiError {
  return new ApiError(400, message, { param });
}

/** 404 for an unknown model, with vLLM's message and OpenAI's `model_not_found` code. */
export function modelNotFound(model: string): ApiError {
  return new ApiError(404, `The model \`${model}\` does not exist.`, {
    param: "model",
    code: "model_not_found",
  });
}

/** 404 for an unknown path. */
export function pathNotFound(method: string, path: string): ApiError {
  return new ApiError(404, `Not Found: ${method} ${path}`, { code: "not_found" });
}

/** 405 for a known path with the wrong method. */
export function methodNotAllowed(method: string, path: string): ApiError {
  return new ApiError(405, `Method ${method} not allowed on ${path}`);
}

/** 413 for a body over the limit (bytes). */
export function bodyTooLarge(limitBytes: number): ApiError {
  return new ApiError(413, `Request body exceeds the limit of ${limitBytes} bytes`, {
    code: "request_too_large",
  });
}

/** Converts anything thrown into an {@link ApiError} (unknown errors → 500). */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new ApiError(500, `Internal error: ${message}`);
}
