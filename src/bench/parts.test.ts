import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { buildBody } from "./client.js";
import { fleetHitRate, normaliseMetricsUrl, type PrefixCounters, prefixCountersFromText } from "./metrics.js";
import { formatReport } from "./report.js";
import { SseParser } from "./sse.js";
import { LatencyHistogram } from "./stats.js";

describe("SseParser", () => {
  it("returns data payloads across arbitrary splits and line ends", () => {
    const stream =
      'data: {"a":1}\n\n: comment\nevent: x\ndata: {"b":2}\r\n\r\ndata: line1\ndata: line2\n\ndata: [DONE]\n\n';
    const whole = new SseParser().push(stream);
    assert.deepEqual(whole, ['{"a":1}', '{"b":2}', "line1\nline2", "[DONE]"]);
    for (let cut = 1; cut < stream.length; cut++) {
      const p = new SseParser();
      const got = [...p.push(stream.slice(0, cut)), ...p.push(stream.slice(cut)), ...p.end()];
      assert.deepEqual(got, whole, `split at ${cut}`);
    }
    // byte-by-byte, with CR-only line ends
    const p = new SseParser();
    const got: string[] = [];
    for (const ch of "data: x\r\rdata:y\r\r") got.push(...p.push(ch));
    assert.deepEqual([...got, ...p.end()], ["x", "y"]);
  });

  it("flushes an unterminated last event at end()", () => {
    const p = new SseParser();
    assert.deepEqual(p.push("data: tail"), []);
    assert.deepEqual(p.end(), ["tail"]);
  });
});

describe("LatencyHistogram", () => {
  it("reports p50/p90/p99 in ms within HDR precision (0.1%)", () => {
    const h = new LatencyHistogram();
    try {
      assert.deepEqual(h.percentiles(), { p50: null, p90: null, p99: null });
      for (let i = 1; i <= 1000; i++) h.record(i / 10); // 0.1 .. 100 ms
      assert.equal(h.count, 1000);
      const p = h.percentiles();
      const near = (got: number | null, want: number) =>
        assert.ok(got !== null && Math.abs(got - want) <= want * 0.001 + 0.01, `${got} vs ${want}`);
      near(p.p50, 50);
      near(p.p90, 90);
      near(p.p99, 99);
      // 2 decimals
      for (const v of [p.p50, p.p90, p.p99]) assert.equal(Math.round(v! * 100) / 100, v);
    } finally {
      h.close();
    }
  });

  it("records zero and clamps negatives", () => {
    const h = new LatencyHistogram();
    try {
      h.record(0);
      h.record(-5);
      assert.equal(h.count, 2);
      assert.equal(h.percentiles().p99, 0);
    } finally {
      h.close();
    }
  });
});

describe("prefix-cache counters", () => {
  const text = [
    "# HELP vllm:prefix_cache_hits Prefix cache hits, in terms of number of cached tokens.",
    "# TYPE vllm:prefix_cache_hits counter",
    'vllm:prefix_cache_hits_total{engine="0",model_name="m"} 120.0',
    'vllm:prefix_cache_hits_total{engine="1",model_name="m"} 30.0',
    "# HELP vllm:prefix_cache_hits_created x",
    "# TYPE vllm:prefix_cache_hits_created gauge",
    'vllm:prefix_cache_hits_created{engine="0",model_name="m"} 1.7e9',
    "# HELP vllm:prefix_cache_queries Prefix cache queries, in terms of number of queried tokens.",
    "# TYPE vllm:prefix_cache_queries counter",
    'vllm:prefix_cache_queries_total{engine="0",model_name="m"} 400.0',
    'vllm:prefix_cache_queries_total{engine="1",model_name="m"} 100.0',
    "",
  ].join("\n");

  it("sums every series of a server", () => {
    assert.deepEqual(prefixCountersFromText(text), { hits: 150, queries: 500 });
    // prom-client style (TYPE line with _total) too
    const prom =
      "# TYPE vllm:prefix_cache_hits_total counter\nvllm:prefix_cache_hits_total 3\n# TYPE vllm:prefix_cache_queries_total counter\nvllm:prefix_cache_queries_total 9\n";
    assert.deepEqual(prefixCountersFromText(prom), { hits: 3, queries: 9 });
    assert.throws(() => prefixCountersFromText("# nothing\nfoo 1\n"), /prefix_cache/);
  });

  it("fleet rate = Σ Δhits / Σ Δqueries; null with a note otherwise", () => {
    const m = (o: Record<string, PrefixCounters | string>) => new Map(Object.entries(o));
    const before = m({ a: { hits: 10, queries: 100 }, b: { hits: 0, queries: 50 } });
    const after = m({ a: { hits: 40, queries: 200 }, b: { hits: 50, queries: 150 } });
    assert.deepEqual(fleetHitRate(before, after), { rate: 80 / 200, hitsDelta: 80, queriesDelta: 200 });
    const down = fleetHitRate(before, m({ a: { hits: 0, queries: 0 }, b: { hits: 50, queries: 150 } }));
    assert.equal(down.rate, null);
    assert.match(down.note!, /went down/);
    const failed = fleetHitRate(before, m({ a: "HTTP 500", b: { hits: 50, queries: 150 } }));
    assert.equal(failed.rate, null);
    assert.match(failed.note!, /a after the run: HTTP 500/);
    const idle = fleetHitRate(before, before);
    assert.equal(idle.rate, null);
    assert.match(idle.note!, /no prefix-cache queries/);
  });

  it("normalises bare URLs to /metrics", () => {
    assert.equal(normaliseMetricsUrl("http://h:8000"), "http://h:8000/metrics");
    assert.equal(normaliseMetricsUrl("http://h:8000/custom"), "http://h:8000/custom");
  });
});

describe("request body", () => {
  it("completions and chat, streaming asks for usage", () => {
    assert.deepEqual(
      buildBody({ api: "completions", model: "m", prompt: "a b", maxTokens: 3, stream: true }),
      {
        model: "m",
        prompt: "a b",
        max_tokens: 3,
        ignore_eos: true,
        stream: true,
        stream_options: { include_usage: true },
      },
    );
    assert.deepEqual(buildBody({ api: "chat", model: "m", prompt: "a b", maxTokens: 3, stream: false }), {
      model: "m",
      messages: [{ role: "user", content: "a b" }],
      max_tokens: 3,
      ignore_eos: true,
      stream: false,
    });
  });
});

describe("formatReport", () => {
  it("prints the figures and the reason for a missing fleet rate", () => {
    const out = formatReport({
      requests: 3,
      completed: 2,
      errors: 1,
      stopped_early: false,
      error_kinds: { http_500: { count: 1, example: "boom" } },
      ttft_ms: { p50: 1.5, p90: 2, p99: 2.25 },
      itl_ms: { p50: null, p90: null, p99: null },
      e2e_ms: { p50: 10, p90: 11, p99: 12 },
      output_tokens_per_s: 123.45,
      request_throughput: 1.5,
      prefix_cache_hit_rate: null,
      prefix_cache_note: "no servers",
      prefix_cache_hits_delta: null,
      prefix_cache_queries_delta: null,
      pd: { prefill_decode: 5, decode_only: 2, transfers: 5, mean_transfer_ms: 3.25 },
      oracle_hit_rate: 0.5,
      duration_s: 2,
      total_prompt_tokens: 30,
      total_output_tokens: 4,
      usage_reported: 2,
      itl_samples: 0,
      config: {
        url: "http://x",
        model: "m",
        api: "completions",
        workload: "shared-prefix",
        workload_params: { num_groups: 1 },
        requests: 3,
        rate: null,
        concurrency: 2,
        seed: 1,
        stream: true,
        timeout_ms: 1000,
        block_size: 16,
        metrics_urls: [],
        metrics_source: "none",
      },
    });
    assert.match(out, /TTFT\s+1\.50\s+2\.00\s+2\.25/);
    assert.match(out, /ITL\s+-\s+-\s+-/);
    assert.match(out, /http_500 × 1: boom/);
    assert.match(out, /prefix-cache hits\s+n\/a \(no servers\)/);
    assert.match(out, /oracle hit rate\s+50\.0%/);
    assert.match(out, /concurrency 2/);
    assert.doesNotMatch(out, /stopped early/);
    assert.match(out, /P\/D decisions\s+5 prefill-decode, 2 decode-only/);
    assert.match(out, /KV transfers\s+5\s+\(mean 3\.25 ms\)/);
  });
});
