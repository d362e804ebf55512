/**
 * P/D figures of a bench run: Δ `llm_d_epp_disagg_decision_total{decision_type}` from the
 * router's `/metrics` (reference/epp.md §7) and Δ `_sum`/`_count` of the decode servers'
 * `vllm:nixl_xfer_time_seconds` (reference/engine.md §2.5), read from the Prometheus text.
 */
import type { Dispatcher } from "undici";
import { request } from "undici";

/** Decision counter of the EPP (label `decision_type`: `prefill-decode`, `decode-only`, …). */
export const DISAGG_DECISION_TOTAL = "llm_d_epp_disagg_decision_total";
/** Transfer-time histogram of the pulling (decode) servers, seconds. */
export const NIXL_XFER_TIME = "vllm:nixl_xfer_time_seconds";

/** One reading: the router's decisions by type and the servers' transfer totals. */
export interface PdCounters {
  /** decisions by `decision_type`; null when the router's /metrics was not readable */
  decisions: Record<string, number> | null;
  /** Σ `vllm:nixl_xfer_time_seconds_sum` over servers, seconds */
  xferSumS: number;
  /** Σ `vllm:nixl_xfer_time_seconds_count` over servers */
  xferCount: number;
}

/** The report's `pd` object. */
export interface BenchPd {
  /** Δ prefill-decode decisions */
  prefill_decode: number;
  /** Δ decode-only decisions */
  decode_only: number;
  /** Δ KV transfers pulled by the servers */
  transfers: number;
  /** Δsum / Δcount of the transfer time, ms (2 decimals); null without transfers */
  mean_transfer_ms: number | null;
}

/** Σ of the samples of counter `name` by the value of `label` (lines `name{…label="v"…} x`). */
export function countersByLabel(text: string, name: string, label: string): Record<string, number> {
  const out: Record<string, number> = {};
  const re = new RegExp(`${label}="([^"]*)"`);
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`)) continue;
    const m = re.exec(line);
    const v = Number(line.slice(line.lastIndexOf(" ") + 1));
    if (!m || !Number.isFinite(v)) continue;
    out[m[1]!] = (out[m[1]!] ?? 0) + v;
  }
  return out;
}

/** Σ of a histogram's `_sum` and `_count` samples over its series. */
export function histogramSumCount(text: string, name: string): { sum: number; count: number } {
  let sum = 0;
  let count = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    const v = Number(line.slice(line.lastIndexOf(" ") + 1));
    if (!Number.isFinite(v)) continue;
    if (rest.startsWith("_sum{") || rest.startsWith("_sum ")) sum += v;
    else if (rest.startsWith("_count{") || rest.startsWith("_count ")) count += v;
  }
  return { sum, count };
}

async function text(url: string, dispatcher: Dispatcher, timeoutMs: number): Promise<string | null> {
  try {
    const r = await request(url, { dispatcher, signal: AbortSignal.timeout(timeoutMs) });
    const t = await r.body.text();
    return r.statusCode === 200 ? t : null;
  } catch {
    return null;
  }
}

/**
 * Reads the counters: `routerMetricsUrl` (the bench target's `/metrics`) and each model
 * server's `/metrics` (unreadable servers count 0).
 */
export async function readPdCounters(
  routerMetricsUrl: string,
  serverMetricsUrls: readonly string[],
  dispatcher: Dispatcher,
  timeoutMs: number,
): Promise<PdCounters> {
  const [rt, ...st] = await Promise.all([
    text(routerMetricsUrl, dispatcher, timeoutMs),
    ...serverMetricsUrls.map((u) => text(u, dispatcher, timeoutMs)),
  ]);
  let xferSumS = 0;
  let xferCount = 0;
  for (const t of st) {
    if (!t) continue;
    const h = histogramSumCount(t, NIXL_XFER_TIME);
    xferSumS += h.sum;
    xferCount += h.count;
  }
  return {
    decisions: rt === null ? null : countersByLabel(rt, DISAGG_DECISION_TOTAL, "decision_type"),
    xferSumS,
    xferCount,
  };
}

/**
 * The run's P/D figures from two readings; null when nothing P/D happened (no decision and no
 * transfer: an aggregated stack or a target that is not an llm-d router).
 */
export function pdSummary(before: PdCounters, after: PdCounters): BenchPd | null {
  const d = (k: string) => Math.max(0, (after.decisions?.[k] ?? 0) - (before.decisions?.[k] ?? 0));
  const pd = d("prefill-decode");
  const decodeOnly = d("decode-only");
  const transfers = Math.max(0, after.xferCount - before.xferCount);
  if (pd + decodeOnly + transfers === 0) return null;
  const sumMs = (after.xferSumS - before.xferSumS) * 1000;
  return {
    prefill_decode: pd,
    decode_only: decodeOnly,
    transfers,
    mean_transfer_ms: transfers > 0 ? Math.round((sumMs / transfers) * 100) / 100 : null,
  };
}
