/**
 * `token-producer` (legacy type `tokenizer`, deprecated) — a DataProducer that writes the
 * request's {@link TokenizedPrompt} under {@link TOKENIZED_PROMPT} on the request.
 *
 * Backends:
 * - `estimate` (default, no parameters): no tokenizer; request text bytes zero-padded to a
 *   multiple of 4 and packed 4 bytes → 1 little-endian uint32 pseudo token (see
 *   `src/kvcache/estimate-tokens.ts` for the text of each API). Synchronous, source `estimate`.
 * - `vllm` (when `vllm.url` is set): POST `{url}/v1/completions/render` (body `{model, prompt}`,
 *   answer `[{"token_ids":[…]}]`) or `{url}/v1/chat/completions/render` (body `{model, messages,
 *   tools?}`, answer `{"token_ids":[…]}`), 5 s timeout, source `vllm`. On any failure it falls
 *   back to `estimate` and logs a warning once per producer.
 *
 * Parameters:
 * - `modelName` (string, optional): model sent to the render endpoint; default the request's
 *   target model.
 * - `vllm.url` (string URL, optional): base URL of a vLLM server with the render endpoints.
 *
 * Auto-created (as `estimate`) by the loader when a consumer needs tokens and none is
 * configured; `approx-prefix-cache-producer` also falls back to the estimate by itself.
 *
 * Source: reference/epp.md §3.5 (llm-d-router token producer; default producer registry §2.3).
 */
import { request as httpRequest } from "undici";
import { z } from "zod";
import { decodeParams } from "../../framework/config/params.js";
import type { DataProducer, PluginFactory } from "../../framework/plugin.js";
import { TOKENIZED_PROMPT, type InferenceRequest, type TokenizedPrompt } from "../../framework/types.js";
import { estimateTokens } from "../../kvcache/estimate-tokens.js";
import { logger } from "../../log.js";

export const TOKEN_PRODUCER_TYPE = "token-producer";
/** Deprecated type name of {@link TOKEN_PRODUCER_TYPE}. */
export const LEGACY_TOKENIZER_TYPE = "tokenizer";
/** Timeout of one render call, ms. */
export const RENDER_TIMEOUT_MS = 5000;

const schema = z
  .object({
    modelName: z.string().min(1).optional(),
    vllm: z.object({ url: z.url() }).strict().optional(),
  })
  .strict();

export type TokenProducerParams = z.infer<typeof schema>;

const log = logger.child({ component: TOKEN_PRODUCER_TYPE });

/** Token-producing data producer (see file header). */
export class TokenProducer implements DataProducer {
  readonly type = TOKEN_PRODUCER_TYPE;
  /** data keys written (read by the Director to order producers) */
  readonly produces: readonly string[] = [TOKENIZED_PROMPT];
  readonly consumes: readonly string[] = [];
  /** ms; the render call has its own 5 s timeout, the estimate backend is synchronous */
  readonly produceTimeoutMs?: number;
  private warned = false;

  constructor(
    readonly name: string = TOKEN_PRODUCER_TYPE,
    readonly params: TokenProducerParams = {},
  ) {
    if (params.vllm) this.produceTimeoutMs = RENDER_TIMEOUT_MS;
  }

  /** Writes the tokens; synchronous (returns undefined) for the estimate backend. */
  produce(request: InferenceRequest): void | Promise<void> {
    if (!this.params.vllm) {
      request.attributes.set(TOKENIZED_PROMPT, estimate(request));
      return;
    }
    return this.produceVllm(request, this.params.vllm.url);
  }

  private async produceVllm(request: InferenceRequest, base: string): Promise<void> {
    let tokens: TokenizedPrompt;
    try {
      tokens = { tokenIds: await this.render(request, base), source: "vllm" };
    } catch (err) {
      if (!this.warned) {
        this.warned = true;
        log.warn({ err: String(err), url: base }, "vllm render failed; falling back to the estimate backend");
      }
      tokens = estimate(request);
    }
    request.attributes.set(TOKENIZED_PROMPT, tokens);
  }

  /** Calls the render endpoint; throws on transport errors, non-200 or a malformed answer. */
  private async render(request: InferenceRequest, base: string): Promise<Uint32Array> {
    const body = request.body;
    const model = this.params.modelName ?? request.targetModel;
    const chat = Array.isArray(body.messages);
    const url = `${base.replace(/\/+$/, "")}${chat ? "/v1/chat/completions/render" : "/v1/completions/render"}`;
    const payload = chat
      ? { model, messages: body.messages, ...(body.tools !== undefined ? { tools: body.tools } : {}) }
      : { model, prompt: body.prompt };
    const res = await httpRequest(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(payload),
      headersTimeout: RENDER_TIMEOUT_MS,
      bodyTimeout: RENDER_TIMEOUT_MS,
      signal: AbortSignal.timeout(RENDER_TIMEOUT_MS),
    });
    const json = (await res.body.json()) as unknown;
    if (res.statusCode !== 200) throw new Error(`render answered HTTP ${res.statusCode}`);
    return parseRenderAnswer(json, chat);
  }
}

/**
 * Token ids of a render answer: completions `[{"token_ids":[…]}, …]` (multi-prompt answers are
 * concatenated), chat `{"token_ids":[…]}`.
 * @throws Error when the shape is not as expected
 */
export function parseRenderAnswer(json: unknown, chat: boolean): Uint32Array {
  const ids = (o: unknown): number[] => {
    const t = (o as { token_ids?: unknown } | null)?.token_ids;
    if (!Array.isArray(t) || !t.every((x) => typeof x === "number"))
      throw new Error("render answer without token_ids");
    return t as number[];
  };
  if (chat && !Array.isArray(json)) return Uint32Array.from(ids(json));
  if (Array.isArray(json)) return Uint32Array.from(json.flatMap(ids));
  return Uint32Array.from(ids(json));
}

function estimate(request: InferenceRequest): TokenizedPrompt {
  return { tokenIds: estimateTokens(request), source: "estimate" };
}

/** Factory of `token-producer` / `tokenizer`. @throws ParamsError naming an unknown or invalid field. */
export const tokenProducerFactory: PluginFactory = (name, params) =>
  new TokenProducer(name, decodeParams(schema, params));
