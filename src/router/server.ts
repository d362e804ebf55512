/**
 * `llmd router` — the OpenAI-compatible gateway with the EPP built in (llm-d's standalone
 * router, Envoy + EPP in one process; DESIGN.md "The path of one request").
 *
 * Per request: read the body once (bounded), parse and validate it once, strip internal
 * headers a client must not set, pick candidates serving the model, run the Director
 * (producers → scheduler → pre-request), proxy to the primary target with undici and stream
 * the response back unbuffered, then run the response hooks with the usage seen in passing.
 * Errors: OpenAI shape, EPP status mapping and `x-llm-d-request-dropped-reason`
 * (reference/epp.md §1.6).
 */
import { randomUUID } from "node:crypto";
import { once } from "node:events";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { Pool } from "undici";
import { ApiError, methodNotAllowed, modelNotFound, pathNotFound, toApiError } from "../api/errors.js";
import { INFERENCE_PATHS, parseRequest } from "../api/openai.js";
import type { EndpointStore } from "../datalayer/store.js";
import { EppError } from "../framework/errors.js";
import * as H from "../framework/headers.js";
import { ROLE_LABEL } from "../framework/labels.js";
import type { ResponseInfo } from "../framework/plugin.js";
import {
  DISAGG_DECISION,
  type DisaggDecision,
  type Endpoint,
  type InferenceRequest,
  type SchedulingResult,
} from "../framework/types.js";
import { logger } from "../log.js";
import type { EppMetrics, RequestLabels } from "../metrics/epp.js";
import { cleanClientHeaders, readBody, sendError, sendJson, upstreamResponseHeaders } from "./http-util.js";
import { decodeBody, runPrefill } from "./pd-coordinator.js";
import { UsageTracker } from "./usage.js";

const log = logger.child({ component: "router" });

/** What the router needs of the request-control layer (`src/requestcontrol/director.ts`). */
export interface RouterDirector {
  handleRequest(
    request: InferenceRequest,
    candidates: Endpoint[],
  ): Promise<{ result: SchedulingResult; targets: Endpoint[] }>;
  responseReceived(request: InferenceRequest, info: ResponseInfo): void;
  responseStreaming(request: InferenceRequest, info: ResponseInfo): void;
  responseComplete(request: InferenceRequest, info: ResponseInfo): void;
}

/** Builds the EPP's request object from the parsed HTTP request. */
export type RequestBuilder = (input: {
  requestId: string;
  path: string;
  body: Record<string, unknown>;
  headers: Record<string, string>;
  requestSizeBytes: number;
}) => InferenceRequest;

/** Router options. */
export interface RouterOptions {
  /** listen address (default 127.0.0.1) */
  host?: string;
  /** listen port; 0 = a free port */
  port: number;
  store: EndpointStore;
  director: RouterDirector;
  buildRequest: RequestBuilder;
  metrics: EppMetrics;
  /** pool name label of pool gauges (default `llmd`) */
  poolName?: string;
  /** request body limit, bytes (default 8 MiB) */
  maxBodyBytes?: number;
  /** max time to wait for upstream response headers, ms (default 600 000: long prefills) */
  upstreamHeadersTimeoutMs?: number;
  /** max idle time between upstream body chunks, ms (default 300 000) */
  upstreamBodyTimeoutMs?: number;
  /** connections per upstream endpoint (default 128) */
  upstreamConnections?: number;
  /** what `GET /llmd/config` shows: the resolved EndpointPickerConfig and a summary (for `llmd doctor`) */
  configView?: unknown;
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
  close(): Promise<void>;
}

/** Errors from the upstream connection that happen before any response byte (retryable). */
const CONNECT_ERRORS = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "EHOSTUNREACH",
  "ENOTFOUND",
  "UND_ERR_SOCKET",
  "UND_ERR_CONNECT_TIMEOUT",
]);

/** Starts the router. Resolves once it is listening. */
export async function startRouter(opts: RouterOptions): Promise<RunningRouter> {
  const pools = new Map<string, Pool>();
  const poolName = opts.poolName ?? "llmd";
  const maxBody = opts.maxBodyBytes ?? 8 * 1024 * 1024;
  const onRemoved = (ep: Endpoint) => {
    const p = pools.get(ep.metadata.hostPort);
    if (p) {
      pools.delete(ep.metadata.hostPort);
      p.close().catch(() => {});
    }
  };
  opts.store.on("removed", onRemoved);

  const poolFor = (ep: Endpoint): Pool => poolForHost(ep.metadata.hostPort);
  const poolForHost = (hostPort: string): Pool => {
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

  const updatePoolGauges = () => {
    const ready = opts.store.ready();
    const n = ready.length;
    opts.metrics.readyEndpoints.set(poolName, n);
    const avg = (f: (e: Endpoint) => number) => (n === 0 ? 0 : ready.reduce((s, e) => s + f(e), 0) / n);
    opts.metrics.averageKvCacheUtilization.set(
      poolName,
      avg((e) => e.metrics.kvCacheUsagePercent),
    );
    opts.metrics.averageQueueSize.set(
      poolName,
      avg((e) => e.metrics.waitingQueueSize),
    );
    opts.metrics.averageRunningRequests.set(
      poolName,
      avg((e) => e.metrics.runningRequestsSize),
    );
  };

  const endpointsView = () => ({
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
        ready: opts.store.ready().includes(e),
        models: [...e.models],
        metrics: e.metrics,
        metrics_age_ms: e.metrics.updateTime > 0 ? Date.now() - e.metrics.updateTime : null,
        consecutive_scrape_failures: h?.consecutiveFailures ?? 0,
        last_error: h?.lastError ?? null,
      };
    }),
  });

  async function handleInference(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const started = process.hrtime.bigint();
    const kind = INFERENCE_PATHS[path]!;
    const raw = await readBody(req, maxBody);
    const parsed = parseRequest(kind, raw);
    const { headers } = cleanClientHeaders(req.headers);
    const requestId = headers[H.REQUEST_ID] || randomUUID();
    headers[H.REQUEST_ID] = requestId;
    const ireq = opts.buildRequest({
      requestId,
      path,
      body: parsed.raw,
      headers,
      requestSizeBytes: raw.length,
    });
    const labels: RequestLabels = {
      modelName: ireq.incomingModel,
      targetModelName: ireq.targetModel,
      fairnessId: ireq.fairnessId,
      priority: ireq.objectives.priority,
    };
    opts.metrics.requestTotal.inc(labels);
    opts.metrics.requestSizeBytes.observe(labels, raw.length);
    const fail = (err: unknown, code: string) => {
      opts.metrics.requestErrorTotal.inc(labels, code);
      throw err;
    };

    const ready = opts.store.ready();
    if (ready.length === 0) {
      fail(
        new EppError("ServiceUnavailable", "no ready endpoints in the pool", "rejected-no-endpoints"),
        "ServiceUnavailable",
      );
    }
    const candidates = ready.filter((e) => e.models.has(ireq.targetModel));
    if (candidates.length === 0) fail(modelNotFound(ireq.targetModel), "NotFound");

    const { targets } = await opts.director.handleRequest(ireq, candidates).catch((e) => {
      fail(e, e instanceof EppError ? e.code : "Internal");
      throw e;
    });
    const decision = ireq.attributes.get(DISAGG_DECISION) as DisaggDecision | undefined;
    if (decision) {
      opts.metrics.disaggDecisionTotal.inc({ ...decision, modelName: ireq.targetModel });
      opts.metrics.pdDecisionTotal.inc(ireq.targetModel, decision.decisionType);
    }
    // Body: forwarded unchanged unless the target model was rewritten or P/D adds kv_transfer_params.
    const targetBody =
      ireq.targetModel !== ireq.incomingModel ? { ...parsed.raw, model: ireq.targetModel } : parsed.raw;
    let body: Buffer | string = targetBody === parsed.raw ? raw : JSON.stringify(targetBody);
    const prefiller = ireq.headers[H.PREFILLER_HOST_PORT];
    delete ireq.headers[H.PREFILLER_HOST_PORT];
    const upstreamHeaders: Record<string, string> = { ...ireq.headers, "content-type": "application/json" };

    opts.metrics.requestRunning.inc(labels);
    const abort = new AbortController();
    let clientGone = false;
    res.on("close", () => {
      if (!res.writableFinished) {
        clientGone = true;
        abort.abort();
      }
    });
    try {
      if (prefiller) {
        // P/D: the router is the coordinator (the sidecar's NIXL v2 flow, reference/epp.md §4.3).
        const pre = await runPrefill({
          dispatcher: poolForHost(prefiller.split(",")[0]!.trim()),
          path,
          body: targetBody,
          headers: upstreamHeaders,
          maxRetries: opts.prefillMaxRetries ?? 1,
          retryBackoffMs: opts.prefillRetryBackoffMs ?? 200,
          signal: abort.signal,
        });
        if (!pre.ok) {
          opts.metrics.requestErrorTotal.inc(labels, "ModelServerError");
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
      let upstream: Awaited<ReturnType<Pool["request"]>> | undefined;
      let served: Endpoint | undefined;
      let lastErr: unknown;
      for (const target of targets) {
        try {
          upstream = await poolFor(target).request({
            method: "POST",
            path,
            headers: upstreamHeaders,
            body,
            signal: abort.signal,
          });
          served = target;
          break;
        } catch (e) {
          lastErr = e;
          const code = (e as { code?: string }).code ?? "";
          if (clientGone || !CONNECT_ERRORS.has(code)) break;
          log.warn({ endpoint: target.metadata.id, code }, "upstream connect failed; trying the next target");
        }
      }
      if (!upstream || !served) {
        if (clientGone) return;
        const msg = lastErr instanceof Error ? lastErr.message : String(lastErr);
        fail(
          new ApiError(502, `upstream ${targets[0]?.metadata.hostPort ?? "?"} failed: ${msg}`),
          "ModelServerError",
        );
        return;
      }
      const streaming = String(upstream.headers["content-type"] ?? "").includes("text/event-stream");
      const info: ResponseInfo = { status: upstream.statusCode, endpoint: served, endOfStream: false };
      opts.director.responseReceived(ireq, info);
      if (upstream.statusCode !== 200) opts.metrics.requestErrorTotal.inc(labels, "ModelServerError");
      const outHeaders = upstreamResponseHeaders(upstream.headers);
      outHeaders[H.REQUEST_ID] = requestId;
      outHeaders[H.DESTINATION_ENDPOINT_SERVED] = served.metadata.hostPort;
      res.writeHead(upstream.statusCode, outHeaders);
      // SSE: headers out now; otherwise they go with the first body write (one syscall).
      if (streaming) res.flushHeaders();
      const tracker = new UsageTracker(streaming);
      let first = true;
      let last = 0n;
      let bytes = 0;
      try {
        for await (const chunk of upstream.body) {
          const now = process.hrtime.bigint();
          const buf = chunk as Buffer;
          bytes += buf.length;
          if (first) {
            first = false;
            const ttft = Number(now - started) / 1e9;
            opts.metrics.requestTtft.observe(labels, ttft);
            if (streaming) opts.metrics.requestStreamingTtft.observe(labels, ttft);
            opts.director.responseStreaming(ireq, info);
          } else if (streaming) {
            opts.metrics.requestStreamingItl.observe(labels, Number(now - last) / 1e9);
          }
          last = now;
          tracker.push(buf);
          if (!res.write(buf)) await once(res, "drain");
        }
      } catch (e) {
        if (clientGone) {
          info.terminationCause = "client-disconnect";
          opts.director.responseComplete(ireq, info);
          return;
        }
        // Failure after the response started: end the stream with a clear error event.
        log.warn({ endpoint: served.metadata.id, err: (e as Error).message }, "upstream failed mid-response");
        info.terminationCause = "upstream-error";
        opts.metrics.requestErrorTotal.inc(labels, "ModelServerError");
        if (streaming) {
          const ev = new ApiError(
            502,
            `upstream ${served.metadata.hostPort} failed mid-stream: ${(e as Error).message}`,
          );
          res.end(`data: ${JSON.stringify(ev.toBody())}\n\ndata: [DONE]\n\n`);
        } else {
          res.destroy();
        }
        opts.director.responseComplete(ireq, info);
        return;
      }
      res.end();
      const usage = tracker.usage();
      info.usage = usage;
      info.endOfStream = true;
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      opts.metrics.requestDuration.observe(labels, seconds);
      opts.metrics.responseSizeBytes.observe(labels, bytes);
      if (usage) {
        opts.metrics.requestInputTokens.observe(labels, usage.promptTokens);
        opts.metrics.requestOutputTokens.observe(labels, usage.completionTokens);
        opts.metrics.requestCachedTokens.observe(labels, usage.cachedTokens);
        if (usage.completionTokens > 0)
          opts.metrics.requestNtpot.observe(labels, seconds / usage.completionTokens);
      }
      opts.director.responseComplete(ireq, info);
    } finally {
      opts.metrics.requestRunning.dec(labels);
    }
  }

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = req.url ?? "/";
    const q = url.indexOf("?");
    const path = q < 0 ? url : url.slice(0, q);
    const method = req.method ?? "GET";
    if (INFERENCE_PATHS[path]) {
      if (method !== "POST") throw methodNotAllowed(method, path);
      return handleInference(req, res, path);
    }
    if (method !== "GET" && method !== "HEAD") {
      req.resume();
      throw pathNotFound(method, path);
    }
    switch (path) {
      case "/health": {
        const n = opts.store.ready().length;
        return sendJson(
          res,
          { status: n > 0 ? "ok" : "no ready endpoints", ready_endpoints: n },
          n > 0 ? 200 : 503,
        );
      }
      case "/metrics": {
        updatePoolGauges();
        const text = await opts.metrics.metricsText();
        res.writeHead(200, { "content-type": opts.metrics.registry.contentType });
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
      default:
        throw pathNotFound(method, path);
    }
  }

  const server = createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
    route(req, res).catch((err) => {
      const e = err instanceof EppError ? eppToApi(err) : toApiError(err);
      if (e.status >= 500 && !(err instanceof EppError))
        log.error({ err: (err as Error).message }, "request failed");
      sendError(res, e, e.status === 413 ? { connection: "close" } : {});
    });
  });
  server.on("clientError", (err, socket) => {
    if (socket.writable) socket.end("HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n");
    log.debug({ err: err.message }, "client error");
  });
  server.listen(opts.port, opts.host ?? "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://${opts.host ?? "127.0.0.1"}:${port}`,
    port,
    server,
    async close() {
      opts.store.off("removed", onRemoved);
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      await Promise.all([...pools.values()].map((p) => p.close().catch(() => {})));
    },
  };
}

/** Maps an EPP error to the HTTP error the client gets (reference/epp.md §1.6). */
export function eppToApi(e: EppError): ApiError {
  return new ApiError(e.status, e.message, {
    code: e.code,
    headers: e.dropReason ? { [H.REQUEST_DROPPED_REASON]: e.dropReason } : {},
  });
}
