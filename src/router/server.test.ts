/**
 * Router behaviour against fake upstreams (node:http on 127.0.0.1): internal headers never
 * reach an upstream, fallback to the next candidate before the first byte, passive outlier
 * ejection, error event on a mid-stream failure, API keys, FailOpen, graceful drain.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { createEppRuntime } from "../cli/epp-runtime.js";
import { EndpointStore } from "../datalayer/store.js";
import type { FlowControlAdmission } from "../flowcontrol/admission.js";
import { EppError } from "../framework/errors.js";
import type { Endpoint } from "../framework/types.js";
import { type RunningRouter, startRouter } from "./server.js";

type Handler = (req: IncomingMessage, body: string, res: ServerResponse) => void;

interface Upstream {
  server: Server;
  port: number;
  seen: { headers: IncomingMessage["headers"]; body: string }[];
  handler: Handler;
}

const upstreams: Upstream[] = [];
const routers: RunningRouter[] = [];
after(async () => {
  for (const r of routers) await r.close(100);
  for (const u of upstreams) u.server.close();
});

const okJson: Handler = (_req, _body, res) => {
  const b = JSON.stringify({
    id: "cmpl-1",
    object: "text_completion",
    choices: [{ index: 0, text: "hi", finish_reason: "stop" }],
    usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 },
  });
  res.writeHead(200, { "content-type": "application/json" }).end(b);
};

async function upstream(handler: Handler = okJson): Promise<Upstream> {
  const u: Upstream = { server: undefined as never, port: 0, seen: [], handler };
  u.server = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => {
      body += c;
    });
    req.on("end", () => {
      u.seen.push({ headers: req.headers, body });
      u.handler(req, body, res);
    });
  });
  u.server.listen(0, "127.0.0.1");
  await once(u.server, "listening");
  u.port = (u.server.address() as AddressInfo).port;
  upstreams.push(u);
  return u;
}

function readyStore(ports: number[]): { store: EndpointStore; eps: Endpoint[] } {
  const store = new EndpointStore();
  const eps = ports.map((port, i) => {
    const ep = store.upsert({
      id: `default/s${i}`,
      name: `s${i}`,
      namespace: "default",
      address: "127.0.0.1",
      port,
      hostPort: `127.0.0.1:${port}`,
      labels: {},
    });
    store.setModels(ep.metadata.id, ["m"]);
    store.markScrapeOk(ep.metadata.id, Date.now());
    return ep;
  });
  return { store, eps };
}

async function router(store: EndpointStore, extra: Partial<Parameters<typeof startRouter>[0]> = {}) {
  const r = await startRouter({ port: 0, store, runtime: createEppRuntime(), ...extra });
  routers.push(r);
  return r;
}

const post = (url: string, body: unknown, headers: Record<string, string> = {}, signal?: AbortSignal) =>
  fetch(`${url}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
    signal,
  });

describe("router", () => {
  it("strips client-supplied internal headers before they reach an upstream", async () => {
    const u = await upstream();
    const { store } = readyStore([u.port]);
    const r = await router(store);
    const res = await post(
      r.url,
      { model: "m", prompt: "x" },
      {
        "x-prefiller-host-port": "10.9.9.9:8000",
        "x-gateway-destination-endpoint": "10.9.9.9:8000",
        "x-gateway-destination-endpoint-served": "evil",
        "x-request-id": "rid-1",
      },
    );
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("x-request-id"), "rid-1");
    const h = u.seen[0]!.headers;
    assert.equal(h["x-prefiller-host-port"], undefined);
    assert.equal(h["x-gateway-destination-endpoint"], undefined);
    assert.equal(h["x-gateway-destination-endpoint-served"], undefined);
    assert.equal(h["x-request-id"], "rid-1", "request id propagated");
  });

  it("falls back to the next candidate when an upstream refuses or answers 503 before the first byte", async () => {
    const bad = await upstream((_q, _b, res) => {
      res.writeHead(503, { "content-type": "application/json" }).end('{"error":{"message":"overloaded"}}');
    });
    const good = await upstream();
    const { store } = readyStore([bad.port, good.port]);
    const r = await router(store, { outlier: false });
    for (let i = 0; i < 6; i++) {
      const res = await post(r.url, { model: "m", prompt: `q${i}` });
      assert.equal(res.status, 200, "every request served by the healthy endpoint");
      await res.text();
    }
    assert.equal(good.seen.length, 6);
  });

  it("ejects an endpoint after consecutive failures and brings it back after the ejection", async () => {
    const flaky = await upstream((_q, _b, res) => res.writeHead(502).end());
    const good = await upstream();
    const { store, eps } = readyStore([flaky.port, good.port]);
    eps[1]!.metrics.waitingQueueSize = 5; // the scheduler prefers the flaky endpoint while it is in the pool
    const r = await router(store, { outlier: { consecutiveFailures: 2, baseEjectionMs: 60_000 } });
    for (let i = 0; i < 4; i++) await (await post(r.url, { model: "m", prompt: `e${i}` })).text();
    const h = store.health(eps[0]!.metadata.id)!;
    assert.ok(h.ejectedUntil > Date.now(), "flaky endpoint ejected");
    assert.ok(!store.ready().includes(eps[0]!), "an ejected endpoint is not a candidate");
    const before = flaky.seen.length;
    for (let i = 0; i < 3; i++)
      assert.equal((await post(r.url, { model: "m", prompt: `f${i}` })).status, 200);
    assert.equal(flaky.seen.length, before, "no traffic to the ejected endpoint");
    store.eject(eps[0]!.metadata.id, Date.now() - 1); // the ejection period is over
    assert.ok(store.ready().includes(eps[0]!), "back in the pool");
  });

  it("ends a stream that fails midway with an error event, never a silent truncation", async () => {
    const u = await upstream((_q, _b, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write('data: {"choices":[{"index":0,"text":"a"}]}\n\n');
      setTimeout(() => res.socket?.destroy(), 20);
    });
    const { store } = readyStore([u.port]);
    const r = await router(store, { outlier: false });
    const res = await post(r.url, { model: "m", prompt: "x", stream: true });
    assert.equal(res.status, 200);
    const text = await res.text();
    assert.match(text, /data: \{"choices"/);
    assert.match(text, /"error":\{"message":"upstream 127\.0\.0\.1:\d+ failed mid-stream/);
    assert.match(text, /data: \[DONE\]\n\n$/);
  });

  it("passes a large non-streamed answer through intact (backpressure) and a big refusal body is dropped", async () => {
    const big = "x".repeat(6 * 1024 * 1024);
    const refusing = await upstream((_q, _b, res) => {
      res.writeHead(503, { "content-type": "text/plain" }).end("r".repeat(512 * 1024));
    });
    const u = await upstream((_q, _b, res) => {
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ text: big }));
    });
    const { store, eps } = readyStore([refusing.port, u.port]);
    eps[1]!.metrics.waitingQueueSize = 5; // the refusing endpoint is tried first
    const r = await router(store, { outlier: false });
    for (let i = 0; i < 2; i++) {
      const res = await post(r.url, { model: "m", prompt: `big${i}` });
      assert.equal(res.status, 200);
      const body = (await res.json()) as { text: string };
      assert.equal(body.text.length, big.length);
    }
    assert.equal(refusing.seen.length, 2, "the refusing endpoint was tried first");
  });

  it("a client leaving mid-stream aborts the upstream and the request stops counting as running", async () => {
    let upstreamClosed!: () => void;
    const closed = new Promise<void>((r) => {
      upstreamClosed = r;
    });
    const u = await upstream((_q, _b, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write('data: {"choices":[{"index":0,"text":"a"}]}\n\n');
      const t = setInterval(() => res.write('data: {"choices":[{"index":0,"text":"b"}]}\n\n'), 10);
      res.on("close", () => {
        clearInterval(t);
        upstreamClosed();
      });
    });
    const { store } = readyStore([u.port]);
    const runtime = createEppRuntime();
    const r = await router(store, { runtime, outlier: false });
    const ac = new AbortController();
    const res = await post(r.url, { model: "m", prompt: "x", stream: true }, {}, ac.signal);
    assert.equal(res.status, 200);
    const reader = res.body!.getReader();
    await reader.read();
    ac.abort();
    await closed; // the router aborted its upstream request
    const deadline = Date.now() + 2000;
    while (r.inFlight() > 0 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 5));
    assert.equal(r.inFlight(), 0);
    const text = await runtime.metrics.metricsText();
    assert.match(text, /^llm_d_epp_request_running\{[^}]*\} 0$/m);
  });

  it("FailOpen: a scheduling failure (not an admission verdict) goes to any ready endpoint; FailClose answers it", async () => {
    const u = await upstream();
    const { store } = readyStore([u.port]);
    const failing = (err: Error) => {
      const rt = createEppRuntime();
      const director = rt.director;
      return {
        ...rt,
        director: {
          handleRequest: async () => {
            throw err;
          },
          responseReceived: director.responseReceived.bind(director),
          responseStreaming: director.responseStreaming.bind(director),
          responseComplete: director.responseComplete.bind(director),
        },
      };
    };
    const broken = new EppError("Internal", "scheduler exploded");
    const open = await router(store, { runtime: failing(broken), failOpen: true });
    const served = await post(open.url, { model: "m", prompt: "x" });
    assert.equal(served.status, 200, "FailOpen served it");
    await served.text();
    const closed = await router(store, { runtime: failing(broken) });
    const refused = await post(closed.url, { model: "m", prompt: "x" });
    assert.equal(refused.status, 500);
    assert.match(((await refused.json()) as { error: { message: string } }).error.message, /exploded/);
    const verdict = new EppError("ResourceExhausted", "saturated", "rejected-saturated");
    const shed = await router(store, { runtime: failing(verdict), failOpen: true });
    const r = await post(shed.url, { model: "m", prompt: "x" });
    assert.equal(r.status, 429, "an admission verdict is not failed open");
    assert.equal(r.headers.get("x-llm-d-request-dropped-reason"), "rejected-saturated");
    await r.text();
    assert.equal(u.seen.length, 1, "only the FailOpen request reached the upstream");
  });

  it("flow control: a client leaving while its request is queued drops it from the queue", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const u = await upstream((req, body, res) => {
      void gate.then(() => okJson(req, body, res));
    });
    const { store } = readyStore([u.port]);
    const dir = mkdtempSync(join(tmpdir(), "llmd-router-fc-"));
    const file = join(dir, "epp.yaml");
    writeFileSync(
      file,
      `apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
featureGates: [flowControl]
plugins:
- type: queue-scorer
- type: concurrency-detector
  parameters: {maxConcurrency: 1}
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
  saturationDetector: {pluginRef: concurrency-detector}
`,
    );
    const runtime = createEppRuntime({ configFile: file });
    rmSync(dir, { recursive: true });
    const controller = (runtime.admission as FlowControlAdmission).controller;
    const r = await router(store, { runtime, outlier: false });
    const first = post(r.url, { model: "m", prompt: "held" });
    while (u.seen.length === 0) await new Promise((res) => setTimeout(res, 5));
    const ac = new AbortController();
    const second = post(r.url, { model: "m", prompt: "queued" }, {}, ac.signal).catch((e: Error) => e);
    const deadline = Date.now() + 2000;
    while (controller.queued === 0 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 5));
    assert.equal(controller.queued, 1, "the second request waits in the flow-control queue");
    ac.abort();
    assert.ok((await second) instanceof Error);
    while (controller.queued > 0 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 5));
    assert.equal(controller.queued, 0, "dropped from the queue when its client left");
    release();
    assert.equal((await first).status, 200);
    assert.equal(u.seen.length, 1, "the abandoned request never reached an upstream");
    runtime.admission.shutdown();
  });

  it("requires a bearer key when keys are configured (401 in the OpenAI shape)", async () => {
    const u = await upstream();
    const { store } = readyStore([u.port]);
    const r = await router(store, { apiKeys: ["secret-1", "secret-2"] });
    const none = await post(r.url, { model: "m", prompt: "x" });
    assert.equal(none.status, 401);
    const body = (await none.json()) as { error: { type: string; code: string } };
    assert.equal(body.error.type, "AuthenticationError");
    assert.equal(body.error.code, "invalid_api_key");
    const wrong = await post(r.url, { model: "m", prompt: "x" }, { authorization: "Bearer secret-3" });
    assert.equal(wrong.status, 401);
    await wrong.text();
    const ok = await post(r.url, { model: "m", prompt: "x" }, { authorization: "Bearer secret-2" });
    assert.equal(ok.status, 200);
    await ok.text();
    assert.equal(u.seen.length, 1, "unauthenticated requests never reach an upstream");
    assert.equal((await fetch(`${r.url}/health`)).status, 200, "health stays open");
  });

  it("drains on close: in-flight requests finish, new ones are refused", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const u = await upstream((req, body, res) => {
      void gate.then(() => okJson(req, body, res));
    });
    const { store } = readyStore([u.port]);
    const r = await startRouter({ port: 0, store, runtime: createEppRuntime() });
    const inflight = post(r.url, { model: "m", prompt: "slow" });
    while (u.seen.length === 0) await new Promise((res) => setTimeout(res, 5));
    const closing = r.close(5000);
    setTimeout(release, 50);
    const res = await inflight;
    assert.equal(res.status, 200, "the in-flight request completed during the drain");
    await res.text();
    await closing;
    await assert.rejects(post(r.url, { model: "m", prompt: "late" }), "closed after the drain");
  });
});
