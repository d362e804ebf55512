/**
 * runBench against an in-process fake OpenAI-compatible server (node:http on 127.0.0.1:0):
 * SSE streaming with a delay per chunk, `/v1/models`, `/llmd/endpoints`, and two fake model
 * servers whose `/metrics` prefix counters grow as requests are served. Modes inject 500s,
 * in-stream errors and requests that never answer. No timed assertions.
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Command } from "commander";
import { registerBench } from "../cli/bench.js";
import { Agent } from "undici";
import { sendRequest } from "./client.js";
import { oracleHitRate } from "./oracle.js";
import { formatReport } from "./report.js";
import { buildWorkload, runBench } from "./run.js";
import { simTokens } from "./workload.js";

interface FakeMode {
  /** ms between chunks. */
  chunkDelayMs: number;
  /** Arrival numbers (1-based) answered with HTTP 500. */
  fail500: Set<number>;
  /** Arrival numbers that never answer. */
  hang: Set<number>;
  /** Arrival numbers whose stream stops (open, silent) after one chunk. */
  stall: Set<number>;
  /** Arrival numbers that get `data: {"error":…}` after one chunk. */
  streamError: Set<number>;
  /** Leave out the usage chunk even when asked. */
  omitUsage: boolean;
  /** Serve /llmd/endpoints. */
  endpoints: boolean;
  /** Serve server 0's /metrics on the main port too (a bare vLLM). */
  mainMetrics: boolean;
}

interface Counters {
  hits: number;
  queries: number;
}

class Fake {
  server!: Server;
  metricsServers: Server[] = [];
  counters: Counters[] = [
    { hits: 1000, queries: 5000 },
    { hits: 7, queries: 70 },
  ];
  added: Counters = { hits: 0, queries: 0 };
  arrivals = 0;
  bodies: Record<string, unknown>[] = [];
  hanging: ServerResponse[] = [];
  /** Called when a request starts hanging (arrival number). */
  onHang: ((k: number) => void) | undefined;
  mode: FakeMode = this.defaults();

  defaults(): FakeMode {
    return {
      chunkDelayMs: 1,
      fail500: new Set(),
      hang: new Set(),
      stall: new Set(),
      streamError: new Set(),
      omitUsage: false,
      endpoints: true,
      mainMetrics: false,
    };
  }

  reset(mode: Partial<FakeMode> = {}): void {
    this.mode = { ...this.defaults(), ...mode };
    this.arrivals = 0;
    this.bodies = [];
    this.added = { hits: 0, queries: 0 };
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  metricsUrl(i: number): string {
    return `http://127.0.0.1:${(this.metricsServers[i]!.address() as AddressInfo).port}`;
  }

  metricsText(i: number): string {
    const c = this.counters[i]!;
    // server 0 splits its counters over two engine series
    const series = (name: string, v: number) =>
      i === 0
        ? `${name}{engine="0",model_name="fake"} ${v - 1}.0\n${name}{engine="1",model_name="fake"} 1.0\n`
        : `${name}{engine="0",model_name="fake"} ${v}.0\n`;
    return (
      "# HELP vllm:prefix_cache_hits Prefix cache hits.\n# TYPE vllm:prefix_cache_hits counter\n" +
      series("vllm:prefix_cache_hits_total", c.hits) +
      "# HELP vllm:prefix_cache_queries Prefix cache queries.\n# TYPE vllm:prefix_cache_queries counter\n" +
      series("vllm:prefix_cache_queries_total", c.queries)
    );
  }

  async start(): Promise<void> {
    this.server = createServer((req, res) => void this.handle(req, res));
    for (let i = 0; i < 2; i++) {
      const s = createServer((req, res) => {
        if (req.url !== "/metrics") {
          res.writeHead(404).end();
          return;
        }
        res.writeHead(200, { "content-type": "text/plain; version=0.0.4" });
        res.end(this.metricsText(i));
      });
      this.metricsServers.push(s);
    }
    await Promise.all(
      [this.server, ...this.metricsServers].map((s) => new Promise<void>((r) => s.listen(0, "127.0.0.1", r))),
    );
  }

  async stop(): Promise<void> {
    for (const r of this.hanging) r.destroy();
    for (const s of [this.server, ...this.metricsServers]) {
      s.closeAllConnections();
      await new Promise<void>((r) => s.close(() => r()));
    }
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method === "GET" && req.url === "/v1/models") {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(
        JSON.stringify({ object: "list", data: [{ id: "fake-model", object: "model" }, { id: "other" }] }),
      );
      return;
    }
    if (req.method === "GET" && req.url === "/llmd/endpoints" && this.mode.endpoints) {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(
        JSON.stringify({
          endpoints: [0, 1].map((i) => ({
            id: `default/s${i}`,
            address: "127.0.0.1",
            port: 0,
            url: this.metricsUrl(i),
            role: "both",
          })),
        }),
      );
      return;
    }
    if (req.method === "GET" && req.url === "/metrics" && this.mode.mainMetrics) {
      res.writeHead(200, { "content-type": "text/plain; version=0.0.4" });
      res.end(this.metricsText(0));
      return;
    }
    const chat = req.url === "/v1/chat/completions";
    if (req.method !== "POST" || (req.url !== "/v1/completions" && !chat)) {
      res.writeHead(404, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: { message: "not found", type: "NotFoundError", code: 404 } }));
      return;
    }
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as Record<string, unknown>;
    this.bodies.push(body);
    const k = ++this.arrivals;
    const prompt = chat ? String((body.messages as { content: string }[])[0]!.content) : String(body.prompt);
    const promptTokens = simTokens(prompt).length;
    // counters: server by arrival parity; hits = a deterministic function of the arrival
    const server = this.counters[k % 2]!;
    const hits = (k * 16) % promptTokens;
    server.queries += promptTokens;
    server.hits += hits;
    this.added.queries += promptTokens;
    this.added.hits += hits;
    if (this.mode.hang.has(k)) {
      this.hanging.push(res);
      this.onHang?.(k);
      return;
    }
    if (this.mode.fail500.has(k)) {
      res.writeHead(500, { "content-type": "application/json" });
      res.end(
        JSON.stringify({
          error: { message: `injected failure ${k}`, type: "InternalServerError", code: 500 },
        }),
      );
      return;
    }
    const n = Number(body.max_tokens);
    const id = `cmpl-${k}`;
    const object = chat ? "chat.completion.chunk" : "text_completion";
    const usage = { prompt_tokens: promptTokens, completion_tokens: n, total_tokens: promptTokens + n };
    if (body.stream !== true) {
      const text = Array.from({ length: n }, (_, i) => ` w${i}`).join("");
      const choice = chat
        ? { index: 0, message: { role: "assistant", content: text }, finish_reason: "length" }
        : { index: 0, text, finish_reason: "length" };
      res.writeHead(200, { "content-type": "application/json" });
      res.end(
        JSON.stringify({
          id,
          object: chat ? "chat.completion" : "text_completion",
          choices: [choice],
          usage,
        }),
      );
      return;
    }
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
    const send = (o: unknown) => res.write(`data: ${JSON.stringify(o)}\n\n`);
    const wait = () => new Promise((r) => setTimeout(r, this.mode.chunkDelayMs));
    if (chat) send({ id, object, choices: [{ index: 0, delta: { role: "assistant", content: "" } }] });
    for (let i = 0; i < n; i++) {
      await wait();
      const last = i === n - 1 ? "length" : null;
      send({
        id,
        object,
        choices: [
          chat
            ? { index: 0, delta: { content: ` w${i}` }, finish_reason: last }
            : { index: 0, text: ` w${i}`, finish_reason: last },
        ],
      });
      if (this.mode.stall.has(k)) {
        this.hanging.push(res);
        return;
      }
      if (this.mode.streamError.has(k)) {
        send({ error: { message: `engine died ${k}`, type: "InternalServerError", code: 500 } });
        res.end("data: [DONE]\n\n");
        return;
      }
    }
    const so = body.stream_options as { include_usage?: boolean } | undefined;
    if (so?.include_usage && !this.mode.omitUsage) send({ id, object, choices: [], usage });
    res.end("data: [DONE]\n\n");
  }
}

const fake = new Fake();
before(() => fake.start());
after(() => fake.stop());

const small = { groups: 3, promptsPerGroup: 4, systemPromptTokens: 32, questionTokens: 8 };

describe("runBench against a fake OpenAI-compatible server", () => {
  it("streams: counts, ITL samples, TTFT ≤ E2E, usage tokens, model and metrics discovery", async () => {
    fake.reset();
    const progress: number[] = [];
    const report = await runBench(
      { url: fake.url, sharedPrefix: small, outputTokens: 5, concurrency: 3, timeoutMs: 30_000 },
      { onProgress: (done, total) => progress.push(done * 1000 + total) },
    );
    assert.equal(report.requests, 12);
    assert.equal(report.completed, 12);
    assert.equal(report.errors, 0);
    assert.deepEqual(report.error_kinds, {});
    assert.equal(fake.arrivals, 12);
    // 5 content chunks per request → 4 gaps each
    assert.equal(report.itl_samples, 12 * 4);
    assert.equal(report.total_output_tokens, 60);
    assert.equal(report.usage_reported, 12);
    assert.equal(report.total_prompt_tokens, 12 * 40);
    for (const k of ["p50", "p90", "p99"] as const) {
      assert.ok(report.ttft_ms[k]! >= 0);
      assert.ok(report.ttft_ms[k]! <= report.e2e_ms[k]!, `ttft ${k} ≤ e2e ${k}`);
      assert.ok(report.itl_ms[k]! >= 0);
    }
    assert.ok(report.output_tokens_per_s > 0);
    assert.ok(report.request_throughput > 0);
    assert.equal(report.config.model, "fake-model");
    assert.equal(report.config.concurrency, 3);
    assert.equal(report.config.rate, null);
    // progress: 0/12 first, then 1..12 of 12
    assert.deepEqual(
      progress,
      Array.from({ length: 13 }, (_, d) => d * 1000 + 12),
    );
    // what was sent
    const b = fake.bodies[0]!;
    assert.equal(b.model, "fake-model");
    assert.equal(b.max_tokens, 5);
    assert.equal(b.ignore_eos, true);
    assert.equal(b.stream, true);
    assert.deepEqual(b.stream_options, { include_usage: true });
    // prompts arrive in workload order (closed loop pulls in order; one arrival per send)
    const w = buildWorkload({ sharedPrefix: small, outputTokens: 5 });
    assert.deepEqual(new Set(fake.bodies.map((x) => x.prompt)), new Set(w.requests.map((r) => r.prompt)));
    // fleet hit rate from /llmd/endpoints = Δhits / Δqueries of both servers
    assert.equal(report.config.metrics_source, "llmd/endpoints");
    assert.equal(report.config.metrics_urls.length, 2);
    assert.equal(report.prefix_cache_hits_delta, fake.added.hits);
    assert.equal(report.prefix_cache_queries_delta, fake.added.queries);
    assert.equal(report.prefix_cache_hit_rate, fake.added.hits / fake.added.queries);
    assert.equal(report.prefix_cache_note, null);
    // oracle: 3 groups × 3 later requests × 32 system tokens (2 whole blocks) / 480
    assert.equal(report.oracle_hit_rate, (3 * 3 * 32) / 480);
    assert.equal(
      report.oracle_hit_rate,
      oracleHitRate(
        w.requests.map((r) => simTokens(r.prompt)),
        16,
      ).hitRate,
    );
  });

  it("every request ends completed or error: 500s, stream errors and a request that never answers", async () => {
    fake.reset({ fail500: new Set([2, 7]), streamError: new Set([4]), hang: new Set([5]) });
    const report = await runBench({
      url: fake.url,
      model: "m",
      sharedPrefix: small,
      outputTokens: 3,
      concurrency: 4,
      timeoutMs: 1500,
      metricsUrls: [fake.metricsUrl(0), `${fake.metricsUrl(1)}/metrics`],
    });
    assert.equal(report.requests, 12);
    assert.equal(report.completed + report.errors, report.requests);
    assert.equal(report.errors, 4);
    assert.equal(report.completed, 8);
    assert.equal(report.error_kinds.http_500?.count, 2);
    assert.match(report.error_kinds.http_500!.example, /injected failure/);
    assert.equal(report.error_kinds.stream_error?.count, 1);
    assert.match(report.error_kinds.stream_error!.example, /engine died 4/);
    assert.equal(report.error_kinds.timeout?.count, 1);
    // stats only over completed requests: 8 × (3 − 1) gaps, 8 × 3 tokens
    assert.equal(report.itl_samples, 16);
    assert.equal(report.total_output_tokens, 24);
    assert.equal(report.config.metrics_source, "flag");
    assert.deepEqual(report.config.metrics_urls, [
      `${fake.metricsUrl(0)}/metrics`,
      `${fake.metricsUrl(1)}/metrics`,
    ]);
    assert.equal(report.prefix_cache_hit_rate, fake.added.hits / fake.added.queries);
  });

  it("network errors are errors too", async () => {
    // a port that was just closed: connection refused
    const s = createServer();
    await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
    const port = (s.address() as AddressInfo).port;
    await new Promise<void>((r) => s.close(() => r()));
    const report = await runBench({
      url: `http://127.0.0.1:${port}`,
      model: "m",
      sharedPrefix: { ...small, groups: 1, promptsPerGroup: 2 },
      concurrency: 2,
      timeoutMs: 5000,
      metricsUrls: [`http://127.0.0.1:${port}/metrics`],
    });
    assert.equal(report.completed, 0);
    assert.equal(report.errors, 2);
    assert.deepEqual(Object.keys(report.error_kinds), ["network:ECONNREFUSED"]);
    assert.equal(report.prefix_cache_hit_rate, null);
    assert.match(report.prefix_cache_note!, /before the run/);
    assert.deepEqual(report.ttft_ms, { p50: null, p90: null, p99: null });
  });

  it("non-streaming chat without discovery: no TTFT/ITL, tokens from usage, fleet rate null with a note", async () => {
    fake.reset({ endpoints: false });
    const report = await runBench({
      url: `${fake.url}/v1/`,
      api: "chat",
      stream: false,
      sharedPrefix: small,
      requests: 5,
      outputTokens: 4,
      concurrency: 2,
    });
    assert.equal(report.completed, 5);
    assert.equal(report.total_output_tokens, 20);
    assert.deepEqual(report.ttft_ms, { p50: null, p90: null, p99: null });
    assert.deepEqual(report.itl_ms, { p50: null, p90: null, p99: null });
    assert.ok(report.e2e_ms.p50! >= 0);
    assert.equal(report.prefix_cache_hit_rate, null);
    assert.equal(report.config.metrics_source, "none");
    assert.equal(report.config.url, fake.url);
    assert.match(report.prefix_cache_note!, /llmd\/endpoints unavailable/);
    const b = fake.bodies[0]!;
    assert.equal(b.stream, false);
    assert.equal(b.stream_options, undefined);
    assert.ok(Array.isArray(b.messages));
  });

  it("Poisson arrivals, chat streaming, no usage chunk: tokens counted from chunks", async () => {
    fake.reset({ omitUsage: true });
    const report = await runBench({
      url: fake.url,
      api: "chat",
      sharedPrefix: small,
      requests: 10,
      outputTokens: 3,
      rate: 500,
      seed: 3,
    });
    assert.equal(report.completed, 10);
    assert.equal(report.usage_reported, 0);
    // the role chunk with empty content is not a token: 3 content chunks each
    assert.equal(report.total_output_tokens, 30);
    assert.equal(report.itl_samples, 20);
    assert.equal(report.config.rate, 500);
    assert.equal(report.config.concurrency, null);
  });

  it("falls back to {url}/metrics for a bare vLLM (no /llmd/endpoints)", async () => {
    fake.reset({ endpoints: false, mainMetrics: true });
    const before = { ...fake.counters[0]! };
    const report = await runBench({ url: fake.url, model: "m", sharedPrefix: small, outputTokens: 2 });
    assert.equal(report.completed, 12);
    assert.equal(report.config.metrics_source, "url");
    assert.deepEqual(report.config.metrics_urls, [`${fake.url}/metrics`]);
    const c = fake.counters[0]!;
    assert.equal(report.prefix_cache_hits_delta, c.hits - before.hits);
    assert.equal(report.prefix_cache_queries_delta, c.queries - before.queries);
    assert.equal(report.prefix_cache_hit_rate, (c.hits - before.hits) / (c.queries - before.queries));
  });

  it("an aborted run reports what was sent; in-flight requests end as aborted errors", async () => {
    fake.reset({ hang: new Set([3]) });
    const controller = new AbortController();
    // Abort once the hanging request has arrived AND two requests have completed on the client
    // side (a response already sent may not have been read yet when the hang arrives).
    let hung = false;
    let done = 0;
    const maybeAbort = () => {
      if (hung && done >= 2 && !controller.signal.aborted) controller.abort();
    };
    fake.onHang = () => {
      hung = true;
      maybeAbort();
    };
    try {
      const report = await runBench(
        {
          url: fake.url,
          model: "m",
          sharedPrefix: small,
          outputTokens: 2,
          concurrency: 2,
          timeoutMs: 60_000,
          signal: controller.signal,
        },
        {
          onProgress: (d) => {
            done = d;
            maybeAbort();
          },
        },
      );
      assert.equal(report.stopped_early, true);
      assert.equal(report.config.requests, 12);
      assert.ok(report.requests >= 3 && report.requests < 12, `sent ${report.requests}`);
      assert.ok(report.requests >= fake.arrivals);
      assert.equal(report.completed + report.errors, report.requests);
      assert.ok(report.completed >= 2);
      assert.ok((report.error_kinds.aborted?.count ?? 0) >= 1);
      assert.deepEqual(Object.keys(report.error_kinds), ["aborted"]);
      assert.match(formatReport(report), new RegExp(`stopped early: ${report.requests} of 12 sent`));
      const w = buildWorkload({ sharedPrefix: small, outputTokens: 2 });
      assert.equal(
        report.oracle_hit_rate,
        oracleHitRate(
          w.requests.slice(0, report.requests).map((r) => simTokens(r.prompt)),
          16,
        ).hitRate,
      );
    } finally {
      fake.onHang = undefined;
    }
  });

  it("rejects rate together with concurrency", async () => {
    await assert.rejects(runBench({ url: fake.url, rate: 1, concurrency: 1 }), RangeError);
  });
});

describe("sendRequest", () => {
  it("measures one stream: TTFT ≤ E2E, ITL gaps = chunks − 1", async () => {
    fake.reset();
    const agent = new Agent();
    try {
      const r = await sendRequest(
        {
          baseUrl: fake.url,
          api: "completions",
          model: "m",
          prompt: "a b c",
          maxTokens: 6,
          stream: true,
          timeoutMs: 10_000,
        },
        agent,
      );
      assert.equal(r.ok, true);
      assert.equal(r.status, 200);
      assert.equal(r.contentChunks, 6);
      assert.equal(r.itlMs.length, 5);
      assert.equal(r.outputTokens, 6);
      assert.equal(r.usageReported, true);
      assert.ok(r.ttftMs! <= r.e2eMs);
      const sumGaps = r.itlMs.reduce((a, b) => a + b, 0);
      assert.ok(r.ttftMs! + sumGaps <= r.e2eMs + 1e-6);
    } finally {
      await agent.destroy();
    }
  });
});

describe("sendRequest timeouts", () => {
  it("a stream that stalls after its first chunk ends as a timeout error", async () => {
    fake.reset({ stall: new Set([1]) });
    const agent = new Agent();
    try {
      const r = await sendRequest(
        {
          baseUrl: fake.url,
          api: "chat",
          model: "m",
          prompt: "a b",
          maxTokens: 4,
          stream: true,
          timeoutMs: 300,
        },
        agent,
      );
      assert.equal(r.ok, false);
      assert.equal(r.errorKind, "timeout");
      assert.equal(r.status, 200);
      assert.equal(r.contentChunks, 1);
      assert.match(r.errorMessage!, /300 ms/);
    } finally {
      await agent.destroy();
    }
  });
});

describe("llmd bench CLI", () => {
  it("writes a JSON report with every key and prints the table", async () => {
    fake.reset();
    const dir = await mkdtemp(join(tmpdir(), "llmd-bench-"));
    const file = join(dir, "report.json");
    const written: string[] = [];
    const prevExit = process.exitCode;
    try {
      const program = new Command().exitOverride();
      registerBench(program, { stdout: { write: (t: string) => written.push(t) } });
      await program.parseAsync(
        [
          "bench",
          "--url",
          fake.url,
          "--groups",
          "2",
          "--prompts-per-group",
          "2",
          "--system-prompt-tokens",
          "16",
          "--question-tokens",
          "4",
          "--output-tokens",
          "2",
          "--concurrency",
          "2",
          "--json",
          file,
          "--quiet",
        ],
        { from: "user" },
      );
      const json = JSON.parse(await readFile(file, "utf8")) as Record<string, unknown>;
      for (const k of [
        "requests",
        "completed",
        "errors",
        "ttft_ms",
        "itl_ms",
        "e2e_ms",
        "output_tokens_per_s",
        "request_throughput",
        "prefix_cache_hit_rate",
        "oracle_hit_rate",
        "config",
      ]) {
        assert.ok(k in json, `missing ${k}`);
      }
      for (const k of ["ttft_ms", "itl_ms", "e2e_ms"]) {
        assert.deepEqual(Object.keys(json[k] as object).sort(), ["p50", "p90", "p99"]);
      }
      assert.equal(json.requests, 4);
      assert.equal(json.completed, 4);
      assert.equal(json.errors, 0);
      // 2 groups × 1 later request × 16 tokens / (4 × 20)
      assert.equal(json.oracle_hit_rate, 32 / 80);
      assert.equal(typeof json.prefix_cache_hit_rate, "number");
      const config = json.config as Record<string, unknown>;
      assert.equal(config.model, "fake-model");
      assert.equal(config.api, "completions");
      assert.equal(config.stream, true);
      assert.equal(config.seed, 1);
      assert.deepEqual(config.workload_params, {
        num_groups: 2,
        num_prompts_per_group: 2,
        system_prompt_len: 16,
        question_len: 4,
        output_len: 2,
      });
      const table = written.join("");
      assert.match(table, /TTFT/);
      assert.match(table, /requests 4\s+completed 4\s+errors 0/);
      assert.equal(process.exitCode, prevExit);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
