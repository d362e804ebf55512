/**
 * The bench report: the JSON written by `--json FILE` (snake_case, as inference-perf-style
 * tools write it) and its human-readable table.
 */
import type { BenchPd } from "./pd.js";
import type { Percentiles } from "./stats.js";

/** One kind of error: how many, and the first message seen. */
export interface ErrorKindSummary {
  count: number;
  example: string;
}

/** The resolved run configuration, as reported. */
export interface BenchConfig {
  url: string;
  model: string;
  api: "completions" | "chat";
  workload: string;
  /** Workload parameters (inference-perf names for shared-prefix). */
  workload_params: Record<string, unknown>;
  /** The workload's planned size (the report's `requests` counts what was sent). */
  requests: number;
  /** Poisson rate in requests/s, or null for a closed loop. */
  rate: number | null;
  /** Closed-loop concurrency, or null for a Poisson run. */
  concurrency: number | null;
  seed: number;
  stream: boolean;
  /** Per-request timeout, ms. */
  timeout_ms: number;
  /** KV block size used by the oracle, tokens. */
  block_size: number;
  /** The `/metrics` URLs read for the fleet hit rate. */
  metrics_urls: string[];
  /** Where `metrics_urls` came from: `flag`, `llmd/endpoints`, `url` or `none`. */
  metrics_source: string;
}

/**
 * Result of a run. Latency percentiles in ms (2 decimals) over **completed** requests
 * (TTFT and ITL only for streams); `completed + errors = requests` always.
 */
export interface BenchReport {
  /** Requests sent (= the workload's size unless the run was stopped early). */
  requests: number;
  completed: number;
  errors: number;
  /** True when the run was interrupted before every request of the workload was sent. */
  stopped_early: boolean;
  /** Errors by kind (`http_500`, `timeout`, `stream_error`, `network:ECONNREFUSED`, …). */
  error_kinds: Record<string, ErrorKindSummary>;
  ttft_ms: Percentiles;
  itl_ms: Percentiles;
  e2e_ms: Percentiles;
  /** Σ completion tokens of completed requests ÷ wall time of the run, tokens/s. */
  output_tokens_per_s: number;
  /** Completed requests ÷ wall time of the run, requests/s. */
  request_throughput: number;
  /** Fleet Δhits ÷ Δqueries of the vLLM prefix-cache counters, fraction 0..1, or null. */
  prefix_cache_hit_rate: number | null;
  /** Why `prefix_cache_hit_rate` is null, when it is. */
  prefix_cache_note: string | null;
  /** Fleet Δ`vllm:prefix_cache_hits_total`, tokens (null when not measurable). */
  prefix_cache_hits_delta: number | null;
  /** Fleet Δ`vllm:prefix_cache_queries_total`, tokens (null when not measurable). */
  prefix_cache_queries_delta: number | null;
  /**
   * P/D during the run: Δ router decisions by type and Δ KV transfers of the servers with their
   * mean time (`pd.ts`); null when no decision and no transfer happened.
   */
  pd: BenchPd | null;
  /** Best hit rate any router could reach with an unlimited cache, over the requests sent, fraction 0..1. */
  oracle_hit_rate: number;
  /** Wall time from the first send to the last answer, s. */
  duration_s: number;
  /** Σ prompt tokens of all requests (sim tokenizer), tokens. */
  total_prompt_tokens: number;
  /** Σ completion tokens of completed requests, tokens. */
  total_output_tokens: number;
  /** Completed requests whose token count came from `usage` (others: chunks or words). */
  usage_reported: number;
  /** Number of ITL samples (Σ over completed streams of content chunks − 1). */
  itl_samples: number;
  config: BenchConfig;
}

const fmt = (v: number | null, digits = 2): string => (v === null ? "-" : v.toFixed(digits));
const pct = (v: number | null): string => (v === null ? "n/a" : `${(v * 100).toFixed(1)}%`);

/** Renders a report as a plain-text table (no colours), ending with a newline. */
export function formatReport(r: BenchReport): string {
  const c = r.config;
  const load = c.rate !== null ? `Poisson ${c.rate} req/s` : `concurrency ${c.concurrency}`;
  const lines: string[] = [];
  lines.push(`llmd bench — ${c.workload} against ${c.url} (model ${c.model}, ${c.api}, ${load})`);
  lines.push(
    `  workload: ${Object.entries(c.workload_params)
      .map(([k, v]) => `${k}=${v}`)
      .join(" ")}  seed=${c.seed} stream=${c.stream}`,
  );
  lines.push("");
  lines.push(
    `  requests ${r.requests}   completed ${r.completed}   errors ${r.errors}   in ${r.duration_s.toFixed(2)} s` +
      (r.stopped_early ? `   (stopped early: ${r.requests} of ${c.requests} sent)` : ""),
  );
  for (const [kind, e] of Object.entries(r.error_kinds)) {
    lines.push(`    ${kind} × ${e.count}: ${e.example}`);
  }
  lines.push("");
  lines.push("  latency (ms)        p50        p90        p99");
  const row = (name: string, p: { p50: number | null; p90: number | null; p99: number | null }): string =>
    `  ${name.padEnd(14)} ${fmt(p.p50).padStart(10)} ${fmt(p.p90).padStart(10)} ${fmt(p.p99).padStart(10)}`;
  lines.push(row("TTFT", r.ttft_ms));
  lines.push(row("ITL", r.itl_ms));
  lines.push(row("E2E", r.e2e_ms));
  lines.push("");
  lines.push(`  output tokens/s     ${r.output_tokens_per_s.toFixed(2)}   (${r.total_output_tokens} tokens)`);
  lines.push(`  requests/s          ${r.request_throughput.toFixed(3)}`);
  const fleet =
    r.prefix_cache_hit_rate === null
      ? `n/a (${r.prefix_cache_note ?? "not measured"})`
      : `${pct(r.prefix_cache_hit_rate)}   (${r.prefix_cache_hits_delta} / ${r.prefix_cache_queries_delta} tokens, ${c.metrics_urls.length} server${c.metrics_urls.length === 1 ? "" : "s"})`;
  lines.push(`  prefix-cache hits   ${fleet}`);
  lines.push(`  oracle hit rate     ${pct(r.oracle_hit_rate)}   (unlimited cache, block ${c.block_size})`);
  if (r.pd) {
    lines.push(
      `  P/D decisions       ${r.pd.prefill_decode} prefill-decode, ${r.pd.decode_only} decode-only`,
    );
    lines.push(
      `  KV transfers        ${r.pd.transfers}${r.pd.mean_transfer_ms === null ? "" : `   (mean ${fmt(r.pd.mean_transfer_ms)} ms)`}`,
    );
  }
  return `${lines.join("\n")}\n`;
}
