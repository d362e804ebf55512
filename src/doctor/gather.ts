/**
 * Gathers the doctor's evidence from a running stack over HTTP: the router's
 * `/llmd/config`, `/llmd/endpoints` and `/metrics`, and each model server's `/metrics` and
 * `/llmd/kv/layout`, and the precise producers' feed health (`/llmd/kv-events`).
 */
import parsePrometheusTextFormat, { type PromFamily } from "parse-prometheus-text-format";
import type { Evidence, KvEventsEvidence, KvLayout, ServerEvidence } from "./checks.js";

const TIMEOUT_MS = 3000;

async function get(url: string): Promise<string | null> {
  try {
    const r = await fetch(url, { signal: AbortSignal.timeout(TIMEOUT_MS) });
    if (!r.ok) return null;
    return await r.text();
  } catch {
    return null;
  }
}

/** Σ of a counter/gauge family's sample values (optionally filtered by a label). */
export function sumValues(fams: PromFamily[], name: string, label?: [string, string]): number {
  const f = fams.find((x) => x.name === name);
  if (!f) return 0;
  let s = 0;
  for (const m of f.metrics) {
    if (label && m.labels?.[label[0]] !== label[1]) continue;
    s += Number(m.value ?? 0) || 0;
  }
  return s;
}

/**
 * Σ of a histogram's `_sum` and `_count` samples over its series, read from the exposition
 * text itself: parse-prometheus-text-format drops `_sum`/`_count` of labelled histograms (every
 * vLLM histogram has `model_name`/`engine` labels), which made every transfer and TTFT read 0.
 */
export function histogramTotals(text: string | null, name: string): { sum: number; count: number } {
  let sum = 0;
  let count = 0;
  for (const line of (text ?? "").split("\n")) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    const isSum = rest.startsWith("_sum{") || rest.startsWith("_sum ");
    const isCount = rest.startsWith("_count{") || rest.startsWith("_count ");
    if (!isSum && !isCount) continue;
    const v = Number(line.slice(line.lastIndexOf(" ") + 1));
    if (!Number.isFinite(v)) continue;
    if (isSum) sum += v;
    else count += v;
  }
  return { sum, count };
}

function parse(text: string | null): PromFamily[] {
  if (!text) return [];
  try {
    return parsePrometheusTextFormat(text);
  } catch {
    return [];
  }
}

interface EndpointView {
  id: string;
  url: string;
  role: string | null;
  ready: boolean;
}

/**
 * Reads everything the checks need.
 * @param routerUrl base URL of `llmd router`
 */
export async function gatherEvidence(routerUrl: string): Promise<Evidence> {
  const base = routerUrl.replace(/\/+$/, "");
  const [cfgText, epsText, metricsText, kvText] = await Promise.all([
    get(`${base}/llmd/config`),
    get(`${base}/llmd/endpoints`),
    get(`${base}/metrics`),
    get(`${base}/llmd/kv-events`),
  ]);
  let kvEvents: KvEventsEvidence | undefined;
  try {
    kvEvents = kvText ? (JSON.parse(kvText) as KvEventsEvidence) : undefined;
  } catch {
    kvEvents = undefined;
  }
  const cfg = cfgText ? (JSON.parse(cfgText) as { pd?: boolean; profileHandler?: { type: string } }) : {};
  const eps = epsText ? ((JSON.parse(epsText) as { endpoints: EndpointView[] }).endpoints ?? []) : [];
  const fams = parse(metricsText);
  const decisions: Record<string, number> = {};
  for (const m of fams.find((f) => f.name === "llm_d_epp_disagg_decision_total")?.metrics ?? []) {
    const t = m.labels?.decision_type ?? "unknown";
    decisions[t] = (decisions[t] ?? 0) + (Number(m.value) || 0);
  }
  const servers: ServerEvidence[] = await Promise.all(
    eps.map(async (ep) => {
      const [mt, lt] = await Promise.all([get(`${ep.url}/metrics`), get(`${ep.url}/llmd/kv/layout`)]);
      const sf = parse(mt);
      const ttft = histogramTotals(mt, "vllm:time_to_first_token_seconds");
      let layout: KvLayout | undefined;
      try {
        layout = lt ? (JSON.parse(lt) as KvLayout) : undefined;
      } catch {
        layout = undefined;
      }
      return {
        id: ep.id,
        url: ep.url,
        role: ep.role,
        ready: ep.ready,
        reachable: mt !== null,
        layout,
        ttftSum: ttft.sum,
        ttftCount: ttft.count,
        kvTransfers: histogramTotals(mt, "vllm:nixl_xfer_time_seconds").count,
        kvBytes: histogramTotals(mt, "vllm:nixl_bytes_transferred").sum,
        kvFailedTransfers:
          sumValues(sf, "vllm:nixl_num_failed_transfers_total") +
          sumValues(sf, "vllm:nixl_num_failed_transfers"),
        requests: sumValues(sf, "vllm:request_success_total"),
        prefixCacheHits:
          sumValues(sf, "vllm:prefix_cache_hits_total") + sumValues(sf, "vllm:prefix_cache_hits"),
      };
    }),
  );
  return {
    router: {
      url: base,
      reachable: epsText !== null,
      pdConfigured: cfg.pd === true,
      profileHandler: cfg.profileHandler?.type,
      decisions,
      requests: sumValues(fams, "llm_d_epp_request_total"),
      prefixHitRatio: histogramTotals(metricsText, "llm_d_epp_prefix_indexer_hit_ratio"),
    },
    servers,
    kvEvents,
  };
}
