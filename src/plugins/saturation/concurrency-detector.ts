/**
 * `concurrency-detector` — a saturation detector from the EPP's own in-flight counts; also a
 * Filter, a PreRequest and a ResponseComplete hook (which feed its in-flight tracker).
 *
 * Saturation by `concurrencyMode`:
 * - `requests`: Σ in-flight requests / (candidates × maxConcurrency);
 * - `tokens`: Σ in-flight tokens / (candidates × maxTokenConcurrency);
 * - `hybrid`: per endpoint `max(requests/maxConcurrency, tokens/maxTokenConcurrency)`, averaged.
 * An empty candidate list reads 1.0.
 *
 * As a Filter: drops endpoints whose in-flight requests (tokens, or either in hybrid mode) are
 * `≥ max·(1+headroom)`; returns the original list when every endpoint would be dropped.
 *
 * In-flight counts: `preRequest` starts the request on the primary profile's first target
 * (tokens = prompt token ids when `tokenized-prompt` is present, else ⌈body bytes / 4⌉);
 * `responseComplete` finishes it (idempotent per request id). A host that does not run the
 * Director hooks can feed {@link ConcurrencyDetector.tracker} directly.
 * Requests released by flow control but not yet scheduled are counted as **pending** (added to
 * the aggregate, spread evenly in hybrid mode) from `onDispatched` until `preRequest` moves them
 * to their endpoint, or `release`/`responseComplete` drops them; a pending entry older than
 * 30 s is dropped (a host that never reported the end).
 *
 * Parameters:
 * - `concurrencyMode` (`requests` | `tokens` | `hybrid`, default `requests`)
 * - `maxConcurrency` (requests per endpoint, integer > 0, default 100)
 * - `maxTokenConcurrency` (tokens per endpoint, integer > 0, default 1,000,000)
 * - `headroom` (fraction ≥ 0, default 0; only widens the Filter limits)
 *
 * Source: reference/epp.md §6 "Saturation detectors" (llm-d-router
 * `framework/plugins/flowcontrol/saturationdetector/concurrency`).
 */
import { z } from "zod";
import { decodeParams } from "../../framework/config/params.js";
import type { InflightCounts, InflightTracker, SaturationDetector } from "../../framework/flow-control.js";
import type { PluginFactory, PreRequest, ResponseComplete, ResponseInfo } from "../../framework/plugin.js";
import {
  type Endpoint,
  type InferenceRequest,
  type SchedulingResult,
  TOKENIZED_PROMPT,
  type TokenizedPrompt,
} from "../../framework/types.js";

export const CONCURRENCY_DETECTOR_TYPE = "concurrency-detector";

/** Defaults (reference/epp.md §6). */
export const CONCURRENCY_DEFAULTS = {
  concurrencyMode: "requests",
  maxConcurrency: 100,
  maxTokenConcurrency: 1_000_000,
  headroom: 0,
} as const;

export type ConcurrencyMode = "requests" | "tokens" | "hybrid";

const schema = z
  .object({
    concurrencyMode: z.enum(["requests", "tokens", "hybrid"]).default(CONCURRENCY_DEFAULTS.concurrencyMode),
    maxConcurrency: z.number().int().positive().default(CONCURRENCY_DEFAULTS.maxConcurrency),
    maxTokenConcurrency: z.number().int().positive().default(CONCURRENCY_DEFAULTS.maxTokenConcurrency),
    headroom: z.number().nonnegative().default(CONCURRENCY_DEFAULTS.headroom),
  })
  .strict();

/** Decoded parameters. */
export type ConcurrencyDetectorParams = z.infer<typeof schema>;

/** A simple {@link InflightTracker}: counts per endpoint id, never below zero. */
export class InflightCounter implements InflightTracker {
  private readonly counts = new Map<string, InflightCounts>();
  start(endpointId: string, tokens: number): void {
    const c = this.counts.get(endpointId) ?? { requests: 0, tokens: 0 };
    c.requests += 1;
    c.tokens += Math.max(0, tokens);
    this.counts.set(endpointId, c);
  }
  finish(endpointId: string, tokens: number): void {
    const c = this.counts.get(endpointId);
    if (c === undefined) return;
    c.requests = Math.max(0, c.requests - 1);
    c.tokens = Math.max(0, c.tokens - Math.max(0, tokens));
    if (c.requests === 0 && c.tokens === 0) this.counts.delete(endpointId);
  }
  get(endpointId: string): InflightCounts {
    const c = this.counts.get(endpointId);
    return c === undefined ? { requests: 0, tokens: 0 } : { ...c };
  }
}

/** Estimated tokens of a request: prompt token ids if tokenized, else ⌈body bytes / 4⌉. */
export function requestTokens(request: InferenceRequest): number {
  const t = request.attributes.get(TOKENIZED_PROMPT) as TokenizedPrompt | undefined;
  if (t !== undefined) return t.tokenIds.length;
  return Math.ceil(request.requestSizeBytes / 4);
}

/** Concurrency-based saturation detector and filter (see file header). */
export class ConcurrencyDetector implements SaturationDetector, PreRequest, ResponseComplete {
  readonly type = CONCURRENCY_DETECTOR_TYPE;
  readonly params: ConcurrencyDetectorParams;
  /** request id → where it was counted */
  private readonly held = new Map<string, { endpointId: string; tokens: number }>();
  /** request id → reservation made by `onDispatched` (tokens, ms since the epoch) */
  private readonly pending = new Map<string, { tokens: number; at: number }>();
  private pendingTokens = 0;
  /** ms after which an unclaimed pending reservation is dropped */
  static readonly PENDING_TIMEOUT_MS = 30_000;

  constructor(
    readonly name: string = CONCURRENCY_DETECTOR_TYPE,
    params: Partial<ConcurrencyDetectorParams> = {},
    readonly tracker: InflightTracker = new InflightCounter(),
  ) {
    this.params = { ...CONCURRENCY_DEFAULTS, ...params };
  }

  /** Saturation of one endpoint in the configured mode (fraction). */
  endpointSaturation(ep: Endpoint): number {
    const c = this.tracker.get(ep.metadata.id);
    const r = c.requests / this.params.maxConcurrency;
    const t = c.tokens / this.params.maxTokenConcurrency;
    switch (this.params.concurrencyMode) {
      case "requests":
        return r;
      case "tokens":
        return t;
      default:
        return Math.max(r, t);
    }
  }

  saturation(candidates: Endpoint[], now: number): number {
    if (candidates.length === 0) return 1;
    this.expirePending(now);
    const mode = this.params.concurrencyMode;
    const pendingR = this.pending.size;
    const pendingT = this.pendingTokens;
    if (mode === "hybrid") {
      let sum = 0;
      for (const ep of candidates) sum += this.endpointSaturation(ep);
      const pend = Math.max(
        pendingR / this.params.maxConcurrency,
        pendingT / this.params.maxTokenConcurrency,
      );
      return (sum + pend) / candidates.length;
    }
    let inflight = mode === "requests" ? pendingR : pendingT;
    for (const ep of candidates) {
      const c = this.tracker.get(ep.metadata.id);
      inflight += mode === "requests" ? c.requests : c.tokens;
    }
    const per = mode === "requests" ? this.params.maxConcurrency : this.params.maxTokenConcurrency;
    return inflight / (candidates.length * per);
  }

  onDispatched(request: InferenceRequest, now: number): void {
    if (this.pending.has(request.requestId) || this.held.has(request.requestId)) return;
    const tokens = requestTokens(request);
    this.pending.set(request.requestId, { tokens, at: now });
    this.pendingTokens += tokens;
  }

  release(request: InferenceRequest): void {
    this.dropPending(request.requestId);
  }

  /** Requests reserved by `onDispatched` and not yet placed on an endpoint. */
  get pendingRequests(): number {
    return this.pending.size;
  }

  private dropPending(id: string): void {
    const p = this.pending.get(id);
    if (p === undefined) return;
    this.pending.delete(id);
    this.pendingTokens = Math.max(0, this.pendingTokens - p.tokens);
  }

  private expirePending(now: number): void {
    // insertion order = reservation order: stop at the first fresh entry
    for (const [id, p] of this.pending) {
      if (now - p.at <= ConcurrencyDetector.PENDING_TIMEOUT_MS) break;
      this.dropPending(id);
    }
  }

  filter(_request: InferenceRequest, endpoints: Endpoint[]): Endpoint[] {
    const f = 1 + this.params.headroom;
    const reqLimit = this.params.maxConcurrency * f;
    const tokLimit = this.params.maxTokenConcurrency * f;
    const mode = this.params.concurrencyMode;
    const kept = endpoints.filter((ep) => {
      const c = this.tracker.get(ep.metadata.id);
      const overR = c.requests >= reqLimit;
      const overT = c.tokens >= tokLimit;
      return mode === "requests" ? !overR : mode === "tokens" ? !overT : !overR && !overT;
    });
    return kept.length === 0 ? endpoints : kept;
  }

  preRequest(request: InferenceRequest, result: SchedulingResult): void {
    this.dropPending(request.requestId);
    if (this.held.has(request.requestId)) return;
    const target = result.profileResults[result.primaryProfileName]?.targetEndpoints[0];
    if (target === undefined) return;
    const tokens = requestTokens(request);
    this.tracker.start(target.metadata.id, tokens);
    this.held.set(request.requestId, { endpointId: target.metadata.id, tokens });
  }

  responseComplete(request: InferenceRequest, _response: ResponseInfo): void {
    this.dropPending(request.requestId);
    const h = this.held.get(request.requestId);
    if (h === undefined) return;
    this.held.delete(request.requestId);
    this.tracker.finish(h.endpointId, h.tokens);
  }
}

/** Factory. @throws ParamsError naming the offending parameter. */
export const concurrencyDetectorFactory: PluginFactory = (name, params) =>
  new ConcurrencyDetector(name, decodeParams(schema, params));
