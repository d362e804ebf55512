/**
 * `inflight-load-producer` — a DataProducer + PreRequest + response hooks that count, per
 * endpoint, the requests the EPP sent there and that have not completed, and their tokens.
 *
 * - preRequest: on the primary profile's first target, `requests += 1` and
 *   `tokens += promptTokens − cachedTokens (+ estimated output tokens)`; prompt tokens come from
 *   {@link TOKENIZED_PROMPT} (else UTF-8 body bytes / 4), cached tokens from the largest
 *   {@link PrefixCacheMatchInfo} on the target (`matchBlocks × blockSizeTokens`, capped at the
 *   prompt).
 * - responseStreaming (first chunk): the prompt part of the tokens is released (prefill done).
 * - responseComplete: everything left of the request is released (idempotent).
 * - produce (synchronous): writes a snapshot {@link InflightLoad} `{requests, tokens}` on each
 *   candidate under {@link INFLIGHT_LOAD}.
 *
 * Parameters:
 * - `addEstimatedOutputTokens` (bool, default false): add `outputRatio × promptTokens` output
 *   tokens, capped by `maxEstimatedOutputTokens` and by the request's `max_tokens` /
 *   `max_completion_tokens`.
 * - `outputRatio` (number ≥ 0, default 1.5).
 * - `maxEstimatedOutputTokens` (int tokens > 0, optional, default no cap).
 *
 * Source: reference/epp.md §3.5 (llm-d-router `dataproducer/inflightload`).
 */
import { z } from "zod";
import { decodeParams } from "../../framework/config/params.js";
import type {
  DataProducer,
  PluginFactory,
  PreRequest,
  ResponseComplete,
  ResponseInfo,
  ResponseStreaming,
} from "../../framework/plugin.js";
import {
  type Endpoint,
  INFLIGHT_LOAD,
  type InferenceRequest,
  type InflightLoad,
  PREFIX_CACHE_MATCH_INFO,
  type PrefixCacheMatchInfo,
  type SchedulingResult,
  TOKENIZED_PROMPT,
  type TokenizedPrompt,
} from "../../framework/types.js";

export const INFLIGHT_LOAD_PRODUCER_TYPE = "inflight-load-producer";
export const DEFAULT_OUTPUT_RATIO = 1.5;

const schema = z
  .object({
    addEstimatedOutputTokens: z.boolean().default(false),
    outputRatio: z.number().nonnegative().default(DEFAULT_OUTPUT_RATIO),
    maxEstimatedOutputTokens: z.number().int().positive().optional(),
  })
  .strict();

export type InflightLoadParams = z.infer<typeof schema>;

/** What one request holds on its endpoint until released. */
interface Held {
  endpointId: string;
  promptTokens: number;
  outputTokens: number;
  promptReleased: boolean;
  done: boolean;
}

/** In-flight load tracker (see file header). */
export class InflightLoadProducer implements DataProducer, PreRequest, ResponseStreaming, ResponseComplete {
  readonly type = INFLIGHT_LOAD_PRODUCER_TYPE;
  readonly produces: readonly string[] = [INFLIGHT_LOAD];
  readonly consumes: readonly string[] = [];
  readonly params: InflightLoadParams;
  private readonly load = new Map<string, InflightLoad>();
  private readonly heldKey: string;

  constructor(
    readonly name: string = INFLIGHT_LOAD_PRODUCER_TYPE,
    params: Partial<InflightLoadParams> = {},
  ) {
    this.params = {
      addEstimatedOutputTokens: params.addEstimatedOutputTokens ?? false,
      outputRatio: params.outputRatio ?? DEFAULT_OUTPUT_RATIO,
      maxEstimatedOutputTokens: params.maxEstimatedOutputTokens,
    };
    this.heldKey = `inflight-load/${this.name}`;
  }

  /** Current load of an endpoint (a copy; zeros when unknown). */
  loadOf(endpointId: string): InflightLoad {
    const l = this.load.get(endpointId);
    return l ? { requests: l.requests, tokens: l.tokens } : { requests: 0, tokens: 0 };
  }

  produce(_request: InferenceRequest, endpoints: Endpoint[]): void {
    for (const ep of endpoints) ep.attributes.set(INFLIGHT_LOAD, this.loadOf(ep.metadata.id));
  }

  preRequest(request: InferenceRequest, result: SchedulingResult): void {
    const target = result.profileResults[result.primaryProfileName]?.targetEndpoints[0];
    if (!target || request.attributes.has(this.heldKey)) return;
    const prompt = promptTokens(request);
    const cached = Math.min(prompt, cachedTokens(target));
    const held: Held = {
      endpointId: target.metadata.id,
      promptTokens: prompt - cached,
      outputTokens: this.params.addEstimatedOutputTokens ? this.estimateOutput(request, prompt) : 0,
      promptReleased: false,
      done: false,
    };
    request.attributes.set(this.heldKey, held);
    const l = this.load.get(held.endpointId) ?? { requests: 0, tokens: 0 };
    l.requests += 1;
    l.tokens += held.promptTokens + held.outputTokens;
    this.load.set(held.endpointId, l);
  }

  /** First streamed chunk: the prompt tokens are processed. */
  responseStreaming(request: InferenceRequest, _response: ResponseInfo): void {
    const held = request.attributes.get(this.heldKey) as Held | undefined;
    if (!held || held.done || held.promptReleased) return;
    held.promptReleased = true;
    this.sub(held.endpointId, 0, held.promptTokens);
  }

  responseComplete(request: InferenceRequest, _response: ResponseInfo): void {
    const held = request.attributes.get(this.heldKey) as Held | undefined;
    if (!held || held.done) return;
    held.done = true;
    this.sub(held.endpointId, 1, (held.promptReleased ? 0 : held.promptTokens) + held.outputTokens);
  }

  private sub(id: string, requests: number, tokens: number): void {
    const l = this.load.get(id);
    if (!l) return;
    l.requests = Math.max(0, l.requests - requests);
    l.tokens = Math.max(0, l.tokens - tokens);
    if (l.requests === 0 && l.tokens === 0) this.load.delete(id);
  }

  private estimateOutput(request: InferenceRequest, prompt: number): number {
    let est = Math.round(prompt * this.params.outputRatio);
    if (this.params.maxEstimatedOutputTokens !== undefined)
      est = Math.min(est, this.params.maxEstimatedOutputTokens);
    for (const k of ["max_completion_tokens", "max_tokens"]) {
      const v = request.body[k];
      if (typeof v === "number" && v >= 0) est = Math.min(est, v);
    }
    return est;
  }
}

function promptTokens(request: InferenceRequest): number {
  const t = request.attributes.get(TOKENIZED_PROMPT) as TokenizedPrompt | undefined;
  if (t) return t.tokenIds.length;
  return Math.ceil(request.requestSizeBytes / 4);
}

/** Largest prefix-cache match written on the endpoint by any prefix producer, tokens. */
function cachedTokens(ep: Endpoint): number {
  let best = 0;
  for (const [k, v] of ep.attributes) {
    if (!k.startsWith(PREFIX_CACHE_MATCH_INFO)) continue;
    const info = v as PrefixCacheMatchInfo;
    best = Math.max(best, info.matchBlocks * info.blockSizeTokens);
  }
  return best;
}

/** Factory. @throws ParamsError naming an unknown or invalid field. */
export const inflightLoadProducerFactory: PluginFactory = (name, params) =>
  new InflightLoadProducer(name, decodeParams(schema, params));
