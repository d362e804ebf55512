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
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { Pool } from "undici";
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
  async function prepare(path: string, raw: Buffer, headers: Record<string, string>, signal: AbortSignal) {
    try {
      return await prepareRequest(opts.runtime, opts.store, {
        path,
        rawBody: raw,
        headers,
        policies: opts.policies,
        signal,
      });
    } catch (err) {
      if (!opts.failOpen || !(err instanceof EppError) || err.dropReason || err.code === "BadRequest")
        throw err;
      log.warn({ err: err.message }, "scheduling failed; FailOpen picks any ready endpoint");
      return prepareRequest(opts.runtime, opts.store, {
        path,
        rawBody: raw,
        headers,
        policies: opts.policies,
        signal,
        failOpen: true,
      });
    }
  }

  async function handleInference(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const raw = await readBody(req, maxBody);
    const { headers } = cleanClientHeaders(req.headers);
    const abort = new AbortController();
    let clientGone = false;
    res.on("close", () => {
      if (!res.writableFinished) {
        clientGone = true;
        abort.abort();
      }
    });
    const prep = await prepare(path, raw, headers, abort.signal);
    const ireq = prep.request;
    const requestId = ireq.requestId;
    const tracking = trackResponse(opts.runtime, prep);
    try {
      let body: Buffer | string = prep.body;
      const prefiller = ireq.headers[H.PREFILLER_HOST_PORT];
      delete ireq.headers[H.PREFILLER_HOST_PORT];
      const upstreamHeaders: Record<string, string> = { ...ireq.headers, "content-type": "application/json" };
      // input-control, destination and content-length headers are the router's, not the upstream's
      for (const h of SYSTEM_OWNED_HEADERS) delete upstreamHeaders[h];
      // The router's own API key authenticates the client to the router; it must not leak upstream.
      if (keyDigests.length > 0) delete upstreamHeaders.authorization;
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
          signal: abort.signal,
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

      // Upstream attempts: the P/D decode target must not change (its prefill is bound to it).
      const order = prefiller ? prep.targets.slice(0, 1) : fallbackOrder(prep).slice(0, maxAttempts);
      let upstream: Awaited<ReturnType<Pool["request"]>> | undefined;
      let served: Endpoint | undefined;
      let lastErr = "";
      // non-streamed answers: the body iterator, already advanced to its first chunk
      let bodyIter: AsyncIterator<Buffer> | undefined;
      let firstChunk: Buffer | undefined;
      for (const [attempt, target] of order.entries()) {
        try {
          const r = await poolFor(target.metadata.hostPort).request({
            method: "POST",
            path,
            headers: upstreamHeaders,
            body,
            signal: abort.signal,
          });
          if (RETRYABLE_STATUS.has(r.statusCode)) {
            outliers?.failure(target, `HTTP ${r.statusCode}`);
            if (target !== order.at(-1)) {
              lastErr = `HTTP ${r.statusCode}`;
              await r.body.dump().catch(() => {});
              log.warn(
                {
                  requestId,
                  endpoint: target.metadata.id,
                  status: r.statusCode,
                  attempt: attempt + 1,
                  of: order.length,
                },
                "upstream refused before the first byte; trying the next candidate",
              );
              continue;
            }
            log.warn(
              {
                requestId,
                endpoint: target.metadata.id,
                status: r.statusCode,
                attempt: attempt + 1,
                of: order.length,
              },
              "upstream refused before the first byte on the last candidate; passing its answer on",
            );
          }
          if (!String(r.headers["content-type"] ?? "").includes("text/event-stream")) {
            // Non-streamed: nothing reaches the client before the first body byte, so an upstream
            // that dies between its headers and its body is tried again like a refusal.
            const it = r.body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
            try {
              const n = await it.next();
              firstChunk = n.done ? undefined : n.value;
              bodyIter = it;
            } catch (e) {
              if (clientGone) {
                tracking.terminate("client-disconnect");
                return;
              }
              const code = (e as { code?: string }).code ?? "";
              lastErr = `before the first body byte: ${code || "error"}: ${(e as Error).message}`;
              outliers?.failure(target, lastErr);
              log.warn(
                { requestId, endpoint: target.metadata.id, code, attempt: attempt + 1, of: order.length },
                "upstream failed before its first body byte; trying the next candidate",
              );
              continue;
            }
          }
          upstream = r;
          served = target;
          break;
        } catch (e) {
          if (clientGone) {
            tracking.terminate("client-disconnect");
            return;
          }
          const code = (e as { code?: string }).code ?? "";
          lastErr = `${code || "error"}: ${(e as Error).message}`;
          outliers?.failure(target, lastErr);
          if (!CONNECT_ERRORS.has(code)) break;
          log.warn(
            { requestId, endpoint: target.metadata.id, code, attempt: attempt + 1, of: order.length },
            "upstream connect failed; trying the next candidate",
          );
        }
      }
      if (!upstream || !served) {
        tracking.terminate("upstream-error");
        throw new ApiError(
          502,
          `no upstream could serve the request (${order.length} tried; last: ${lastErr})`,
          {
            code: "upstream_unavailable",
          },
        );
      }
      if (upstream.statusCode < 500) outliers?.success(served);
      const streaming = String(upstream.headers["content-type"] ?? "").includes("text/event-stream");
      tracking.received(upstream.statusCode, served, streaming);
      const outHeaders = upstreamResponseHeaders(upstream.headers);
      outHeaders[H.REQUEST_ID] = requestId;
      outHeaders[H.DESTINATION_ENDPOINT_SERVED] = served.metadata.hostPort;
      res.writeHead(upstream.statusCode, outHeaders);
      // SSE: headers out now; otherwise they go with the first body write (one syscall).
      if (streaming) res.flushHeaders();
      try {
        if (firstChunk) {
          tracking.chunk(firstChunk);
          if (!res.write(firstChunk)) await once(res, "drain");
        }
        const it = bodyIter;
        const rest: AsyncIterable<Buffer> = it ? { [Symbol.asyncIterator]: () => it } : upstream.body;
        for await (const chunk of rest) {
          tracking.chunk(chunk);
          if (!res.write(chunk)) await once(res, "drain");
        }
      } catch (e) {
        if (clientGone) {
          tracking.terminate("client-disconnect");
          return;
        }
        // Failure after the response started: end the stream with a clear error event.
        log.warn({ endpoint: served.metadata.id, err: (e as Error).message }, "upstream failed mid-response");
        tracking.terminate("upstream-error");
        outliers?.failure(served, `mid-response: ${(e as Error).message}`);
        if (streaming) {
          const ev = new ApiError(
            502,
            `upstream ${served.metadata.hostPort} failed mid-stream: ${(e as Error).message}`,
            {
              code: "upstream_failed_mid_stream",
            },
          );
          res.end(`data: ${JSON.stringify(ev.toBody())}\n\ndata: [DONE]\n\n`);
        } else {
          res.destroy();
        }
        return;
      }
      res.end();
      tracking.complete();
    } finally {
      if (!tracking.done) tracking.terminate(clientGone ? "client-disconnect" : "upstream-error");
    }
  }

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
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
        return sendJson(
          res,
          { status: draining ? "draining" : n > 0 ? "ok" : "no ready endpoints", ready_endpoints: n },
          ok ? 200 : 503,
        );
      }
      case "/metrics": {
        updatePoolGauges(metrics, opts.store, poolName);
        const text = await metrics.metricsText();
        res.writeHead(200, { "content-type": metrics.registry.contentType });
        res.end(text);
        return;
      }
      case "/v1/models": {
        const created = Math.floor(Date.now() / 1000);
        const data = [...opts.store.readyModels()]
          .sort()
          .map((id) => ({ id, object: "model", created, owned_by: "llmd" }));
        return sendJson(res, { object: "list", data });
      }
      case "/llmd/endpoints":
        return sendJson(res, endpointsView());
      case "/llmd/config":
        return sendJson(res, opts.configView ?? {});
      case "/llmd/kv-events":
        return sendJson(res, opts.kvEventsView?.() ?? { configured: false, producers: [] });
      default:
        throw pathNotFound(method, path);
    }
  }

  const listener = (req: IncomingMessage, res: ServerResponse) => {
    inFlight++;
    res.once("close", () => inFlight--);
    route(req, res).catch((err) => {
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
    });
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
