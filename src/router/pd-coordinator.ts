/**
 * The P/D coordinator — one implementation of the NIXL v2 protocol shared by the router
 * (so `llmd up` needs no sidecars) and `llmd sidecar` (a drop-in for llm-d's pd-sidecar).
 *
 * Protocol (reference/engine.md §5.2–5.3, epp.md §4.3):
 * 1. prefill leg → `http://<x-prefiller-host-port><same path>`: the client's body with
 *    `kv_transfer_params = {do_remote_decode: true, do_remote_prefill: false, remote_engine_id:
 *    null, remote_block_ids: null, remote_host: null, remote_port: null}`, `stream: false`,
 *    `stream_options` removed, token limits (`max_tokens`, `max_completion_tokens`,
 *    `min_tokens`; Responses `max_output_tokens`; generate `sampling_params`) set to 1, the
 *    same `x-request-id` as the decode leg; the whole response is buffered; 502/503/504 are
 *    retried up to `maxRetries` with `retryBackoffMs` backoff; any other non-2xx is returned
 *    to the client as it is.
 * 2. decode leg → the decode server: the client's original body (its own `stream`,
 *    `stream_options`, token limits) plus `kv_transfer_params` = the object the prefill
 *    response returned, verbatim; streamed back unbuffered by the caller.
 */
import type { Dispatcher } from "undici";
import type { KvTransferParams } from "../api/openai.js";
import * as H from "../framework/headers.js";

/** The `kv_transfer_params` of a prefill request (reference/engine.md §5.2 (a)). */
export const PREFILL_KV_TRANSFER_PARAMS: Readonly<KvTransferParams> = Object.freeze({
  do_remote_decode: true,
  do_remote_prefill: false,
  remote_engine_id: null,
  remote_block_ids: null,
  remote_host: null,
  remote_port: null,
});

/**
 * Body of the prefill leg: a copy of the client's body with the NIXL v2 prefill changes.
 * @param body the client's parsed body (not modified)
 */
export function prefillBody(body: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const b: Record<string, unknown> = {
    ...body,
    kv_transfer_params: { ...PREFILL_KV_TRANSFER_PARAMS },
    stream: false,
  };
  delete b.stream_options;
  b.max_tokens = 1;
  if ("max_completion_tokens" in body) b.max_completion_tokens = 1;
  b.min_tokens = 1;
  if ("max_output_tokens" in body) b.max_output_tokens = 1;
  const sp = body.sampling_params;
  if (sp && typeof sp === "object") b.sampling_params = { ...(sp as object), max_tokens: 1, min_tokens: 1 };
  return b;
}

/**
 * Body of the decode leg: the client's original body plus the prefill's `kv_transfer_params`
 * verbatim.
 */
export function decodeBody(
  body: Readonly<Record<string, unknown>>,
  kv: KvTransferParams,
): Record<string, unknown> {
  return { ...body, kv_transfer_params: kv };
}

/** Outcome of the prefill leg. */
export type PrefillOutcome =
  | {
      ok: true;
      /** the prefill response's top-level `kv_transfer_params` (null when missing: warn, carry on) */
      kvTransferParams: KvTransferParams | null;
      /** `usage.prompt_tokens_details.cached_tokens` of the prefill response (0 when missing) */
      cachedTokens: number;
      /** ms the prefill leg took, retries included */
      durationMs: number;
      /** attempts made (1 = no retry) */
      attempts: number;
    }
  | {
      ok: false;
      /** status to return to the client (the prefill server's, or 502 when unreachable) */
      status: number;
      /** body to return (the prefill server's, or an OpenAI-shaped error) */
      body: string;
      contentType: string;
      attempts: number;
    };

/** Options of {@link runPrefill}. */
export interface PrefillOptions {
  /** dispatcher connected to the prefill server (e.g. an undici Pool) */
  dispatcher: Dispatcher;
  /** request path, e.g. `/v1/chat/completions` */
  path: string;
  /** `http(s)://host:port` of the prefill server when `dispatcher` is an Agent (not needed for a Pool) */
  origin?: string;
  /** the client's parsed body */
  body: Readonly<Record<string, unknown>>;
  /** headers to send (x-request-id included; internal routing headers must already be removed) */
  headers: Record<string, string>;
  /** retries on 502/503/504 (llm-d `--prefill-max-retries`, default 0) */
  maxRetries?: number;
  /** backoff between retries, ms (llm-d `--prefill-retry-backoff`, default 200), doubled each retry */
  retryBackoffMs?: number;
  signal?: AbortSignal;
}

const RETRYABLE = new Set([502, 503, 504]);

/** Runs the prefill leg (see file header). Never throws for upstream failures: they are outcomes. */
export async function runPrefill(o: PrefillOptions): Promise<PrefillOutcome> {
  const started = performance.now();
  const payload = JSON.stringify(prefillBody(o.body));
  const headers: Record<string, string> = { ...o.headers, "content-type": "application/json" };
  delete headers[H.PREFILLER_HOST_PORT];
  const maxRetries = o.maxRetries ?? 0;
  let backoff = o.retryBackoffMs ?? 200;
  for (let attempt = 1; ; attempt++) {
    let status: number;
    let text: string;
    let contentType = "application/json";
    try {
      const r = await o.dispatcher.request({
        // an Agent needs the origin on every request; a Pool ignores it
        ...(o.origin ? { origin: o.origin } : {}),
        method: "POST",
        path: o.path,
        headers,
        body: payload,
        signal: o.signal,
      });
      status = r.statusCode;
      text = await r.body.text();
      contentType = String(r.headers["content-type"] ?? contentType);
    } catch (e) {
      if (o.signal?.aborted) throw e;
      status = 502;
      text = JSON.stringify({
        error: {
          message: `prefill server unreachable: ${(e as Error).message}`,
          type: "BadGatewayError",
          param: null,
          code: 502,
        },
      });
    }
    if (status >= 200 && status < 300) {
      let kv: KvTransferParams | null = null;
      let cached = 0;
      try {
        const j = JSON.parse(text) as {
          kv_transfer_params?: KvTransferParams | null;
          usage?: { prompt_tokens_details?: { cached_tokens?: number } | null };
        };
        kv = j.kv_transfer_params ?? null;
        cached = j.usage?.prompt_tokens_details?.cached_tokens ?? 0;
      } catch {
        // non-JSON 2xx: no params; the decode leg then runs without a transfer
      }
      return {
        ok: true,
        kvTransferParams: kv,
        cachedTokens: cached,
        durationMs: performance.now() - started,
        attempts: attempt,
      };
    }
    if (!RETRYABLE.has(status) || attempt > maxRetries)
      return { ok: false, status, body: text, contentType, attempts: attempt };
    await new Promise((r) => setTimeout(r, backoff));
    backoff *= 2;
  }
}
