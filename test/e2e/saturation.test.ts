/**
 * Saturation through the real router, with two small sim servers (`--max-num-seqs 2`,
 * default latencies divided by `--time-scale 4`):
 *
 * - gate on (`featureGates: [flowControl]`, `round-robin-fairness-policy`,
 *   `concurrency-detector` with `maxConcurrency: 2` = the servers' batch size, so the router
 *   holds everything beyond 4 requests in flight): two tenants (fairness ids) offering 10:1
 *   load (40 vs 4 closed-loop clients) each get within 20 % of an equal share of the
 *   completions while both are backlogged; a high-priority flow's queue time p99 (time to
 *   response headers, measured by the client; the sim sends headers at once) is ≤ 0.1 × the
 *   sheddable flow's, with the router's queue-duration histogram by priority as a cross-check;
 * - gate off (legacy admission, `utilization-detector` on scraped queue depth): with the pool
 *   saturated, sheddable requests (InferenceObjective priority −1 from `--objectives-file`) get
 *   429 with `x-llm-d-request-dropped-reason: rejected-saturated`; others pass; once the load is
 *   gone, sheddable requests pass again.
 *
 * Assertions are on counts and ratios measured in one run, not on absolute timings.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Pool } from "undici";
import * as H from "../../src/framework/headers.js";
import { freePort, type LlmdChild, runLlmd } from "./helpers.js";
import { runBounded, waitEndpoints } from "./router-helpers.js";

const MODEL = "llmd/sim-8b";
/** closed-loop sheddable clients: their queue wait ≈ SHED_CLIENTS / 4 service times */
const SHED_CLIENTS = 160;
let dir: string;
let ports: number[] = [];
const children: LlmdChild[] = [];

const GATE_ON = `apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
featureGates: [flowControl]
plugins:
- type: queue-scorer
- type: concurrency-detector
  parameters: {maxConcurrency: 2}
- type: round-robin-fairness-policy
- type: max-score-picker
- type: single-profile-handler
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: concurrency-detector
  - pluginRef: queue-scorer
  - pluginRef: max-score-picker
flowControl:
  defaultRequestTTL: 60s
  defaultPriorityBand: {fairnessPolicyRef: round-robin-fairness-policy}
  defaultNegativePriorityBand: {fairnessPolicyRef: round-robin-fairness-policy}
  saturationDetector: {pluginRef: concurrency-detector}
`;

const GATE_OFF = `apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: queue-scorer
- type: utilization-detector
  parameters: {queueDepthThreshold: 2}
- type: max-score-picker
- type: single-profile-handler
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: queue-scorer
  - pluginRef: max-score-picker
saturationDetector: {pluginRef: utilization-detector}
`;

const OBJECTIVES = `- apiVersion: llm-d.ai/v1alpha2
  kind: InferenceObjective
  metadata: {name: critical}
  spec: {priority: 10, poolRef: {name: llmd}}
- apiVersion: llm-d.ai/v1alpha2
  kind: InferenceObjective
  metadata: {name: batch}
  spec: {priority: -1, poolRef: {name: llmd}}
`;

async function startRouter(config: string): Promise<{ url: string; pool: Pool }> {
  const port = await freePort();
  const r = runLlmd([
    "router",
    "--port",
    String(port),
    ...ports.flatMap((p) => ["--endpoint", `127.0.0.1:${p}`]),
    "--epp-config",
    join(dir, config),
    "--objectives-file",
    join(dir, "objectives.yaml"),
    "--refresh-metrics-interval",
    "50",
  ]);
  children.push(r);
  const url = `http://127.0.0.1:${port}`;
  await waitEndpoints(url, (eps) => eps.length === 2 && eps.every((e) => e.ready), 60_000);
  return { url, pool: new Pool(url, { connections: 256 }) };
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "llmd-sat-"));
  writeFileSync(join(dir, "gate-on.yaml"), GATE_ON);
  writeFileSync(join(dir, "gate-off.yaml"), GATE_OFF);
  writeFileSync(join(dir, "objectives.yaml"), OBJECTIVES);
  ports = [await freePort(), await freePort()];
  for (const p of ports)
    children.push(
      runLlmd(["serve", "--port", String(p), "--model", MODEL, "--max-num-seqs", "2", "--time-scale", "4"]),
    );
});

after(async () => {
  await Promise.all(children.map((c) => c.stop()));
  rmSync(dir, { recursive: true, force: true });
});

interface Done {
  status: number;
  /** ms from sending to the response headers */
  headersMs: number;
  dropReason: string;
  body: string;
}

/** One completion; resolves with its outcome (never rejects). */
async function call(
  pool: Pool,
  headers: Record<string, string>,
  opts: { stream?: boolean; maxTokens?: number; signal?: AbortSignal } = {},
): Promise<Done> {
  const t0 = performance.now();
  try {
    const r = await pool.request({
      method: "POST",
      path: "/v1/completions",
      headers: { "content-type": "application/json", ...headers },
      body: JSON.stringify({
        model: MODEL,
        prompt: `p ${Math.random()}`,
        max_tokens: opts.maxTokens ?? 16,
        ignore_eos: true,
        stream: opts.stream ?? false,
      }),
      signal: opts.signal,
    });
    const headersMs = performance.now() - t0;
    let body = "";
    for await (const c of r.body) body += (c as Buffer).toString("utf8");
    return {
      status: r.statusCode,
      headersMs,
      dropReason: String(r.headers[H.REQUEST_DROPPED_REASON] ?? ""),
      body,
    };
  } catch (e) {
    return { status: 0, headersMs: performance.now() - t0, dropReason: "", body: (e as Error).message };
  }
}

const p99 = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.max(0, Math.ceil(0.99 * s.length) - 1)]!;
};

/** Cumulative bucket counts of a histogram series on the router's /metrics, by `le`. */
async function histogram(
  url: string,
  name: string,
  labels: Record<string, string>,
): Promise<Map<number, number>> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const out = new Map<number, number>();
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}_bucket{`)) continue;
    const m = /\{(.*)\}\s+(\S+)$/.exec(line);
    if (!m) continue;
    const ls = Object.fromEntries([...m[1]!.matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (!Object.entries(labels).every(([k, v]) => ls[k] === v)) continue;
    out.set(ls.le === "+Inf" ? Number.POSITIVE_INFINITY : Number(ls.le), Number(m[2]));
  }
  return out;
}

/** Bucket bounds [lower, upper] that hold the p-quantile of a cumulative histogram. */
function quantileBucket(h: Map<number, number>, p: number): [number, number] {
  const les = [...h.keys()].sort((a, b) => a - b);
  const total = h.get(Number.POSITIVE_INFINITY) ?? 0;
  let lower = 0;
  for (const le of les) {
    if (h.get(le)! >= p * total) return [lower, le];
    lower = le;
  }
  return [lower, Number.POSITIVE_INFINITY];
}

describe("gate on: flow control through the router", () => {
  let url: string;
  let pool: Pool;
  before(async () => {
    ({ url, pool } = await startRouter("gate-on.yaml"));
  });
  after(async () => {
    await pool?.close();
  });

  test("round-robin fairness: tenants at 10:1 offered load get an equal share (±20 %) while both are backlogged", async (t) => {
    const completions: string[] = [];
    const statuses = new Map<number, number>();
    const TARGET = 160;
    const loop = async (tenant: string) => {
      while (completions.length < TARGET) {
        const d = await call(pool, { [H.FAIRNESS_ID]: tenant });
        statuses.set(d.status, (statuses.get(d.status) ?? 0) + 1);
        if (d.status === 200) completions.push(tenant);
      }
    };
    await Promise.all([
      ...Array.from({ length: 40 }, () => loop("tenant-a")),
      ...Array.from({ length: 4 }, () => loop("tenant-b")),
    ]);
    assert.deepEqual(
      [...statuses.keys()],
      [200],
      `every request completed: ${JSON.stringify([...statuses])}`,
    );
    // window: after the queues built up, until the first loop saw the target (both still backlogged)
    const window = completions.slice(20, TARGET);
    const b = window.filter((x) => x === "tenant-b").length;
    const share = b / window.length;
    t.diagnostic(
      `tenant-b share of ${window.length} completions: ${share.toFixed(3)} (offered 4 of 44 clients)`,
    );
    assert.ok(share >= 0.4 && share <= 0.6, `tenant-b share ${share}`);
  });

  test("priority: high-priority queue time p99 ≤ 0.1 × the sheddable flow's", async (t) => {
    let stop = false;
    const shed: { startedAt: number; d: Done }[] = [];
    let highPhaseAt = Number.POSITIVE_INFINITY;
    const shedLoop = async () => {
      while (!stop) {
        const startedAt = performance.now();
        const d = await call(pool, { [H.OBJECTIVE]: "batch", [H.FAIRNESS_ID]: "batch" }, { stream: true });
        shed.push({ startedAt, d });
      }
    };
    const shedLoops = Array.from({ length: SHED_CLIENTS }, shedLoop);
    // let the sheddable backlog build: SHED_CLIENTS clients on 4 slots
    await new Promise((r) => setTimeout(r, 1500));
    highPhaseAt = performance.now();
    const high = await runBounded(60, 2, () =>
      call(pool, { [H.OBJECTIVE]: "critical", [H.FAIRNESS_ID]: "interactive" }, { stream: true }),
    );
    stop = true;
    await Promise.all(shedLoops);
    assert.ok(
      high.every((d) => d.status === 200 && d.body.trimEnd().endsWith("[DONE]")),
      "high-priority requests all served",
    );
    assert.ok(
      shed.every((s) => s.d.status === 200),
      "sheddable requests all served (TTL 60 s)",
    );
    const shedInWindow = shed.filter((s) => s.startedAt >= highPhaseAt).map((s) => s.d.headersMs);
    assert.ok(shedInWindow.length >= 20, `sheddable requests measured: ${shedInWindow.length}`);
    const hi = p99(high.map((d) => d.headersMs));
    const lo = p99(shedInWindow);
    t.diagnostic(
      `queue time p99 (client, ms): high ${hi.toFixed(1)}, sheddable ${lo.toFixed(1)}, ratio ${(hi / lo).toFixed(3)}`,
    );
    assert.ok(hi <= 0.1 * lo, `high p99 ${hi} ms vs sheddable p99 ${lo} ms`);
    // cross-check with the router's histogram (bucket bounds): high p99 ≤ sheddable p99 / 10
    const name = "llm_d_epp_flow_control_request_queue_duration_seconds";
    const hh = await histogram(url, name, { priority: "10", outcome: "Dispatched" });
    const hs = await histogram(url, name, { priority: "-1", outcome: "Dispatched" });
    const [, hiUpper] = quantileBucket(hh, 0.99);
    const [shLower] = quantileBucket(hs, 0.99);
    t.diagnostic(`router histogram p99 buckets: high ≤ ${hiUpper} s, sheddable ≥ ${shLower} s`);
    assert.ok(hiUpper <= shLower, `high p99 bucket ≤ ${hiUpper} s, sheddable p99 bucket ≥ ${shLower} s`);
  });
});

describe("gate off: legacy admission sheds sheddable requests when saturated", () => {
  test("429 rejected-saturated for priority < 0 while the pool is saturated; others pass", async () => {
    const { url, pool } = await startRouter("gate-off.yaml");
    try {
      const idle = await call(pool, { [H.OBJECTIVE]: "batch" });
      assert.equal(idle.status, 200, `not saturated yet: ${idle.body}`);

      // 8 long streams on 2 servers × 2 slots: 2 running + 2 waiting on each
      const ac = new AbortController();
      const long = Array.from({ length: 8 }, () =>
        call(pool, {}, { stream: true, maxTokens: 4000, signal: ac.signal }),
      );
      // saturated as the router sees it: the scraped waiting queues average ≥ queueDepthThreshold (2)
      await waitEndpoints(
        url,
        (eps) => eps.reduce((n, e) => n + (e.metrics?.waitingQueueSize ?? 0), 0) >= 4,
        30_000,
      );
      const shedResults = await runBounded(10, 5, () => call(pool, { [H.OBJECTIVE]: "batch" }));
      for (const d of shedResults) {
        assert.equal(d.status, 429, d.body);
        assert.equal(d.dropReason, "rejected-saturated");
        const e = (JSON.parse(d.body) as { error: { message: string; type: string } }).error;
        assert.match(e.message, /saturated/);
      }
      // a request with priority ≥ 0 is not shed (it queues on a server: take the headers and go)
      const ac2 = new AbortController();
      const critical = await pool.request({
        method: "POST",
        path: "/v1/completions",
        headers: { "content-type": "application/json", [H.OBJECTIVE]: "critical" },
        body: JSON.stringify({ model: MODEL, prompt: "x", max_tokens: 4, stream: true }),
        signal: ac2.signal,
      });
      assert.equal(critical.statusCode, 200);
      ac2.abort();
      await critical.body.dump().catch(() => {});

      ac.abort();
      const ended = await Promise.all(long);
      assert.ok(
        ended.every((d) => d.status === 200 || d.status === 0),
        JSON.stringify(ended.map((d) => d.status)),
      );
      // load gone: sheddable requests pass again
      await waitEndpoints(url, (eps) => eps.every((e) => e.metrics?.waitingQueueSize === 0), 30_000);
      const again = await call(pool, { [H.OBJECTIVE]: "batch" });
      assert.equal(again.status, 200, again.body);
    } finally {
      await pool.close();
    }
  });
});
