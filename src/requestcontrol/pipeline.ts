/**
 * The request path shared by every EPP transport — `llmd router` (HTTP proxy) and `llmd epp`
 * (Envoy ext_proc) — so the two never carry copies of it:
 *
 * - {@link prepareRequest}: parse the body once, build the {@link InferenceRequest} from the
 *   parsed body and the cleaned headers, apply InferenceObjective / InferenceModelRewrite
 *   policies, select the candidates (ready → subset hint → serving the target model), run the
 *   Director (producers → scheduler → PreRequest), and produce the body to forward (re-marshalled
 *   only when the target model differs from the incoming one; reference/epp.md §1.3);
 * - {@link errorToResponse}: map anything thrown into status, body and headers
 *   (`inference error: <Code> - <msg>`, `x-llm-d-request-dropped-reason`; reference/epp.md §1.6);
 * - {@link trackResponse}: the response-side accounting both transports do (Director response
 *   hooks, running gauge, TTFT / ITL / duration / sizes / token metrics from the usage found in
 *   passing; reference/epp.md §1.2 steps 3–4, §1.9, §7).
 *
 * Request-level metrics belong here (not in the Director): `request_total`,
 * `request_sizes`, `request_error_total{error_code}`, `running_requests`, latencies, tokens.
 */
import { randomUUID } from "node:crypto";
import { ApiError, modelNotFound } from "../api/errors.js";
import { type ApiKind, INFERENCE_PATHS, parseRequest } from "../api/openai.js";
import type { EndpointStore } from "../datalayer/store.js";
import { type EppErrorCode, EppError } from "../framework/errors.js";
import * as H from "../framework/headers.js";
import type { ResponseInfo, ResponseUsage } from "../framework/plugin.js";
import type { Endpoint, InferenceRequest, SchedulingResult } from "../framework/types.js";
import type { EppMetrics, RequestLabels, RequestSeries } from "../metrics/epp.js";
import { UsageTracker } from "./usage.js";
import { OBJECTIVE_ATTRIBUTE } from "./request.js";

/**
 * System-owned request headers (llm-d `pkg/epp/util/request/headers.go`, reference/epp.md §1.4):
 * the input-control headers (objective, fairness, model rewrite, subset key, SLO and video
 * hints, with their deprecated aliases), the destination / served / dropped-reason headers and
 * `content-length`. A transport never forwards them as header mutations; every other request
 * header — including those PreRequest plugins add — is forwarded.
 */
export const SYSTEM_OWNED_HEADERS: readonly string[] = [
  H.OBJECTIVE,
  H.OBJECTIVE_ALIAS,
  H.FAIRNESS_ID,
  H.FAIRNESS_ID_ALIAS,
  H.MODEL_NAME_REWRITE,
  H.MODEL_NAME_REWRITE_ALIAS,
  H.DESTINATION_ENDPOINT_SUBSET,
  H.SLO_TTFT_MS,
  H.SLO_TTFT_MS_ALIAS,
  H.SLO_TPOT_MS,
  H.SLO_TPOT_MS_ALIAS,
  H.VIDEO_FPS,
  H.VIDEO_DURATION_SECONDS,
  H.VIDEO_RESOLUTION,
  H.DESTINATION_ENDPOINT,
  H.DESTINATION_ENDPOINT_SERVED,
  H.REQUEST_DROPPED_REASON,
  "content-length",
];

/** Input of the request builder (same shape as `BuildRequestInput` of `request.ts`). */
export interface PipelineBuildInput {
  requestId: string;
  path: string;
  body: Record<string, unknown>;
  headers: Record<string, string>;
  requestSizeBytes: number;
}

/** What the pipeline needs of the Director (`src/requestcontrol/director.ts`). */
export interface PipelineDirector {
  handleRequest(
    request: InferenceRequest,
    candidates: Endpoint[],
    opts?: { signal?: AbortSignal; candidatesNow?: () => Endpoint[] },
  ): Promise<{ result: SchedulingResult; targets: Endpoint[] }>;
  responseReceived(request: InferenceRequest, info: ResponseInfo): void;
  responseStreaming(request: InferenceRequest, info: ResponseInfo): void;
  responseComplete(request: InferenceRequest, info: ResponseInfo): void;
}

/**
 * The slice of `EppRuntime` (`src/cli/epp-runtime.ts`) the pipeline uses; an `EppRuntime`
 * satisfies it.
 */
export interface PipelineRuntime {
  director: PipelineDirector;
  /** builds the request; the second argument looks an InferenceObjective up by name */
  buildRequest(
    input: PipelineBuildInput,
    lookupObjective?: (name: string) => { priority?: number } | undefined,
  ): InferenceRequest;
  metrics: EppMetrics;
  /**
   * The admission step, if the host wants to know its mode: `legacy` admission never queues a
   * request, so a host may skip building a client-disconnect signal for {@link prepareRequest}.
   */
  admission?: { readonly mode: string };
}

/**
 * Cluster policies from the InferenceObjective / InferenceModelRewrite CRDs
 * (reference/epp.md §5.3); `src/datalayer/k8s/objectives.ts` implements it.
 */
export interface RequestPolicies {
  /** the objective's priority by name; undefined = no such objective */
  objective(name: string): { priority?: number } | undefined;
  /** the rewritten target model for `model`, or undefined when no rule matches */
  rewriteModel(model: string): string | undefined;
}

/** Input of {@link prepareRequest}. */
export interface PrepareInput {
  /** request path, query allowed (stripped), e.g. `/v1/chat/completions` */
  path: string;
  /** the complete request body, bytes */
  rawBody: Buffer;
  /**
   * lower-cased request headers with client-supplied internal headers already removed
   * (`cleanClientHeaders` / ext_proc header cleaning); `x-request-id` is added when missing
   */
  headers: Record<string, string>;
  /**
   * subset hint from the proxy (`envoy.lb.subset_hint` / `x-gateway-destination-endpoint-subset`):
   * `ip[:port]` entries matched by **IP only**; `undefined` = no hint; `[]` = no candidates → 503
   * (reference/epp.md §1.4)
   */
  subsetHint?: readonly string[];
  /** CRD policies (objectives, model rewrites); none = header-only behaviour */
  policies?: RequestPolicies;
  /** request id to use when the headers carry none (default: a random UUID) */
  newRequestId?: () => string;
  /** aborted when the client goes away (a request queued by flow control is then dropped) */
  signal?: AbortSignal;
  /**
   * FailOpen retry (reference/epp.md §1.7): skip the Director and take the first ready
   * endpoint serving the model. Used by a host after scheduling itself failed.
   */
  failOpen?: boolean;
}

/** A request ready to be sent upstream. */
export interface PreparedRequest {
  request: InferenceRequest;
  result: SchedulingResult;
  /** primary profile targets, best first (never empty) */
  targets: Endpoint[];
  /** comma-joined `ip:port` of {@link targets}, the value of `x-gateway-destination-endpoint` */
  destination: string;
  /** the bytes to forward: the original body, or re-marshalled with the target model */
  body: Buffer;
  /** metric labels of this request */
  labels: RequestLabels;
  /** which OpenAI API the path belongs to */
  kind: ApiKind;
  /** `process.hrtime.bigint()` when preparation started (ns) */
  startedNs: bigint;
}

/**
 * Which OpenAI API a request path belongs to: exact match of {@link INFERENCE_PATHS} first,
 * then the longest claimed suffix (`chat/completions`, then `completions`), as llm-d's parser
 * registry does (reference/epp.md §1.2, §1.9). Query strings are ignored.
 * @throws EppError BadRequest for a path no parser claims (no passthrough parser here)
 */
export function resolveApiKind(path: string): ApiKind {
  const q = path.indexOf("?");
  const p = q < 0 ? path : path.slice(0, q);
  const exact = INFERENCE_PATHS[p];
  if (exact) return exact;
  if (p.endsWith("/chat/completions")) return "chat";
  if (p.endsWith("/completions")) return "completions";
  throw new EppError("BadRequest", `no request parser for path ${p}`);
}

/** True when `ep` is in the subset hint (IP match, port ignored; reference/epp.md §1.4). */
function inSubset(ep: Endpoint, ips: ReadonlySet<string>): boolean {
  return ips.has(ep.metadata.address);
}

/** IP part of `ip[:port]` (IPv6 in brackets supported). */
export function hintIp(entry: string): string {
  const s = entry.trim();
  if (s.startsWith("[")) {
    const end = s.indexOf("]");
    return end > 0 ? s.slice(1, end) : s;
  }
  const colons = s.split(":").length - 1;
  return colons === 1 ? s.slice(0, s.indexOf(":")) : s;
}

/**
 * Runs the shared request path (see file header) up to the choice of targets. Records
 * `request_total`, `request_sizes` and, on failure, `request_error_total{error_code}`.
 * @returns the prepared request
 * @throws ApiError 400 for an invalid body (parse/validation); EppError BadRequest (no model,
 *   unknown path), ServiceUnavailable `rejected-no-endpoints` (no ready endpoint, or the subset
 *   hint left none), the Director's EppErrors; ApiError 404 `model_not_found` when no ready
 *   endpoint serves the target model
 */
export async function prepareRequest(
  runtime: PipelineRuntime,
  store: EndpointStore,
  input: PrepareInput,
): Promise<PreparedRequest> {
  const startedNs = process.hrtime.bigint();
  const q = input.path.indexOf("?");
  const path = q < 0 ? input.path : input.path.slice(0, q);
  const kind = resolveApiKind(path);
  const parsed = parseRequest(kind, input.rawBody);
  const headers = input.headers;
  const requestId = headers[H.REQUEST_ID] || (input.newRequestId ?? randomUUID)();
  headers[H.REQUEST_ID] = requestId;
  const policies = input.policies;
  const request = runtime.buildRequest(
    { requestId, path, body: parsed.raw, headers, requestSizeBytes: input.rawBody.length },
    policies ? (name) => policies.objective(name) : undefined,
  );
  if (policies) {
    // A builder that ignores the lookup still leaves the objective name on the request.
    const objective = request.attributes.get(OBJECTIVE_ATTRIBUTE);
    if (typeof objective === "string")
      request.objectives.priority = policies.objective(objective)?.priority ?? 0;
  }
  if (policies && request.targetModel === request.incomingModel) {
    const rewritten = policies.rewriteModel(request.incomingModel);
    if (rewritten) request.targetModel = rewritten;
  }
  const labels: RequestLabels = {
    modelName: request.incomingModel,
    targetModelName: request.targetModel,
    fairnessId: request.fairnessId,
    priority: request.objectives.priority,
  };
  const m = runtime.metrics;
  const series = m.requestSeries(labels);
  series.total.inc();
  series.sizeBytes.observe(input.rawBody.length);
  try {
    let candidates = store.ready();
    if (candidates.length === 0) {
      throw new EppError("ServiceUnavailable", "no ready endpoints in the pool", "rejected-no-endpoints");
    }
    if (input.subsetHint !== undefined) {
      const ips = new Set(input.subsetHint.map(hintIp));
      candidates = candidates.filter((e) => inSubset(e, ips));
      if (candidates.length === 0) {
        throw new EppError(
          "ServiceUnavailable",
          "no endpoint of the pool matches the subset hint",
          "rejected-no-endpoints",
        );
      }
    }
    candidates = candidates.filter((e) => e.models.has(request.targetModel));
    if (candidates.length === 0) throw modelNotFound(request.targetModel);
    const ready = candidates;
    const { result, targets } = input.failOpen
      ? failOpenResult(ready)
      : await runtime.director.handleRequest(request, candidates, {
          signal: input.signal,
          candidatesNow: () => store.ready().filter((e) => e.models.has(request.targetModel)),
        });
    const body =
      request.targetModel !== request.incomingModel
        ? Buffer.from(JSON.stringify({ ...parsed.raw, model: request.targetModel }), "utf8")
        : input.rawBody;
    return {
      request,
      result,
      targets,
      destination: targets.map((t) => t.metadata.hostPort).join(","),
      body,
      labels,
      kind,
      startedNs,
    };
  } catch (err) {
    m.requestErrorTotal.inc(labels, errorCode(err));
    throw err;
  }
}

/** A scheduling result that picks the first candidate (FailOpen). */
function failOpenResult(candidates: Endpoint[]): { result: SchedulingResult; targets: Endpoint[] } {
  const targets = [candidates[0]!];
  return {
    result: {
      profileResults: {
        "fail-open": {
          targetEndpoints: targets,
          scoredCandidates: candidates.map((e) => ({ endpoint: e, score: 0 })),
        },
      },
      primaryProfileName: "fail-open",
    },
    targets,
  };
}

/** An error as a transport sends it. */
export interface ErrorResponse {
  /** HTTP status */
  status: number;
  /** EPP error code (reference/epp.md §1.6) */
  code: EppErrorCode;
  /** `text`: `inference error: <Code> - <msg>`; `openai`: `{"error":{…}}` JSON */
  body: string;
  /** response headers: `content-type`, and `x-llm-d-request-dropped-reason` when known */
  headers: Record<string, string>;
}

const CODE_BY_STATUS: Readonly<Record<number, EppErrorCode>> = {
  400: "BadRequest",
  401: "Unauthorized",
  403: "Forbidden",
  404: "NotFound",
  412: "PreconditionFailed",
  429: "ResourceExhausted",
  503: "ServiceUnavailable",
};

/** The EPP error code of anything thrown (`ApiError` by status; unknown → `Internal`). */
export function errorCode(err: unknown): EppErrorCode {
  if (err instanceof EppError) return err.code;
  if (err instanceof ApiError)
    return CODE_BY_STATUS[err.status] ?? (err.status < 500 ? "BadRequest" : "Internal");
  return "Internal";
}

/**
 * Maps anything thrown by {@link prepareRequest} (or a transport) to a response
 * (reference/epp.md §1.6): `EppError` → its status, message and drop reason; `ApiError` → its
 * status with the code of that status (e.g. 404 → `NotFound`); anything else → 500 `Internal`.
 * @param format `text` (ext_proc `ImmediateResponse` body, default) or `openai` (router JSON)
 */
export function errorToResponse(err: unknown, format: "text" | "openai" = "text"): ErrorResponse {
  const code = errorCode(err);
  let status: number;
  let message: string;
  const headers: Record<string, string> = {};
  if (err instanceof EppError) {
    status = err.status;
    message = err.message.replace(/^inference error: \w+ - /, "");
    if (err.dropReason) headers[H.REQUEST_DROPPED_REASON] = err.dropReason;
  } else if (err instanceof ApiError) {
    status = err.status;
    message = err.message;
    Object.assign(headers, err.headers);
  } else {
    status = 500;
    message = err instanceof Error ? err.message : String(err);
  }
  if (format === "openai") {
    const api =
      err instanceof ApiError
        ? err
        : new ApiError(status, `inference error: ${code} - ${message}`, { code, headers });
    headers["content-type"] = "application/json";
    return { status, code, body: JSON.stringify(api.toBody()), headers };
  }
  headers["content-type"] = "text/plain";
  return { status, code, body: `inference error: ${code} - ${message}`, headers };
}

/** Response-side accounting of one request; see {@link trackResponse}. */
export interface ResponseTracking {
  /** the `ResponseInfo` handed to the Director's hooks */
  readonly info: ResponseInfo;
  /**
   * Response headers arrived: runs `responseReceived`; a status ≠ 200 counts
   * `request_error_total{error_code="ModelServerError"}` (reference/epp.md §1.2 step 3).
   * @param streaming whether the response is `text/event-stream`
   */
  received(status: number, endpoint: Endpoint, streaming: boolean): void;
  /** One body chunk passed by: TTFT on the first (and `responseStreaming`), ITL on later ones. */
  chunk(buf: Buffer): void;
  /**
   * The body is complete: usage, duration, sizes and token metrics, `responseComplete`.
   * Idempotent with {@link terminate}: only the first of them counts.
   * @returns the usage found, if any
   */
  complete(): ResponseUsage | undefined;
  /** The response ended abnormally: `responseComplete` with the cause; idempotent. */
  terminate(cause: NonNullable<ResponseInfo["terminationCause"]>): void;
  /** whether complete/terminate already ran */
  readonly done: boolean;
}

/**
 * Starts the response-side accounting of a prepared request: increments `running_requests`
 * now (the request is being sent upstream) and decrements it on complete/terminate.
 * Metrics: `request_ttft_seconds` (+ `streaming` twin), `request_itl_seconds` (streaming),
 * `request_duration_seconds`, `response_sizes`, input/output/cached token histograms,
 * `normalized_time_per_output_token_seconds` (reference/epp.md §7).
 */
export function trackResponse(runtime: PipelineRuntime, prep: PreparedRequest): ResponseTracking {
  return new ResponseTracker(runtime, prep);
}

/** {@link ResponseTracking} as one object per response (no closures per request). */
class ResponseTracker implements ResponseTracking {
  readonly info: ResponseInfo;
  private readonly series: RequestSeries;
  private streaming = false;
  private tracker: UsageTracker | undefined; // created once the response headers say which kind
  private first = true;
  private lastNs = 0n;
  private bytes = 0;
  private finished = false;

  constructor(
    private readonly runtime: PipelineRuntime,
    private readonly prep: PreparedRequest,
  ) {
    this.series = runtime.metrics.requestSeries(prep.labels);
    this.series.running.inc();
    this.info = { status: 0, endpoint: prep.targets[0]!, endOfStream: false };
  }

  get done(): boolean {
    return this.finished;
  }

  received(status: number, endpoint: Endpoint, isStreaming: boolean): void {
    this.streaming = isStreaming;
    this.tracker = new UsageTracker(isStreaming);
    const info = this.info;
    info.status = status;
    (info as { endpoint: Endpoint }).endpoint = endpoint;
    this.runtime.director.responseReceived(this.prep.request, info);
    if (status !== 200) this.runtime.metrics.requestErrorTotal.inc(this.prep.labels, "ModelServerError");
  }

  chunk(buf: Buffer): void {
    if (this.finished || buf.length === 0) return;
    const now = process.hrtime.bigint();
    this.bytes += buf.length;
    if (this.first) {
      this.first = false;
      const ttft = Number(now - this.prep.startedNs) / 1e9;
      this.series.ttft.observe(ttft);
      if (this.streaming) this.series.streamingTtft.observe(ttft);
      this.runtime.director.responseStreaming(this.prep.request, this.info);
    } else if (this.streaming) {
      this.series.streamingItl.observe(Number(now - this.lastNs) / 1e9);
    }
    this.lastNs = now;
    this.tracker ??= new UsageTracker(this.streaming);
    this.tracker.push(buf);
  }

  complete(): ResponseUsage | undefined {
    const info = this.info;
    if (this.finished) return info.usage;
    this.finish();
    const usage = this.tracker?.usage();
    info.usage = usage;
    info.endOfStream = true;
    const s = this.series;
    const seconds = Number(process.hrtime.bigint() - this.prep.startedNs) / 1e9;
    s.duration.observe(seconds);
    s.responseSizeBytes.observe(this.bytes);
    if (usage) {
      s.inputTokens.observe(usage.promptTokens);
      s.outputTokens.observe(usage.completionTokens);
      s.cachedTokens.observe(usage.cachedTokens);
      if (usage.completionTokens > 0) s.ntpot.observe(seconds / usage.completionTokens);
    }
    this.runtime.director.responseComplete(this.prep.request, info);
    return usage;
  }

  terminate(cause: NonNullable<ResponseInfo["terminationCause"]>): void {
    if (this.finished) return;
    this.finish();
    this.info.terminationCause = cause;
    if (cause === "upstream-error")
      this.runtime.metrics.requestErrorTotal.inc(this.prep.labels, "ModelServerError");
    this.runtime.director.responseComplete(this.prep.request, this.info);
  }

  private finish(): void {
    this.finished = true;
    this.series.running.dec();
  }
}

/**
 * Sets the pool gauges from the store's ready endpoints (call before each scrape):
 * `ready_endpoints`, `average_kv_cache_utilization` (fraction 0..1), `average_queue_size`,
 * `average_running_requests`, labelled with the pool name (reference/epp.md §7).
 */
export function updatePoolGauges(metrics: EppMetrics, store: EndpointStore, poolName: string): void {
  const ready = store.ready();
  const n = ready.length;
  const avg = (f: (e: Endpoint) => number) => (n === 0 ? 0 : ready.reduce((s, e) => s + f(e), 0) / n);
  metrics.readyEndpoints.set(poolName, n);
  metrics.averageKvCacheUtilization.set(
    poolName,
    avg((e) => e.metrics.kvCacheUsagePercent),
  );
  metrics.averageQueueSize.set(
    poolName,
    avg((e) => e.metrics.waitingQueueSize),
  );
  metrics.averageRunningRequests.set(
    poolName,
    avg((e) => e.metrics.runningRequestsSize),
  );
}
