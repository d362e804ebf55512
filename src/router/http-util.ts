/**
 * Small HTTP helpers shared by the router and the sidecar: bounded body reading, header
 * cleaning, OpenAI-shaped error responses.
 */
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from "node:http";
import { ApiError, bodyTooLarge, toApiError } from "../api/errors.js";
import { INTERNAL_HEADERS } from "../framework/headers.js";

/** Hop-by-hop headers (RFC 9110 §7.6.1) plus those the proxy recomputes. */
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "host",
  "content-length",
]);

const INTERNAL = new Set(INTERNAL_HEADERS);

/**
 * Reads a request body up to `limitBytes`. A declared `content-length` over the limit is
 * refused before reading; a body that grows past the limit is refused as soon as it does,
 * without buffering the rest.
 * @throws ApiError 413 over the limit; 400 when the client aborts mid-body
 */
export function readBody(req: IncomingMessage, limitBytes: number): Promise<Buffer> {
  const declared = Number(req.headers["content-length"] ?? Number.NaN);
  if (Number.isFinite(declared) && declared > limitBytes) {
    req.resume();
    return Promise.reject(bodyTooLarge(limitBytes));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const onData = (c: Buffer) => {
      size += c.length;
      if (size > limitBytes) {
        done = true;
        req.off("data", onData);
        req.resume();
        reject(bodyTooLarge(limitBytes));
        return;
      }
      chunks.push(c);
    };
    req.on("data", onData);
    req.on("end", () => {
      if (!done) resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks));
    });
    req.on("aborted", () => {
      if (!done) reject(new ApiError(400, "client aborted the request body"));
    });
    req.on("error", (e) => {
      if (!done) reject(new ApiError(400, `error reading request body: ${e.message}`));
    });
  });
}

/**
 * Lower-cased, single-valued copy of the request headers without hop-by-hop headers and
 * without the internal routing headers a client must not set
 * ({@link INTERNAL_HEADERS}; reference/epp.md §1.4).
 * @returns the clean headers and the names of internal headers that were removed
 */
export function cleanClientHeaders(h: IncomingHttpHeaders): {
  headers: Record<string, string>;
  stripped: string[];
} {
  const headers: Record<string, string> = {};
  const stripped: string[] = [];
  for (const k in h) {
    const v = h[k];
    if (v === undefined) continue;
    const name = k.toLowerCase();
    if (HOP_BY_HOP.has(name)) continue;
    if (INTERNAL.has(name) || name.startsWith("x-gateway-destination-endpoint")) {
      stripped.push(name);
      continue;
    }
    headers[name] = Array.isArray(v) ? v.join(", ") : v;
  }
  return { headers, stripped };
}

/** Response headers from an upstream worth passing to the client (hop-by-hop removed). */
export function upstreamResponseHeaders(
  h: Record<string, string | string[] | undefined>,
): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const k in h) {
    const v = h[k];
    if (v === undefined || HOP_BY_HOP.has(k.toLowerCase())) continue;
    out[k] = v;
  }
  return out;
}

/** Writes an error in the OpenAI shape (status, extra headers) unless headers were already sent. */
export function sendError(
  res: ServerResponse,
  err: unknown,
  extraHeaders: Record<string, string> = {},
): void {
  const e = toApiError(err);
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify(e.toBody());
  res.writeHead(e.status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(body),
    ...e.headers,
    ...extraHeaders,
  });
  res.end(body);
}

/** Writes a JSON body with status 200 (or the given status). */
export function sendJson(
  res: ServerResponse,
  value: unknown,
  status = 200,
  headers: Record<string, string> = {},
): void {
  const body = JSON.stringify(value);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(body),
    ...headers,
  });
  res.end(body);
}
