/**
 * `llmd sidecar` — a drop-in for llm-d's P/D sidecar (`pd-sidecar`), in front of a decode
 * model server (reference/epp.md §4.3, engine.md §5.3).
 *
 * On the inference paths (`/v1/chat/completions`, `/v1/completions`, `/v1/responses`,
 * `/v1/messages`, `/inference/v1/generate`): read and delete `x-prefiller-host-port` (a comma
 * list: the first entry, or a random one with prefiller sampling); none → plain proxy to the
 * local decode server; with SSRF protection on, a prefill host outside the allowed set → 403;
 * otherwise the shared P/D coordinator runs the NIXL v2 prefill leg and the decode leg against
 * the local server, streamed back unbuffered. Every other path is proxied to the local server
 * as it is; `GET /health` answers for the sidecar itself.
 */
import { randomUUID } from "node:crypto";
import { once } from "node:events";
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { Agent, Pool } from "undici";
import { ApiError } from "../api/errors.js";
import { parseJsonObject } from "../api/openai.js";
import * as H from "../framework/headers.js";
import { logger } from "../log.js";
import {
  cleanClientHeaders,
  readBody,
  sendError,
  sendJson,
  upstreamResponseHeaders,
} from "../router/http-util.js";
import { decodeBody, runPrefill } from "../router/pd-coordinator.js";
import type { TlsMaterial } from "../router/tls.js";

const log = logger.child({ component: "sidecar" });

/** Paths the sidecar coordinates (reference/epp.md §4.3). */
export const SIDECAR_PD_PATHS: ReadonlySet<string> = new Set([
  "/v1/chat/completions",
  "/v1/completions",
  "/v1/responses",
  "/v1/messages",
  "/inference/v1/generate",
]);

/** Decides whether a prefill host is allowed (SSRF protection). */
export interface PrefillAllowList {
  /** true when `host` (an IP or name, no port) may be a prefill target */
  allows(host: string): boolean;
}

/** Sidecar options. */
export interface SidecarOptions {
  host?: string;
  /** listen port (llm-d default 8000) */
  port: number;
  /** base URL of the local decode model server, e.g. `http://127.0.0.1:8200` */
  modelServerUrl: string;
  /** `nixlv2` only */
  kvConnector?: string;
  /** retries of the prefill leg on 502/503/504 (default 0) */
  prefillMaxRetries?: number;
  /** backoff before the first retry, ms (default 200) */
  prefillRetryBackoffMs?: number;
  /** pick a random entry of a comma-separated prefiller list instead of the first */
  enablePrefillerSampling?: boolean;
  /** SSRF protection: only hosts this list allows are prefill targets; undefined = off */
  allowList?: PrefillAllowList;
  /** serve HTTPS with this material; undefined = plain HTTP */
  tls?: TlsMaterial;
  /** use HTTPS towards prefill servers */
  prefillerTls?: boolean;
  /** use HTTPS towards the local decode server */
  decoderTls?: boolean;
  /** skip certificate verification of upstreams */
  tlsInsecureSkipVerify?: boolean;
  /** request body limit, bytes (default 8 MiB) */
  maxBodyBytes?: number;
}

/** A running sidecar. */
export interface RunningSidecar {
  url: string;
  port: number;
  server: Server;
  /** counters for tests and `llmd doctor` */
  stats: { pdRequests: number; plainRequests: number; refused: number; prefillFailures: number };
  close(): Promise<void>;
}

/** Starts the sidecar. */
export async function startSidecar(o: SidecarOptions): Promise<RunningSidecar> {
  if ((o.kvConnector ?? "nixlv2") !== "nixlv2") {
    throw new Error(`--kv-connector ${o.kvConnector}: only nixlv2 is implemented`);
  }
  const connect = { rejectUnauthorized: !o.tlsInsecureSkipVerify };
  const decode = new Pool(o.modelServerUrl, {
    connections: 128,
    connect,
    headersTimeout: 600_000,
    bodyTimeout: 300_000,
  });
  const prefillAgent = new Agent({ connections: 64, connect, headersTimeout: 600_000, bodyTimeout: 300_000 });
  const maxBody = o.maxBodyBytes ?? 8 * 1024 * 1024;
  const stats = { pdRequests: 0, plainRequests: 0, refused: 0, prefillFailures: 0 };

  async function proxy(
    req: IncomingMessage,
    res: ServerResponse,
    path: string,
    body: Buffer | string | null,
    headers: Record<string, string>,
  ) {
    const abort = new AbortController();
    res.on("close", () => {
      if (!res.writableFinished) abort.abort();
    });
    const up = await decode.request({
      method: (req.method ?? "GET") as "GET",
      path,
      headers,
      body: body ?? undefined,
      signal: abort.signal,
    });
    res.writeHead(up.statusCode, upstreamResponseHeaders(up.headers));
    res.flushHeaders();
    try {
      for await (const chunk of up.body) {
        if (!res.write(chunk)) await once(res, "drain");
      }
      res.end();
    } catch (e) {
      if (!abort.signal.aborted) log.warn({ err: (e as Error).message }, "decode server failed mid-response");
      res.destroy();
    }
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = req.url ?? "/";
    const q = url.indexOf("?");
    const path = q < 0 ? url : url.slice(0, q);
    if (path === "/health" && req.method === "GET") return sendJson(res, { status: "ok" });
    const raw = req.method === "GET" || req.method === "HEAD" ? null : await readBody(req, maxBody);
    const prefillerHeader =
      (req.headers[H.PREFILLER_HOST_PORT] as string | undefined) ??
      (req.headers[H.PREFILLER_URL] as string | undefined);
    const { headers } = cleanClientHeaders(req.headers);
    if (!SIDECAR_PD_PATHS.has(path) || req.method !== "POST" || !prefillerHeader) {
      stats.plainRequests++;
      return proxy(req, res, url, raw, headers);
    }
    const list = prefillerHeader
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean);
    const target = o.enablePrefillerSampling ? list[Math.floor(Math.random() * list.length)]! : list[0]!;
    const host = target.startsWith("[") ? target.slice(1, target.indexOf("]")) : target.split(":")[0]!;
    if (o.allowList && !o.allowList.allows(host)) {
      stats.refused++;
      log.warn({ target }, "prefill target refused by SSRF protection");
      throw new ApiError(403, `prefill target ${target} is not in the allowed set`, { code: "forbidden" });
    }
    const body = parseJsonObject(raw ?? "");
    headers[H.REQUEST_ID] = headers[H.REQUEST_ID] || randomUUID();
    stats.pdRequests++;
    const pre = await runPrefill({
      dispatcher: prefillAgent,
      origin: `${o.prefillerTls ? "https" : "http"}://${target}`,
      path,
      body,
      headers,
      maxRetries: o.prefillMaxRetries ?? 0,
      retryBackoffMs: o.prefillRetryBackoffMs ?? 200,
    }).catch((e) => {
      throw new ApiError(502, `prefill failed: ${(e as Error).message}`);
    });
    if (!pre.ok) {
      stats.prefillFailures++;
      res.writeHead(pre.status, { "content-type": pre.contentType });
      res.end(pre.body);
      return;
    }
    if (!pre.kvTransferParams)
      log.warn({ target }, "prefill response had no kv_transfer_params; decoding without a transfer");
    const dbody = pre.kvTransferParams ? decodeBody(body, pre.kvTransferParams) : body;
    return proxy(req, res, url, JSON.stringify(dbody), { ...headers, "content-type": "application/json" });
  }

  const listener = (req: IncomingMessage, res: ServerResponse) => {
    handle(req, res).catch((e) => sendError(res, e));
  };
  const server = o.tls
    ? createHttpsServer({ key: o.tls.key, cert: o.tls.cert }, listener)
    : createHttpServer(listener);
  server.listen(o.port, o.host ?? "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as AddressInfo).port;
  return {
    url: `${o.tls ? "https" : "http"}://${o.host ?? "127.0.0.1"}:${port}`,
    port,
    server,
    stats,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      await decode.close();
      await prefillAgent.close();
    },
  };
}
