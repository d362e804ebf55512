/**
 * `runBench`: generates the workload, sends it (closed loop or Poisson), and measures.
 * Talks HTTP only, so it works against llmd's router, a bare vLLM, or any
 * OpenAI-compatible endpoint.
 */
import { setMaxListeners } from "node:events";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { Agent, request } from "undici";
import { ROUTER_PORT } from "../framework/ports.js";
import { type BenchApi, type BenchRequestResult, sendRequest } from "./client.js";
import { fleetHitRate, readAll, resolveMetricsTargets } from "./metrics.js";
import { pdSummary, readPdCounters } from "./pd.js";
import { oracleHitRate } from "./oracle.js";
import { createRng, poissonArrivalsMs } from "./prng.js";
import type { BenchReport, ErrorKindSummary } from "./report.js";
import { LatencyHistogram, round2 } from "./stats.js";
import {
  LONG_PROMPT_DEFAULTS,
  type LongPromptParams,
  SHARED_PREFIX_DEFAULTS,
  type SharedPrefixParams,
  simTokens,
  type Workload,
  WORKLOADS,
  type WorkloadName,
} from "./workload.js";

/** Options of {@link runBench}; every field has a default. */
export interface BenchOptions {
  /** Base URL of the OpenAI-compatible endpoint (a trailing `/v1` is dropped). Default `http://127.0.0.1:8080`. */
  url?: string;
  /** Model to request. Default: the first id of `GET {url}/v1/models`. */
  model?: string;
  /** Which API to call. Default `completions` (like llm-d's guides). */
  api?: BenchApi;
  /** Workload. Default `shared-prefix`. */
  workload?: WorkloadName;
  /** shared-prefix parameters (defaults: 16 groups × 8 prompts, 1024 + 64 tokens). */
  sharedPrefix?: Partial<SharedPrefixParams>;
  /** `long-prompt` parameters (defaults {@link LONG_PROMPT_DEFAULTS}) */
  longPrompt?: Partial<LongPromptParams>;
  /** Completion tokens per request (`max_tokens`, with `ignore_eos`). Default 32. */
  outputTokens?: number;
  /** Requests to send. Default: the workload's natural size (groups × prompts-per-group). */
  requests?: number;
  /** Poisson arrival rate, requests/s. Exclusive with `concurrency`. */
  rate?: number;
  /** Closed-loop concurrency. Default 8 when neither `rate` nor `concurrency` is given. */
  concurrency?: number;
  /** PRNG seed for prompts, order and arrivals. Default 1. */
  seed?: number;
  /** Stream responses (SSE). Default true. */
  stream?: boolean;
  /** Per-request timeout, ms. Default 300000. */
  timeoutMs?: number;
  /** KV block size for the oracle hit rate, tokens. Default 16. */
  blockSize?: number;
  /** Model servers' `/metrics` URLs. Default: discovered (see `resolveMetricsTargets`). */
  metricsUrls?: string[];
  /** Extra headers on every inference request (e.g. `{ authorization: "Bearer …" }`). */
  headers?: Record<string, string>;
  /**
   * Stops the run early (e.g. on Ctrl-C): nothing more is sent, in-flight requests end as
   * `aborted` errors, and the report covers the requests sent so far (`stopped_early`).
   */
  signal?: AbortSignal;
}

/** Callbacks during a run. */
export interface BenchHooks {
  /** Called once with `done = 0` before the first send, then after each request ends (completed or error). */
  onProgress?(done: number, total: number): void;
}

/** Default base URL (the router's default port). */
export const DEFAULT_BENCH_URL = `http://127.0.0.1:${ROUTER_PORT}`;
/** Default per-request timeout, ms. */
export const DEFAULT_TIMEOUT_MS = 300_000;
const METRICS_TIMEOUT_MS = 10_000;

function positiveInt(name: string, v: number | undefined, dflt: number): number {
  const x = v ?? dflt;
  if (!Number.isInteger(x) || x < 1) throw new RangeError(`${name} must be a positive integer, got ${x}`);
  return x;
}

/**
 * Fetches the first model id from `GET {baseUrl}/v1/models` (with `headers`, e.g. an API key;
 * `timeoutMs` in ms).
 * @throws Error when the endpoint fails or lists no model
 */
export async function firstModelId(
  baseUrl: string,
  dispatcher: Agent,
  timeoutMs: number,
  headers?: Record<string, string>,
): Promise<string> {
  const url = `${baseUrl.replace(/\/+$/, "")}/v1/models`;
  let body: unknown;
  try {
    const res = await request(url, {
      method: "GET",
      dispatcher,
      headers,
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.body.text();
    if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode}: ${text.slice(0, 200)}`);
    body = JSON.parse(text);
  } catch (e) {
    throw new Error(`cannot list models at ${url} (${(e as Error).message}); pass --model`);
  }
  const data = (body as { data?: { id?: unknown }[] })?.data;
  const id = Array.isArray(data) ? data[0]?.id : undefined;
  if (typeof id !== "string" || id === "") throw new Error(`${url} lists no model; pass --model`);
  return id;
}

/** Builds the workload of the given options (exported for tests and dry runs). Throws `RangeError` for an unknown workload or invalid parameters. */
export function buildWorkload(opts: BenchOptions): Workload {
  const name = opts.workload ?? "shared-prefix";
  const common = {
    requests: opts.requests,
    outputTokens: positiveInt("output-tokens", opts.outputTokens, 32),
    seed: opts.seed ?? 1,
  };
  switch (name) {
    case "shared-prefix":
      return WORKLOADS[name](common, { ...SHARED_PREFIX_DEFAULTS, ...opts.sharedPrefix });
    case "long-prompt":
      return WORKLOADS[name](common, { ...LONG_PROMPT_DEFAULTS, ...opts.longPrompt });
    default:
      throw new RangeError(`unknown workload ${String(name)}; known: ${Object.keys(WORKLOADS).join(", ")}`);
  }
}

/**
 * Runs a benchmark and returns its report. Every request ends completed or error
 * (`completed + errors = requests`); a request that never answers is an error after
 * `timeoutMs`.
 * @throws RangeError for invalid options (both `rate` and `concurrency`, non-positive
 *   counts); Error when no model is given and `/v1/models` cannot be read
 */
export async function runBench(opts: BenchOptions, hooks?: BenchHooks): Promise<BenchReport> {
  if (opts.rate !== undefined && opts.concurrency !== undefined) {
    throw new RangeError("give either rate (Poisson, requests/s) or concurrency (closed loop), not both");
  }
  // accept an OpenAI-client style base URL ending in /v1 too
  const url = (opts.url ?? DEFAULT_BENCH_URL).replace(/\/+$/, "").replace(/\/v1$/, "");
  const api: BenchApi = opts.api ?? "completions";
  if (api !== "completions" && api !== "chat")
    throw new RangeError(`api must be completions or chat, got ${api}`);
  const stream = opts.stream ?? true;
  const seed = opts.seed ?? 1;
  const timeoutMs = positiveInt("timeout", opts.timeoutMs, DEFAULT_TIMEOUT_MS);
  const blockSize = positiveInt("block-size", opts.blockSize, 16);
  const rate = opts.rate;
  if (rate !== undefined && !(rate > 0 && Number.isFinite(rate))) {
    throw new RangeError(`rate must be a positive number of requests/s, got ${rate}`);
  }
  const concurrency = rate === undefined ? positiveInt("concurrency", opts.concurrency, 8) : undefined;
  const workload = buildWorkload(opts);
  const reqs = workload.requests;

  const agent = new Agent({
    connections: concurrency ?? null,
    headersTimeout: 0,
    bodyTimeout: 0,
    keepAliveTimeout: 30_000,
  });
  const side = new Agent({ connections: 8 });
  const ttft = new LatencyHistogram();
  const itl = new LatencyHistogram();
  const e2e = new LatencyHistogram();
  try {
    const model =
      opts.model ?? (await firstModelId(url, side, Math.min(timeoutMs, METRICS_TIMEOUT_MS), opts.headers));
    const targets = await resolveMetricsTargets(url, opts.metricsUrls, side, METRICS_TIMEOUT_MS);
    const before = await readAll(targets.urls, side, METRICS_TIMEOUT_MS);
    const pdBefore = await readPdCounters(`${url}/metrics`, targets.urls, side, METRICS_TIMEOUT_MS);

    const signal = opts.signal;
    // every request in flight listens for the caller's abort: more than 10 is normal here
    if (signal) setMaxListeners(0, signal);
    const results: BenchRequestResult[] = [];
    let done = 0;
    let sent = 0;
    const one = async (i: number): Promise<void> => {
      const r = reqs[i]!;
      sent++;
      results[i] = await sendRequest(
        {
          baseUrl: url,
          api,
          model,
          prompt: r.prompt,
          maxTokens: r.maxTokens,
          stream,
          timeoutMs,
          headers: opts.headers,
          signal,
        },
        agent,
      );
      done++;
      hooks?.onProgress?.(done, reqs.length);
    };

    hooks?.onProgress?.(0, reqs.length);
    const t0 = performance.now();
    if (rate !== undefined) {
      const arrivals = poissonArrivalsMs(reqs.length, rate, createRng(seed, 4));
      const inFlight: Promise<void>[] = [];
      for (let i = 0; i < reqs.length && !signal?.aborted; i++) {
        const wait = t0 + arrivals[i]! - performance.now();
        if (wait > 0) {
          try {
            await sleep(wait, undefined, { signal });
          } catch {
            break; // aborted
          }
        }
        inFlight.push(one(i));
      }
      await Promise.all(inFlight);
    } else {
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < reqs.length && !signal?.aborted) await one(next++);
      };
      await Promise.all(Array.from({ length: Math.min(concurrency!, reqs.length) }, worker));
    }
    const wallMs = performance.now() - t0;
    const stoppedEarly = sent < reqs.length;
    const oracle = oracleHitRate(
      (function* () {
        for (let i = 0; i < sent; i++) yield simTokens(reqs[i]!.prompt);
      })(),
      blockSize,
    );

    const after = await readAll(targets.urls, side, METRICS_TIMEOUT_MS);
    const pdAfter = await readPdCounters(`${url}/metrics`, targets.urls, side, METRICS_TIMEOUT_MS);
    const fleet =
      targets.source === "none"
        ? { rate: null, hitsDelta: null, queriesDelta: null, note: targets.note ?? "no model servers" }
        : fleetHitRate(before, after);

    let completed = 0;
    let outputTokens = 0;
    let usageReported = 0;
    const errorKinds: Record<string, ErrorKindSummary> = {};
    // requests are sent in index order, so results 0..sent-1 are all present
    for (let i = 0; i < sent; i++) {
      const r = results[i]!;
      if (r.ok) {
        completed++;
        outputTokens += r.outputTokens;
        if (r.usageReported) usageReported++;
        e2e.record(r.e2eMs);
        if (r.ttftMs !== undefined) ttft.record(r.ttftMs);
        for (const g of r.itlMs) itl.record(g);
      } else {
        const kind = r.errorKind ?? "error";
        const k = errorKinds[kind] ?? { count: 0, example: r.errorMessage ?? "" };
        k.count++;
        errorKinds[kind] = k;
      }
    }
    const wallS = wallMs / 1000;
    return {
      requests: sent,
      completed,
      errors: sent - completed,
      stopped_early: stoppedEarly,
      error_kinds: errorKinds,
      ttft_ms: ttft.percentiles(),
      itl_ms: itl.percentiles(),
      e2e_ms: e2e.percentiles(),
      output_tokens_per_s: wallS > 0 ? round2(outputTokens / wallS) : 0,
      request_throughput: wallS > 0 ? Math.round((completed / wallS) * 1000) / 1000 : 0,
      prefix_cache_hit_rate: fleet.rate,
      prefix_cache_note: fleet.note ?? null,
      prefix_cache_hits_delta: fleet.hitsDelta,
      prefix_cache_queries_delta: fleet.queriesDelta,
      pd: pdSummary(pdBefore, pdAfter),
      oracle_hit_rate: oracle.hitRate,
      duration_s: round2(wallS),
      total_prompt_tokens: oracle.promptTokens,
      total_output_tokens: outputTokens,
      usage_reported: usageReported,
      itl_samples: itl.count,
      config: {
        url,
        model,
        api,
        workload: workload.name,
        workload_params: { ...workload.params },
        requests: reqs.length,
        rate: rate ?? null,
        concurrency: concurrency ?? null,
        seed,
        stream,
        timeout_ms: timeoutMs,
        block_size: blockSize,
        metrics_urls: targets.urls,
        metrics_source: targets.source,
      },
    };
  } finally {
    ttft.close();
    itl.close();
    e2e.close();
    await Promise.all([agent.destroy(), side.destroy()]);
  }
}
