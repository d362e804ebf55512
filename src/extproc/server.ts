/**
 * `llmd epp` transport: the Envoy ext_proc server (`envoy.service.ext_proc.v3.ExternalProcessor/Process`,
 * one bidirectional stream per HTTP request), running the shared request pipeline
 * (`src/requestcontrol/pipeline.ts`) — the same scheduling and request control as `llmd router`.
 *
 * State machine of llm-d `pkg/epp/handlers/server.go` (reference/epp.md §1.2), FULL_DUPLEX_STREAMED
 * both ways:
 * 1. `request_headers`: stored lower-cased; nothing is sent back yet. With `end_of_stream`
 *    (no body, e.g. GET) a **random** ready endpoint is picked at once (none → 500).
 * 2. `request_body` chunks are buffered until `end_of_stream`; then the pipeline runs and the
 *    server sends, in order, a request `HeadersResponse` (`clear_route_cache: true`,
 *    `set_headers`: `x-gateway-destination-endpoint`, `content-length`, `x-request-id` and every
 *    other non-system-owned request header — so headers added by PreRequest plugins such as
 *    `x-prefiller-host-port` reach the upstream; `remove_headers`: internal routing headers the
 *    client sent and no plugin set) with `dynamic_metadata {"envoy.lb": {"x-gateway-destination-endpoint": …}}`
 *    identical to the header, then the body as `streamed_response` chunks of ≤ 62,000 bytes,
 *    `end_of_stream` on the last. Subset hint: `metadata_context.filter_metadata["envoy.lb.subset_hint"]
 *    ["x-gateway-destination-endpoint-subset"]` (IP match; explicit `[]` → 503).
 * 3. `response_headers`: `:status` ≠ 200 counts `ModelServerError`; `content-type` containing
 *    `text/event-stream` → streaming; the served endpoint is read from
 *    `metadata_context.filter_metadata["envoy.lb"]["x-gateway-destination-endpoint-served"]`
 *    (else the first target). Reply `set_headers: x-went-into-resp-headers: true`.
 * 4. `response_body`: streaming → each chunk echoed at once (`end_of_stream` mirrored);
 *    otherwise buffered to `end_of_stream` and sent re-chunked. When the model was rewritten,
 *    `"model":"<target>"` is byte-replaced by the incoming name. Usage is parsed in passing and
 *    the Director's response hooks and EPP metrics run as in the router.
 * 5. trailers: empty `TrailersResponse`.
 * Errors → `ImmediateResponse` (status of reference/epp.md §1.6, body `inference error: <Code> - <msg>`,
 * header `x-llm-d-request-dropped-reason` when known); afterwards the stream's messages are ignored.
 * A stream that ends before the response completed runs `responseComplete` with
 * `terminationCause: client-disconnect`.
 */
import { randomUUID } from "node:crypto";
import * as grpc from "@grpc/grpc-js";
import type { EndpointStore } from "../datalayer/store.js";
import * as H from "../framework/headers.js";
import type { Endpoint } from "../framework/types.js";
import { logger } from "../log.js";
import {
  errorToResponse,
  hintIp,
  type PipelineRuntime,
  type PreparedRequest,
  prepareRequest,
  type RequestPolicies,
  type ResponseTracking,
  SYSTEM_OWNED_HEADERS,
  trackResponse,
} from "../requestcontrol/pipeline.js";
import {
  destinationMetadata,
  headersResponse,
  immediateResponse,
  streamedBodyResponses,
} from "./messages.js";
import {
  fromPbStruct,
  headerMapToRecord,
  loadProtos,
  type PbHeaderValueOption,
  type PbProcessingRequest,
  type PbProcessingResponse,
  setHeader,
} from "./proto.js";

const log = logger.child({ component: "extproc" });

/** Request path used when the headers carry none (reference/epp.md §1.2 step 2). */
export const DEFAULT_REQUEST_PATH = "/v1/completions";

/** Hop-by-hop and proxy-computed headers never copied into the request or set back. */
const NOT_FORWARDED = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "host",
  "content-length",
]);

/** Options of {@link startExtProcServer}. */
export interface ExtProcOptions {
  /** listen address (default `0.0.0.0`) */
  host?: string;
  /** listen port; 0 = a free port (default 9002 is the CLI's) */
  port: number;
  /** `grpc.ServerCredentials.createInsecure()` unless given (TLS: see `tls.ts`) */
  credentials?: grpc.ServerCredentials;
  /** which processor runs on the stream: the EPP (default) or body-based routing (§8) */
  mode?: "epp" | "bbr";
  runtime: PipelineRuntime;
  store: EndpointStore;
  /** InferenceObjective / InferenceModelRewrite policies (Kubernetes discovery) */
  policies?: RequestPolicies;
  /** ignore the proxy's subset hint (`--disable-endpoint-subset-filter`) */
  disableSubsetFilter?: boolean;
  /** request body limit, bytes (default 64 MiB) → 413 */
  maxBodyBytes?: number;
  /** random source in [0,1) for the no-body fallback (tests) */
  random?: () => number;
}

/** A running ext_proc server. */
export interface RunningExtProc {
  /** bound port */
  port: number;
  server: grpc.Server;
  /** streams in progress */
  activeStreams(): number;
  /** stops accepting streams and closes open ones */
  close(): Promise<void>;
}

type Call = grpc.ServerDuplexStream<PbProcessingRequest, PbProcessingResponse>;

/** Binds a grpc-js server; resolves with the bound port. */
export function bindServer(
  server: grpc.Server,
  address: string,
  creds: grpc.ServerCredentials,
): Promise<number> {
  return new Promise((resolve, reject) =>
    server.bindAsync(address, creds, (err, port) => (err ? reject(err) : resolve(port))),
  );
}

/**
 * Starts the ext_proc gRPC server.
 * @throws Error when the port cannot be bound
 */
export async function startExtProcServer(opts: ExtProcOptions): Promise<RunningExtProc> {
  const { ExternalProcessor } = loadProtos();
  const server = new grpc.Server({
    "grpc.max_receive_message_length": 128 * 1024 * 1024,
    "grpc.max_send_message_length": 128 * 1024 * 1024,
  });
  const streams = new Set<Call>();
  server.addService(ExternalProcessor.service, {
    Process(call: Call) {
      streams.add(call);
      const s = opts.mode === "bbr" ? new BbrStream(call) : new EppStream(call, opts);
      call.on("data", (m: PbProcessingRequest) => s.enqueue(m));
      const finish = () => {
        if (!streams.delete(call)) return;
        s.closed();
      };
      call.on("end", () => {
        finish();
        call.end();
      });
      call.on("cancelled", finish);
      call.on("error", finish);
      call.on("close", finish);
    },
  });
  const host = opts.host ?? "0.0.0.0";
  const addr = host.includes(":") ? `[${host}]:${opts.port}` : `${host}:${opts.port}`;
  const port = await bindServer(server, addr, opts.credentials ?? grpc.ServerCredentials.createInsecure());
  return {
    port,
    server,
    activeStreams: () => streams.size,
    async close() {
      for (const c of streams) c.end();
      await new Promise<void>((resolve) => {
        server.tryShutdown(() => resolve());
        setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 2000).unref();
      });
    },
  };
}

/** Base: serialises message handling per stream and writes replies in order. */
abstract class StreamBase {
  private queue: Promise<void> = Promise.resolve();
  protected finished = false;
  constructor(protected readonly call: Call) {}

  enqueue(m: PbProcessingRequest): void {
    this.queue = this.queue.then(() => this.handle(m)).catch((err) => this.fail(err));
  }

  protected send(...msgs: PbProcessingResponse[]): void {
    for (const m of msgs) this.call.write(m);
  }

  protected abstract handle(m: PbProcessingRequest): Promise<void> | void;
  protected abstract fail(err: unknown): void;
  /** the gRPC stream ended */
  abstract closed(): void;
}

/** Body-based routing (reference/epp.md §8): copies the JSON `model` into `x-gateway-model-name`. */
class BbrStream extends StreamBase {
  private chunks: Buffer[] = [];
  private requestDone = false;

  protected handle(m: PbProcessingRequest): void {
    if (m.observability_mode) return;
    switch (m.request) {
      case "request_headers":
        if (m.request_headers?.end_of_stream) {
          this.requestDone = true;
          this.send(headersResponse("request", {}, false));
        }
        return;
      case "request_body": {
        const b = m.request_body!;
        this.chunks.push(b.body);
        if (!b.end_of_stream) return;
        this.flushRequest();
        return;
      }
      case "request_trailers":
        if (!this.requestDone) this.flushRequest();
        this.send({ request_trailers: {} });
        return;
      case "response_headers":
        this.send(headersResponse("response", {}, false));
        return;
      case "response_body": {
        const b = m.response_body!;
        this.send(...streamedBodyResponses("response", b.body, b.end_of_stream));
        return;
      }
      case "response_trailers":
        this.send({ response_trailers: {} });
        return;
    }
  }

  private flushRequest(): void {
    this.requestDone = true;
    const body = Buffer.concat(this.chunks);
    this.chunks = [];
    const set: PbHeaderValueOption[] = [];
    try {
      const o = JSON.parse(body.toString("utf8")) as Record<string, unknown>;
      if (o && typeof o.model === "string" && o.model !== "")
        set.push(setHeader(H.GATEWAY_MODEL_NAME, o.model));
    } catch {
      // not JSON: routed without the model header
    }
    this.send(
      headersResponse("request", { set_headers: set }, true),
      ...streamedBodyResponses("request", body, true),
    );
  }

  protected fail(err: unknown): void {
    log.error({ err: (err as Error).message }, "body-based routing stream failed");
    this.call.destroy(err as Error);
  }

  closed(): void {}
}

/** The EPP state machine of one HTTP request (see file header). */
class EppStream extends StreamBase {
  private headers: Record<string, string> = {};
  private bodyChunks: Buffer[] = [];
  private bodyBytes = 0;
  private dispatched = false;
  private filterMetadata: Record<string, Record<string, unknown>> = {};
  private prep?: PreparedRequest;
  private tracking?: ResponseTracking;
  private streaming = false;
  private responseChunks: Buffer[] = [];

  constructor(
    call: Call,
    private readonly opts: ExtProcOptions,
  ) {
    super(call);
  }

  protected async handle(m: PbProcessingRequest): Promise<void> {
    if (this.finished || m.observability_mode) return;
    this.captureMetadata(m);
    switch (m.request) {
      case "request_headers": {
        const h = m.request_headers!;
        this.headers = headerMapToRecord(h.headers?.headers);
        if (h.end_of_stream) {
          this.dispatched = true;
          this.pickRandom();
        }
        return;
      }
      case "request_body": {
        const b = m.request_body!;
        this.bodyBytes += b.body.length;
        if (this.bodyBytes > (this.opts.maxBodyBytes ?? 64 * 1024 * 1024)) {
          this.immediate(
            413,
            "BadRequest",
            `request body exceeds ${this.opts.maxBodyBytes ?? 64 * 1024 * 1024} bytes`,
            {},
          );
          return;
        }
        this.bodyChunks.push(b.body);
        if (b.end_of_stream && !this.dispatched) await this.dispatch();
        return;
      }
      case "request_trailers":
        if (!this.dispatched) await this.dispatch();
        if (!this.finished) this.send({ request_trailers: {} });
        return;
      case "response_headers":
        this.onResponseHeaders(m);
        return;
      case "response_body":
        this.onResponseBody(m.response_body!.body, m.response_body!.end_of_stream);
        return;
      case "response_trailers":
        this.tracking?.complete();
        this.send({ response_trailers: {} });
        return;
      default:
        log.debug({ request: m.request }, "ext_proc message without a request member");
    }
  }

  private captureMetadata(m: PbProcessingRequest): void {
    const fm = m.metadata_context?.filter_metadata;
    if (!fm) return;
    for (const [ns, st] of Object.entries(fm)) this.filterMetadata[ns] = fromPbStruct(st);
  }

  /** `envoy.lb.subset_hint` list, or undefined when absent (or disabled). */
  private subsetHint(): string[] | undefined {
    if (this.opts.disableSubsetFilter) return undefined;
    const v = this.filterMetadata[H.SUBSET_HINT_NAMESPACE]?.[H.DESTINATION_ENDPOINT_SUBSET];
    if (v === undefined || v === null) return undefined;
    if (Array.isArray(v)) return v.map(String);
    if (typeof v === "string") return v === "" ? [] : v.split(",");
    return undefined;
  }

  private requestPath(): string {
    return (
      this.headers[":path"] ||
      this.headers[H.ORIGINAL_PATH] ||
      this.headers[H.FORWARDED_PATH] ||
      DEFAULT_REQUEST_PATH
    );
  }

  /** Headers as the pipeline sees them: no pseudo, hop-by-hop or internal headers. */
  private cleanHeaders(): { headers: Record<string, string>; clientInternal: string[] } {
    const headers: Record<string, string> = {};
    const clientInternal: string[] = [];
    for (const [k, v] of Object.entries(this.headers)) {
      if (k.startsWith(":") || NOT_FORWARDED.has(k)) continue;
      if (INTERNAL.has(k) || k.startsWith(H.DESTINATION_ENDPOINT)) {
        clientInternal.push(k);
        continue;
      }
      headers[k] = v;
    }
    return { headers, clientInternal };
  }

  private async dispatch(): Promise<void> {
    this.dispatched = true;
    const t0 = process.hrtime.bigint();
    const raw = this.bodyChunks.length === 1 ? this.bodyChunks[0]! : Buffer.concat(this.bodyChunks);
    this.bodyChunks = [];
    const { headers, clientInternal } = this.cleanHeaders();
    let prep: PreparedRequest;
    try {
      prep = await prepareRequest(this.opts.runtime, this.opts.store, {
        path: this.requestPath(),
        rawBody: raw,
        headers,
        subsetHint: this.subsetHint(),
        policies: this.opts.policies,
      });
    } catch (err) {
      const r = errorToResponse(err, "text");
      if (r.status >= 500 && r.code === "Internal") log.error({ err: r.body }, "request failed");
      this.finished = true;
      this.send(immediateResponse(r.status, r.body, withoutContentType(r.headers)));
      return;
    }
    if (this.finished) return;
    this.prep = prep;
    const set: PbHeaderValueOption[] = [
      setHeader(H.DESTINATION_ENDPOINT, prep.destination),
      setHeader("content-length", String(prep.body.length)),
    ];
    for (const [k, v] of Object.entries(prep.request.headers)) {
      if (k === H.DESTINATION_ENDPOINT || SYSTEM_OWNED.has(k) || k.startsWith(":") || NOT_FORWARDED.has(k))
        continue;
      set.push(setHeader(k, v));
    }
    const setKeys = new Set(set.map((h) => h.header.key));
    const remove = clientInternal.filter((k) => prep.request.headers[k] === undefined && !setKeys.has(k));
    this.tracking = trackResponse(this.opts.runtime, prep);
    this.send(
      headersResponse(
        "request",
        { set_headers: set, remove_headers: remove },
        true,
        destinationMetadata(prep.destination),
      ),
      ...streamedBodyResponses("request", prep.body, true),
    );
    this.opts.runtime.metrics.requestProcessingDuration.observe(Number(process.hrtime.bigint() - t0) / 1e9);
  }

  /** GET / no body: a random ready endpoint (llm-d `fallbackToRandomEndpoint`). */
  private pickRandom(): void {
    let ready = this.opts.store.ready();
    const hint = this.subsetHint();
    if (hint) {
      const ips = new Set(hint.map(hintIp));
      ready = ready.filter((e) => ips.has(e.metadata.address));
    }
    if (ready.length === 0) {
      this.immediate(500, "Internal", "no endpoints available for a request without a body", {});
      return;
    }
    const ep = ready[Math.floor((this.opts.random ?? Math.random)() * ready.length)]!;
    const requestId = this.headers[H.REQUEST_ID] || randomUUID();
    this.send(
      headersResponse(
        "request",
        {
          set_headers: [
            setHeader(H.DESTINATION_ENDPOINT, ep.metadata.hostPort),
            setHeader(H.REQUEST_ID, requestId),
          ],
        },
        true,
        destinationMetadata(ep.metadata.hostPort),
      ),
    );
  }

  private servedEndpoint(): Endpoint | undefined {
    const prep = this.prep;
    if (!prep) return undefined;
    const served = this.filterMetadata[H.DESTINATION_ENDPOINT_NAMESPACE]?.[H.DESTINATION_ENDPOINT_SERVED];
    if (typeof served === "string" && served !== "") {
      const t = prep.targets.find((e) => e.metadata.hostPort === served);
      if (t) return t;
      const s = this.opts.store.all().find((e) => e.metadata.hostPort === served);
      if (s) return s;
    }
    return prep.targets[0];
  }

  private onResponseHeaders(m: PbProcessingRequest): void {
    const h = headerMapToRecord(m.response_headers?.headers?.headers);
    this.streaming = (h["content-type"] ?? "").includes("text/event-stream");
    const status = Number(h[":status"] ?? "200");
    const ep = this.servedEndpoint();
    if (this.tracking && ep) this.tracking.received(status, ep, this.streaming);
    this.send(
      headersResponse("response", { set_headers: [setHeader(H.WENT_INTO_RESP_HEADERS, "true")] }, false),
    );
    if (m.response_headers?.end_of_stream) this.tracking?.complete();
  }

  private onResponseBody(body: Buffer, eos: boolean): void {
    const t0 = process.hrtime.bigint();
    this.tracking?.chunk(body);
    if (this.streaming) {
      this.send(...streamedBodyResponses("response", this.rewriteModel(body), eos));
    } else {
      this.responseChunks.push(body);
      if (eos) {
        const all = Buffer.concat(this.responseChunks);
        this.responseChunks = [];
        this.send(...streamedBodyResponses("response", this.rewriteModel(all), true));
      }
    }
    this.opts.runtime.metrics.responseProcessingDuration.observe(Number(process.hrtime.bigint() - t0) / 1e9);
    if (eos) this.tracking?.complete();
  }

  /** The client sees its own model name: `"model":"<target>"` → incoming (reference/epp.md §1.2 step 4). */
  private rewriteModel(body: Buffer): Buffer {
    const r = this.prep?.request;
    if (!r || r.targetModel === r.incomingModel) return body;
    const target = JSON.stringify(r.targetModel);
    const incoming = JSON.stringify(r.incomingModel);
    const text = body.toString("utf8");
    const out = text
      .split(`"model":${target}`)
      .join(`"model":${incoming}`)
      .split(`"model": ${target}`)
      .join(`"model": ${incoming}`);
    return out === text ? body : Buffer.from(out, "utf8");
  }

  private immediate(status: number, code: string, msg: string, headers: Record<string, string>): void {
    this.finished = true;
    this.send(immediateResponse(status, `inference error: ${code} - ${msg}`, headers));
  }

  protected fail(err: unknown): void {
    log.error({ err: (err as Error).message }, "ext_proc stream failed");
    if (!this.finished) {
      const r = errorToResponse(err, "text");
      this.finished = true;
      try {
        this.send(immediateResponse(r.status, r.body, withoutContentType(r.headers)));
      } catch {
        this.call.destroy(err as Error);
      }
    }
  }

  closed(): void {
    if (this.tracking && !this.tracking.done) this.tracking.terminate("client-disconnect");
  }
}

const INTERNAL = new Set(H.INTERNAL_HEADERS);
const SYSTEM_OWNED = new Set(SYSTEM_OWNED_HEADERS);

/** ImmediateResponse bodies are text/plain already (Envoy sets it); keep only the other headers. */
function withoutContentType(h: Record<string, string>): Record<string, string> {
  const { "content-type": _ct, ...rest } = h;
  return rest;
}
