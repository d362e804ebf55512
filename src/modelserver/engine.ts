/**
 * The one engine interface behind the model server's HTTP surface (DESIGN.md "Two engines").
 * `sim` implements it now; a llama.cpp engine implements the same later, and the same
 * contract suite (`contract.ts`) runs against both.
 *
 * The HTTP layer owns parsing, validation, chat templating (through the engine's
 * {@link Tokenizer}), detokenization, stop strings and the wire format. The engine gets
 * token ids, sampling parameters and an AbortSignal, and yields generated token ids and one
 * final {@link EngineFinish} with usage.
 */
import type { KvTransferParams } from "../api/openai.js";
import type { KvLayout } from "./kv-transfer.js";
import type { Tokenizer } from "./tokenizer.js";

/** Why a generation ended (vLLM finish reasons, reference/engine.md §1.3). */
export type FinishReason = "stop" | "length" | "abort";

/** Sampling parameters the engine honours. Token counts are tokens. */
export interface SamplingParams {
  /** effective output limit (already capped to max_model_len − prompt), ≥ 1 */
  maxTokens: number;
  /** minimum output tokens before an EOS may end the request */
  minTokens: number;
  /** keep generating past EOS up to `maxTokens` */
  ignoreEos: boolean;
  /** request seed (`seed` field), if any */
  seed?: number;
  /** temperature (0..2), informational for the sim */
  temperature?: number;
  /** nucleus sampling mass (0..1], informational for the sim */
  topP?: number;
  /** top-k (≤ 0 or −1 = off, as vLLM), informational for the sim */
  topK?: number;
}

/** One generation request as the engine sees it. */
export interface EngineRequest {
  /** request id (x-request-id or generated) */
  requestId: string;
  /** prompt token ids (non-empty) */
  promptTokens: number[];
  params: SamplingParams;
  /** `cache_salt`: mixed into the first block hash (reference/engine.md §1.2, §4.1) */
  cacheSalt?: string;
  /** P/D parameters from the request body (reference/engine.md §5.2); engines may ignore them */
  kvTransferParams?: KvTransferParams | null;
  /**
   * Token ids an echoing engine returns (sim `--mode echo`: the prompt of a completion or the
   * last user message of a chat). Real engines ignore it. Defaults to `promptTokens`.
   */
  echoTokens?: number[];
  /** aborting it stops the request and frees its KV blocks */
  signal?: AbortSignal;
  /** wall-clock ms (performance.now()) when the server received the request */
  arrivalMs?: number;
}

/** Token usage of a finished request (tokens). */
export interface EngineUsage {
  promptTokens: number;
  /** prompt tokens served from the prefix cache on first admission */
  cachedTokens: number;
  completionTokens: number;
}

/**
 * Per-request phase times, wall-clock seconds (as a client sees them; time-scaled engines
 * report shrunk times). Used for `vllm:request_{queue,prefill,decode,inference}_time_seconds`.
 */
export interface EngineTimings {
  /** arrival → first scheduled (WAITING phase) */
  queueS: number;
  /** first scheduled → first token */
  prefillS: number;
  /** first token → last token */
  decodeS: number;
  /** first scheduled → last token (RUNNING phase) */
  inferenceS: number;
}

/** The last output of a request. */
export interface EngineFinish {
  reason: FinishReason;
  usage: EngineUsage;
  timings: EngineTimings;
  /** P/D response parameters (top-level `kv_transfer_params` of the response), if any */
  kvTransferParams?: KvTransferParams | null;
}

/** What {@link Engine.generate} yields: new token ids, and `finish` on the last output. */
export interface EngineOutput {
  /** token ids generated since the previous output (may be empty on the final output) */
  tokens: number[];
  finish?: EngineFinish;
}

/**
 * A point-in-time view of engine state; `/metrics` gauges and counters read it at scrape
 * time. Counters are cumulative since start.
 */
export interface EngineStats {
  /** requests in the running batch */
  running: number;
  /** requests waiting (preempted ones included) */
  waiting: number;
  /** 1 − free/total blocks, fraction 0..1 (cached-unreferenced blocks count as free) */
  kvCacheUsage: number;
  /** prompt tokens looked up in the prefix cache */
  prefixCacheQueries: number;
  /** prompt tokens found in the prefix cache */
  prefixCacheHits: number;
  /** prompt tokens of scheduled requests */
  promptTokens: number;
  /** generated tokens */
  generationTokens: number;
  /** preemptions */
  preemptions: number;
}

/** Static facts about the engine (`/v1/models`, `cache_config_info`). */
export interface EngineInfo {
  /** model name (`--model`) */
  model: string;
  /** max prompt + output tokens */
  maxModelLen: number;
  /** tokens per KV block */
  blockSize: number;
  /** KV blocks on the (simulated) accelerator */
  numGpuBlocks: number;
  /** engine kind, e.g. `sim` */
  kind: string;
}

/**
 * A run of consecutive full blocks of one sequence that became cached (the data of a vLLM
 * `BlockStored` KV event, reference/engine.md §3.3).
 */
export interface StoredBlocks {
  /** engine hashes of the new blocks, in order */
  blockHashes: bigint[];
  /** tokens of all those blocks concatenated (`blockHashes.length × blockSize`) */
  tokenIds: number[];
  /** hash of the block before the first new one; null when the run starts the sequence */
  parentHash: bigint | null;
  /** tokens per block */
  blockSize: number;
}

/**
 * One KV transfer (or a failed one) seen by the side that pulls it, the decode server — the
 * data of vLLM's `NixlPromMetrics` (reference/engine.md §2.5). Also reported for the prefill
 * side's expired leases (`expired`).
 */
export interface KvTransferEvent {
  /**
   * "pull": a READ by this (decode) server; "expired": a lease of KV held here for a remote
   * decode ran out; "notify": only a notification (release) outcome (see `notifyFailed`)
   */
  kind: "pull" | "expired" | "notify";
  /** false when the transfer failed (layout refused, pull error) */
  ok: boolean;
  /** bytes moved (0 when failed) */
  bytes: number;
  /** request posted → data complete, seconds (NIXL xferDuration) */
  xferS: number;
  /** time to post the request (handshake + request sent), seconds */
  postS: number;
  /** descriptors (blocks) in the transfer */
  descriptors: number;
  /** the notification (release) to the prefill side failed */
  notifyFailed?: boolean;
}

/**
 * Receives engine events: the metrics histograms (`onIteration`) and KV-event publishers
 * (`onBlocksStored`, `onBlocksRemoved`, `onStepEnd`). Combine several with
 * {@link combineObservers}.
 */
export interface EngineObserver {
  /** one engine step scheduled `tokens` tokens (prefill + decode) */
  onIteration?(tokens: number): void;
  /** full blocks became cached (prompt blocks after prefill, blocks filled while decoding, pulled blocks) */
  onBlocksStored?(e: StoredBlocks): void;
  /** cached blocks were evicted (their hashes dropped) */
  onBlocksRemoved?(blockHashes: bigint[]): void;
  /** a step (or a KV pull) finished: events of that step are complete (publishers flush here) */
  onStepEnd?(): void;
  /** a P/D KV transfer finished or failed (`vllm:nixl_*` metrics) */
  onKvTransfer?(e: KvTransferEvent): void;
}

/** One observer that forwards every event to each of `obs` in order. */
export function combineObservers(...obs: (EngineObserver | null | undefined)[]): EngineObserver {
  const list = obs.filter((o): o is EngineObserver => o != null);
  return {
    onIteration: (t) => {
      for (const o of list) o.onIteration?.(t);
    },
    onBlocksStored: (e) => {
      for (const o of list) o.onBlocksStored?.(e);
    },
    onBlocksRemoved: (h) => {
      for (const o of list) o.onBlocksRemoved?.(h);
    },
    onStepEnd: () => {
      for (const o of list) o.onStepEnd?.();
    },
    onKvTransfer: (e) => {
      for (const o of list) o.onKvTransfer?.(e);
    },
  };
}

/**
 * P/D support of an engine (reference/engine.md §5.2): it prefills for a remote decode
 * (request `kv_transfer_params.do_remote_decode`: hold the KV, answer with
 * `kv_transfer_params` in {@link EngineFinish}) and decodes from a remote prefill
 * (`do_remote_prefill`: check the layout, pull, notify, then decode without recomputing the
 * prompt). The HTTP surface serves the side channel of `kv-transfer.ts` from these methods.
 */
export interface EnginePd {
  /** the layout served on `GET /llmd/kv/layout` */
  layout(): KvLayout;
  /**
   * The KV held for a remote decode, for `GET /llmd/kv/blocks/<id>`; null when unknown or
   * expired (→ 404).
   */
  pull(remoteRequestId: string): Promise<{ contentType: string; body: Buffer } | null>;
  /** NIXL notification: free what is held for this request; false when unknown (→ 404) */
  release(remoteRequestId: string): boolean;
  /**
   * Called by the HTTP surface once it listens: the side channel's host and port (the server's
   * own), which the engine advertises in its layout and its prefill `kv_transfer_params`.
   */
  setSideChannel?(host: string, port: number): void;
  /**
   * Decode role, called by the HTTP surface before {@link Engine.generate} for a request with
   * `kv_transfer_params.do_remote_prefill`: side-channel handshake, layout check and pull, so
   * that a refused transfer is an HTTP error before any response byte (also for streams).
   * @returns the params to pass to `generate`; null = recompute the prompt locally
   *   (`kv_load_failure_policy: recompute`)
   * @throws ApiError (400 layout mismatch naming both layouts; 502 pull failed under `fail`)
   */
  prepareRemote?(
    params: KvTransferParams,
    promptTokens: readonly number[],
    signal?: AbortSignal,
  ): Promise<KvTransferParams | null>;
}

/** An inference engine. */
export interface Engine {
  /** P/D support; absent = the engine serves aggregated requests only */
  readonly pd?: EnginePd;
  readonly info: EngineInfo;
  readonly tokenizer: Tokenizer;
  /**
   * Starts a request. Throws {@link import("../api/errors.js").ApiError} synchronously when it
   * cannot be accepted (429 waiting queue full, 400 too long). The iterator ends after the
   * output carrying `finish`; abort through `req.signal` (the final output then has
   * reason `abort`).
   */
  generate(req: EngineRequest): AsyncIterable<EngineOutput>;
  /** current state for metrics */
  stats(): EngineStats;
  /** registers the observer (one; a later call replaces it: combine with {@link combineObservers}) */
  setObserver(o: EngineObserver | null): void;
  /** stops the loop and aborts all requests */
  close(): Promise<void>;
}
