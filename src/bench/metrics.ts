/**
 * Fleet prefix-cache counters: which model servers to read, and the sum of
 * `vllm:prefix_cache_hits_total` / `vllm:prefix_cache_queries_total` (tokens;
 * reference/engine.md §2.2) over every series of each server's `/metrics`.
 */
import { createRequire } from "node:module";
import type { Dispatcher } from "undici";
import { request } from "undici";
import { VLLM_PREFIX_CACHE_HITS_TOTAL, VLLM_PREFIX_CACHE_QUERIES_TOTAL } from "../metrics/vllm-names.js";

interface PromFamily {
  name: string;
  metrics: { value?: string }[];
}
// The package ships no types and is CommonJS (`module.exports = fn`).
const parsePrometheus = createRequire(import.meta.url)("parse-prometheus-text-format") as (
  text: string,
) => PromFamily[];

/** Prefix-cache counters of one server (tokens), summed over its series (`engine`, `model_name`). */
export interface PrefixCounters {
  hits: number;
  queries: number;
}

/**
 * Sums every sample of one family in Prometheus text. Returns `undefined` when the family
 * has no sample. Throws when the text cannot be parsed.
 */
export function sumFamily(text: string, name: string): number | undefined {
  let found = false;
  let sum = 0;
  for (const fam of parsePrometheus(text)) {
    if (fam.name !== name) continue;
    for (const m of fam.metrics) {
      const v = Number(m.value);
      if (m.value !== undefined && Number.isFinite(v)) {
        sum += v;
        found = true;
      }
    }
  }
  return found ? sum : undefined;
}

/**
 * Extracts the prefix-cache counters from Prometheus text.
 * @throws Error when either counter is missing
 */
export function prefixCountersFromText(text: string): PrefixCounters {
  const hits = sumFamily(text, VLLM_PREFIX_CACHE_HITS_TOTAL);
  const queries = sumFamily(text, VLLM_PREFIX_CACHE_QUERIES_TOTAL);
  if (hits === undefined || queries === undefined) {
    throw new Error(
      `no ${hits === undefined ? VLLM_PREFIX_CACHE_HITS_TOTAL : VLLM_PREFIX_CACHE_QUERIES_TOTAL}`,
    );
  }
  return { hits, queries };
}

async function getText(url: string, dispatcher: Dispatcher, timeoutMs: number): Promise<string> {
  const res = await request(url, { method: "GET", dispatcher, signal: AbortSignal.timeout(timeoutMs) });
  const text = await res.body.text();
  if (res.statusCode < 200 || res.statusCode >= 300) throw new Error(`HTTP ${res.statusCode}`);
  return text;
}

/**
 * Reads one server's prefix-cache counters.
 * @param metricsUrl full URL of the server's `/metrics`
 * @throws Error on network errors, non-2xx, timeouts (`timeoutMs`, ms) or missing counters
 */
export async function readPrefixCounters(
  metricsUrl: string,
  dispatcher: Dispatcher,
  timeoutMs: number,
): Promise<PrefixCounters> {
  return prefixCountersFromText(await getText(metricsUrl, dispatcher, timeoutMs));
}

/** The servers whose counters make up the fleet, and where the list came from. */
export interface MetricsTargets {
  urls: string[];
  /** `flag` (--metrics-urls), `llmd/endpoints` (router discovery), `url` (the target itself
   * exposes vLLM counters) or `none`. */
  source: "flag" | "llmd/endpoints" | "url" | "none";
  /** Why there are no targets (when `source` is `none`). */
  note?: string;
}

/** Normalises a `--metrics-urls` entry: a URL with no path gets `/metrics`. */
export function normaliseMetricsUrl(u: string): string {
  const url = new URL(u);
  if (url.pathname === "/" || url.pathname === "") url.pathname = "/metrics";
  return url.toString();
}

/**
 * Decides which `/metrics` to read: the given list; else the router's `GET
 * {baseUrl}/llmd/endpoints` (`{"endpoints":[{"url",…}]}` → each `url` + `/metrics`); else
 * `{baseUrl}/metrics` when it already exposes the vLLM prefix counters (a bare vLLM server);
 * else none, with a note.
 */
export async function resolveMetricsTargets(
  baseUrl: string,
  given: readonly string[] | undefined,
  dispatcher: Dispatcher,
  timeoutMs: number,
): Promise<MetricsTargets> {
  if (given && given.length > 0) return { urls: given.map(normaliseMetricsUrl), source: "flag" };
  const base = baseUrl.replace(/\/+$/, "");
  let why: string;
  try {
    const body = JSON.parse(await getText(`${base}/llmd/endpoints`, dispatcher, timeoutMs)) as {
      endpoints?: { url?: unknown }[];
    };
    const urls = (Array.isArray(body.endpoints) ? body.endpoints : [])
      .map((e) => e?.url)
      .filter((u): u is string => typeof u === "string" && u.length > 0)
      .map((u) => `${u.replace(/\/+$/, "")}/metrics`);
    if (urls.length > 0) return { urls: [...new Set(urls)], source: "llmd/endpoints" };
    why = `${base}/llmd/endpoints lists no endpoint with a url`;
  } catch (e) {
    why = `${base}/llmd/endpoints unavailable (${(e as Error).message})`;
  }
  try {
    prefixCountersFromText(await getText(`${base}/metrics`, dispatcher, timeoutMs));
    return { urls: [`${base}/metrics`], source: "url" };
  } catch {
    // not a vLLM server either
  }
  return {
    urls: [],
    source: "none",
    note: `${why}, and ${base}/metrics has no vLLM prefix-cache counters; pass --metrics-urls`,
  };
}

/**
 * Reads every target; returns per-URL counters or the error message.
 */
export async function readAll(
  urls: readonly string[],
  dispatcher: Dispatcher,
  timeoutMs: number,
): Promise<Map<string, PrefixCounters | string>> {
  const out = new Map<string, PrefixCounters | string>();
  await Promise.all(
    urls.map(async (u) => {
      try {
        out.set(u, await readPrefixCounters(u, dispatcher, timeoutMs));
      } catch (e) {
        out.set(u, (e as Error).message || String(e));
      }
    }),
  );
  return out;
}

/** Fleet hit rate over a run. */
export interface FleetHitRate {
  /** Σ Δhits ÷ Σ Δqueries over all servers, fraction 0..1; `null` when not measurable. */
  rate: number | null;
  hitsDelta: number | null;
  queriesDelta: number | null;
  /** Why `rate` is null, when it is. */
  note?: string;
}

/**
 * Combines before/after readings: every server must have answered both times with
 * non-decreasing counters, and the fleet must have had queries; otherwise `rate` is null
 * and `note` says why.
 */
export function fleetHitRate(
  before: Map<string, PrefixCounters | string>,
  after: Map<string, PrefixCounters | string>,
): FleetHitRate {
  const problems: string[] = [];
  let dh = 0;
  let dq = 0;
  for (const [url, b] of before) {
    const a = after.get(url);
    if (typeof b === "string") problems.push(`${url} before the run: ${b}`);
    if (typeof a === "string" || a === undefined) problems.push(`${url} after the run: ${a ?? "not read"}`);
    if (typeof a !== "object" || typeof b !== "object") continue;
    if (a.hits < b.hits || a.queries < b.queries) {
      problems.push(`${url}: counters went down (server restarted?)`);
      continue;
    }
    dh += a.hits - b.hits;
    dq += a.queries - b.queries;
  }
  if (before.size === 0) return { rate: null, hitsDelta: null, queriesDelta: null, note: "no model servers" };
  if (problems.length > 0)
    return { rate: null, hitsDelta: null, queriesDelta: null, note: problems.join("; ") };
  if (dq === 0)
    return { rate: null, hitsDelta: dh, queriesDelta: dq, note: "no prefix-cache queries during the run" };
  return { rate: dh / dq, hitsDelta: dh, queriesDelta: dq };
}
