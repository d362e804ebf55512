/**
 * `llmd epp` ext_proc server driven by a real gRPC client replaying Envoy's FULL_DUPLEX_STREAMED
 * message sequence (reference/epp.md §1.2–1.6): exact header mutations, dynamic metadata,
 * re-chunking at 62,000 bytes, response echo, usage → response hooks and metrics, errors as
 * ImmediateResponse, subset hints, GET fallback, model rewrite, body-based routing, gRPC health
 * and TLS with the generated self-signed certificate.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { EndpointStore } from "../../src/datalayer/store.js";
import { loadConfig } from "../../src/framework/config/index.js";
import type {
  LoadedConfig,
  Plugin,
  PreRequest,
  ResponseComplete,
  ResponseInfo,
} from "../../src/framework/plugin.js";
import type { InferenceRequest } from "../../src/framework/types.js";
import { HEALTH_SERVICES, startHealthServer } from "../../src/extproc/health.js";
import { MAX_CHUNK_BYTES } from "../../src/extproc/messages.js";
import {
  fromPbStruct,
  loadProtos,
  type PbHeaderValueOption,
  type PbProcessingResponse,
  type PbStruct,
} from "../../src/extproc/proto.js";
import { generateSelfSignedCert } from "../../src/extproc/selfsigned.js";
import { type RunningExtProc, startExtProcServer } from "../../src/extproc/server.js";
import { createEppMetrics, type EppMetrics } from "../../src/metrics/epp.js";
import { builtinRegistry } from "../../src/plugins/builtins.js";
import { Director } from "../../src/requestcontrol/director.js";
import type { PipelineRuntime } from "../../src/requestcontrol/pipeline.js";
import { buildInferenceRequest } from "../../src/requestcontrol/request.js";
import { Scheduler } from "../../src/scheduler/scheduler.js";

const CONFIG = `apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: queue-scorer
- type: max-score-picker
  parameters:
    maxNumOfEndpoints: 2
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: queue-scorer
  - pluginRef: max-score-picker
`;

/** A PreRequest + ResponseComplete plugin: adds headers like the P/D plugins and records responses. */
class TestPlugin implements PreRequest, ResponseComplete, Plugin {
  readonly type = "test-header-plugin";
  readonly name = "test-header-plugin";
  completed: ResponseInfo[] = [];
  preRequest(request: InferenceRequest): void {
    request.headers["x-prefiller-host-port"] = "10.0.0.9:8000";
    request.headers["x-test-added"] = "yes";
  }
  private waiters: ((r: ResponseInfo) => void)[] = [];
  responseComplete(_request: InferenceRequest, response: ResponseInfo): void {
    this.completed.push({ ...response });
    for (const w of this.waiters.splice(0)) w({ ...response });
  }
  /** resolves with the next completed response */
  nextComplete(): Promise<ResponseInfo> {
    return new Promise((r) => this.waiters.push(r));
  }
}

function makeRuntime(extra: Plugin[]): PipelineRuntime & { metrics: EppMetrics } {
  const loaded = loadConfig(CONFIG, builtinRegistry());
  const config: LoadedConfig = { ...loaded, plugins: [...loaded.plugins, ...extra] };
  const metrics = createEppMetrics();
  const director = new Director(config, new Scheduler(config), metrics);
  return { director, metrics, buildRequest: buildInferenceRequest };
}

function makeStore(): EndpointStore {
  const store = new EndpointStore();
  const now = Date.now();
  for (const [i, queue] of [
    [1, 0],
    [2, 10],
  ] as const) {
    const ep = store.upsert({
      id: `default/pod-${i}`,
      name: `pod-${i}`,
      namespace: "default",
      address: `10.0.0.${i}`,
      port: 8000,
      hostPort: `10.0.0.${i}:8000`,
      labels: {},
    });
    ep.metrics.waitingQueueSize = queue;
    store.markScrapeOk(ep.metadata.id, now);
    store.setModels(ep.metadata.id, ["m1"]);
  }
  return store;
}

type Client = grpc.Client & { Process(): grpc.ClientDuplexStream<unknown, PbProcessingResponse> };

/** One ext_proc stream with an awaitable queue of replies. */
function open(client: Client) {
  const call = client.Process();
  const queue: PbProcessingResponse[] = [];
  const waiters: ((r: PbProcessingResponse) => void)[] = [];
  call.on("data", (r: PbProcessingResponse) => {
    const w = waiters.shift();
    if (w) w(r);
    else queue.push(r);
  });
  call.on("error", () => {});
  return {
    call,
    send: (m: unknown) => call.write(m),
    next: (): Promise<PbProcessingResponse> =>
      queue.length > 0 ? Promise.resolve(queue.shift()!) : new Promise((r) => waiters.push(r)),
    queued: () => queue.length,
  };
}

const hdrs = (h: Record<string, string>) => ({
  headers: Object.entries(h).map(([key, v]) => ({ key, raw_value: Buffer.from(v) })),
});
const setMap = (opts: PbHeaderValueOption[] | undefined): Record<string, string> =>
  Object.fromEntries(
    (opts ?? []).map((o) => [o.header.key, Buffer.from(o.header.raw_value ?? []).toString("utf8")]),
  );
const struct = (o: Record<string, unknown>): PbStruct => {
  const v = (x: unknown): unknown =>
    Array.isArray(x)
      ? { listValue: { values: x.map(v) } }
      : typeof x === "string"
        ? { stringValue: x }
        : { structValue: struct(x as Record<string, unknown>) };
  return { fields: Object.fromEntries(Object.entries(o).map(([k, x]) => [k, v(x)])) } as PbStruct;
};

const chatBody = (model: string, content: string, stream = true) =>
  Buffer.from(
    JSON.stringify({
      model,
      messages: [{ role: "user", content }],
      stream,
      ...(stream ? { stream_options: { include_usage: true } } : {}),
    }),
  );

describe("ext_proc EPP", () => {
  const plugin = new TestPlugin();
  const runtime = makeRuntime([plugin]);
  const store = makeStore();
  let ext: RunningExtProc;
  let client: Client;

  before(async () => {
    ext = await startExtProcServer({ host: "127.0.0.1", port: 0, runtime, store, random: () => 0 });
    const { ExternalProcessor } = loadProtos();
    client = new ExternalProcessor(
      `127.0.0.1:${ext.port}`,
      grpc.credentials.createInsecure(),
    ) as unknown as Client;
  });
  after(async () => {
    client.close();
    await ext.close();
  });

  test("streamed chat completion: header mutation, metadata, body, response echo, usage", async () => {
    const s = open(client);
    const body = chatBody("m1", "hello there, how are you today?");
    s.send({
      request_headers: {
        headers: hdrs({
          ":method": "POST",
          ":path": "/v1/chat/completions",
          ":authority": "gw",
          "content-type": "application/json",
          "x-llm-d-inference-objective": "critical",
          "x-kv-cache-source-host-port": "6.6.6.6:1",
          "x-gateway-destination-endpoint": "6.6.6.6:2",
          "x-user": "alice",
        }),
        end_of_stream: false,
      },
    });
    const half = Math.floor(body.length / 2);
    s.send({ request_body: { body: body.subarray(0, half), end_of_stream: false } });
    s.send({ request_body: { body: body.subarray(half), end_of_stream: true } });

    const h = await s.next();
    assert.equal(h.response, "request_headers");
    const common = h.request_headers!.response;
    assert.equal(common.clear_route_cache, true);
    const set = setMap(common.header_mutation?.set_headers);
    // queue-scorer: pod-1 (queue 0) before pod-2 (queue 10); picker returns both
    assert.equal(set["x-gateway-destination-endpoint"], "10.0.0.1:8000,10.0.0.2:8000");
    assert.equal(set["content-length"], String(body.length));
    assert.match(set["x-request-id"]!, /^[0-9a-f-]{36}$/);
    assert.equal(set["x-prefiller-host-port"], "10.0.0.9:8000");
    assert.equal(set["x-test-added"], "yes");
    assert.equal(set["x-user"], "alice");
    assert.equal(set["content-type"], "application/json");
    // system-owned and pseudo headers are not set back
    assert.equal(set["x-llm-d-inference-objective"], undefined);
    assert.equal(set[":path"], undefined);
    // a client-sent internal routing header no plugin set is removed; a client-sent destination
    // is overwritten by the EPP's (set, not removed)
    assert.deepEqual(common.header_mutation?.remove_headers, ["x-kv-cache-source-host-port"]);
    const md = fromPbStruct(h.dynamic_metadata!);
    assert.deepEqual(md, { "envoy.lb": { "x-gateway-destination-endpoint": "10.0.0.1:8000,10.0.0.2:8000" } });

    const b = await s.next();
    assert.equal(b.response, "request_body");
    const sr = b.request_body!.response.body_mutation!.streamed_response!;
    assert.deepEqual(Buffer.from(sr.body), body);
    assert.equal(sr.end_of_stream, true);

    // response phase: Envoy reports the served endpoint in metadata
    s.send({
      response_headers: {
        headers: hdrs({ ":status": "200", "content-type": "text/event-stream" }),
        end_of_stream: false,
      },
      metadata_context: {
        filter_metadata: { "envoy.lb": struct({ "x-gateway-destination-endpoint-served": "10.0.0.2:8000" }) },
      },
    });
    const rh = await s.next();
    assert.equal(rh.response, "response_headers");
    assert.deepEqual(setMap(rh.response_headers!.response.header_mutation?.set_headers), {
      "x-went-into-resp-headers": "true",
    });
    const events = [
      'data: {"id":"c1","object":"chat.completion.chunk","model":"m1","choices":[{"index":0,"delta":{"content":"Hi"}}]}\n\n',
      'data: {"id":"c1","object":"chat.completion.chunk","model":"m1","choices":[{"index":0,"delta":{"content":"!"}}]}\n\n',
      'data: {"id":"c1","object":"chat.completion.chunk","model":"m1","choices":[],"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10,"prompt_tokens_details":{"cached_tokens":4}}}\n\ndata: [DONE]\n\n',
    ];
    for (let i = 0; i < events.length; i++) {
      const eos = i === events.length - 1;
      s.send({ response_body: { body: Buffer.from(events[i]!), end_of_stream: eos } });
      // streaming: each chunk is echoed before the next is sent
      const r = await s.next();
      assert.equal(r.response, "response_body");
      const out = r.response_body!.response.body_mutation!.streamed_response!;
      assert.equal(Buffer.from(out.body).toString(), events[i]);
      assert.equal(out.end_of_stream, eos);
    }
    s.call.end();
    assert.equal(plugin.completed.length, 1);
    const done = plugin.completed[0]!;
    assert.equal(done.status, 200);
    assert.equal(done.endOfStream, true);
    assert.equal(done.endpoint.metadata.hostPort, "10.0.0.2:8000");
    assert.deepEqual(done.usage, { promptTokens: 7, completionTokens: 3, cachedTokens: 4 });
    const text = await runtime.metrics.metricsText();
    assert.match(text, /llm_d_epp_request_total\{[^}]*model_name="m1"[^}]*\} 1/);
    assert.match(text, /llm_d_epp_request_input_tokens_sum\{[^}]*model_name="m1"[^}]*\} 7\n/);
    assert.match(text, /llm_d_epp_request_output_tokens_sum\{[^}]*model_name="m1"[^}]*\} 3\n/);
    plugin.completed = [];
  });

  test("a body over 62,000 bytes is re-chunked; end_of_stream only on the last chunk", async () => {
    const s = open(client);
    const body = chatBody("m1", "x".repeat(150_000), false);
    s.send({
      request_headers: {
        headers: hdrs({ ":path": "/v1/chat/completions", "x-request-id": "rid-1" }),
        end_of_stream: false,
      },
    });
    for (let i = 0; i < body.length; i += 40_000)
      s.send({
        request_body: { body: body.subarray(i, i + 40_000), end_of_stream: i + 40_000 >= body.length },
      });
    const h = await s.next();
    const set = setMap(h.request_headers!.response.header_mutation?.set_headers);
    assert.equal(set["content-length"], String(body.length));
    assert.equal(set["x-request-id"], "rid-1");
    const expected = Math.ceil(body.length / MAX_CHUNK_BYTES);
    assert.equal(expected, 3);
    const parts: Buffer[] = [];
    for (let i = 0; i < expected; i++) {
      const r = await s.next();
      const sr = r.request_body!.response.body_mutation!.streamed_response!;
      const chunk = Buffer.from(sr.body);
      assert.ok(chunk.length <= MAX_CHUNK_BYTES, `chunk ${i} has ${chunk.length} bytes`);
      if (i < expected - 1) assert.equal(chunk.length, MAX_CHUNK_BYTES);
      assert.equal(sr.end_of_stream, i === expected - 1);
      parts.push(chunk);
    }
    assert.deepEqual(Buffer.concat(parts), body);

    // non-streaming response: buffered until end_of_stream, then sent at once
    s.send({ response_headers: { headers: hdrs({ ":status": "200", "content-type": "application/json" }) } });
    assert.equal((await s.next()).response, "response_headers");
    const json = JSON.stringify({ id: "x", model: "m1", usage: { prompt_tokens: 5, completion_tokens: 2 } });
    s.send({ response_body: { body: Buffer.from(json.slice(0, 10)), end_of_stream: false } });
    s.send({ response_body: { body: Buffer.from(json.slice(10)), end_of_stream: true } });
    const r = await s.next();
    const sr = r.response_body!.response.body_mutation!.streamed_response!;
    assert.equal(Buffer.from(sr.body).toString(), json);
    assert.equal(sr.end_of_stream, true);
    s.call.end();
    assert.deepEqual(plugin.completed.at(-1)?.usage, {
      promptTokens: 5,
      completionTokens: 2,
      cachedTokens: 0,
    });
  });

  test("unknown model → ImmediateResponse 404 NotFound", async () => {
    const s = open(client);
    s.send({ request_headers: { headers: hdrs({ ":path": "/v1/chat/completions" }), end_of_stream: false } });
    s.send({ request_body: { body: chatBody("nope", "hi"), end_of_stream: true } });
    const r = await s.next();
    assert.equal(r.response, "immediate_response");
    assert.equal(r.immediate_response!.status.code, "NotFound");
    assert.equal(
      Buffer.from(r.immediate_response!.body!).toString(),
      "inference error: NotFound - The model `nope` does not exist.",
    );
    s.call.end();
  });

  test("invalid body → ImmediateResponse 400 BadRequest", async () => {
    const s = open(client);
    s.send({ request_headers: { headers: hdrs({ ":path": "/v1/completions" }), end_of_stream: false } });
    s.send({ request_body: { body: Buffer.from("{not json"), end_of_stream: true } });
    const r = await s.next();
    assert.equal(r.immediate_response!.status.code, "BadRequest");
    assert.match(
      Buffer.from(r.immediate_response!.body!).toString(),
      /^inference error: BadRequest - Invalid JSON/,
    );
    s.call.end();
  });

  test("subset hint: IP match narrows the destination; an explicit empty list → 503", async () => {
    const s = open(client);
    s.send({
      request_headers: { headers: hdrs({ ":path": "/v1/chat/completions" }), end_of_stream: false },
      metadata_context: {
        filter_metadata: {
          "envoy.lb.subset_hint": struct({ "x-gateway-destination-endpoint-subset": ["10.0.0.2:9999"] }),
        },
      },
    });
    s.send({ request_body: { body: chatBody("m1", "hi"), end_of_stream: true } });
    const h = await s.next();
    assert.equal(
      setMap(h.request_headers!.response.header_mutation?.set_headers)["x-gateway-destination-endpoint"],
      "10.0.0.2:8000",
    );
    s.call.end();

    const e = open(client);
    e.send({ request_headers: { headers: hdrs({ ":path": "/v1/chat/completions" }), end_of_stream: false } });
    e.send({
      request_body: { body: chatBody("m1", "hi"), end_of_stream: true },
      metadata_context: {
        filter_metadata: { "envoy.lb.subset_hint": struct({ "x-gateway-destination-endpoint-subset": [] }) },
      },
    });
    const r = await e.next();
    assert.equal(r.immediate_response!.status.code, "ServiceUnavailable");
    assert.deepEqual(setMap(r.immediate_response!.headers?.set_headers), {
      "x-llm-d-request-dropped-reason": "rejected-no-endpoints",
    });
    e.call.end();
  });

  test("GET without a body → a random ready endpoint at once", async () => {
    const s = open(client);
    s.send({
      request_headers: { headers: hdrs({ ":method": "GET", ":path": "/v1/models" }), end_of_stream: true },
    });
    const h = await s.next();
    const set = setMap(h.request_headers!.response.header_mutation?.set_headers);
    assert.equal(set["x-gateway-destination-endpoint"], "10.0.0.1:8000"); // random() = 0 → first
    assert.deepEqual(fromPbStruct(h.dynamic_metadata!), {
      "envoy.lb": { "x-gateway-destination-endpoint": "10.0.0.1:8000" },
    });
    s.call.end();
  });

  test("model rewrite header: body re-marshalled upstream, response model name restored", async () => {
    const s = open(client);
    s.send({
      request_headers: {
        headers: hdrs({ ":path": "/v1/completions", "x-llm-d-model-name-rewrite": "m1" }),
        end_of_stream: false,
      },
    });
    s.send({
      request_body: {
        body: Buffer.from(JSON.stringify({ model: "alias", prompt: "hi" })),
        end_of_stream: true,
      },
    });
    const h = await s.next();
    const set = setMap(h.request_headers!.response.header_mutation?.set_headers);
    assert.equal(set["x-llm-d-model-name-rewrite"], undefined);
    const b = await s.next();
    const sent = Buffer.from(b.request_body!.response.body_mutation!.streamed_response!.body);
    assert.deepEqual(JSON.parse(sent.toString()), { model: "m1", prompt: "hi" });
    assert.equal(set["content-length"], String(sent.length));
    s.send({ response_headers: { headers: hdrs({ ":status": "200", "content-type": "application/json" }) } });
    await s.next();
    s.send({
      response_body: { body: Buffer.from('{"id":"a","model":"m1","choices":[]}'), end_of_stream: true },
    });
    const r = await s.next();
    assert.equal(
      Buffer.from(r.response_body!.response.body_mutation!.streamed_response!.body).toString(),
      '{"id":"a","model":"alias","choices":[]}',
    );
    s.call.end();
  });
});

describe("ext_proc EPP stream end", () => {
  test("a stream cancelled mid-response completes the request with client-disconnect", async () => {
    const plugin = new TestPlugin();
    const runtime = makeRuntime([plugin]);
    const ext = await startExtProcServer({ host: "127.0.0.1", port: 0, runtime, store: makeStore() });
    const { ExternalProcessor } = loadProtos();
    const client = new ExternalProcessor(
      `127.0.0.1:${ext.port}`,
      grpc.credentials.createInsecure(),
    ) as unknown as Client;
    try {
      const s = open(client);
      s.send({
        request_headers: { headers: hdrs({ ":path": "/v1/chat/completions" }), end_of_stream: false },
      });
      s.send({ request_body: { body: chatBody("m1", "hi"), end_of_stream: true } });
      await s.next();
      await s.next();
      s.send({
        response_headers: { headers: hdrs({ ":status": "200", "content-type": "text/event-stream" }) },
      });
      await s.next();
      s.send({ response_body: { body: Buffer.from('data: {"choices":[]}\n\n'), end_of_stream: false } });
      await s.next();
      const done = plugin.nextComplete();
      s.call.cancel();
      const info = await done;
      assert.equal(info.terminationCause, "client-disconnect");
      assert.equal(info.endOfStream, false);
      const text = await runtime.metrics.metricsText();
      assert.match(text, /llm_d_epp_request_running\{[^}]*model_name="m1"[^}]*\} 0\n/);
    } finally {
      client.close();
      await ext.close();
    }
  });
});

describe("ext_proc EPP without endpoints", () => {
  test("no ready endpoint → ImmediateResponse 503 with drop reason", async () => {
    const ext = await startExtProcServer({
      host: "127.0.0.1",
      port: 0,
      runtime: makeRuntime([]),
      store: new EndpointStore(),
    });
    const { ExternalProcessor } = loadProtos();
    const client = new ExternalProcessor(
      `127.0.0.1:${ext.port}`,
      grpc.credentials.createInsecure(),
    ) as unknown as Client;
    try {
      const s = open(client);
      s.send({
        request_headers: { headers: hdrs({ ":path": "/v1/chat/completions" }), end_of_stream: false },
      });
      s.send({ request_body: { body: chatBody("m1", "hi"), end_of_stream: true } });
      const r = await s.next();
      assert.equal(r.immediate_response!.status.code, "ServiceUnavailable");
      assert.equal(
        Buffer.from(r.immediate_response!.body!).toString(),
        "inference error: ServiceUnavailable - no ready endpoints in the pool",
      );
      assert.deepEqual(setMap(r.immediate_response!.headers?.set_headers), {
        "x-llm-d-request-dropped-reason": "rejected-no-endpoints",
      });
      s.call.end();
    } finally {
      client.close();
      await ext.close();
    }
  });
});

describe("body-based routing and TLS", () => {
  test("BBR copies the model into x-gateway-model-name with clear_route_cache", async () => {
    const ext = await startExtProcServer({
      host: "127.0.0.1",
      port: 0,
      mode: "bbr",
      runtime: makeRuntime([]),
      store: new EndpointStore(),
    });
    const { ExternalProcessor } = loadProtos();
    const client = new ExternalProcessor(
      `127.0.0.1:${ext.port}`,
      grpc.credentials.createInsecure(),
    ) as unknown as Client;
    try {
      const s = open(client);
      const body = chatBody("llama-3", "hi");
      s.send({
        request_headers: { headers: hdrs({ ":path": "/v1/chat/completions" }), end_of_stream: false },
      });
      s.send({ request_body: { body, end_of_stream: true } });
      const h = await s.next();
      assert.equal(h.request_headers!.response.clear_route_cache, true);
      assert.deepEqual(setMap(h.request_headers!.response.header_mutation?.set_headers), {
        "x-gateway-model-name": "llama-3",
      });
      const b = await s.next();
      assert.deepEqual(Buffer.from(b.request_body!.response.body_mutation!.streamed_response!.body), body);
      s.call.end();
    } finally {
      client.close();
      await ext.close();
    }
  });

  test("TLS with the generated self-signed certificate", async () => {
    const { cert, key } = generateSelfSignedCert();
    const ext = await startExtProcServer({
      host: "127.0.0.1",
      port: 0,
      runtime: makeRuntime([]),
      store: makeStore(),
      credentials: grpc.ServerCredentials.createSsl(null, [
        { cert_chain: Buffer.from(cert), private_key: Buffer.from(key) },
      ]),
    });
    const { ExternalProcessor } = loadProtos();
    const client = new ExternalProcessor(
      `127.0.0.1:${ext.port}`,
      grpc.credentials.createSsl(Buffer.from(cert)),
      { "grpc.ssl_target_name_override": "localhost" },
    ) as unknown as Client;
    try {
      const s = open(client);
      s.send({
        request_headers: { headers: hdrs({ ":path": "/v1/chat/completions" }), end_of_stream: false },
      });
      s.send({ request_body: { body: chatBody("m1", "hi"), end_of_stream: true } });
      const h = await s.next();
      assert.equal(
        setMap(h.request_headers!.response.header_mutation?.set_headers)["x-gateway-destination-endpoint"],
        "10.0.0.1:8000,10.0.0.2:8000",
      );
      s.call.end();
    } finally {
      client.close();
      await ext.close();
    }
  });
});

describe("gRPC health", () => {
  test("liveness always serving; readiness and the ext_proc service follow ready()", async () => {
    let ready = false;
    const h = await startHealthServer({
      host: "127.0.0.1",
      port: 0,
      ready: () => ready,
      watchIntervalMs: 10,
    });
    const { Health } = loadProtos();
    const client = new Health(
      `127.0.0.1:${h.port}`,
      grpc.credentials.createInsecure(),
    ) as unknown as grpc.Client & {
      Check(
        req: { service: string },
        cb: (err: grpc.ServiceError | null, res?: { status: string }) => void,
      ): void;
    };
    const check = (service: string) =>
      new Promise<string>((resolve, reject) =>
        client.Check({ service }, (err, res) => (err ? reject(err) : resolve(res!.status))),
      );
    try {
      assert.equal(await check(HEALTH_SERVICES.liveness), "SERVING");
      assert.equal(await check(HEALTH_SERVICES.readiness), "NOT_SERVING");
      assert.equal(await check(HEALTH_SERVICES.extProc), "NOT_SERVING");
      ready = true;
      assert.equal(await check(HEALTH_SERVICES.readiness), "SERVING");
      assert.equal(await check("envoy.service.ext_proc.v3.ExternalProcessor"), "SERVING");
      await assert.rejects(check("nope"), (e: grpc.ServiceError) => e.code === grpc.status.NOT_FOUND);
      // Watch streams the current status, then changes
      const w = (
        client as unknown as { Watch(r: { service: string }): grpc.ClientReadableStream<{ status: string }> }
      ).Watch({
        service: "readiness",
      });
      const statuses: string[] = [];
      const gotTwo = new Promise<void>((resolve) =>
        w.on("data", (m: { status: string }) => {
          statuses.push(m.status);
          if (statuses.length === 1) ready = false;
          if (statuses.length === 2) resolve();
        }),
      );
      w.on("error", () => {});
      await gotTwo;
      w.cancel();
      assert.deepEqual(statuses, ["SERVING", "NOT_SERVING"]);
    } finally {
      client.close();
      await h.close();
    }
  });
});
