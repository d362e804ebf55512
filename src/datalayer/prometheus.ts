/**
 * Extraction of the EPP's endpoint metrics from a model server's Prometheus text
 * (`core-metrics-extractor` for engine type `vllm`; reference/epp.md §5.2, engine.md §2.1).
 *
 * Rules as llm-d's extractor: for ordinary gauges the first matching series wins (text
 * exposition has no timestamps); for `vllm:lora_requests_info` the series with the largest
 * value wins; a missing family is not an error. Only the families we read are handed to the
 * parser (a line filter first), so a scrape of a server with many histograms stays cheap.
 */
import parsePrometheusTextFormat, { type PromFamily } from "parse-prometheus-text-format";
import type { EndpointMetrics } from "../framework/types.js";
import {
  VLLM_CACHE_CONFIG_INFO,
  VLLM_KV_CACHE_USAGE_PERC,
  VLLM_LORA_REQUESTS_INFO,
  VLLM_NUM_REQUESTS_RUNNING,
  VLLM_NUM_REQUESTS_WAITING,
} from "../metrics/vllm-names.js";

const WANTED = [
  VLLM_NUM_REQUESTS_WAITING,
  VLLM_NUM_REQUESTS_RUNNING,
  VLLM_KV_CACHE_USAGE_PERC,
  VLLM_CACHE_CONFIG_INFO,
  VLLM_LORA_REQUESTS_INFO,
];

/**
 * Keeps only the sample, `# TYPE` and `# HELP` lines of the given families.
 * @param text Prometheus text exposition
 * @param families metric family names (exact)
 */
export function filterFamilies(text: string, families: readonly string[]): string {
  const out: string[] = [];
  for (const line of text.split("\n")) {
    if (line === "") continue;
    let name: string;
    if (line.startsWith("#")) {
      const parts = line.split(" ");
      if (parts[1] !== "TYPE" && parts[1] !== "HELP") continue;
      name = parts[2] ?? "";
    } else {
      const end = line.search(/[{ ]/);
      name = end < 0 ? line : line.slice(0, end);
    }
    if (families.includes(name)) out.push(line);
  }
  return out.join("\n") + "\n";
}

function firstValue(f: PromFamily | undefined): number | undefined {
  const v = f?.metrics[0]?.value;
  if (v === undefined) return undefined;
  const n = Number(v);
  return Number.isFinite(n) ? n : undefined;
}

const splitList = (s: string | undefined): string[] =>
  s
    ? s
        .split(",")
        .map((x) => x.trim())
        .filter((x) => x !== "")
    : [];

/**
 * Parses a vLLM `/metrics` text into {@link EndpointMetrics} fields. Fields whose family is
 * absent are left out of the result (the caller keeps its previous value or the default).
 * @throws Error when the text is not valid Prometheus exposition
 */
export function extractVllmMetrics(text: string): Partial<EndpointMetrics> {
  const families = parsePrometheusTextFormat(filterFamilies(text, WANTED));
  const byName = new Map(families.map((f) => [f.name, f]));
  const m: Partial<EndpointMetrics> = {};
  const waiting = firstValue(byName.get(VLLM_NUM_REQUESTS_WAITING));
  if (waiting !== undefined) m.waitingQueueSize = waiting;
  const running = firstValue(byName.get(VLLM_NUM_REQUESTS_RUNNING));
  if (running !== undefined) m.runningRequestsSize = running;
  const kv = firstValue(byName.get(VLLM_KV_CACHE_USAGE_PERC));
  if (kv !== undefined) m.kvCacheUsagePercent = kv;
  const info = byName.get(VLLM_CACHE_CONFIG_INFO)?.metrics[0]?.labels;
  if (info) {
    const bs = Number(info.block_size);
    const nb = Number(info.num_gpu_blocks);
    if (Number.isFinite(bs)) m.cacheBlockSize = bs;
    if (Number.isFinite(nb)) m.cacheNumBlocks = nb;
  }
  const lora = byName.get(VLLM_LORA_REQUESTS_INFO);
  if (lora && lora.metrics.length > 0) {
    let best = lora.metrics[0]!;
    for (const s of lora.metrics) if (Number(s.value) > Number(best.value)) best = s;
    m.activeModels = splitList(best.labels?.running_lora_adapters);
    m.waitingModels = splitList(best.labels?.waiting_lora_adapters);
    const max = Number(best.labels?.max_lora);
    if (Number.isFinite(max)) m.maxActiveModels = max;
  }
  return m;
}
