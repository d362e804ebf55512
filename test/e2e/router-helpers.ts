/**
 * Helpers of the router e2e tests (chaos, saturation, security, fuzz): a fake vLLM-shaped
 * upstream that records what reaches it, readiness polling of `GET /llmd/endpoints`, and a
 * bounded-concurrency runner. All on 127.0.0.1.
 */
import { once } from "node:events";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";

/** One inference request as the fake upstream saw it. */
export interface SeenRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  bodyBytes: number;
}

/** A fake model server: `/metrics` (idle vLLM gauges), `/v1/models`, and JSON/SSE answers on `/v1/*`. */
export interface FakeUpstream {
  server: Server;
  port: number;
  hostPort: string;
  /** inference requests (POST `/v1/...`) received, in order */
  seen: SeenRequest[];
  close(): Promise<void>;
}

/** `/metrics` text of an idle vLLM server (the gauges the scraper reads, reference/epp.md §5.2). */
export const IDLE_VLLM_METRICS = [
  "# TYPE vllm:num_requests_waiting gauge",
  'vllm:num_requests_waiting{model_name="m"} 0',
  "# TYPE vllm:num_requests_running gauge",
  'vllm:num_requests_running{model_name="m"} 0',
  "# TYPE vllm:kv_cache_usage_perc gauge",
  'vllm:kv_cache_usage_perc{model_name="m"} 0',
  "",
].join("\n");

/** Behaviour of a {@link fakeUpstream}. */
export interface FakeUpstreamOptions {
  /** `vllm:num_requests_waiting` it reports (default 0) */
  waiting?: number;
  /** answer inference requests with 200 headers, then close the connection before any body */
  dieAfterHeaders?: boolean;
}

/**
 * Starts a fake upstream serving model `model` on a free port of 127.0.0.1.
 * Completions: `{"choices":[{"text":"ok"}]}` as JSON, or two SSE events + `[DONE]` when the
 * body asks for `"stream":true`.
 */
export async function fakeUpstream(model = "m", opts: FakeUpstreamOptions = {}): Promise<FakeUpstream> {
  const metrics = IDLE_VLLM_METRICS.replace(
    'vllm:num_requests_waiting{model_name="m"} 0',
    `vllm:num_requests_waiting{model_name="m"} ${opts.waiting ?? 0}`,
  );
  const seen: SeenRequest[] = [];
  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0]!;
    if (req.method === "GET" && path === "/metrics") {
      res.writeHead(200, { "content-type": "text/plain; version=0.0.4" }).end(metrics);
      return;
    }
    if (req.method === "GET" && path === "/v1/models") {
      res
        .writeHead(200, { "content-type": "application/json" })
        .end(JSON.stringify({ object: "list", data: [{ id: model, object: "model" }] }));
      return;
    }
    if (req.method === "GET" && path === "/health") {
      res.writeHead(200).end();
      return;
    }
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      seen.push({ method: req.method ?? "", path, headers: req.headers, bodyBytes: body.length });
      if (opts.dieAfterHeaders) {
        // a server that crashes between its response headers and its body
        res.writeHead(200, { "content-type": "application/json", "content-length": "1000" });
        res.flushHeaders();
        setTimeout(() => res.socket?.destroy(), 5);
        return;
      }
      let stream = false;
      try {
        stream = (JSON.parse(body.toString("utf8")) as { stream?: unknown }).stream === true;
      } catch {
        // not JSON: answer as non-streamed
      }
      if (stream) {
        res.writeHead(200, { "content-type": "text/event-stream" });
        res.write(
          `data: ${JSON.stringify({ id: "cmpl-1", object: "text_completion", model, choices: [{ index: 0, text: "o", finish_reason: null }] })}\n\n`,
        );
        res.end(
          `data: ${JSON.stringify({ id: "cmpl-1", object: "text_completion", model, choices: [{ index: 0, text: "k", finish_reason: "stop" }] })}\n\ndata: [DONE]\n\n`,
        );
        return;
      }
      res.writeHead(200, { "content-type": "application/json" }).end(
        JSON.stringify({
          id: "cmpl-1",
          object: "text_completion",
          model,
          choices: [{ index: 0, text: "ok", finish_reason: "stop" }],
          usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
        }),
      );
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as AddressInfo).port;
  return {
    server,
    port,
    hostPort: `127.0.0.1:${port}`,
    seen,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** An endpoint as `GET /llmd/endpoints` lists it (the fields the tests read). */
export interface EndpointView {
  id: string;
  url: string;
  port: number;
  ready: boolean;
  ejected_until: string | null;
  /** the last scraped snapshot (`vllm:num_requests_waiting` → waitingQueueSize, …) */
  metrics?: { waitingQueueSize: number; runningRequestsSize: number; kvCacheUsagePercent: number };
}

/** `GET <router>/llmd/endpoints`. */
export async function endpoints(routerUrl: string, init?: RequestInit): Promise<EndpointView[]> {
  const r = await fetch(`${routerUrl}/llmd/endpoints`, init);
  return ((await r.json()) as { endpoints: EndpointView[] }).endpoints;
}

/**
 * Polls `GET /llmd/endpoints` every 50 ms until `ok(endpoints)` holds.
 * @throws Error after `timeoutMs` (default 30 000) with the last view
 */
export async function waitEndpoints(
  routerUrl: string,
  ok: (eps: EndpointView[]) => boolean,
  timeoutMs = 30_000,
): Promise<EndpointView[]> {
  const deadline = Date.now() + timeoutMs;
  let last: EndpointView[] = [];
  while (Date.now() < deadline) {
    try {
      last = await endpoints(routerUrl);
      if (ok(last)) return last;
    } catch {
      // router not listening yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`endpoints not as expected after ${timeoutMs} ms: ${JSON.stringify(last)}`);
}

/**
 * Runs `count` tasks with at most `concurrency` at a time; resolves with their results in
 * task order. A task must not reject (catch inside it).
 */
export async function runBounded<T>(
  count: number,
  concurrency: number,
  task: (i: number) => Promise<T>,
): Promise<T[]> {
  const out: T[] = new Array(count);
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      out[i] = await task(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return out;
}
