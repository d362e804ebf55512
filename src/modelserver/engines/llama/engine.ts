/**
 * The llama engine: a real CPU engine behind the model server's {@link Engine} interface
 * (DESIGN.md "Two engines"), running GGUF models through node-llama-cpp's prebuilt llama.cpp
 * (reference/llama-engine.md; never builds or downloads, see `runtime.ts`).
 *
 * **Slots.** One llama context with `maxNumSeqs` sequences ("slots"), each with
 * `maxModelLen` tokens of KV (§6: `contextSize` is per sequence). A request takes a free slot
 * or waits FIFO (`waiting`); requests on different slots are batched into shared
 * `llama_decode` calls by node-llama-cpp (§6). Batched greedy output is not always
 * token-identical to running alone (§6), so bit-exact comparisons use one request at a time.
 *
 * **Prefix reuse** (§5). A slot keeps its tokens' KV after its request ends. A new request takes
 * the free slot whose cached tokens share the longest prefix with its prompt (ties: least
 * recently used), keeps that prefix (`adaptStateToTokens(prompt[0..n−1), false)`), evaluates
 * only the rest of `prompt[0..n−1)`, then evaluates the last prompt token alone and samples.
 * The last token always gets its own evaluate call, as the P/D import path does (§4 "for exact
 * reproducibility, always compute the last prompt token in its own evaluate call"), so an
 * aggregated run and an export→import run compute the same numbers. `usage.cachedTokens` =
 * tokens kept (≤ n − 1, like vLLM, which always computes the last prompt token).
 *
 * **Sampling.** `temperature` 0 → greedy; otherwise temperature, `topP` (default 1), `topK`
 * (default 0 = off, vLLM's −1) and `seed` (a random one when absent). `temperature` absent →
 * `defaultTemperature` (1.0, vLLM's default). EOS/EOT ends the request with `stop` (the EOS id
 * is returned and counted, as in vLLM, and decodes to ""); `ignoreEos` keeps going;
 * `minTokens` bans end-of-generation tokens until reached; `maxTokens` → `length`.
 *
 * **Stats** from real counts: running = busy slots, waiting = queued requests,
 * prefix queries/hits in tokens, prompt/generation tokens, `kvCacheUsage` = KV cells held by
 * busy slots / all cells (cells of idle slots are reusable cache and count as free, like vLLM's
 * cached-unreferenced blocks); `onIteration` reports the tokens of every `llama_decode` batch.
 *
 * **KV transfer primitives** for P/D (§4): {@link LlamaEngine.exportPrefix} and
 * {@link LlamaEngine.importAndGenerate}, with the envelope and checks of `kv-state.ts`.
 *
 * **P/D roles** (NixlConnector protocol, reference/engine.md §5.2; {@link LlamaEngine.pd}):
 * - *prefill* (`kv_transfer_params.do_remote_decode`): `prompt[0..n−1)` is evaluated (prefix
 *   reuse as usual) and its state exported into a held envelope (`pd.ts`, lease default 30 s);
 *   then, as vLLM does, the last prompt token is evaluated and the requested tokens (the
 *   coordinator asks for 1) are generated. Only a `length` finish keeps the state (vLLM keeps
 *   blocks only for `FINISHED_LENGTH_CAPPED`) and answers `kv_transfer_params =
 *   {do_remote_prefill: true, do_remote_decode: false, remote_engine_id, remote_block_ids
 *   (indices of the blocks of the exported tokens, informational), remote_request_id,
 *   remote_host, remote_port (this server's side channel), tp_size: 1}`; any other finish, or a
 *   prompt of one token, answers `null` (the decode side then computes the prompt itself).
 * - *decode* (`do_remote_prefill`): {@link LlamaEngine.prepareRemote}, which the HTTP surface
 *   calls before admission (so a refusal is an HTTP error before any response byte, streams
 *   included): handshake + layout check over the side channel ({@link KvSideChannel.checkLayout}:
 *   a different model file, geometry, dtype or backend is refused with ApiError 400 naming both
 *   layouts), pull of the envelope, check of its header (model hash, geometry, tokens), release
 *   notification; then {@link LlamaEngine.importAndGenerate}: only the last prompt token is
 *   evaluated and `usage.cachedTokens` = n − 1. A failed pull (prefill gone, lease expired) is
 *   ApiError 502 under `kv_load_failure_policy: fail` (default) or a local prefill under
 *   `recompute`. Each transfer is reported to the observer (`onKvTransfer` → `vllm:nixl_*`;
 *   descriptors = 2 × layers × blocks, one per K/V per layer per block as NIXL counts them).
 *   Engine-API callers may pass unprepared params to `generate`: it prepares them itself (errors
 *   then surface when the output is first read).
 */
import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { readFile, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { performance } from "node:perf_hooks";
import type {
  BatchItem,
  LlamaContext,
  LlamaContextSequence,
  LlamaModel,
  PrioritizedBatchItem,
  SequenceEvaluateOptions,
  Token,
  TokenBias,
} from "node-llama-cpp";
import { ApiError } from "../../../api/errors.js";
import type { KvTransferParams } from "../../../api/openai.js";
import { fileHash } from "../../../gguf/model.js";
import type {
  Engine,
  EngineFinish,
  EnginePd,
  EngineInfo,
  EngineObserver,
  EngineOutput,
  EngineRequest,
  EngineStats,
  FinishReason,
  SamplingParams,
} from "../../engine.js";
import {
  checkKvState,
  decodeKvState,
  encodeKvState,
  type KvGeometry,
  type KvStateHeader,
  KvStateMismatchError,
  restreamSeqState,
} from "./kv-state.js";
import {
  type KvLayout,
  KvLayoutMismatchError,
  KvSideChannel,
  KvTransferError,
  kvBytesPerToken,
} from "../../kv-transfer.js";
import { DEFAULT_KV_LEASE_MS, KvLeaseStore, type KvLeaseStats } from "./pd.js";
import { type NodeLlamaCpp, nodeLlamaCpp, sharedLlama } from "./runtime.js";
import { LlamaTokenizer } from "./tokenizer.js";

/** Options of the llama engine. Sizes are tokens. */
export interface LlamaEngineOptions {
  /** GGUF model file (required) */
  modelPath: string;
  /** served model name (default: GGUF `general.name`, else the file name) */
  model?: string;
  /** KV tokens per sequence = max prompt + output tokens (default min(model context_length, 4096)) */
  maxModelLen?: number;
  /** sequences (concurrent requests) in the context (default 4) */
  maxNumSeqs?: number;
  /** CPU threads for evaluation (default 1; reference/llama-engine.md §1 "Main pitfall: threads") */
  threads?: number;
  /** llama.cpp batch size, tokens per `llama_decode` (default 512) */
  batchSize?: number;
  /** tokens per KV "block" reported in `cache_config_info` (llama.cpp has cells, not blocks; default 16) */
  blockSize?: number;
  /** queued requests beyond which a new request gets 429 (default 1000) */
  maxWaitingQueueLength?: number;
  /** temperature when a request gives none (default 1.0, vLLM's default) */
  defaultTemperature?: number;
  /** model file hash if already known (default: xxh64 of the file, computed at start) */
  modelHash?: string;
  /** directory for KV state files (default `/dev/shm` when present, else the OS temp dir) */
  stateDir?: string;
  /** P/D: how long KV exported for a remote decode is held without a release, ms (default 30 000) */
  kvLeaseMs?: number;
  /** P/D: `remote_engine_id` / layout `engine_id` (default `llama-<uuid>`) */
  engineId?: string;
  /**
   * P/D: side-channel host and port advertised before the server calls
   * {@link EnginePd.setSideChannel} (default 127.0.0.1 and 0)
   */
  sideChannelHost?: string;
  sideChannelPort?: number;
  /** P/D decode side: timeout of side-channel requests, ms (default 30 000) */
  kvTransferTimeoutMs?: number;
  /**
   * P/D decode side: what a failed pull does (vLLM `kv_load_failure_policy`, reference/engine.md
   * §5.1): `fail` (default: ApiError 502 to the client) or `recompute` (prefill locally). A
   * layout or state mismatch is always refused (400).
   */
  kvLoadFailurePolicy?: "fail" | "recompute";
}

/** KV heads and head size of a model (for the P/D layout). */
interface KvHeads {
  numKvHeads: number;
  headDim: number;
}

/** {@link SamplingParams} plus the fields only this engine reads (not yet passed by the server). */
export interface LlamaSamplingParams extends SamplingParams {
  /** nucleus sampling mass (0, 1] (default 1) */
  topP?: number;
  /** top-k; 0 or negative = off (default 0) */
  topK?: number;
}

/** The final output of this engine carries extra facts for tests and benches. */
export interface LlamaEngineFinish extends EngineFinish {
  /** prompt tokens llama.cpp evaluated for this request (token-meter delta up to the first token) */
  evaluatedPromptTokens: number;
}

/** What {@link LlamaEngine.exportPrefix} returns. */
export interface KvExport {
  /** the envelope (`kv-state.ts`): header + llama.cpp sequence state, bytes */
  stateBytes: Buffer;
  /** tokens whose KV the state holds: `promptTokens[0..n−1)` */
  tokens: number[];
  /** xxh64 of the model file */
  modelHash: string;
  /** prefix tokens reused from this engine's cache */
  cachedTokens: number;
  /** prefix tokens evaluated for the export */
  evaluatedTokens: number;
  /** size of the raw llama.cpp state file, bytes */
  rawStateBytes: number;
  /** `saveStateToFile` + read-back time, ms */
  saveMs: number;
}

interface Slot {
  readonly id: number;
  readonly seq: LlamaContextSequence;
  busy: boolean;
  lastUsed: number;
}

interface Pending {
  readonly prompt: readonly number[];
  grant(slot: Slot): void;
  cancel(err: Error): void;
}

/** Push-based async iterator of outputs (coalesces tokens when the reader lags). */
class OutputChannel implements AsyncIterable<EngineOutput> {
  private readonly buf: EngineOutput[] = [];
  private waiter: { resolve: (r: IteratorResult<EngineOutput>) => void; reject: (e: Error) => void } | null =
    null;
  private ended = false;
  private error: Error | null = null;

  push(o: EngineOutput): void {
    if (this.ended) return;
    if (o.finish) this.ended = true;
    const w = this.waiter;
    if (w) {
      this.waiter = null;
      w.resolve({ value: o, done: false });
      return;
    }
    const last = this.buf[this.buf.length - 1];
    if (last && !last.finish) {
      for (const t of o.tokens) last.tokens.push(t);
      if (o.finish) last.finish = o.finish;
    } else this.buf.push({ tokens: o.tokens.slice(), finish: o.finish });
  }

  fail(e: Error): void {
    if (this.ended) return;
    this.ended = true;
    const w = this.waiter;
    if (w) {
      this.waiter = null;
      w.reject(e);
    } else this.error = e;
  }

  [Symbol.asyncIterator](): AsyncIterator<EngineOutput> {
    return {
      next: () => {
        const v = this.buf.shift();
        if (v) return Promise.resolve({ value: v, done: false });
        if (this.error) {
          const e = this.error;
          this.error = null;
          return Promise.reject(e);
        }
        if (this.ended) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve, reject) => {
          this.waiter = { resolve, reject };
        });
      },
      return: () => {
        this.ended = true;
        this.buf.length = 0;
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }
}

class AbortedError extends Error {}

/** number[] → node-llama-cpp's branded Token[] (same values). */
const tok = (a: readonly number[]): Token[] => a as Token[];

/** Length of the common prefix of two token arrays. */
function commonPrefix(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

let stateFileCounter = 0;

/** The llama.cpp engine (see module doc). Create it with {@link createLlamaEngine}. */
export class LlamaEngine implements Engine {
  readonly info: EngineInfo;
  readonly tokenizer: LlamaTokenizer;
  /** xxh64 of the model file (16 hex digits) */
  readonly modelHash: string;
  /** KV layout of this engine's context */
  readonly geometry: KvGeometry;
  /** CPU threads used for evaluation */
  readonly threads: number;
  /** P/D support (see module doc): layout, held KV for remote decodes, side channel */
  readonly pd: EnginePd & {
    /** counters of KV held for remote decodes */
    leaseStats(): KvLeaseStats;
    /** {@link LlamaEngine.prepareRemote} */
    prepareRemote(
      params: KvTransferParams,
      promptTokens: readonly number[],
      signal?: AbortSignal,
    ): Promise<KvTransferParams | null>;
  };
  /** `remote_engine_id` of this engine */
  readonly engineId: string;

  private readonly leases: KvLeaseStore;
  private readonly sideChannel: KvSideChannel;
  private sideHost: string;
  private sidePort: number;
  private readonly kvHeads: KvHeads;
  private readonly attentionBackend: string;
  private pdCounter = 0;
  private readonly kvLoadFailurePolicy: "fail" | "recompute";
  /** envelopes pulled by {@link prepareRemote}, keyed by the params it returned */
  private readonly pulled = new WeakMap<KvTransferParams, Buffer>();

  private readonly slots: Slot[];
  private readonly pending: Pending[] = [];
  private readonly active = new Set<Promise<void>>();
  private readonly aborters = new Set<() => void>();
  private observer: EngineObserver | null = null;
  private closed = false;
  private useCounter = 0;
  private eogBiasCache: TokenBias | null = null;
  private noBiasCache: TokenBias | null = null;
  private readonly stateDir: string;
  private readonly maxWaiting: number;
  private readonly defaultTemperature: number;
  private readonly counters = {
    prefixCacheQueries: 0,
    prefixCacheHits: 0,
    promptTokens: 0,
    generationTokens: 0,
    preemptions: 0,
  };

  /** @internal use {@link createLlamaEngine} */
  constructor(
    private readonly lib: NodeLlamaCpp,
    readonly model: LlamaModel,
    readonly context: LlamaContext,
    opts: {
      name: string;
      maxModelLen: number;
      blockSize: number;
      modelHash: string;
      geometry: KvGeometry;
      threads: number;
      stateDir: string;
      maxWaitingQueueLength: number;
      defaultTemperature: number;
      kvHeads: KvHeads;
      attentionBackend: string;
      engineId: string;
      kvLeaseMs: number;
      sideChannelHost: string;
      sideChannelPort: number;
      kvTransferTimeoutMs: number;
      kvLoadFailurePolicy: "fail" | "recompute";
    },
    observerHook: { current: ((tokens: number) => void) | null },
  ) {
    this.modelHash = opts.modelHash;
    this.geometry = opts.geometry;
    this.threads = opts.threads;
    this.stateDir = opts.stateDir;
    this.maxWaiting = opts.maxWaitingQueueLength;
    this.defaultTemperature = opts.defaultTemperature;
    this.tokenizer = new LlamaTokenizer(model, lib);
    this.slots = [];
    for (let i = 0; i < context.totalSequences; i++) {
      this.slots.push({ id: i, seq: context.getSequence(), busy: false, lastUsed: 0 });
    }
    const cells = opts.maxModelLen * this.slots.length;
    this.info = {
      model: opts.name,
      maxModelLen: opts.maxModelLen,
      blockSize: opts.blockSize,
      numGpuBlocks: Math.floor(cells / opts.blockSize),
      kind: "llama",
    };
    observerHook.current = (tokens) => this.observer?.onIteration?.(tokens);
    this.kvHeads = opts.kvHeads;
    this.attentionBackend = opts.attentionBackend;
    this.engineId = opts.engineId;
    this.sideHost = opts.sideChannelHost;
    this.sidePort = opts.sideChannelPort;
    this.sideChannel = new KvSideChannel(opts.kvTransferTimeoutMs);
    this.kvLoadFailurePolicy = opts.kvLoadFailurePolicy;
    this.leases = new KvLeaseStore(opts.kvLeaseMs, (_id, tokens) =>
      this.observer?.onKvTransfer?.({
        kind: "expired",
        ok: false,
        bytes: 0,
        xferS: 0,
        postS: 0,
        descriptors: 2 * this.geometry.nLayer * Math.ceil(tokens / this.info.blockSize),
      }),
    );
    const leases = this.leases;
    this.pd = {
      layout: () => this.layout(),
      pull: async (id) => {
        const body = leases.get(id);
        return body ? { contentType: "application/octet-stream", body } : null;
      },
      release: (id) => leases.release(id),
      prepareRemote: (params, promptTokens, signal) => this.prepareRemote(params, promptTokens, signal),
      setSideChannel: (host, port) => {
        this.sideHost = host;
        this.sidePort = port;
      },
      leaseStats: () => leases.stats(),
    };
  }

  /**
   * The KV layout served on `GET /llmd/kv/layout` (`kv-transfer.ts`): model file hash, block
   * size, f16 KV, layers / KV heads / head size from the GGUF, `llama.cpp-cpu[-flash]` backend,
   * tp 1, bytes per token = 2 × layers × kv_heads × head_dim × 2, the side channel's host/port.
   */
  layout(): KvLayout {
    const g = this.geometry;
    return {
      engine_id: this.engineId,
      model: this.info.model,
      model_hash: this.modelHash,
      kv_connector: "NixlConnector",
      block_size: this.info.blockSize,
      kv_cache_dtype: g.kvType,
      num_layers: g.nLayer,
      num_kv_heads: this.kvHeads.numKvHeads,
      head_dim: this.kvHeads.headDim,
      attention_backend: this.attentionBackend,
      tp_size: 1,
      bytes_per_token: kvBytesPerToken(g.nLayer, this.kvHeads.numKvHeads, this.kvHeads.headDim, g.kvType),
      side_channel_host: this.sideHost,
      side_channel_port: this.sidePort,
    };
  }

  setObserver(o: EngineObserver | null): void {
    this.observer = o;
  }

  stats(): EngineStats {
    let used = 0;
    let running = 0;
    for (const s of this.slots) {
      if (!s.busy) continue;
      running++;
      used += s.seq.nextTokenIndex;
    }
    return {
      running,
      waiting: this.pending.length,
      kvCacheUsage: used / (this.info.maxModelLen * this.slots.length),
      ...this.counters,
    };
  }

  /** Tokens cached in each slot (for tests and debugging). */
  slotTokens(): number[][] {
    return this.slots.map((s) => s.seq.contextTokens.slice());
  }

  generate(req: EngineRequest): AsyncIterable<EngineOutput> {
    const n = this.validate(req.promptTokens, req.params.maxTokens);
    const signal = req.signal;
    if (signal?.aborted) throw new ApiError(499, "Request aborted by the client");
    const kv = req.kvTransferParams;
    if (kv?.do_remote_prefill === true) {
      const pulled = this.pulled.get(kv);
      return pulled ? this.importPulled(pulled, req) : this.decodeFromRemote(req, kv);
    }
    const prefillForRemote = kv?.do_remote_decode === true && n >= 2;
    const prompt = req.promptTokens.slice();
    return this.startJob(req, prompt, async (seq) => {
      await seq.adaptStateToTokens(tok(prompt.slice(0, n - 1)), false);
      const cached = seq.nextTokenIndex;
      if (cached < n - 1) await seq.evaluateWithoutGeneratingNewTokens(tok(prompt.slice(cached, n - 1)));
      if (!prefillForRemote) return { cached, hits: cached };
      // prefill for a remote decode: export prompt[0..n−1) before the last token is evaluated
      const { raw } = await this.saveSeqState(seq);
      const bytes = encodeKvState(this.stateHeader(seq), raw);
      return {
        cached,
        hits: cached,
        finalize: (reason: FinishReason) =>
          reason === "length" ? this.hold(req.requestId, bytes, n - 1) : null,
      };
    });
  }

  /**
   * Holds an exported envelope for a remote decode and returns the prefill response's
   * `kv_transfer_params` (reference/engine.md §5.2 (b)).
   */
  private hold(requestId: string, bytes: Buffer, tokens: number): KvTransferParams {
    const id = `${requestId}~${++this.pdCounter}`;
    this.leases.put(id, bytes, tokens);
    return {
      do_remote_prefill: true,
      do_remote_decode: false,
      remote_engine_id: this.engineId,
      remote_block_ids: Array.from({ length: Math.ceil(tokens / this.info.blockSize) }, (_, i) => i),
      remote_request_id: id,
      remote_host: this.sideHost,
      remote_port: this.sidePort > 0 ? this.sidePort : null,
      tp_size: 1,
    };
  }

  /**
   * P/D decode side, before admission ({@link EnginePd.prepareRemote}; the HTTP surface calls it
   * so that a refused transfer is an HTTP error before any response byte): side-channel
   * handshake + layout check, pull of the envelope, check of its header (model file, geometry,
   * tokens = `promptTokens[0..n−1)`), release notification, `onKvTransfer`.
   * @returns params to pass to {@link generate} (they carry the pulled state); `params` itself
   *   when it names no side channel; null when the pull failed under the `recompute` policy
   * @throws ApiError 400 (layout or state mismatch, naming both sides; incomplete params),
   *   502 (pull failed under `fail`), 499 (aborted)
   */
  async prepareRemote(
    params: KvTransferParams,
    promptTokens: readonly number[],
    signal?: AbortSignal,
  ): Promise<KvTransferParams | null> {
    const host = params.remote_host;
    const port = params.remote_port;
    const id = params.remote_request_id;
    if (typeof host !== "string" || host === "" || typeof port !== "number" || typeof id !== "string") {
      throw new ApiError(
        400,
        "kv_transfer_params with do_remote_prefill needs remote_host, remote_port and remote_request_id",
        { param: "kv_transfer_params" },
      );
    }
    const engineId = typeof params.remote_engine_id === "string" ? params.remote_engine_id : undefined;
    const blocks = Math.ceil((promptTokens.length - 1) / this.info.blockSize);
    const descriptors = 2 * this.geometry.nLayer * blocks;
    const notify = async (): Promise<boolean> => {
      try {
        await this.sideChannel.release(host, port, id);
        return true;
      } catch {
        return false;
      }
    };
    const fail = async (why: string, status: number): Promise<null> => {
      // the prefill side frees its state now rather than at the end of its lease
      const notified = await notify();
      this.observer?.onKvTransfer?.({
        kind: "pull",
        ok: false,
        bytes: 0,
        xferS: 0,
        postS: 0,
        descriptors,
        notifyFailed: !notified,
      });
      if (signal?.aborted) throw new ApiError(499, "Request aborted by the client");
      if (this.kvLoadFailurePolicy === "recompute" && status !== 400) return null;
      throw new ApiError(status, why, status === 400 ? { param: "kv_transfer_params" } : undefined);
    };
    const t0 = performance.now();
    try {
      await this.sideChannel.checkLayout(host, port, engineId, this.layout());
    } catch (e) {
      if (e instanceof KvLayoutMismatchError) return fail(e.message, 400);
      return fail(`KV transfer failed: ${(e as Error).message}`, 502);
    }
    const t1 = performance.now();
    let bytes: Buffer;
    try {
      bytes = await this.sideChannel.pull(host, port, id, signal);
    } catch (e) {
      const why =
        e instanceof KvTransferError && e.status === 404 ? " (unknown, released or lease expired)" : "";
      return fail(`KV transfer failed${why}: ${(e as Error).message}`, 502);
    }
    const t2 = performance.now();
    try {
      const { header } = decodeKvState(bytes);
      checkKvState(header, { modelHash: this.modelHash, model: this.info.model, geometry: this.geometry });
      const prefix = promptTokens.slice(0, -1);
      const same = commonPrefix(header.tokens, prefix);
      if (header.tokens.length !== prefix.length || same !== prefix.length) {
        return fail(
          `KV transfer refused: the state pulled from ${engineId ?? `${host}:${port}`} (request ${id}) holds ${header.tokens.length} tokens, this prompt needs its first ${prefix.length}; they agree on the first ${same}`,
          400,
        );
      }
    } catch (e) {
      return fail(`KV transfer refused: ${(e as Error).message}`, 400);
    }
    const notified = await notify();
    this.observer?.onKvTransfer?.({
      kind: "pull",
      ok: true,
      bytes: bytes.length,
      xferS: (t2 - t1) / 1000,
      postS: (t1 - t0) / 1000,
      descriptors,
      notifyFailed: !notified,
    });
    const out: KvTransferParams = { ...params };
    this.pulled.set(out, bytes);
    return out;
  }

  /**
   * The decode role of {@link generate} for params not yet prepared (engine API callers):
   * {@link prepareRemote}, then the import (or a local prefill under `recompute`).
   */
  private async *decodeFromRemote(req: EngineRequest, kv: KvTransferParams): AsyncGenerator<EngineOutput> {
    const ready = await this.prepareRemote(kv, req.promptTokens, req.signal);
    yield* this.generate({ ...req, kvTransferParams: ready });
  }

  /** Imports a pulled envelope for {@link generate}; a state mismatch is ApiError 400. */
  private importPulled(bytes: Buffer, req: EngineRequest): AsyncIterable<EngineOutput> {
    try {
      return this.importAndGenerate(bytes, req.promptTokens, req.params, {
        requestId: req.requestId,
        signal: req.signal,
        arrivalMs: req.arrivalMs,
      });
    } catch (e) {
      if (e instanceof KvStateMismatchError)
        throw new ApiError(400, e.message, { param: "kv_transfer_params" });
      throw e;
    }
  }

  /**
   * P/D decode side: loads a KV state made by {@link exportPrefix} (same model file, same KV
   * layout) into a free slot, checks that it holds exactly `promptTokens[0..n−1)`, evaluates
   * the last prompt token alone and generates. The prompt is not recomputed: the final output's
   * `evaluatedPromptTokens` is 1 and `usage.cachedTokens` is n − 1 (vLLM v1 counts KV loaded
   * by a connector as computed on arrival); the engine's prefix-cache hit counter is not
   * increased (the loaded tokens are not a local cache hit).
   * @param stateBytes an envelope from {@link exportPrefix} (any process)
   * @param promptTokens the full prompt (the state holds all but its last token)
   * @throws KvStateMismatchError (synchronously) on another model file or KV layout, naming both;
   *   Error on bytes that are not an envelope or tokens that do not match the prompt; ApiError
   *   like {@link generate}
   */
  importAndGenerate(
    stateBytes: Buffer,
    promptTokens: readonly number[],
    params: LlamaSamplingParams,
    opts: { requestId?: string; signal?: AbortSignal; arrivalMs?: number } = {},
  ): AsyncIterable<EngineOutput> {
    const n = this.validate(promptTokens, params.maxTokens);
    const { header, state } = decodeKvState(stateBytes);
    checkKvState(header, { modelHash: this.modelHash, model: this.info.model, geometry: this.geometry });
    const prefix = promptTokens.slice(0, n - 1);
    const same = commonPrefix(header.tokens, prefix);
    if (header.tokens.length !== prefix.length || same !== prefix.length) {
      throw new Error(
        `KV state tokens do not match the prompt: the state holds ${header.tokens.length} tokens, the prompt needs its first ${prefix.length}; they agree on the first ${same}`,
      );
    }
    if (opts.signal?.aborted) throw new ApiError(499, "Request aborted by the client");
    const req: EngineRequest = {
      requestId: opts.requestId ?? `import-${Date.now()}`,
      promptTokens: promptTokens.slice(),
      params,
      signal: opts.signal,
      arrivalMs: opts.arrivalMs,
    };
    return this.startJob(req, req.promptTokens, async (seq) => {
      const path = this.stateFilePath();
      await writeFile(path, restreamSeqState(state, this.slots.length, this.streamIndex(seq)));
      try {
        await seq.loadStateFromFile(path, { acceptRisk: true });
      } finally {
        await unlink(path).catch(() => {});
      }
      const got = seq.contextTokens;
      if (got.length !== prefix.length || commonPrefix(got, prefix) !== prefix.length) {
        await seq.clearHistory();
        throw new Error(`loaded KV state holds ${got.length} tokens that do not match the prompt prefix`);
      }
      // loaded KV counts as computed on arrival (usage.cachedTokens, like vLLM v1's
      // num_cached_tokens) but is not a hit of this engine's own prefix cache
      return { cached: prefix.length, hits: 0 };
    });
  }

  /**
   * P/D prefill side: computes the KV of `promptTokens[0..n−1)` in a free slot (reusing a cached
   * prefix) and returns it as an envelope (`kv-state.ts`). The last prompt token is left for
   * the decode side (logits are not part of the state, §4). The slot keeps the prefix cached.
   * @param promptTokens the full prompt, ≥ 2 tokens
   * @throws ApiError 400 on a prompt shorter than 2 tokens or longer than maxModelLen; 503 when
   *   closed; 429 when the waiting queue is full; AbortedError-like Error when `signal` aborts
   *   while waiting
   */
  async exportPrefix(
    promptTokens: readonly number[],
    opts: { signal?: AbortSignal } = {},
  ): Promise<KvExport> {
    if (promptTokens.length < 2) throw new ApiError(400, "A KV export needs a prompt of at least 2 tokens");
    this.validate(promptTokens, 1);
    const prefix = promptTokens.slice(0, -1);
    const slot = await this.acquire(promptTokens, opts.signal);
    const seq = slot.seq;
    try {
      await seq.adaptStateToTokens(tok(prefix), false);
      const cached = seq.nextTokenIndex;
      const m0 = seq.tokenMeter.usedInputTokens;
      if (cached < prefix.length) await seq.evaluateWithoutGeneratingNewTokens(tok(prefix.slice(cached)));
      const evaluated = seq.tokenMeter.usedInputTokens - m0;
      this.counters.prefixCacheQueries += prefix.length;
      this.counters.prefixCacheHits += cached;
      this.counters.promptTokens += prefix.length;
      const { raw, saveMs } = await this.saveSeqState(seq);
      return {
        stateBytes: encodeKvState(this.stateHeader(seq), raw),
        tokens: prefix,
        modelHash: this.modelHash,
        cachedTokens: cached,
        evaluatedTokens: evaluated,
        rawStateBytes: raw.length,
        saveMs,
      };
    } finally {
      this.release(slot);
    }
  }

  /** Saves a slot's KV state (llama.cpp file API, §4) and reads it back; `saveMs` in ms. */
  private async saveSeqState(seq: LlamaContextSequence): Promise<{ raw: Buffer; saveMs: number }> {
    const path = this.stateFilePath();
    const t0 = performance.now();
    let raw: Buffer;
    try {
      await seq.saveStateToFile(path);
      raw = await readFile(path);
    } finally {
      await unlink(path).catch(() => {});
    }
    return { raw, saveMs: performance.now() - t0 };
  }

  /** Envelope header for the tokens a slot holds now. */
  private stateHeader(seq: LlamaContextSequence): KvStateHeader {
    return {
      modelHash: this.modelHash,
      model: this.info.model,
      geometry: this.geometry,
      tokens: seq.contextTokens.slice(),
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.leases.clear();
    await this.sideChannel.close().catch(() => {});
    for (const p of this.pending.splice(0)) p.cancel(new AbortedError("engine closed"));
    for (const a of [...this.aborters]) a();
    await Promise.allSettled([...this.active]);
    await this.context.dispose();
    await this.model.dispose();
  }

  /** Checks a request; returns the prompt length. @throws ApiError 503/400/429 */
  private validate(prompt: readonly number[], maxTokens: number): number {
    if (this.closed) throw new ApiError(503, "The engine is shutting down");
    const n = prompt.length;
    if (n === 0) throw new ApiError(400, "The prompt must contain at least one token", { param: "prompt" });
    const max = this.info.maxModelLen;
    if (n + maxTokens > max) {
      throw new ApiError(
        400,
        `This model's maximum context length is ${max} tokens. However, you requested ${n + maxTokens} tokens (${n} in the messages, ${maxTokens} in the completion). Please reduce the length of the messages or completion.`,
      );
    }
    if (this.pending.length >= this.maxWaiting && !this.slots.some((s) => !s.busy)) {
      throw new ApiError(429, "Failed to enqueue request, waiting requests queue is full");
    }
    return n;
  }

  /** llama.cpp sequence id (= KV stream index, `kv_unified=false`) of a slot's sequence. */
  private streamIndex(seq: LlamaContextSequence): number {
    const internal = (seq as unknown as { _sequenceId?: unknown })._sequenceId;
    if (typeof internal === "number") return internal;
    const slot = this.slots.find((s) => s.seq === seq);
    if (!slot) throw new Error("sequence does not belong to this engine");
    return slot.id;
  }

  private stateFilePath(): string {
    stateFileCounter++;
    return join(this.stateDir, `llmd-kv-${process.pid}-${stateFileCounter}-${Date.now()}.bin`);
  }

  /** Waits for a free slot, preferring the longest cached prefix. */
  private acquire(prompt: readonly number[], signal?: AbortSignal): Promise<Slot> {
    return new Promise<Slot>((resolve, reject) => {
      let onAbort: (() => void) | null = null;
      const p: Pending = {
        prompt,
        grant: (slot) => {
          if (onAbort) signal?.removeEventListener("abort", onAbort);
          resolve(slot);
        },
        cancel: (err) => {
          if (onAbort) signal?.removeEventListener("abort", onAbort);
          reject(err);
        },
      };
      if (signal) {
        onAbort = () => {
          const i = this.pending.indexOf(p);
          if (i >= 0) {
            this.pending.splice(i, 1);
            p.cancel(new AbortedError("aborted while waiting"));
          }
        };
        signal.addEventListener("abort", onAbort, { once: true });
      }
      this.pending.push(p);
      this.dispatch();
    });
  }

  private release(slot: Slot): void {
    slot.busy = false;
    slot.lastUsed = ++this.useCounter;
    this.dispatch();
  }

  /** Hands free slots to waiting requests, FIFO; each gets the free slot with its longest cached prefix. */
  private dispatch(): void {
    while (this.pending.length > 0) {
      let best: Slot | null = null;
      let bestLen = -1;
      const p = this.pending[0]!;
      for (const s of this.slots) {
        if (s.busy) continue;
        const len = commonPrefix(s.seq.contextTokens, p.prompt);
        if (len > bestLen || (len === bestLen && best !== null && s.lastUsed < best.lastUsed)) {
          best = s;
          bestLen = len;
        }
      }
      if (!best) return;
      this.pending.shift();
      best.busy = true;
      p.grant(best);
    }
  }

  private eogBias(): TokenBias {
    if (!this.eogBiasCache) {
      const b = new this.lib.TokenBias(this.model.tokenizer);
      // TokenBias.set() ignores EOS/EOT on purpose ("has no effect"), but the biases map it
      // hands to the native sampler applies any token: write the EOG ids into it directly.
      const biases = (b as unknown as { _biases?: Map<number, number> })._biases;
      if (!(biases instanceof Map))
        throw new Error("node-llama-cpp TokenBias internals changed: cannot ban EOS");
      const t = this.model.tokens;
      for (const id of [t.eos, t.eot]) if (id !== null) biases.set(id, Number.NEGATIVE_INFINITY);
      this.eogBiasCache = b;
    }
    return this.eogBiasCache;
  }

  private noBias(): TokenBias {
    this.noBiasCache ??= new this.lib.TokenBias(this.model.tokenizer);
    return this.noBiasCache;
  }

  /**
   * Queues a request; when it gets a slot, `prepare` brings the slot to `prompt[0..n−1)` and
   * returns the tokens already computed (`cached`) and the local prefix-cache hits (`hits`);
   * then the last prompt token is evaluated alone and tokens are generated.
   */
  private startJob(
    req: EngineRequest,
    prompt: readonly number[],
    prepare: (seq: LlamaContextSequence) => Promise<{
      cached: number;
      hits: number;
      /** P/D prefill: the response's `kv_transfer_params` for a finish reason */
      finalize?: (reason: FinishReason) => KvTransferParams | null;
    }>,
  ): AsyncIterable<EngineOutput> {
    const ch = new OutputChannel();
    const arrival = req.arrivalMs ?? performance.now();
    const st = { aborted: false };
    const abort = () => {
      st.aborted = true;
    };
    const signal = req.signal;
    signal?.addEventListener("abort", abort, { once: true });
    this.aborters.add(abort);
    const n = prompt.length;
    let outputs = 0;
    let scheduled = 0;
    let firstTok = 0;
    let lastTok = 0;
    let cached = 0;
    let evaluatedPrompt = 0;
    let finalize: ((reason: FinishReason) => KvTransferParams | null) | undefined;
    let outcome: { fin: LlamaEngineFinish; tokens: number[] } | { error: Error } | null = null;
    /** Records the final output; it is pushed after the slot is released (see `run`). */
    const finish = (reason: FinishReason, tokens: number[]) => {
      if (outcome) return;
      const now = performance.now();
      const sched = scheduled || now;
      const first = outputs > 0 ? firstTok : now;
      const last = outputs > 0 ? lastTok : now;
      const fin: LlamaEngineFinish = {
        reason,
        usage: { promptTokens: n, cachedTokens: cached, completionTokens: outputs },
        timings: {
          queueS: Math.max(0, sched - arrival) / 1000,
          prefillS: Math.max(0, first - sched) / 1000,
          decodeS: Math.max(0, last - first) / 1000,
          inferenceS: Math.max(0, last - sched) / 1000,
        },
        kvTransferParams: finalize ? finalize(reason) : null,
        evaluatedPromptTokens: evaluatedPrompt,
      };
      outcome = { fin, tokens };
    };
    const fail = (e: Error) => {
      if (!outcome) outcome = { error: e };
    };
    const meter = (seq: LlamaContextSequence) =>
      seq.tokenMeter.usedInputTokens + seq.tokenMeter.usedOutputTokens;
    const work = async () => {
      let slot: Slot;
      try {
        slot = await this.acquire(prompt, signal);
      } catch (e) {
        if (e instanceof AbortedError) finish("abort", []);
        else fail(e as Error);
        return;
      }
      scheduled = performance.now();
      const seq = slot.seq;
      try {
        if (st.aborted) {
          finish("abort", []);
          return;
        }
        // node-llama-cpp meters a token evaluated with logits as "output": count both kinds
        const m0 = meter(seq);
        const prep = await prepare(seq);
        cached = prep.cached;
        finalize = prep.finalize;
        this.counters.prefixCacheQueries += n;
        this.counters.prefixCacheHits += prep.hits;
        this.counters.promptTokens += n;
        if (st.aborted) {
          evaluatedPrompt = meter(seq) - m0;
          finish("abort", []);
          return;
        }
        const p = req.params as LlamaSamplingParams;
        const temperature = p.temperature ?? this.defaultTemperature;
        const opts: SequenceEvaluateOptions = { yieldEogToken: true };
        if (temperature > 0) {
          opts.temperature = temperature;
          opts.topP = p.topP ?? 1;
          opts.topK = p.topK !== undefined && p.topK > 0 ? p.topK : 0;
          opts.minP = 0;
          opts.seed = p.seed ?? Math.floor(Math.random() * 0x7fffffff);
        } else opts.temperature = 0;
        if (p.minTokens > 0 && !p.ignoreEos) {
          opts.tokenBias = () => (outputs < p.minTokens ? this.eogBias() : this.noBias());
        }
        for await (const t of seq.evaluate(tok([prompt[n - 1]!]), opts)) {
          const now = performance.now();
          if (outputs === 0) {
            firstTok = now;
            evaluatedPrompt = meter(seq) - m0;
          }
          lastTok = now;
          outputs++;
          this.counters.generationTokens++;
          if (!p.ignoreEos && this.model.isEogToken(t)) {
            finish("stop", [t]);
            break;
          }
          if (outputs >= p.maxTokens) {
            finish("length", [t]);
            break;
          }
          if (st.aborted || this.closed) {
            finish("abort", [t]);
            break;
          }
          ch.push({ tokens: [t] });
        }
        // the generator ends by itself only when sampling returned nothing
        finish(st.aborted ? "abort" : "stop", []);
      } catch (e) {
        if (st.aborted || this.closed) finish("abort", []);
        else fail(e as Error);
      } finally {
        // the evaluate generator is closed here, so the slot (and its cached prefix) is
        // free before the client sees the end of this request
        this.release(slot);
      }
    };
    const run = async () => {
      try {
        await work();
      } catch (e) {
        fail(e as Error);
      }
      const o = outcome ?? { error: new Error("llama engine: request ended without a result") };
      if ("error" in o) ch.fail(o.error);
      else ch.push({ tokens: o.tokens, finish: o.fin });
    };
    const job = run().finally(() => {
      signal?.removeEventListener("abort", abort);
      this.aborters.delete(abort);
      this.active.delete(job);
    });
    this.active.add(job);
    return ch;
  }
}

/** Reads the KV layout from GGUF metadata (`<arch>.block_count`, head counts, key/value length). */
export function kvGeometryOf(model: LlamaModel): KvGeometry {
  const md = model.fileInfo.metadata as unknown as Record<string, Record<string, unknown>> & {
    general: { architecture: string };
  };
  const arch = md.general.architecture;
  const a = (md[arch] ?? {}) as Record<string, unknown> & { attention?: Record<string, unknown> };
  const num = (v: unknown): number | undefined => (v === undefined || v === null ? undefined : Number(v));
  const nLayer = num(a.block_count) ?? 0;
  const embd = num(a.embedding_length) ?? 0;
  const heads = num(a.attention?.head_count) ?? 1;
  const kvHeads = num(a.attention?.head_count_kv) ?? heads;
  const keyLen = num(a.attention?.key_length) ?? embd / heads;
  return { arch, nLayer, nEmbdKv: keyLen * kvHeads, kvType: "f16" };
}

/** KV heads and head size from GGUF metadata (`<arch>.attention.head_count_kv`, `key_length`). */
function kvHeadsOf(model: LlamaModel): KvHeads {
  const md = model.fileInfo.metadata as unknown as Record<string, Record<string, unknown>> & {
    general: { architecture: string };
  };
  const a = (md[md.general.architecture] ?? {}) as Record<string, unknown> & {
    attention?: Record<string, unknown>;
  };
  const num = (v: unknown): number | undefined => (v === undefined || v === null ? undefined : Number(v));
  const embd = num(a.embedding_length) ?? 0;
  const heads = num(a.attention?.head_count) ?? 1;
  return {
    numKvHeads: num(a.attention?.head_count_kv) ?? heads,
    headDim: num(a.attention?.key_length) ?? embd / heads,
  };
}

/**
 * Loads a GGUF model and starts a llama engine (about 0.5–0.7 s for the first engine in a
 * process, `getLlama`; then tens of ms for small models, reference/llama-engine.md §1–2).
 * Mirrors `new SimEngine(opts)`; the server hosts it with `startModelServer({ engine })`.
 * @throws Error when the file is missing or not a loadable GGUF; NoBinaryFoundError when the
 *   prebuilt llama.cpp binary is missing; RangeError on invalid sizes
 */
export async function createLlamaEngine(opts: LlamaEngineOptions): Promise<LlamaEngine> {
  if (!existsSync(opts.modelPath)) throw new Error(`model file not found: ${opts.modelPath}`);
  const threads = opts.threads ?? 1;
  const maxNumSeqs = opts.maxNumSeqs ?? 4;
  const blockSize = opts.blockSize ?? 16;
  for (const [k, v] of Object.entries({ threads, maxNumSeqs, blockSize })) {
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`${k} must be a positive integer`);
  }
  const lib = await nodeLlamaCpp();
  const llama = await sharedLlama(threads);
  const [model, hash] = await Promise.all([
    llama.loadModel({ modelPath: opts.modelPath }),
    opts.modelHash ? Promise.resolve(opts.modelHash) : fileHash(opts.modelPath),
  ]);
  try {
    const trained = model.trainContextSize;
    const maxModelLen = opts.maxModelLen ?? Math.min(trained > 0 ? trained : 4096, 4096);
    if (!Number.isInteger(maxModelLen) || maxModelLen < 2)
      throw new RangeError("maxModelLen must be an integer ≥ 2");
    const hook: { current: ((tokens: number) => void) | null } = { current: null };
    const strategy = ({
      items,
      size,
    }: {
      items: readonly BatchItem[];
      size: number;
    }): PrioritizedBatchItem[] => {
      const res = equalShare(items, size);
      let total = 0;
      for (const r of res) total += r.processAmount;
      if (total > 0) hook.current?.(total);
      return res;
    };
    const context = await model.createContext({
      contextSize: maxModelLen,
      sequences: maxNumSeqs,
      threads,
      batchSize: opts.batchSize ?? 512,
      batching: { itemPrioritizationStrategy: strategy },
    });
    const md = model.fileInfo.metadata as unknown as { general?: { name?: string } };
    const name = opts.model ?? md.general?.name ?? basename(opts.modelPath).replace(/\.gguf$/i, "");
    const stateDir = opts.stateDir ?? (existsSync("/dev/shm") ? "/dev/shm" : tmpdir());
    return new LlamaEngine(
      lib,
      model,
      context,
      {
        name,
        maxModelLen: Math.min(maxModelLen, context.contextSize),
        blockSize,
        modelHash: hash,
        geometry: kvGeometryOf(model),
        threads,
        stateDir,
        maxWaitingQueueLength: opts.maxWaitingQueueLength ?? 1000,
        defaultTemperature: opts.defaultTemperature ?? 1,
        kvHeads: kvHeadsOf(model),
        // flash attention changes how V is laid out in the cache (no transposed V)
        attentionBackend: context.flashAttention === true ? "llama.cpp-cpu-flash" : "llama.cpp-cpu",
        engineId: opts.engineId ?? `llama-${randomUUID()}`,
        kvLeaseMs: opts.kvLeaseMs ?? DEFAULT_KV_LEASE_MS,
        sideChannelHost: opts.sideChannelHost ?? "127.0.0.1",
        sideChannelPort: opts.sideChannelPort ?? 0,
        kvTransferTimeoutMs: opts.kvTransferTimeoutMs ?? 30_000,
        kvLoadFailurePolicy: opts.kvLoadFailurePolicy ?? "fail",
      },
      hook,
    );
  } catch (e) {
    await model.dispose();
    throw e;
  }
}

/**
 * Splits a batch of `size` tokens between pending items: an equal share each, then the
 * leftover to clipped items in order (node-llama-cpp's "maximumParallelism" idea, MIT).
 */
function equalShare(items: readonly BatchItem[], size: number): PrioritizedBatchItem[] {
  let left = size;
  const share = Math.max(1, Math.floor(size / Math.max(1, items.length)));
  const res: PrioritizedBatchItem[] = [];
  for (const item of items) {
    if (left === 0) break;
    const take = Math.min(item.tokens.length, left, share);
    res.push({ item, processAmount: take });
    left -= take;
  }
  for (const r of res) {
    if (left === 0) break;
    const more = Math.min(r.item.tokens.length - r.processAmount, left);
    r.processAmount += more;
    left -= more;
  }
  return res;
}
