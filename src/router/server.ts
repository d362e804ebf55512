/**
 * `llmd router` — the OpenAI-compatible gateway with the EPP built in (llm-d's standalone
 * router, Envoy + EPP in one process; DESIGN.md "The path of one request").
 *
 * Per request: authenticate (optional API keys), read the body once (bounded, 413), run the
 * shared request path of `src/requestcontrol/pipeline.ts` (parse + validate once, build the
 * InferenceRequest, candidates serving the model, the Director: admission → producers →
 * scheduler → pre-request), then proxy with undici and stream the response back unbuffered
 * while the pipeline's response tracking feeds the metrics and response hooks. With P/D the
 * router is the coordinator (`pd-coordinator.ts`, the sidecar's NIXL v2 flow).
 *
 * The proxy is an undici `dispatch` handler ({@link Exchange}): each chunk is written to the
 * client in the callback that delivers it, with no body stream or async iterator in between,
 * so a small non-streamed answer (headers, body, end) leaves in a single write.
 *
 * Fault tolerance: an upstream that fails before the first response byte (refused, reset,
 * 502/503/504; for a non-streamed answer also a failure between its headers and its first body
 * byte, since nothing has reached the client yet) is retried on the next candidate of the primary profile (the picker's targets,
 * then the other candidates by score), up to `maxAttempts`; failures feed passive outlier
 * ejection. A failure after streaming started ends the stream with an error event, never a
 * silent truncation. FailOpen (optional): when scheduling itself fails for a reason other than
 * admission, any ready endpoint serving the model is used. Errors: OpenAI shape, EPP status
 * mapping and `x-llm-d-request-dropped-reason` (reference/epp.md §1.6, §1.7).
 */
import { timingSafeEqual, createHash } from "node:crypto";
import { once } from "node:events";
import {
  createServer as createHttpServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { type Dispatcher, Pool } from "undici";
import { ApiError, methodNotAllowed, pathNotFound } from "../api/errors.js";
import { INFERENCE_PATHS } from "../api/openai.js";
import type { EndpointStore } from "../datalayer/store.js";
import { EppError } from "../framework/errors.js";
import * as H from "../framework/headers.js";
import { ROLE_LABEL } from "../framework/labels.js";
import type { Endpoint } from "../framework/types.js";
import { logger } from "../log.js";
import type { EppMetrics } from "../metrics/epp.js";
import {
  errorToResponse,
  type PipelineRuntime,
  type PreparedRequest,
  prepareRequest,
  type RequestPolicies,
  type ResponseTracking,
  SYSTEM_OWNED_HEADERS,
  trackResponse,
  updatePoolGauges,
} from "../requestcontrol/pipeline.js";
import { cleanClientHeaders, readBody, sendJson, upstreamResponseHeaders } from "./http-util.js";
import { OutlierDetector, type OutlierOptions } from "./outlier.js";
import { decodeBody, runPrefill } from "./pd-coordinator.js";
import type { TlsMaterial } from "./tls.js";

const log = logger.child({ component: "router" });

/** Router options. */
export interface RouterOptions {
  /** listen address (default 127.0.0.1) */
  host?: string;
  /** listen port; 0 = a free port */
  port: number;
  store: EndpointStore;
  /** the EPP core (`createEppRuntime`) */
  runtime: PipelineRuntime;
  /** InferenceObjective / InferenceModelRewrite policies, if any */
  policies?: RequestPolicies;
  /** pool name label of pool gauges (default `llmd`) */
  poolName?: string;
  /** what `GET /llmd/config` shows (for `llmd doctor`) */
  configView?: unknown;
  /** what `GET /llmd/kv-events` shows: precise producers' KV-event health (for `llmd doctor`) */
  kvEventsView?: () => unknown;
  /** request body limit, bytes (default 8 MiB) */
  maxBodyBytes?: number;
  /** request header limit, bytes (default 16 KiB, Node's) */
  maxHeaderBytes?: number;
  /** time allowed to receive the request headers, ms (default 30 000) */
  headersTimeoutMs?: number;
  /** time allowed to receive the whole request, ms (default 120 000) */
  requestTimeoutMs?: number;
  /** max time to wait for upstream response headers, ms (default 600 000: long prefills) */
  upstreamHeadersTimeoutMs?: number;
  /** max idle time between upstream body chunks, ms (default 300 000) */
  upstreamBodyTimeoutMs?: number;
  /** connections per upstream endpoint (default 128) */
  upstreamConnections?: number;
  /** upstream attempts per request before giving up (default 3) */
  maxAttempts?: number;
  /** pick any ready endpoint when scheduling fails (default false = FailClose) */
  failOpen?: boolean;
  /** passive outlier ejection; `false` disables it */
  outlier?: OutlierOptions | false;
  /** bearer tokens accepted on /v1/*; none = no authentication */
  apiKeys?: string[];
  /** serve HTTPS with this material */
  tls?: TlsMaterial;
  /** P/D: retries of the prefill leg on 502/503/504 (default 1) */
  prefillMaxRetries?: number;
  /** P/D: backoff before the first prefill retry, ms (default 200) */
  prefillRetryBackoffMs?: number;
}

/** A running router. */
export interface RunningRouter {
  url: string;
  port: number;
  server: Server;
  /** requests being served right now */
  inFlight(): number;
  /**
   * Graceful drain: stop accepting, let in-flight requests finish within `deadlineMs`
   * (default 30 000), then close what is left.
   */
  close(deadlineMs?: number): Promise<void>;
}

/** Upstream errors before any response byte that another endpoint may not have. */
const CONNECT_ERRORS = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "EHOSTUNREACH",
  "ENOTFOUND",
  "EPIPE",
  "UND_ERR_SOCKET",
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_CLOSED",
]);
const RETRYABLE_STATUS = new Set([502, 503, 504]);

const sha = (s: string) => createHash("sha256").update(s).digest();

/** Constant-time check of an `Authorization: Bearer <key>` header against the keys (by SHA-256 digest). */
export function checkBearer(header: string | undefined, keyDigests: Buffer[]): boolean {
  const m = /^Bearer\s+(.+)$/i.exec(header ?? "");
  const d = sha(m ? m[1]!.trim() : "");
  let ok = false;
  for (const k of keyDigests) ok = timingSafeEqual(d, k) || ok;
  return ok && m !== null;
}

/**
 * Endpoints to try, in order: the picker's targets, then the primary profile's other
 * candidates by descending score.
 */
export function fallbackOrder(prep: PreparedRequest): Endpoint[] {
  const out = [...prep.targets];
  const scored = prep.result.profileResults[prep.result.primaryProfileName]?.scoredCandidates ?? [];
  for (const s of [...scored].sort((a, b) => b.score - a.score))
    if (!out.includes(s.endpoint)) out.push(s.endpoint);
  return out;
}

/** What an {@link Exchange} needs of its router. */
interface ProxyContext {
  poolFor(hostPort: string): Pool;
  outliers: OutlierDetector | undefined;
  maxAttempts: number;
}

// Phases of one upstream attempt.
/** waiting for the response headers */
const AWAIT_HEADERS = 0;
/** non-streamed answer: headers in, waiting for the first body byte (still retryable) */
const AWAIT_BODY = 1;
/** committed: the response is going to the client */
const PIPING = 2;
/** a refusal (502/503/504) left behind for the next candidate: its body is read and dropped */
const DISCARDED = 3;

/** Bytes of a discarded refusal's body read before its connection is closed instead (undici's `dump()` limit). */
const DISCARD_LIMIT_BYTES = 128 * 1024;

const isEventStream = (h: IncomingHttpHeaders): boolean =>
  String(h["content-type"] ?? "").includes("text/event-stream");

/**
 * One try of one upstream, as an undici dispatch handler. Callbacks reach the exchange only
 * while this is its current attempt; a stale one (the client left, a refusal left behind)
 * is ignored, or aborted when it starts late.
 */
class Attempt implements Dispatcher.DispatchHandler {
  controller: Dispatcher.DispatchController | null = null;
  phase = AWAIT_HEADERS;
  status = 0;
  headers: IncomingHttpHeaders | null = null;
  private discarded = 0;
  constructor(
    readonly ex: Exchange,
    readonly target: Endpoint,
    /** position in the exchange's fallback order */
    readonly index: number,
  ) {}
  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.ex.attempt !== this && this.phase !== DISCARDED)
      controller.abort(new Error("request abandoned"));
  }
  onResponseStart(_c: Dispatcher.DispatchController, status: number, headers: IncomingHttpHeaders): void {
    if (this.ex.attempt !== this) return;
    try {
      this.ex.onStart(this, status, headers);
    } catch (e) {
      this.ex.crash(this, e);
    }
  }
  onResponseData(c: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.ex.attempt !== this) {
      if (this.phase === DISCARDED) {
        this.discarded += chunk.length;
        if (this.discarded > DISCARD_LIMIT_BYTES) c.abort(new Error("discarded body too large"));
      }
      return;
    }
    try {
      this.ex.onData(this, chunk);
    } catch (e) {
      this.ex.crash(this, e);
    }
  }
  onResponseEnd(): void {
    if (this.ex.attempt !== this) return;
    try {
      this.ex.onEnd(this);
    } catch (e) {
      this.ex.crash(this, e);
    }
  }
  onResponseError(_c: Dispatcher.DispatchController, err: Error): void {
    if (this.ex.attempt !== this) return;
    try {
      this.ex.onError(this, err);
    } catch (e) {
      this.ex.crash(this, e);
    }
  }
}

/**
 * The upstream side of one inference request: attempts in fallback order (see file header),
 * then the response streamed to the client as undici hands it over — written in the same tick
 * it arrives, so a small non-streamed answer leaves in one write (headers, body and end).
 */
class Exchange {
  clientGone = false;
  /** built on first use: most requests never need one (see {@link signal}) */
  private abortController: AbortController | null = null;
  /** the attempt whose callbacks count; null when none runs */
  attempt: Attempt | null = null;
  private prep!: PreparedRequest;
  private tracking!: ResponseTracking;
  private headers!: Record<string, string>;
  private body!: Buffer | string;
  private pd = false;
  private order: Endpoint[] | null = null;
  private lastErr = "";
  private streaming = false;
  private settled = false;
  private resolve!: () => void;
  private reject!: (e: unknown) => void;
  private onDrain: (() => void) | null = null;
  private awaitingDrain = false;

  constructor(
    private readonly ctx: ProxyContext,
    private readonly res: ServerResponse,
    private readonly path: string,
  ) {}

  /** Aborted when the client goes away (flow-control queueing, the P/D prefill leg). */
  get signal(): AbortSignal {
    if (this.abortController === null) {
      this.abortController = new AbortController();
      if (this.clientGone) this.abortController.abort();
    }
    return this.abortController.signal;
  }

  /**
   * Proxies the prepared request; resolves once the response ended (completed, terminated or
   * the client left), rejects with the error to answer when no upstream could serve it.
   * @param pd P/D decode leg: the decode target is fixed (its prefill is bound to it)
   */
  run(
    prep: PreparedRequest,
    tracking: ResponseTracking,
    headers: Record<string, string>,
    body: Buffer | string,
    pd: boolean,
  ): Promise<void> {
    this.prep = prep;
    this.tracking = tracking;
    this.headers = headers;
    this.body = body;
    this.pd = pd;
    const done = new Promise<void>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    if (this.clientGone) {
      tracking.terminate("client-disconnect");
      this.settle();
    } else {
      this.dispatch(0, prep.targets[0]!);
    }
    return done;
  }

  /** The client closed before the response finished. */
  clientClosed(): void {
    if (this.clientGone) return;
    this.clientGone = true;
    this.abortController?.abort();
    const a = this.attempt;
    if (a === null) return;
    if (a.controller !== null) {
      // undici reports the abort through onResponseError, which ends the exchange
      a.controller.abort(new Error("client disconnected"));
    } else {
      // still queued for a connection: it is aborted when it starts
      this.attempt = null;
      this.tracking.terminate("client-disconnect");
      this.settle();
    }
  }

  /** Fallback order (targets, then the other candidates by score), computed once a retry needs it. */
  private fallback(): Endpoint[] {
    this.order ??= this.pd
      ? this.prep.targets.slice(0, 1)
      : fallbackOrder(this.prep).slice(0, this.ctx.maxAttempts);
    return this.order;
  }

  private dispatch(index: number, target: Endpoint): void {
    const a = new Attempt(this, target, index);
    this.attempt = a;
    this.ctx
      .poolFor(target.metadata.hostPort)
      .dispatch({ method: "POST", path: this.path, headers: this.headers, body: this.body }, a);
  }

  /** The next candidate after `a`, or the 502 when none is left. */
  private next(a: Attempt): void {
    const order = this.fallback();
    const i = a.index + 1;
    if (i < order.length) this.dispatch(i, order[i]!);
    else this.fail();
  }

  onStart(a: Attempt, status: number, headers: IncomingHttpHeaders): void {
    if (status < 200) return; // informational
    if (RETRYABLE_STATUS.has(status)) {
      this.ctx.outliers?.failure(a.target, `HTTP ${status}`);
      const order = this.fallback();
      const meta = {
        requestId: this.prep.request.requestId,
        endpoint: a.target.metadata.id,
        status,
        attempt: a.index + 1,
        of: order.length,
      };
      if (a.index < order.length - 1) {
        this.lastErr = `HTTP ${status}`;
        a.phase = DISCARDED;
        log.warn(meta, "upstream refused before the first byte; trying the next candidate");
        this.next(a);
        return;
      }
      log.warn(meta, "upstream refused before the first byte on the last candidate; passing its answer on");
    }
    a.status = status;
    a.headers = headers;
    if (isEventStream(headers)) this.commit(a, true);
    // Non-streamed: nothing reaches the client before the first body byte, so an upstream that
    // dies between its headers and its body is tried again like a refusal.
    else a.phase = AWAIT_BODY;
  }

  onData(a: Attempt, chunk: Buffer): void {
    if (a.phase === AWAIT_BODY) this.commit(a, false);
    this.tracking.chunk(chunk);
    if (!this.res.write(chunk)) {
      a.controller?.pause();
      if (!this.awaitingDrain) {
        this.awaitingDrain = true;
        this.onDrain ??= () => {
          this.awaitingDrain = false;
          this.attempt?.controller?.resume();
        };
        this.res.once("drain", this.onDrain);
      }
    }
  }

  onEnd(a: Attempt): void {
    if (a.phase === AWAIT_BODY) this.commit(a, false);
    this.attempt = null;
    this.res.end();
    this.tracking.complete();
    this.settle();
  }

  onError(a: Attempt, err: Error): void {
    this.attempt = null;
    if (this.clientGone) {
      this.tracking.terminate("client-disconnect");
      this.settle();
      return;
    }
    const outliers = this.ctx.outliers;
    const code = (err as { code?: string }).code ?? "";
    if (a.phase === PIPING) {
      // Failure after the response started: end the stream with a clear error event.
      const served = a.target;
      log.warn({ endpoint: served.metadata.id, err: err.message }, "upstream failed mid-response");
      this.tracking.terminate("upstream-error");
      outliers?.failure(served, `mid-response: ${err.message}`);
      if (this.streaming) {
        const ev = new ApiError(
          502,
          `upstream ${served.metadata.hostPort} failed mid-stream: ${err.message}`,
          {
            code: "upstream_failed_mid_stream",
          },
        );
        this.res.end(`data: ${JSON.stringify(ev.toBody())}\n\ndata: [DONE]\n\n`);
      } else {
        this.res.destroy();
      }
      this.settle();
      return;
    }
    const requestId = this.prep.request.requestId;
    if (a.phase === AWAIT_BODY) {
      this.lastErr = `before the first body byte: ${code || "error"}: ${err.message}`;
      outliers?.failure(a.target, this.lastErr);
      log.warn(
        { requestId, endpoint: a.target.metadata.id, code, attempt: a.index + 1, of: this.fallback().length },
        "upstream failed before its first body byte; trying the next candidate",
      );
      this.next(a);
      return;
    }
    this.lastErr = `${code || "error"}: ${err.message}`;
    outliers?.failure(a.target, this.lastErr);
    if (!CONNECT_ERRORS.has(code)) {
      this.fail();
      return;
    }
    log.warn(
      { requestId, endpoint: a.target.metadata.id, code, attempt: a.index + 1, of: this.fallback().length },
      "upstream connect failed; trying the next candidate",
    );
    this.next(a);
  }

  /** A callback threw (e.g. a response header Node refuses): abort the upstream, answer with the error. */
  crash(a: Attempt, err: unknown): void {
    if (this.attempt === a) this.attempt = null;
    try {
      a.controller?.abort(err instanceof Error ? err : new Error(String(err)));
    } catch {
      // already finished
    }
    if (!this.settled) {
      this.settled = true;
      this.reject(err);
    }
  }

  /** The response starts: headers to the client (SSE: at once; otherwise with the first body write). */
  private commit(a: Attempt, streaming: boolean): void {
    a.phase = PIPING;
    this.streaming = streaming;
    const served = a.target;
    if (a.status < 500) this.ctx.outliers?.success(served);
    this.tracking.received(a.status, served, streaming);
    const out = upstreamResponseHeaders(a.headers!);
    out[H.REQUEST_ID] = this.prep.request.requestId;
    out[H.DESTINATION_ENDPOINT_SERVED] = served.metadata.hostPort;
    this.res.writeHead(a.status, out);
    if (streaming) this.res.flushHeaders();
  }

  private fail(): void {
    this.tracking.terminate("upstream-error");
    if (this.settled) return;
    this.settled = true;
    this.reject(
      new ApiError(
        502,
        `no upstream could serve the request (${this.fallback().length} tried; last: ${this.lastErr})`,
        {
          code: "upstream_unavailable",
        },
      ),
    );
  }

  private settle(): void {
    if (this.settled) return;
    this.settled = true;
    this.resolve();
  }
}

const kExchange = Symbol("llmd.router.exchange");
type RouterResponse = ServerResponse & { [kExchange]?: Exchange };

/** Starts the router. Resolves once it is listening. */
export async function startRouter(opts: RouterOptions): Promise<RunningRouter> {
  const pools = new Map<string, Pool>();
  const poolName = opts.poolName ?? "llmd";
  const maxBody = opts.maxBodyBytes ?? 8 * 1024 * 1024;
  const maxAttempts = Math.max(1, opts.maxAttempts ?? 3);
  const metrics: EppMetrics = opts.runtime.metrics;
  const outliers = opts.outlier === false ? undefined : new OutlierDetector(opts.store, opts.outlier ?? {});
  const keyDigests = (opts.apiKeys ?? []).filter((k) => k !== "").map(sha);
  let inFlight = 0;
  let draining = false;
  const onRemoved = (ep: Endpoint) => {
    const p = pools.get(ep.metadata.hostPort);
    if (p) {
      pools.delete(ep.metadata.hostPort);
      // graceful: requests in flight on it finish or fail cleanly
      p.close().catch(() => {});
    }
  };
  opts.store.on("removed", onRemoved);

  const poolFor = (hostPort: string): Pool => {
    let p = pools.get(hostPort);
    if (!p) {
      p = new Pool(`http://${hostPort}`, {
        connections: opts.upstreamConnections ?? 128,
        keepAliveTimeout: 60_000,
        headersTimeout: opts.upstreamHeadersTimeoutMs ?? 600_000,
        bodyTimeout: opts.upstreamBodyTimeoutMs ?? 300_000,
      });
      pools.set(hostPort, p);
    }
    return p;
  };

  const endpointsView = () => {
    const ready = new Set(opts.store.ready());
    return {
      endpoints: opts.store.all().map((e) => {
        const h = opts.store.health(e.metadata.id);
        return {
          id: e.metadata.id,
          name: e.metadata.name,
          address: e.metadata.address,
          port: e.metadata.port,
          url: `http://${e.metadata.hostPort}`,
          role: e.metadata.labels[ROLE_LABEL] ?? null,
          labels: e.metadata.labels,
          ready: ready.has(e),
          models: [...e.models],
          metrics: e.metrics,
          metrics_age_ms: e.metrics.updateTime > 0 ? Date.now() - e.metrics.updateTime : null,
          consecutive_scrape_failures: h?.consecutiveFailures ?? 0,
          ejected_until: h && h.ejectedUntil > Date.now() ? new Date(h.ejectedUntil).toISOString() : null,
          last_error: h?.lastError ?? null,
        };
      }),
    };
  };

  /** Scheduling, with FailOpen when asked and the failure is not an admission verdict. */
  function prepare(
    path: string,
    raw: Buffer,
    headers: Record<string, string>,
    signal: AbortSignal | undefined,
  ): Promise<PreparedRequest> {
    const prepared = prepareRequest(opts.runtime, opts.store, {
      path,
      rawBody: raw,
      headers,
      policies: opts.policies,
      signal,
    });
    if (!opts.failOpen) return prepared;
    return prepared.catch((err) => {
      if (!(err instanceof EppError) || err.dropReason || err.code === "BadRequest") throw err;
      log.warn({ err: err.message }, "scheduling failed; FailOpen picks any ready endpoint");
      return prepareRequest(opts.runtime, opts.store, {
        path,
        rawBody: raw,
        headers,
        policies: opts.policies,
        signal,
        failOpen: true,
      });
    });
  }

  // Request headers never forwarded upstream: system-owned ones, the P/D prefiller hint (the
  // router runs the prefill itself), and the router's own API key when it checks one.
  const notForwarded = new Set<string>([...SYSTEM_OWNED_HEADERS, H.PREFILLER_HOST_PORT]);
  // The router's own API key authenticates the client to the router; it must not leak upstream.
  if (keyDigests.length > 0) notForwarded.add("authorization");
  const proxyContext: ProxyContext = { poolFor, outliers, maxAttempts };
  // Scheduling waits on the client (flow-control queueing) unless the admission is legacy.
  const schedulingSignal = opts.runtime.admission?.mode !== "legacy";

  async function handleInference(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const raw = await readBody(req, maxBody);
    const { headers } = cleanClientHeaders(req.headers);
    const ex = new Exchange(proxyContext, res, path);
    // the response's close listener (see `listener`) tells the exchange when the client leaves
    (res as RouterResponse)[kExchange] = ex;
    // legacy admission never waits on the client: no signal to build for it
    const prep = await prepare(path, raw, headers, schedulingSignal ? ex.signal : undefined);
    const ireq = prep.request;
    const requestId = ireq.requestId;
    const tracking = trackResponse(opts.runtime, prep);
    try {
      let body: Buffer | string = prep.body;
      const reqHeaders = ireq.headers;
      const prefiller = reqHeaders[H.PREFILLER_HOST_PORT];
      if (prefiller !== undefined) delete reqHeaders[H.PREFILLER_HOST_PORT];
      // input-control, destination and content-length headers are the router's, not the upstream's
      const upstreamHeaders: Record<string, string> = {};
      for (const k in reqHeaders) if (!notForwarded.has(k)) upstreamHeaders[k] = reqHeaders[k]!;
      upstreamHeaders["content-type"] = "application/json";
      if (prefiller) {
        // P/D: the router is the coordinator (the sidecar's NIXL v2 flow, reference/epp.md §4.3).
        const targetBody = JSON.parse(prep.body.toString("utf8")) as Record<string, unknown>;
        const pre = await runPrefill({
          dispatcher: poolFor(prefiller.split(",")[0]!.trim()),
          path,
          body: targetBody,
          headers: upstreamHeaders,
          maxRetries: opts.prefillMaxRetries ?? 1,
          retryBackoffMs: opts.prefillRetryBackoffMs ?? 200,
          signal: ex.signal,
        });
        if (!pre.ok) {
          tracking.terminate("upstream-error");
          res.writeHead(pre.status, { "content-type": pre.contentType, [H.REQUEST_ID]: requestId });
          res.end(pre.body);
          return;
        }
        if (!pre.kvTransferParams) {
          log.warn(
            { prefiller, requestId },
            "prefill response had no kv_transfer_params; decoding without a transfer",
          );
        } else {
          body = JSON.stringify(decodeBody(targetBody, pre.kvTransferParams));
        }
      }
      // Upstream attempts (the P/D decode target must not change: its prefill is bound to it),
      // then the response streamed back unbuffered.
      await ex.run(prep, tracking, upstreamHeaders, body, Boolean(prefiller));
    } finally {
      if (!tracking.done) tracking.terminate(ex.clientGone ? "client-disconnect" : "upstream-error");
    }
  }

  /** Serves one request; returns a promise when the answer is asynchronous; throws what to answer. */
  function route(req: IncomingMessage, res: ServerResponse): Promise<void> | undefined {
    const url = req.url ?? "/";
    const q = url.indexOf("?");
    const path = q < 0 ? url : url.slice(0, q);
    const method = req.method ?? "GET";
    if (
      path.startsWith("/v1/") &&
      keyDigests.length > 0 &&
      !checkBearer(req.headers.authorization, keyDigests)
    ) {
      req.resume();
      throw new ApiError(401, "Invalid or missing API key (Authorization: Bearer <key>)", {
        code: "invalid_api_key",
      });
    }
    if (INFERENCE_PATHS[path]) {
      if (method !== "POST") throw methodNotAllowed(method, path);
      if (draining) {
        req.resume();
        throw new EppError("ServiceUnavailable", "router is shutting down", "rejected-shutting-down");
      }
      return handleInference(req, res, path);
    }
    if (method !== "GET" && method !== "HEAD") {
      req.resume();
      throw pathNotFound(method, path);
    }
    switch (path) {
      case "/health": {
        const n = opts.store.ready().length;
        const ok = n > 0 && !draining;
        sendJson(
          res,
          { status: draining ? "draining" : n > 0 ? "ok" : "no ready endpoints", ready_endpoints: n },
          ok ? 200 : 503,
        );
        return;
      }
      case "/metrics": {
        updatePoolGauges(metrics, opts.store, poolName);
        return metrics.metricsText().then((text) => {
          res.writeHead(200, { "content-type": metrics.registry.contentType });
          res.end(text);
        });
      }
      case "/v1/models": {
        const created = Math.floor(Date.now() / 1000);
        const data = [...opts.store.readyModels()]
          .sort()
          .map((id) => ({ id, object: "model", created, owned_by: "llmd" }));
        sendJson(res, { object: "list", data });
        return;
      }
      case "/llmd/endpoints":
        sendJson(res, endpointsView());
        return;
      case "/llmd/config":
        sendJson(res, opts.configView ?? {});
        return;
      case "/llmd/kv-events":
        sendJson(res, opts.kvEventsView?.() ?? { configured: false, producers: [] });
        return;
      default:
        throw pathNotFound(method, path);
    }
  }

  /** Close of any response: one request fewer in flight; an inference request's client may have left. */
  function onResponseClose(this: ServerResponse): void {
    inFlight--;
    const ex = (this as RouterResponse)[kExchange];
    if (ex !== undefined && !this.writableFinished) ex.clientClosed();
  }

  async function serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const pending = route(req, res);
      if (pending !== undefined) await pending;
    } catch (err) {
      const r = errorToResponse(err, "openai");
      if (r.status >= 500 && r.code === "Internal")
        log.error({ err: (err as Error).message }, "request failed");
      if (res.headersSent) {
        res.destroy();
        return;
      }
      // A 413 keeps the connection: the rest of the body is drained and discarded (readBody
      // resumed the stream; --request-timeout bounds it), so the client reads the answer instead
      // of an EPIPE from a socket closed under its writes.
      res.writeHead(r.status, r.headers);
      res.end(r.body);
    }
  }

  const listener = (req: IncomingMessage, res: ServerResponse) => {
    inFlight++;
    res.once("close", onResponseClose);
    void serve(req, res);
  };
  const serverOpts = {
    keepAliveTimeout: 65_000,
    headersTimeout: opts.headersTimeoutMs ?? 30_000,
    requestTimeout: opts.requestTimeoutMs ?? 120_000,
    maxHeaderSize: opts.maxHeaderBytes ?? 16 * 1024,
  };
  const server = opts.tls
    ? createHttpsServer({ ...serverOpts, key: opts.tls.key, cert: opts.tls.cert }, listener)
    : createHttpServer(serverOpts, listener);
  server.on("clientError", (err: NodeJS.ErrnoException, socket) => {
    const status =
      err.code === "HPE_HEADER_OVERFLOW"
        ? "431 Request Header Fields Too Large"
        : err.code === "ERR_HTTP_REQUEST_TIMEOUT"
          ? "408 Request Timeout"
          : "400 Bad Request";
    if (socket.writable) socket.end(`HTTP/1.1 ${status}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
    log.debug({ err: err.message }, "client error");
  });
  server.listen(opts.port, opts.host ?? "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as AddressInfo).port;
  return {
    url: `${opts.tls ? "https" : "http"}://${opts.host ?? "127.0.0.1"}:${port}`,
    port,
    server,
    inFlight: () => inFlight,
    async close(deadlineMs = 30_000) {
      draining = true;
      opts.store.off("removed", onRemoved);
      const closed = new Promise<void>((r) => server.close(() => r()));
      server.closeIdleConnections();
      const deadline = Date.now() + deadlineMs;
      while (inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      if (inFlight > 0) log.warn({ inFlight }, "drain deadline passed; closing the remaining connections");
      server.closeAllConnections();
      await closed;
      await Promise.all([...pools.values()].map((p) => p.close().catch(() => {})));
    },
  };
}
