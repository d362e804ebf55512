/**
 * The vLLM-compatible HTTP surface of `llmd serve` (reference/engine.md §1, §4.6), on
 * `node:http`, in front of any {@link Engine}.
 *
 * Routes: `GET /v1/models`, `POST /v1/completions`, `POST /v1/chat/completions` (JSON or SSE),
 * `GET /health` (200, empty body), `GET /metrics`, `POST /tokenize`,
 * `POST /v1/completions/render` (`[{"token_ids":[…]}]`, one entry per prompt) and
 * `POST /v1/chat/completions/render` (`{"token_ids":[…]}`).
 *
 * Behaviour as vLLM: errors in the `{"error":{message,type,param,code}}` shape with the
 * integer status as `code` (unknown model → 404 "The model `x` does not exist."; prompt +
 * max_tokens over max-model-len → 400 with vLLM's message; malformed JSON → 400; unknown
 * path → 404; wrong method → 405; body over `--max-request-body-size-mb` → 413, decided from
 * Content-Length or while reading, never buffering more than the limit); SSE lines
 * `data: <json>\n\n` ending with `data: [DONE]`; errors after the stream started are sent as
 * `data: {"error":…}` before `[DONE]`. `x-request-id` is honoured (response id
 * `cmpl-<id>` / `chatcmpl-<id>`, echoed as a response header) or generated. Every response
 * carries `x-inference-pod` and `x-inference-port` (llm-d-inference-sim, §6.1).
 *
 * **Deviation:** with `enablePromptTokensDetails` (default true) `usage.prompt_tokens_details`
 * is `{"cached_tokens":N}` on every response, also when N is 0; vLLM sets it only when
 * N > 0 (reference/engine.md §1.3). With the option off it is `null` (non-stream) or absent
 * (stream).
 *
 * Not supported (400 with a clear message): `n` > 1 and several prompts in one completion
 * request. `echo`, `logprobs` and tools are ignored.
 */
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { performance } from "node:perf_hooks";
import {
  ApiError,
  badRequest,
  bodyTooLarge,
  methodNotAllowed,
  modelNotFound,
  pathNotFound,
  toApiError,
} from "../api/errors.js";
import {
  type ChatCompletionRequest,
  type CompletionRequest,
  type KvTransferParams,
  messageText,
  type ParsedRequest,
  parseJsonObject,
  parseRequest,
  requestedMaxTokens,
} from "../api/openai.js";
import { INFERENCE_POD, INFERENCE_PORT, REQUEST_ID } from "../framework/headers.js";
import { logger } from "../log.js";
import {
  combineObservers,
  type Engine,
  type EngineFinish,
  type EngineObserver,
  type EngineOutput,
} from "./engine.js";
import { SimEngine, type SimEngineOptions } from "./engines/sim/engine.js";
import { drawFailure, errorForStatus, type FailureInjection, RETURN_ERROR_HEADER } from "./failures.js";
import { ModelServerMetrics } from "./metrics.js";
import type { TemplateMessage } from "./tokenizer.js";

const log = logger.child({ component: "modelserver" });

/** Default output limit of `/v1/completions` when `max_tokens` is absent (vLLM: 16). */
export const DEFAULT_COMPLETION_MAX_TOKENS = 16;

/** Options of {@link startModelServer}. */
export interface ModelServerOptions {
  /** the engine; default: a new {@link SimEngine} built from {@link ModelServerOptions.sim} */
  engine?: Engine;
  /** sim engine options when `engine` is not given */
  sim?: Partial<SimEngineOptions>;
  /** bind address (default 127.0.0.1) */
  host?: string;
  /** port; 0 (default) picks a free one */
  port?: number;
  /** names accepted in `model` (default: the engine's model); the first one labels metrics */
  servedModelNames?: string[];
  /** request body limit, MiB (default 4, as the sim) */
  maxRequestBodySizeMb?: number;
  /** `x-inference-pod` value (default `<host>:<port>`) */
  podName?: string;
  /** always report `usage.prompt_tokens_details.cached_tokens` (default true; see module doc) */
  enablePromptTokensDetails?: boolean;
  /** `max_lora` label of `vllm:lora_requests_info` (default 1) */
  maxLoras?: number;
  /** more engine observers (e.g. a KV-event publisher), combined with the metrics' one */
  observers?: EngineObserver[];
  /** called after a successful `POST /reset_prefix_cache` (KV events: `AllBlocksCleared`) */
  onPrefixCacheReset?: () => void;
  /** P/D side-channel host advertised in `remote_host` and the layout (default: `host`) */
  sideChannelHost?: string;
  /** P/D side-channel port advertised in `remote_port` (default: the HTTP port) */
  sideChannelPort?: number;
  /** failure injection (`failures.ts`); default none (`X-Return-Error` is always honoured) */
  failures?: FailureInjection;
}

/** A listening model server. */
export interface RunningModelServer {
  /** `http://host:port` */
  url: string;
  port: number;
  engine: Engine;
  metrics: ModelServerMetrics;
  /** stops accepting, aborts running requests, closes connections */
  close(): Promise<void>;
}

interface Ctx {
  engine: Engine;
  metrics: ModelServerMetrics;
  served: Set<string>;
  servedList: string[];
  bodyLimit: number;
  promptDetails: boolean;
  podName: string;
  host: string;
  port: string;
  startedS: number;
  onPrefixCacheReset?: () => void;
  failures: FailureInjection;
}

/**
 * Starts the model server.
 * @returns once listening
 * @throws when the port cannot be bound (e.g. EADDRINUSE) or the sim options are invalid
 */
export async function startModelServer(opts: ModelServerOptions = {}): Promise<RunningModelServer> {
  const engine: Engine = opts.engine ?? new SimEngine(opts.sim ?? {});
  const servedList =
    opts.servedModelNames && opts.servedModelNames.length > 0 ? opts.servedModelNames : [engine.info.model];
  const metrics = new ModelServerMetrics(engine, { modelName: servedList[0]!, maxLoras: opts.maxLoras });
  engine.setObserver(combineObservers(metrics.observer, ...(opts.observers ?? [])));
  const host = opts.host ?? "127.0.0.1";
  const ctx: Ctx = {
    engine,
    metrics,
    served: new Set(servedList),
    servedList,
    bodyLimit: Math.floor((opts.maxRequestBodySizeMb ?? 4) * 1024 * 1024),
    promptDetails: opts.enablePromptTokensDetails ?? true,
    podName: opts.podName ?? "",
    host,
    port: "",
    startedS: Math.floor(Date.now() / 1000),
    onPrefixCacheReset: opts.onPrefixCacheReset,
    failures: opts.failures ?? { rate: 0, types: [], midStreamRate: 0 },
  };
  const server: Server = createServer((req, res) => {
    handle(ctx, req, res).catch((e) => {
      log.error({ err: e }, "unhandled request error");
      if (!res.headersSent) sendError(res, toApiError(e));
      else res.destroy();
    });
  });
  server.on("clientError", (_err, socket) => {
    if (socket.writable)
      socket.end("HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
    else socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  ctx.port = String(port);
  if (ctx.podName === "") ctx.podName = `${host}:${port}`;
  engine.pd?.setSideChannel?.(opts.sideChannelHost ?? host, opts.sideChannelPort ?? port);
  const urlHost = host.includes(":") ? `[${host}]` : host;
  let closing: Promise<void> | null = null;
  return {
    url: `http://${urlHost}:${port}`,
    port,
    engine,
    metrics,
    close() {
      closing ??= (async () => {
        const closed = new Promise<void>((r) => server.close(() => r()));
        await engine.close();
        server.closeIdleConnections();
        setImmediate(() => server.closeAllConnections());
        await closed;
      })();
      return closing;
    },
  };
}

function pathOf(url: string | undefined): string {
  const u = url ?? "/";
  const q = u.indexOf("?");
  return q >= 0 ? u.slice(0, q) : u;
}

async function handle(ctx: Ctx, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const arrival = performance.now();
  const hdr = req.headers[REQUEST_ID];
  const requestId = (Array.isArray(hdr) ? hdr[0] : hdr) || randomUUID();
  res.setHeader(REQUEST_ID, requestId);
  res.setHeader(INFERENCE_POD, ctx.podName);
  res.setHeader(INFERENCE_PORT, ctx.port);
  const path = pathOf(req.url);
  const method = req.method ?? "GET";
  try {
    switch (path) {
      case "/v1/chat/completions":
      case "/v1/completions": {
        if (method !== "POST") throw methodNotAllowed(method, path);
        const kind = path === "/v1/completions" ? "completions" : "chat";
        const parsed = parseRequest(kind, await readBody(req, ctx.bodyLimit));
        await inference(ctx, parsed, req, res, requestId, arrival);
        return;
      }
      case "/health":
        if (method !== "GET" && method !== "HEAD") throw methodNotAllowed(method, path);
        res.writeHead(200, { "content-length": "0" });
        res.end();
        return;
      case "/metrics": {
        if (method !== "GET") throw methodNotAllowed(method, path);
        const text = await ctx.metrics.metrics();
        res.writeHead(200, { "content-type": ctx.metrics.contentType });
        res.end(text);
        return;
      }
      case "/v1/models":
        if (method !== "GET") throw methodNotAllowed(method, path);
        sendJson(res, 200, modelsList(ctx));
        return;
      case "/tokenize": {
        if (method !== "POST") throw methodNotAllowed(method, path);
        const obj = parseJsonObject(await readBody(req, ctx.bodyLimit));
        if (obj.model != null) checkModel(ctx, obj.model);
        let tokens: number[];
        if (Array.isArray(obj.messages)) {
          const p = parseRequest("chat", JSON.stringify({ ...obj, model: obj.model ?? ctx.servedList[0] }));
          tokens = chatPrompt(ctx, p.body as ChatCompletionRequest).prompt;
        } else if (typeof obj.prompt === "string") {
          tokens = ctx.engine.tokenizer.encode(obj.prompt);
        } else throw badRequest("prompt (a string) or messages is required", "prompt");
        sendJson(res, 200, {
          count: tokens.length,
          max_model_len: ctx.engine.info.maxModelLen,
          tokens,
          token_strs: null,
        });
        return;
      }
      case "/v1/completions/render": {
        if (method !== "POST") throw methodNotAllowed(method, path);
        const p = parseRequest("completions", await readBody(req, ctx.bodyLimit));
        checkModel(ctx, p.body.model);
        const prompts = completionPrompts(ctx, p.body as CompletionRequest);
        sendJson(
          res,
          200,
          prompts.map((t) => ({ token_ids: t })),
        );
        return;
      }
      case "/v1/chat/completions/render": {
        if (method !== "POST") throw methodNotAllowed(method, path);
        const p = parseRequest("chat", await readBody(req, ctx.bodyLimit));
        checkModel(ctx, p.body.model);
        sendJson(res, 200, { token_ids: chatPrompt(ctx, p.body as ChatCompletionRequest).prompt });
        return;
      }
      case "/reset_prefix_cache": {
        // vLLM: POST, 200 even when the reset is refused because requests hold blocks
        if (method !== "POST") throw methodNotAllowed(method, path);
        const eng = ctx.engine as Engine & { resetPrefixCache?: () => boolean };
        if (!eng.resetPrefixCache) throw pathNotFound(method, path);
        const reset = eng.resetPrefixCache();
        if (reset) ctx.onPrefixCacheReset?.();
        else log.warn("prefix cache not reset: running requests still hold KV blocks");
        sendJson(res, 200, { reset });
        return;
      }
      default:
        if (path.startsWith("/llmd/kv/")) {
          await kvSideChannel(ctx, method, path, res);
          return;
        }
        throw pathNotFound(method, path);
    }
  } catch (e) {
    const err = toApiError(e);
    if (err.status >= 500) log.error({ err: e, path }, "request failed");
    if (res.headersSent) {
      if (!res.writableEnded && !res.destroyed) {
        res.write(`data: ${JSON.stringify(err.toBody())}\n\ndata: [DONE]\n\n`);
        res.end();
      }
      return;
    }
    sendError(res, err);
  }
}

/**
 * The P/D side channel (`kv-transfer.ts`): `GET /llmd/kv/layout` → `engine.pd.layout()`,
 * `GET /llmd/kv/blocks/<id>` → the held KV (404 when unknown or expired),
 * `POST /llmd/kv/release/<id>` → 204 (404 when unknown). 404 on all when the engine has no P/D.
 */
async function kvSideChannel(ctx: Ctx, method: string, path: string, res: ServerResponse): Promise<void> {
  const pd = ctx.engine.pd;
  if (!pd) throw pathNotFound(method, path);
  if (path === "/llmd/kv/layout") {
    if (method !== "GET") throw methodNotAllowed(method, path);
    sendJson(res, 200, pd.layout());
    return;
  }
  const blocks = "/llmd/kv/blocks/";
  const release = "/llmd/kv/release/";
  if (path.startsWith(blocks) && path.length > blocks.length) {
    if (method !== "GET") throw methodNotAllowed(method, path);
    const id = decodeURIComponent(path.slice(blocks.length));
    const held = await pd.pull(id);
    if (!held) throw new ApiError(404, `no KV held for request ${id} (unknown, released or lease expired)`);
    res.writeHead(200, { "content-type": held.contentType, "content-length": held.body.length });
    res.end(held.body);
    return;
  }
  if (path.startsWith(release) && path.length > release.length) {
    if (method !== "POST") throw methodNotAllowed(method, path);
    const id = decodeURIComponent(path.slice(release.length));
    if (!pd.release(id)) throw new ApiError(404, `no KV held for request ${id}`);
    res.writeHead(204);
    res.end();
    return;
  }
  throw pathNotFound(method, path);
}

function sendJson(res: ServerResponse, status: number, body: unknown, extra?: Record<string, string>): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
    ...extra,
  });
  res.end(text);
}

function sendError(res: ServerResponse, err: ApiError): void {
  if (res.destroyed) return;
  sendJson(res, err.status, err.toBody(), err.headers);
}

/**
 * Reads a request body up to `limit` bytes. A Content-Length over the limit is refused before
 * reading; a longer chunked body is refused as soon as it passes the limit (the rest is
 * drained and discarded by node's HTTP server, never buffered).
 * @throws ApiError 413
 */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const cl = req.headers["content-length"];
  if (cl !== undefined && Number(cl) > limit) {
    req.resume();
    return Promise.reject(bodyTooLarge(limit));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on("data", (c: Buffer) => {
      if (over) return;
      size += c.length;
      if (size > limit) {
        over = true;
        chunks.length = 0;
        reject(bodyTooLarge(limit));
        return;
      }
      chunks.push(c);
    });
    req.on("end", () => {
      if (!over) resolve(Buffer.concat(chunks, size));
    });
    req.on("error", (e) => {
      if (!over) reject(e);
    });
  });
}

function checkModel(ctx: Ctx, model: unknown): string {
  if (typeof model !== "string" || model === "")
    throw badRequest("model must be a non-empty string", "model");
  if (!ctx.served.has(model)) throw modelNotFound(model);
  return model;
}

function modelsList(ctx: Ctx): unknown {
  const info = ctx.engine.info;
  return {
    object: "list",
    data: ctx.servedList.map((id) => ({
      id,
      object: "model",
      created: ctx.startedS,
      owned_by: "vllm",
      root: info.model,
      parent: null,
      max_model_len: info.maxModelLen,
      permission: [
        {
          id: `modelperm-${id}`,
          object: "model_permission",
          created: ctx.startedS,
          allow_create_engine: false,
          allow_sampling: true,
          allow_logprobs: true,
          allow_search_indices: false,
          allow_view: true,
          allow_fine_tuning: false,
          organization: "*",
          group: null,
          is_blocking: false,
        },
      ],
    })),
  };
}

function templateMessages(body: ChatCompletionRequest): TemplateMessage[] {
  return body.messages.map((m) => ({ role: m.role, content: messageText(m) }));
}

/** Chat prompt tokens (sim chat template through the engine tokenizer) and the echo tokens. */
function chatPrompt(ctx: Ctx, body: ChatCompletionRequest): { prompt: number[]; echo: number[] } {
  const tok = ctx.engine.tokenizer;
  const msgs = templateMessages(body);
  const prompt = tok.encode(tok.applyChatTemplate(msgs, body.add_generation_prompt ?? true));
  let last = "";
  for (let i = msgs.length - 1; i >= 0; i--) {
    if (msgs[i]!.role === "user") {
      last = msgs[i]!.content;
      break;
    }
  }
  return { prompt, echo: tok.encode(last) };
}

/** Token ids of each prompt of a completion request. */
function completionPrompts(ctx: Ctx, body: CompletionRequest): number[][] {
  const tok = ctx.engine.tokenizer;
  const p = body.prompt;
  if (typeof p === "string") return [tok.encode(p)];
  if (p.length > 0 && typeof p[0] === "string") return (p as string[]).map((s) => tok.encode(s));
  if (p.length > 0 && typeof p[0] === "number") return [(p as number[]).slice()];
  return (p as number[][]).map((a) => a.slice());
}

/** Accumulates detokenized text, applies stop strings, releases text safe to stream. */
class TextOut {
  text = "";
  private emitted = 0;
  stopped: string | null = null;
  private readonly hold: number;
  constructor(private readonly stops: string[]) {
    let m = 0;
    for (const s of stops) m = Math.max(m, s.length);
    this.hold = Math.max(0, m - 1);
  }
  /** Adds text; returns true when a stop string was hit (the text is cut before it). */
  add(piece: string): boolean {
    if (this.stopped !== null || piece === "") return this.stopped !== null;
    const from = Math.max(0, this.text.length - this.hold);
    this.text += piece;
    let best = -1;
    for (const s of this.stops) {
      if (s === "") continue;
      const i = this.text.indexOf(s, from);
      if (i >= 0 && (best < 0 || i < best)) {
        best = i;
        this.stopped = s;
      }
    }
    if (best >= 0) this.text = this.text.slice(0, best);
    return best >= 0;
  }
  /** Text not yet released; holds back a possible stop-string prefix unless `final`. */
  take(final: boolean): string {
    const end =
      final || this.stopped !== null
        ? this.text.length
        : Math.max(this.emitted, this.text.length - this.hold);
    const out = this.text.slice(this.emitted, end);
    this.emitted = end;
    return out;
  }
}

function usageBody(ctx: Ctx, fin: EngineFinish, stream: boolean): Record<string, unknown> {
  const u = fin.usage;
  const body: Record<string, unknown> = {
    prompt_tokens: u.promptTokens,
    total_tokens: u.promptTokens + u.completionTokens,
    completion_tokens: u.completionTokens,
  };
  if (ctx.promptDetails) body.prompt_tokens_details = { cached_tokens: u.cachedTokens };
  else if (!stream) body.prompt_tokens_details = null;
  return body;
}

async function inference(
  ctx: Ctx,
  parsed: ParsedRequest,
  req: IncomingMessage,
  res: ServerResponse,
  requestId: string,
  arrival: number,
): Promise<void> {
  const body = parsed.body;
  const model = checkModel(ctx, body.model);
  // failure injection (failures.ts): X-Return-Error first, then the configured rate
  const forced = req.headers[RETURN_ERROR_HEADER];
  if (forced !== undefined) {
    const e = errorForStatus(Number(Array.isArray(forced) ? forced[0] : forced), model, ctx.engine.info.maxModelLen);
    if (e) throw e;
  }
  const injected = drawFailure(ctx.failures, model, ctx.engine.info.maxModelLen);
  if (injected) throw injected;
  if ((body.n ?? 1) !== 1) throw badRequest("n > 1 is not supported by this server", "n");
  const tok = ctx.engine.tokenizer;
  const maxLen = ctx.engine.info.maxModelLen;
  let prompt: number[];
  let echo: number[];
  if (parsed.kind === "chat") {
    ({ prompt, echo } = chatPrompt(ctx, parsed.body));
  } else {
    const prompts = completionPrompts(ctx, parsed.body);
    if (prompts.length !== 1)
      throw badRequest("several prompts in one request are not supported by this server", "prompt");
    prompt = prompts[0]!;
    echo = prompt;
  }
  const p = prompt.length;
  if (p === 0) throw badRequest("The prompt must contain at least one token", "prompt");
  if (p >= maxLen) {
    throw badRequest(
      `This model's maximum context length is ${maxLen} tokens. However, your request has ${p} input tokens. Please reduce the length of the input messages.`,
      parsed.kind === "chat" ? "messages" : "prompt",
    );
  }
  const requested = requestedMaxTokens(parsed);
  const maxTokens = requested ?? (parsed.kind === "completions" ? DEFAULT_COMPLETION_MAX_TOKENS : maxLen - p);
  if (maxTokens < 1) throw badRequest(`max_tokens must be at least 1, got ${maxTokens}.`, "max_tokens");
  const minTokens = body.min_tokens ?? 0;
  if (minTokens > maxTokens) {
    throw badRequest(
      `min_tokens must be less than or equal to max_tokens=${maxTokens}, got ${minTokens}.`,
      "min_tokens",
    );
  }
  if (p + maxTokens > maxLen) {
    throw badRequest(
      `This model's maximum context length is ${maxLen} tokens. However, you requested ${p + maxTokens} tokens (${p} in the messages, ${maxTokens} in the completion). Please reduce the length of the messages or completion.`,
    );
  }
  const kvIn = (body.kv_transfer_params as KvTransferParams | null | undefined) ?? null;
  if (kvIn?.do_remote_decode === true && body.stream === true) {
    throw badRequest("Prefill does not support streaming", "stream");
  }
  const stops = body.stop == null ? [] : typeof body.stop === "string" ? [body.stop] : body.stop;
  const ac = new AbortController();
  let stoppedByString = false;
  res.on("close", () => {
    if (!res.writableFinished) ac.abort();
  });
  // P/D decode leg: handshake, layout check and pull before any response byte (EnginePd.prepareRemote)
  let kvForEngine = kvIn;
  if (kvIn?.do_remote_prefill === true && ctx.engine.pd?.prepareRemote) {
    kvForEngine = await ctx.engine.pd.prepareRemote(kvIn, prompt, ac.signal);
    if (ac.signal.aborted) return;
  }
  const stream = ctx.engine.generate({
    requestId,
    promptTokens: prompt,
    echoTokens: echo,
    params: {
      maxTokens,
      minTokens,
      ignoreEos: body.ignore_eos ?? false,
      seed: body.seed ?? undefined,
      temperature: body.temperature ?? undefined,
      topP: body.top_p ?? undefined,
      topK: body.top_k ?? undefined,
    },
    cacheSalt: body.cache_salt ?? undefined,
    kvTransferParams: kvForEngine,
    signal: ac.signal,
    arrivalMs: arrival,
  });

  const isChat = parsed.kind === "chat";
  const id = `${isChat ? "chatcmpl" : "cmpl"}-${requestId}`;
  const created = Math.floor(Date.now() / 1000);
  const out = new TextOut(stops);
  const dec = tok.createDecoder?.();
  const m = ctx.metrics;
  let firstAt = 0;
  let lastAt = 0;
  let nTok = 0;
  const onTokens = (o: EngineOutput) => {
    if (o.tokens.length > 0) {
      const now = performance.now();
      for (let i = 0; i < o.tokens.length; i++) {
        if (nTok === 0) {
          firstAt = now;
          m.observeTtft((now - arrival) / 1000);
        } else m.observeItl(i === 0 ? (now - lastAt) / 1000 : 0);
        nTok++;
        const id = o.tokens[i]!;
        if (!stoppedByString && out.add(dec ? dec.push(id) : tok.decodeOne(id))) {
          stoppedByString = true;
          ac.abort();
        }
      }
      lastAt = now;
    }
    if (o.finish && dec && !stoppedByString && out.add(dec.flush())) stoppedByString = true;
  };
  const finishReason = (fin: EngineFinish) => (stoppedByString ? "stop" : fin.reason);
  const observe = (fin: EngineFinish) => {
    const end = performance.now();
    m.observeFinish(
      stoppedByString ? { ...fin, reason: "stop" } : fin,
      (end - arrival) / 1000,
      nTok > 1 ? (lastAt - firstAt) / 1000 : 0,
      maxTokens,
    );
  };

  if (body.stream === true) {
    const includeUsage = body.stream_options != null && body.stream_options.include_usage !== false;
    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache",
      connection: "keep-alive",
    });
    const object = isChat ? "chat.completion.chunk" : "text_completion";
    // SSE events of one engine output are written together (one socket write).
    let pending = "";
    // `{"id","object","created","model","choices"[,"usage"]}` with the constant head built once
    const head = `data: {"id":${JSON.stringify(id)},"object":"${object}","created":${created},"model":${JSON.stringify(model)},"choices":`;
    const send = (choices: unknown[], usage?: unknown) => {
      pending += `${head}${JSON.stringify(choices)}${usage !== undefined ? `,"usage":${JSON.stringify(usage)}` : ""}}\n\n`;
    };
    // chaos: cut the stream after its first chunk (failures.ts midStreamRate)
    let cut = ctx.failures.midStreamRate > 0 && Math.random() * 100 < ctx.failures.midStreamRate;
    let cutting = false;
    const flush = () => {
      if (pending !== "" && !res.destroyed && !cutting) {
        if (cut) {
          cut = false;
          cutting = true;
          // destroyed once the first chunk is on the wire
          res.write(pending, () => {
            ac.abort();
            res.destroy();
          });
        } else res.write(pending);
      }
      pending = "";
    };
    if (isChat) {
      send([{ index: 0, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null }]);
      flush();
    } else res.flushHeaders();
    for await (const o of stream) {
      onTokens(o);
      const piece = out.take(o.finish !== undefined);
      const fr = o.finish ? finishReason(o.finish) : null;
      const sr = o.finish ? (stoppedByString ? out.stopped : null) : null;
      if (piece !== "" || o.finish) {
        if (isChat) {
          send([
            {
              index: 0,
              delta: piece !== "" ? { content: piece } : {},
              logprobs: null,
              finish_reason: fr,
              stop_reason: sr,
            },
          ]);
        } else send([{ index: 0, text: piece, logprobs: null, finish_reason: fr, stop_reason: sr }]);
      }
      if (o.finish) {
        observe(o.finish);
        if (includeUsage) send([], usageBody(ctx, o.finish, true));
      } else flush();
    }
    if (!res.destroyed) res.end(`${pending}data: [DONE]\n\n`);
    return;
  }

  let fin: EngineFinish | undefined;
  for await (const o of stream) {
    onTokens(o);
    if (o.finish) fin = o.finish;
  }
  if (!fin) throw new ApiError(500, "engine ended without a result");
  observe(fin);
  if (res.destroyed) return;
  const text = out.take(true);
  const fr = finishReason(fin);
  const sr = stoppedByString ? out.stopped : null;
  const choice = isChat
    ? {
        index: 0,
        message: { role: "assistant", content: text, tool_calls: [] },
        logprobs: null,
        finish_reason: fr,
        stop_reason: sr,
      }
    : { index: 0, text, logprobs: null, finish_reason: fr, stop_reason: sr, prompt_logprobs: null };
  sendJson(res, 200, {
    id,
    object: isChat ? "chat.completion" : "text_completion",
    created,
    model,
    choices: [choice],
    usage: usageBody(ctx, fin, false),
    prompt_logprobs: null,
    kv_transfer_params: fin.kvTransferParams
      ? {
          ...fin.kvTransferParams,
          remote_host: fin.kvTransferParams.remote_host ?? ctx.host,
          remote_port: fin.kvTransferParams.remote_port ?? Number(ctx.port),
        }
      : null,
  });
}
